"""False performance and concept-drift alerts over a year of weekly windows: a seeded,
vectorised simulation built like the drift one (``tests/monitor/_false_alerts.py``, whose
rule-firing counter it reuses).

A stable synthetic model, labels on time, ``rows`` labelled rows per weekly window:

- *classifier*: ``x ~ N(0, 1)``, ``P(y = 1 | x) = sigmoid(2.5 x - 0.5)`` and the model scores
  exactly that probability (predicts 1 above 0.5): accuracy about 0.80, a third of the rows
  positive;
- *regressor*: ``y = 10 + 2 x + e``, ``e ~ N(0, 1)``, predicting ``10 + 2 x``.

What the monitor does with them, per window:

- ``performance.*``: :func:`watchkeeper.checks.check_realised_performance`'s metrics on the window,
  each judged by the same ``_judge`` the monitor calls, against the version's first labelled
  window carried with its own interval (no metric registered: the monitor's default
  reference, ``Monitor._first_labelled_performance``). Accuracy, precision and recall get
  their Wilson intervals exactly; the metrics the check bootstraps (F1, ROC AUC, log loss,
  MAE, RMSE, MAPE, R²) get normal intervals with their delta-method (DeLong for ROC AUC)
  standard errors, which the bootstrap matches closely at these sizes
  (``tests/monitor/test_false_perf_alerts.py`` checks it against the real check);
- ``concept.*``: the monitor's default detectors (``MonitorConfig().detectors``), the real
  objects, fed every labelled row's error once in order, judged by
  :func:`watchkeeper.checks.check_concept_drift` window by window;
- the default ``performance`` and ``concept-drift`` alert rules (their ``for`` read from
  ``AlertConfig.default()``): all results of one family on subject ``model`` share one alert
  key, so a window meets the rule when any of them is ``alert``.

``drop`` plants a real change from the second window on: each label is flipped with the
probability that lowers accuracy by ``drop`` (classifier; a change of P(y | x), so concept
drift too), or the noise's standard deviation grows by ``drop`` (regressor, ``drop = 0.1``:
MAE and RMSE up 10 %).

Run ``python -m tests.monitor._false_perf_alerts`` for the figures quoted in
docs/monitoring.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from tests.monitor._false_alerts import WINDOWS, _firings

Task = Literal["classification", "regression"]
FloatArray = NDArray[np.float64]


@functools.cache
def _rule_for(name: str) -> int:
    from watchkeeper.monitor import AlertConfig

    return AlertConfig.default().rule(name).for_windows


@functools.cache
def _true_accuracy() -> float:
    rng = np.random.default_rng(12345)
    x = rng.normal(size=4_000_000)
    p = _proba(x)
    return float(np.mean(np.where(p > 0.5, p, 1 - p)))


def _proba(x: FloatArray) -> FloatArray:
    return np.asarray(1 / (1 + np.exp(-(2.5 * x - 0.5))), dtype=np.float64)


@dataclass(frozen=True)
class Year:
    """Firings per simulated model-year of one rule, and the first window (1-based, counted
    from the change) at which each run's rule fired after a planted change."""

    firings: NDArray[np.int64]
    first_alert_window: list[int | None]

    @property
    def per_year(self) -> float:
        return float(self.firings.mean())

    @property
    def se(self) -> float:
        return float(self.firings.std(ddof=1) / np.sqrt(self.firings.size))


# -- metrics with intervals, vectorised over windows -------------------------------------


def _normal(value: FloatArray, se: FloatArray, z: float) -> tuple[FloatArray, FloatArray]:
    return value - z * se, value + z * se


def _wilson(k: FloatArray, n: FloatArray, z: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, np.maximum(0.0, centre - half), np.minimum(1.0, centre + half)


def _auc(score: FloatArray, pos: NDArray[np.bool_]) -> tuple[FloatArray, FloatArray]:
    """ROC AUC per row of (windows, n) and its DeLong standard error (no ties)."""
    order = np.argsort(score, axis=1)
    p = np.take_along_axis(pos, order, axis=1)
    n1 = p.sum(axis=1, keepdims=True).astype(np.float64)
    n0 = p.shape[1] - n1
    below_neg = np.cumsum(~p, axis=1)  # negatives at or below each position
    upto_pos = np.cumsum(p, axis=1)
    v10 = np.where(p, below_neg / n0, np.nan)  # per positive: share of negatives below
    v01 = np.where(~p, (n1 - upto_pos) / n1, np.nan)  # per negative: share of positives above
    auc = np.nanmean(v10, axis=1)
    var = np.nanvar(v10, axis=1, ddof=1) / n1[:, 0] + np.nanvar(v01, axis=1, ddof=1) / n0[:, 0]
    return auc, np.sqrt(var)


def _mean_se(values: FloatArray) -> tuple[FloatArray, FloatArray]:
    return values.mean(axis=1), values.std(axis=1, ddof=1) / np.sqrt(values.shape[1])


def _classification_measures(
    y: NDArray[np.bool_], p: FloatArray, z: float
) -> dict[str, tuple[FloatArray, FloatArray, FloatArray]]:
    """(value, lower, upper) per metric, each an array over windows."""
    pred = p > 0.5
    n = np.full(y.shape[0], y.shape[1], dtype=np.float64)
    tp = (y & pred).sum(axis=1).astype(np.float64)
    fp = (~y & pred).sum(axis=1).astype(np.float64)
    fn = (y & ~pred).sum(axis=1).astype(np.float64)
    out = {
        "accuracy": _wilson((y == pred).sum(axis=1).astype(np.float64), n, z),
        "precision": _wilson(tp, tp + fp, z),
        "recall": _wilson(tp, tp + fn, z),
    }
    # F1 = 2a / (2a + b + c) of the cell shares a, b, c: delta method under the multinomial
    a, b, c = tp / n, fp / n, fn / n
    d = 2 * a + b + c
    f1 = 2 * a / d
    g = np.stack([2 * (b + c) / d**2, -2 * a / d**2, -2 * a / d**2])  # gradient (a, b, c)
    shares = np.stack([a, b, c])
    var = (g**2 * shares).sum(axis=0) - (g * shares).sum(axis=0) ** 2
    out["f1"] = (f1, *_normal(f1, np.sqrt(var / n), z))
    auc, se = _auc(p, y)
    out["roc_auc"] = (auc, *_normal(auc, se, z))
    eps = float(np.finfo(np.float64).eps)
    loss = -np.log(np.clip(np.where(y, p, 1 - p), eps, 1 - eps))
    ll, se = _mean_se(loss)
    out["log_loss"] = (ll, *_normal(ll, se, z))
    return out


def _regression_measures(
    y: FloatArray, pred: FloatArray, z: float
) -> dict[str, tuple[FloatArray, FloatArray, FloatArray]]:
    err = y - pred
    n = y.shape[1]
    mae, se = _mean_se(np.abs(err))
    out = {"mae": (mae, *_normal(mae, se, z))}
    sq = err**2
    mse, se_mse = _mean_se(sq)
    rmse = np.sqrt(mse)
    out["rmse"] = (rmse, *_normal(rmse, se_mse / (2 * rmse), z))
    mape, se = _mean_se(np.abs(err) / np.abs(y))
    out["mape"] = (mape, *_normal(mape, se, z))
    dev = (y - y.mean(axis=1, keepdims=True)) ** 2
    v = dev.mean(axis=1)
    r2 = 1 - mse / v
    # delta method on (mean of e^2, mean of (y - ybar)^2): gradient (-1/v, mse/v^2)
    ga, gb = -1 / v, mse / v**2
    ca, cb = sq - mse[:, None], dev - v[:, None]
    var = ((ga[:, None] * ca + gb[:, None] * cb) ** 2).mean(axis=1) / n
    out["r2"] = (r2, *_normal(r2, np.sqrt(var), z))
    return out


def _alerting(
    measures: dict[str, tuple[FloatArray, FloatArray, FloatArray]],
    n: int,
    reference_interval: bool = True,
) -> NDArray[np.bool_]:
    """Per window: whether any ``performance.*`` result on ``model`` is ``alert``, judged by
    the check's own ``_judge`` against the first window (value with its interval; its value
    alone, as before the two-sample comparison, with ``reference_interval=False``)."""
    from watchkeeper.checks import PerformanceRule, Status
    from watchkeeper.checks._performance import _judge, _Measure

    rule = PerformanceRule()
    windows = next(iter(measures.values()))[0].size
    out = np.zeros(windows, dtype=bool)
    for metric, (value, lower, upper) in measures.items():
        reference: float | tuple[float, float, float] = (
            (float(value[0]), float(lower[0]), float(upper[0]))
            if reference_interval
            else float(value[0])
        )
        for w in range(1, windows):
            m = _Measure(metric, "model", float(value[w]), float(lower[w]), float(upper[w]),
                         "normal", {})  # fmt: skip
            out[w] |= _judge(m, n, reference, rule).status is Status.ALERT
    return out


# -- one model-year ------------------------------------------------------------------------


def _draw(
    rng: np.random.Generator, task: Task, windows: int, rows: int, drop: float
) -> tuple[NDArray[np.bool_] | FloatArray, FloatArray]:
    """Labels and the model's output (score or prediction), (windows, rows) each."""
    x = rng.normal(size=(windows, rows))
    if task == "classification":
        p = _proba(x)
        y = rng.random((windows, rows)) < p
        if drop:
            flip = drop / (2 * _true_accuracy() - 1)
            flipped = rng.random((windows, rows)) < flip
            flipped[0] = False  # the change starts at the second window
            y ^= flipped
        return y, p
    pred = 10 + 2 * x
    scale = np.ones((windows, 1))
    scale[1:] += drop
    return pred + rng.normal(size=(windows, rows)) * scale, pred


def _concept_alerting(
    y: NDArray[np.bool_] | FloatArray, out: FloatArray, task: Task, detectors: tuple[str, ...]
) -> NDArray[np.bool_]:
    from watchkeeper.checks import Status, check_concept_drift, get_detector
    from watchkeeper.monitor import MonitorConfig

    if task == "classification":
        errors = (y != (out > 0.5)).astype(np.float64)
    else:
        errors = np.abs(np.asarray(y, dtype=np.float64) - out)
    dets = [get_detector(name) for name in detectors or MonitorConfig().detectors]
    dets = [d for d in dets if task == "classification" or not d.binary]
    alerting = np.zeros(errors.shape[0], dtype=bool)
    for w in range(errors.shape[0]):
        for det in dets:
            alerting[w] |= check_concept_drift(det, errors[w]).status is Status.ALERT
    return alerting


def _first_firing(alerting: NDArray[np.bool_], for_windows: int) -> int | None:
    """Window (1-based, counted from the change at the second window) where the rule fires."""
    hits = np.flatnonzero(
        np.convolve(alerting[1:].astype(int), np.ones(for_windows), "valid") >= for_windows
    )
    return int(hits[0]) + for_windows if hits.size else None


def simulate_year(
    rows: int,
    runs: int,
    *,
    task: Task = "classification",
    family: Literal["performance", "concept"] = "performance",
    drop: float = 0.0,
    seed: int = 0,
    windows: int = WINDOWS,
    for_windows: int | None = None,
    detectors: tuple[str, ...] = (),
    reference_interval: bool = True,
) -> Year:
    """``runs`` model-years of ``windows`` weekly windows of ``rows`` labelled rows.

    ``for_windows`` and ``detectors`` override the default rule's ``for`` and the monitor's
    default detectors (to measure alternatives); ``reference_interval=False`` judges against
    the first window's value alone.
    """
    from scipy.stats import norm

    rule = "performance" if family == "performance" else "concept-drift"
    for_windows = for_windows or _rule_for(rule)
    z = float(norm.ppf(0.975))
    rng = np.random.default_rng(seed)
    firings = np.zeros(runs, dtype=np.int64)
    first: list[int | None] = []
    for r in range(runs):
        y, out = _draw(rng, task, windows, rows, drop)
        if family == "concept":
            alerting = _concept_alerting(y, out, task, detectors)
        elif task == "classification":
            measures = _classification_measures(y, out, z)  # type: ignore[arg-type]
            alerting = _alerting(measures, rows, reference_interval)
        else:
            measures = _regression_measures(y, out, z)
            alerting = _alerting(measures, rows, reference_interval)
        firings[r] = _firings(alerting[:, None], for_windows)
        first.append(_first_firing(alerting, for_windows))
    return Year(firings, first)


def _line(label: str, year: Year) -> None:
    print(f"{label}: {year.per_year:.3f} false alerts per model-year (± {year.se:.3f}, "
          f"{year.firings.size} model-years)", flush=True)  # fmt: skip


def main() -> None:
    sizes = ((1_000, 100), (10_000, 40))
    for family in ("performance", "concept"):
        for task in ("classification", "regression"):
            for rows, runs in sizes:
                year = simulate_year(rows, runs, task=task, family=family, seed=rows)  # type: ignore[arg-type]
                _line(f"{family} {task} {rows:,} rows/window", year)
    # what the defaults changed or kept: the first window's value alone as the reference;
    # Page-Hinkley next to ADWIN (the monitor's default detectors before)
    for task in ("classification", "regression"):
        year = simulate_year(1_000, 100, task=task, seed=1_000, reference_interval=False)  # type: ignore[arg-type]
        _line(f"performance {task} 1,000 rows/window, point reference", year)
        for rows, runs in ((1_000, 20), (10_000, 5)):
            year = simulate_year(rows, runs, task=task, family="concept", seed=rows,  # type: ignore[arg-type]
                                 detectors=("adwin", "page_hinkley"))  # fmt: skip
            _line(f"concept {task} {rows:,} rows/window, adwin + page_hinkley", year)
    for family, task, drop in (
        ("performance", "classification", 0.05),
        ("concept", "classification", 0.05),
        ("performance", "regression", 0.1),
        ("concept", "regression", 0.1),
    ):
        runs = 100
        year = simulate_year(10_000, runs, task=task, family=family, drop=drop, seed=7,  # type: ignore[arg-type]
                             windows=3)  # fmt: skip
        within = np.mean([f is not None and f <= 2 for f in year.first_alert_window])
        print(f"{family} {task}, drop {drop} at 10,000 rows/window: alert within two windows "
              f"in {within:.0%} of {runs} runs", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
