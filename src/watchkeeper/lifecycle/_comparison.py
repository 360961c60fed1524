"""Champion versus challenger on the same holdout: paired intervals and the blessing rule.

Both models predict the same rows, so their errors are correlated; a paired method uses that
and gives much tighter intervals of the *difference* than two separate intervals would.

- :func:`paired_bootstrap`: percentile bootstrap of the improvement (challenger minus
  champion, signed so that positive is better), resampling rows jointly for both models
  (Efron & Tibshirani, 1993, ch. 13). Metrics that are a mean over rows are resampled through
  their per-row form, which is exact and fast; others are recomputed on each resample.
- :func:`mcnemar_test`: McNemar's exact test for accuracy (a binomial test on the discordant
  rows), reported alongside the bootstrap as a cross-check.

A point estimate never blesses: :func:`compare_models` requires the lower end of the
interval to clear the margin for every metric (an intersection-union test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle._config import ComparisonConfig
from watchkeeper.lifecycle._metrics import FloatArray, Metric, Predictions, get_metric
from watchkeeper.stats import resampled_auc

__all__ = [
    "PairedDifference",
    "compare_models",
    "mcnemar_test",
    "paired_bootstrap",
    "resampled_auc",
]

_CHUNK_CELLS = 2_000_000  # resample matrix cells held in memory at once


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """Interval of a paired improvement.

    Parameters
    ----------
    metric
        Metric name.
    champion, challenger
        Metric of each model on the holdout.
    improvement
        ``challenger - champion`` signed so that positive means the challenger is better.
    lower, upper
        Two-sided percentile bootstrap interval of ``improvement`` at ``confidence``.
    confidence
        Level of the interval.
    n_rows, n_resamples
        Holdout rows and bootstrap resamples.
    method
        ``"paired percentile bootstrap"``.

    Examples
    --------
    >>> d = PairedDifference("accuracy", 0.80, 0.85, 0.05, 0.02, 0.08, 0.95, 1000, 2000,
    ...                      "paired percentile bootstrap")
    >>> d.to_dict()["improvement"]
    0.05
    """

    metric: str
    champion: float
    challenger: float
    improvement: float
    lower: float
    upper: float
    confidence: float
    n_rows: int
    n_resamples: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form."""
        return {
            "metric": self.metric,
            "champion": self.champion,
            "challenger": self.challenger,
            "improvement": self.improvement,
            "lower": self.lower,
            "upper": self.upper,
            "confidence": self.confidence,
            "n_rows": self.n_rows,
            "n_resamples": self.n_resamples,
            "method": self.method,
        }


def _check_pair(champion: Predictions, challenger: Predictions) -> int:
    n = len(champion.y)
    if len(challenger.y) != n or not np.array_equal(champion.y, challenger.y):
        raise InputError(
            "champion and challenger must be scored on the same holdout rows with the same "
            "targets; predict both on one holdout"
        )
    if n < 2:
        raise InputError("a paired comparison needs at least two holdout rows")
    return n


def paired_bootstrap(
    champion: Predictions,
    challenger: Predictions,
    metric: str,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> PairedDifference:
    """Percentile bootstrap interval of the paired improvement of ``challenger`` on ``metric``.

    Parameters
    ----------
    champion, challenger
        Predictions of both models on the same rows.
    metric
        Metric name (see :func:`available_metrics`).
    n_resamples
        Bootstrap resamples.
    confidence
        Level of the two-sided interval.
    random_state
        Seed or generator of the resampling.

    Returns
    -------
    PairedDifference

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 2000)
    >>> old = np.where(rng.random(2000) < 0.80, y, 1 - y)
    >>> new = np.where(rng.random(2000) < 0.90, y, 1 - y)
    >>> d = paired_bootstrap(Predictions(y, old), Predictions(y, new), "accuracy")
    >>> bool(d.lower > 0.05)
    True
    """
    if not 0 < confidence < 1:
        raise InputError("confidence must be in (0, 1)")
    if n_resamples < 1:
        raise InputError("n_resamples must be at least 1")
    n = _check_pair(champion, challenger)
    m = get_metric(metric)
    rng = np.random.default_rng(random_state)
    a, b = m.compute(champion), m.compute(challenger)
    sign = 1.0 if m.greater_is_better else -1.0
    diffs = np.empty(n_resamples)
    d = None if m.per_row is None else sign * (m.per_row(challenger) - m.per_row(champion))
    step = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_resamples, step):
        idx = rng.integers(0, n, size=(min(start + step, n_resamples) - start, n))
        if d is not None:
            diffs[start : start + len(idx)] = d[idx].mean(axis=1)
            continue
        fast_a, fast_b = _resampled(metric, champion, idx), _resampled(metric, challenger, idx)
        if fast_a is not None and fast_b is not None:
            diffs[start : start + len(idx)] = sign * (fast_b - fast_a)
            continue
        for j, row in enumerate(idx):
            diffs[start + j] = _safe_improvement(m, champion.take(row), challenger.take(row))
    degenerate = int(np.sum(~np.isfinite(diffs)))
    if degenerate > n_resamples // 2:
        raise InputError(
            f"{metric} is undefined on most resamples of this holdout (e.g. a single class); "
            "use a larger holdout or another metric"
        )
    alpha = 1.0 - confidence
    lo, hi = np.nanquantile(diffs, [alpha / 2, 1 - alpha / 2])
    return PairedDifference(
        metric=metric,
        champion=a,
        challenger=b,
        improvement=m.improvement(b, a),
        lower=float(lo),
        upper=float(hi),
        confidence=confidence,
        n_rows=n,
        n_resamples=n_resamples,
        method="paired percentile bootstrap",
    )


def _safe_improvement(m: Metric, champion: Predictions, challenger: Predictions) -> float:
    try:
        return m.improvement(m.compute(challenger), m.compute(champion))
    except ValueError:  # e.g. ROC AUC of a resample holding one class only
        return math.nan


def _resampled(metric: str, p: Predictions, idx: NDArray[np.intp]) -> FloatArray | None:
    """Metric on every row of resample indices ``idx`` at once, where a fast form exists."""
    if metric == "r2":
        y = p.y[idx].astype(float)
        sse = np.sum((y - p.label[idx].astype(float)) ** 2, axis=1)
        sst = np.sum((y - y.mean(axis=1, keepdims=True)) ** 2, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sst > 0, 1.0 - sse / sst, np.nan)
    if metric == "roc_auc" and p.proba is not None and p.proba.shape[1] == 2:
        assert p.classes is not None
        return resampled_auc(p.y == p.classes[1], p.proba[:, 1], idx)
    return None


def mcnemar_test(
    champion_correct: NDArray[np.bool_], challenger_correct: NDArray[np.bool_]
) -> dict[str, Any]:
    """McNemar's exact test of equal accuracy on paired rows.

    Only rows where exactly one model is right carry information; under equal accuracy each
    is equally likely to favour either model, so their split is Binomial(b + c, 1/2).

    Returns
    -------
    dict
        ``champion_only`` (b) and ``challenger_only`` (c) counts, the two-sided ``p_value``
        and the one-sided ``p_value_greater`` (the challenger is more accurate).

    Examples
    --------
    >>> old = np.array([True] * 80 + [False] * 20)
    >>> new = np.array([True] * 80 + [True] * 15 + [False] * 5)
    >>> res = mcnemar_test(old, new)
    >>> res["challenger_only"], res["p_value"] == 2 * 0.5**15
    (15, True)
    """
    x = np.asarray(champion_correct, dtype=bool)
    y = np.asarray(challenger_correct, dtype=bool)
    if x.shape != y.shape:
        raise InputError("both models must be scored on the same rows")
    b = int(np.sum(x & ~y))
    c = int(np.sum(~x & y))
    if b + c == 0:
        return {"champion_only": 0, "challenger_only": 0, "p_value": 1.0, "p_value_greater": 1.0}
    return {
        "champion_only": b,
        "challenger_only": c,
        "p_value": float(sps.binomtest(c, b + c, 0.5).pvalue),
        "p_value_greater": float(sps.binomtest(c, b + c, 0.5, alternative="greater").pvalue),
    }


def compare_models(
    champion: Predictions,
    challenger: Predictions,
    metrics: tuple[str, ...],
    config: ComparisonConfig | None = None,
    *,
    random_state: int = 0,
) -> list[CheckResult]:
    """Decide whether the challenger is blessed over the champion, one result per metric.

    A metric passes (``ok``) only if the lower end of the interval of the improvement clears
    ``margin`` (superiority) or ``-margin`` (non-inferiority); otherwise it fails
    (``alert``), with the reason saying whether the point estimate favoured the challenger.

    Parameters
    ----------
    champion, challenger
        Predictions of both models on the same holdout.
    metrics
        Metrics to compare; every one must clear its bar.
    config
        Mode, margins, confidence and resamples.
    random_state
        Seed of the bootstrap.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> y = rng.integers(0, 2, 5000)
    >>> old = np.where(rng.random(5000) < 0.80, y, 1 - y)
    >>> new = np.where(rng.random(5000) < 0.85, y, 1 - y)
    >>> [r.status.value for r in compare_models(Predictions(y, old), Predictions(y, new),
    ...                                         ("accuracy",))]
    ['ok']
    """
    cfg = config or ComparisonConfig()
    n = _check_pair(champion, challenger)
    out: list[CheckResult] = []
    for i, name in enumerate(metrics):
        seed = np.random.default_rng([random_state, i])
        margin = cfg.margin_for(name)
        bar = margin if cfg.mode == "superiority" else -margin
        rule = f"{cfg.mode}: lower {cfg.confidence:.0%} bound of improvement > {bar:g}"
        if n < cfg.min_rows:
            out.append(
                CheckResult(
                    check="gate.comparison",
                    subject=name,
                    status=Status.INSUFFICIENT_DATA,
                    reason=f"holdout of {n} rows is below comparison.min_rows={cfg.min_rows}; "
                    "the challenger cannot be blessed on so few rows",
                    threshold=bar,
                    rule=rule,
                )
            )
            continue
        d = paired_bootstrap(
            champion,
            challenger,
            name,
            n_resamples=cfg.n_resamples,
            confidence=cfg.confidence,
            random_state=seed,
        )
        details: dict[str, Any] = d.to_dict() | {"mode": cfg.mode, "margin": margin}
        if name == "accuracy":
            details["mcnemar"] = mcnemar_test(
                champion.label == champion.y, challenger.label == challenger.y
            )
        blessed = d.lower > bar
        what = f"{name}: challenger {d.challenger:.4g} vs champion {d.champion:.4g}"
        ci = (
            f"improvement {d.improvement:+.4g} "
            f"({cfg.confidence:.0%} CI {d.lower:+.4g} to {d.upper:+.4g})"
        )
        if blessed:
            reason = f"{what}; {ci} clears {bar:+g}"
        elif d.improvement > bar:
            reason = (
                f"{what}; {ci}: the point estimate clears {bar:+g} but the lower bound does "
                "not, so the difference may be noise"
            )
        else:
            reason = f"{what}; {ci} does not clear {bar:+g}"
        out.append(
            CheckResult(
                check="gate.comparison",
                subject=name,
                status=Status.OK if blessed else Status.ALERT,
                reason=reason,
                value=d.improvement,
                threshold=bar,
                lower=d.lower,
                upper=d.upper,
                # McNemar tests equality, so its p-value only speaks to superiority at margin 0.
                p_value=details["mcnemar"]["p_value_greater"]
                if name == "accuracy" and cfg.mode == "superiority" and margin == 0
                else None,
                rule=rule,
                details=details,
            )
        )
    return out
