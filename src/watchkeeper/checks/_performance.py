"""Realised model performance on labelled rows, each metric with a confidence interval.

Point values are scikit-learn's own metrics on the same rows. Intervals:

- accuracy, precision and recall are proportions (of all rows, of the rows predicted as a
  class, of the rows truly of a class), so they get the Wilson score interval, exact enough at
  any sample size and never outside [0, 1];
- every other metric (F1, ROC AUC, log loss, MAE, RMSE, MAPE, R2) gets a percentile bootstrap
  interval with a fixed seed: the rows are resampled as weights (how often each row is drawn),
  so a resample costs one matrix product instead of a Python loop.

A verdict needs at least ``min_labels`` labelled rows (``insufficient_data`` below). A drop
is decided against a reference value (the version's registered metrics or the first labelled
windows) *with the interval*: ``alert`` when the whole interval lies beyond the reference by
more than the tolerance, ``warn`` when only the point estimate does, ``ok`` otherwise. The
tolerance is absolute for metrics on [0, 1] and relative to the reference for the others,
so that a trivially small drop does not alarm on a huge window.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.stats import f1_from_counts, roc_auc, weighted_roc_auc, wilson_interval

__all__ = ["PerformanceRule", "check_realised_performance", "wilson_interval"]

Task = Literal["classification", "regression"]
FloatArray = NDArray[np.float64]
#: A statistic of resampling weights: ``weights`` (B x n) -> B values.
WeightedStat = Callable[[FloatArray], FloatArray]

#: Ranking metrics (checks._ranking): on [0, 1], larger is better.
_RANKING = frozenset({"ndcg_at_k", "map_at_k", "mrr", "recall_at_k"})
#: Metrics where larger is better; the others are losses.
GREATER_IS_BETTER = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "r2"}) | _RANKING
#: Metrics on the fixed scale [0, 1] (absolute tolerance); the others use a relative one.
BOUNDED = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc"}) | _RANKING
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")
_EPS = float(np.finfo(np.float64).eps)
_CELLS = 2_000_000  # resampling weights drawn at once (B x n), about 16 MB
_CACHED_CELLS = 2_000_000  # up to this size the weights are drawn once and reused


@dataclass(frozen=True, slots=True)
class PerformanceRule:
    """How realised performance is judged.

    Parameters
    ----------
    min_labels
        Labelled rows needed for a verdict; fewer give ``insufficient_data``.
    confidence
        Level of every interval.
    tolerance
        Drop that matters for metrics on [0, 1] (absolute, e.g. 0.02 accuracy).
    relative_tolerance
        Drop that matters for the other metrics, as a share of the reference value.
    n_bootstrap
        Resamples of the bootstrap intervals.
    random_state
        Seed of the bootstrap.

    Examples
    --------
    >>> PerformanceRule().threshold("accuracy", 0.9)
    0.88
    >>> round(PerformanceRule().threshold("mae", 10.0), 6)
    10.5
    """

    min_labels: int = 50
    confidence: float = 0.95
    tolerance: float = 0.02
    relative_tolerance: float = 0.05
    n_bootstrap: int = 500
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.min_labels < 1:
            raise InputError(f"min_labels must be at least 1, got {self.min_labels}")
        if not 0 < self.confidence < 1:
            raise InputError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.tolerance < 0 or self.relative_tolerance < 0:
            raise InputError("tolerance and relative_tolerance must be >= 0")
        if self.n_bootstrap < 10:
            raise InputError(f"n_bootstrap must be at least 10, got {self.n_bootstrap}")

    def threshold(self, metric: str, reference: float) -> float:
        """The value beyond which ``metric`` counts as dropped from ``reference``."""
        tol = self.tolerance if metric in BOUNDED else self.relative_tolerance * abs(reference)
        return reference - tol if metric in GREATER_IS_BETTER else reference + tol


def _weights(n: int, rule: PerformanceRule) -> Iterable[FloatArray]:
    """Resampling weights (how often each row is drawn), in chunks of rows of a B x n matrix.

    The same seed gives the same resamples for every metric of one call, so intervals of
    related metrics come from the same bootstrap replicates; small matrices are drawn once
    and reused.
    """
    if n * rule.n_bootstrap <= _CACHED_CELLS:
        return _cached_weights(n, rule.n_bootstrap, rule.random_state)
    return _draw_weights(n, rule.n_bootstrap, rule.random_state)


def _draw_weights(n: int, n_bootstrap: int, random_state: int) -> Iterator[FloatArray]:
    rng = np.random.default_rng(random_state)
    per_chunk = max(1, _CELLS // max(n, 1))
    done = 0
    while done < n_bootstrap:
        b = min(per_chunk, n_bootstrap - done)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        chunk = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        chunk.setflags(write=False)
        yield chunk
        done += b


@functools.lru_cache(maxsize=1)
def _cached_weights(n: int, n_bootstrap: int, random_state: int) -> tuple[FloatArray, ...]:
    return tuple(_draw_weights(n, n_bootstrap, random_state))


def _bootstrap(
    stat: WeightedStat, n: int, rule: PerformanceRule
) -> tuple[float | None, float | None]:
    """Percentile interval of ``stat`` over bootstrap resampling weights."""
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.concatenate([stat(w) for w in _weights(n, rule)])
    finite = values[np.isfinite(values)]
    if finite.size < rule.n_bootstrap // 2:
        return None, None  # most resamples undefined (e.g. one class only)
    alpha = 1 - rule.confidence
    lo, hi = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


#: The bootstrap form of ROC AUC (kept under its old name; its home is watchkeeper.stats).
weighted_auc = weighted_roc_auc


def _cell_f1(weights: FloatArray, cells: FloatArray) -> FloatArray:
    tp, fp, fn = (weights @ cells).T  # cells: tp, fp, fn indicators per row
    return f1_from_counts(tp, fp, fn)


def _auc_of(weights: FloatArray, scores: FloatArray, positive: NDArray[np.bool_]) -> FloatArray:
    return weighted_auc(scores, positive, weights)


@dataclass(frozen=True, slots=True)
class _Measure:
    """One metric on one subject before it is judged."""

    metric: str
    subject: str
    value: float | None
    lower: float | None
    upper: float | None
    interval: str
    details: Mapping[str, Any]


def _proportion(
    metric: str, subject: str, k: int, n: int, value: float, rule: PerformanceRule, of: str
) -> _Measure:
    lo, hi = wilson_interval(k, n, rule.confidence) if n else (None, None)
    return _Measure(
        metric, subject, value, lo, hi, "wilson", {"successes": k, "trials": n, "of": of}
    )


def _booted(
    metric: str,
    subject: str,
    value: float | None,
    stat: WeightedStat,
    n: int,
    rule: PerformanceRule,
) -> _Measure:
    lo, hi = (None, None) if value is None else _bootstrap(stat, n, rule)
    return _Measure(metric, subject, value, lo, hi, "bootstrap", {"n_bootstrap": rule.n_bootstrap})


def _class_measures(
    y: NDArray[Any],
    pred: NDArray[Any],
    proba: FloatArray | None,
    classes: Sequence[str],
    rule: PerformanceRule,
) -> list[_Measure]:
    from sklearn import metrics as skm

    n = len(y)
    out: list[_Measure] = []
    correct = y == pred
    out.append(
        _proportion(
            "accuracy", "model", int(correct.sum()), n,
            float(skm.accuracy_score(y, pred)), rule, "all labelled rows",
        )
    )  # fmt: skip
    present = [c for c in classes if bool(np.any(y == c) | np.any(pred == c))]
    binary = len(classes) == 2
    # binary: the positive class (the second, as in scikit-learn); multiclass: every class
    targets = [classes[1]] if binary else present
    truth = {c: (y == c).astype(np.float64) for c in targets}
    said = {c: (pred == c).astype(np.float64) for c in targets}
    for c in targets:
        subject = "model" if binary else str(c)
        tp = int((truth[c] * said[c]).sum())
        n_said, n_true = int(said[c].sum()), int(truth[c].sum())
        prec = float(skm.precision_score(y, pred, labels=[c], average="macro", zero_division=0.0))
        rec = float(skm.recall_score(y, pred, labels=[c], average="macro", zero_division=0.0))
        out.append(_proportion("precision", subject, tp, n_said, prec, rule, f"predicted {c}"))
        out.append(_proportion("recall", subject, tp, n_true, rec, rule, f"true {c}"))
        t, s = truth[c], said[c]
        cells = np.stack([t * s, (1 - t) * s, t * (1 - s)], axis=1)  # tp, fp, fn per row
        f1 = float(f1_from_counts(tp, n_said - tp, n_true - tp))
        out.append(_booted("f1", subject, f1, functools.partial(_cell_f1, cells=cells), n, rule))
    if not binary and present:
        tps = np.stack([truth[c] * said[c] for c in present])
        fps = np.stack([(1 - truth[c]) * said[c] for c in present])
        fns = np.stack([truth[c] * (1 - said[c]) for c in present])

        def macro(w: FloatArray, part: str) -> FloatArray:
            tp, fp, fn = w @ tps.T, w @ fps.T, w @ fns.T
            with np.errstate(invalid="ignore", divide="ignore"):
                if part == "precision":
                    v = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), 0.0)
                elif part == "recall":
                    v = np.where(tp + fn > 0, tp / np.where(tp + fn > 0, tp + fn, 1), 0.0)
                else:
                    v = f1_from_counts(tp, fp, fn)
            return np.asarray(v.mean(axis=1), dtype=np.float64)

        for part, fn_ in (
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        ):
            value = float(fn_(y, pred, labels=present, average="macro", zero_division=0.0))
            out.append(_booted(part, "model", value, functools.partial(macro, part=part), n, rule))
    if proba is not None:
        out += _proba_measures(y, proba, classes, rule)
    return out


def _proba_measures(
    y: NDArray[Any], proba: FloatArray, classes: Sequence[str], rule: PerformanceRule
) -> list[_Measure]:
    from sklearn import metrics as skm

    n = len(y)
    out: list[_Measure] = []
    known = np.isin(y, list(classes))
    if not bool(known.all()):
        # a label the model has no score for: log loss and AUC are undefined on those rows
        y, proba = y[known], proba[known]
        n = len(y)
    if n == 0:
        return out
    index = {c: i for i, c in enumerate(classes)}
    rows = np.array([index[v] for v in y], dtype=np.intp)
    norm = proba / proba.sum(axis=1, keepdims=True)
    picked = np.clip(norm[np.arange(n), rows], _EPS, 1 - _EPS)
    per_row = -np.log(picked)
    value = float(skm.log_loss(y, norm, labels=list(classes)))
    out.append(_booted("log_loss", "model", value, lambda w: (w @ per_row) / n, n, rule))
    binary = len(classes) == 2
    aucs: list[tuple[str, FloatArray, NDArray[np.bool_]]] = []
    for i, c in enumerate(classes):
        if binary and i == 0:
            continue
        positive = rows == i
        aucs.append(("model" if binary else str(c), proba[:, i], positive))
    for subject, score, positive in aucs:
        defined = 0 < int(positive.sum()) < n
        value_auc = roc_auc(score, positive) if defined else None
        out.append(
            _booted("roc_auc", subject, value_auc,
                    functools.partial(_auc_of, scores=score, positive=positive), n, rule)
        )  # fmt: skip
    if not binary:
        present = [(s, p) for _, s, p in aucs if 0 < int(p.sum()) < n]
        if len(present) == len(aucs):
            # one-vs-rest macro average, as scikit-learn's roc_auc_score(multi_class="ovr")
            macro = float(np.mean([roc_auc(s, p) for s, p in present]))

            def stat(w: FloatArray) -> FloatArray:
                return np.asarray(
                    np.mean([weighted_auc(s, p, w) for s, p in present], axis=0),
                    dtype=np.float64,
                )

            out.append(_booted("roc_auc", "model", macro, stat, n, rule))
    return out


def _regression_measures(y: FloatArray, pred: FloatArray, rule: PerformanceRule) -> list[_Measure]:
    from sklearn import metrics as skm

    n = len(y)
    abs_err = np.abs(y - pred)
    sq = (y - pred) ** 2
    ape = abs_err / np.maximum(np.abs(y), _EPS)
    yy = y * y

    def r2(w: FloatArray) -> FloatArray:
        sst = w @ yy - (w @ y) ** 2 / n
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(1 - (w @ sq) / sst, dtype=np.float64)

    r2_value = float(skm.r2_score(y, pred)) if n >= 2 and np.ptp(y) > 0 else None
    return [
        _booted("mae", "model", float(skm.mean_absolute_error(y, pred)),
                lambda w: (w @ abs_err) / n, n, rule),
        _booted("rmse", "model", float(np.sqrt(skm.mean_squared_error(y, pred))),
                lambda w: np.sqrt((w @ sq) / n), n, rule),
        _booted("mape", "model", float(skm.mean_absolute_percentage_error(y, pred)),
                lambda w: (w @ ape) / n, n, rule),
        _booted("r2", "model", r2_value, r2, n, rule),
    ]  # fmt: skip


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


#: A reference value, or ``(value, lower, upper)``: a reference measured on a sample, with
#: its own interval at the rule's confidence (e.g. the version's first labelled window).
ReferenceValue = float | tuple[float, float, float]


def _judge(
    m: _Measure,
    n: int,
    reference: ReferenceValue | None,
    rule: PerformanceRule,
    unit: str = "labelled rows",
) -> CheckResult:
    interval: tuple[float, float] | None = None
    if isinstance(reference, tuple):
        reference, lo, hi = (float(v) for v in reference)
        interval = (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None
    details = {**m.details, "n_labels": n, "interval": m.interval, "reference": reference}
    level = f"{rule.confidence:.0%}"
    shown = f"{m.metric} {_fmt(m.value)} ({level} CI {_fmt(m.lower)} to {_fmt(m.upper)})"

    def result(status: Status, reason: str, threshold: float | None = None) -> CheckResult:
        return CheckResult(
            f"performance.{m.metric}", m.subject, status, reason, value=m.value,
            threshold=threshold, lower=m.lower, upper=m.upper, rule="performance",
            details=details,
        )  # fmt: skip

    if n < rule.min_labels:
        return result(
            Status.INSUFFICIENT_DATA,
            f"only {n:,} {unit}; at least {rule.min_labels:,} are needed for a verdict",
        )
    if m.value is None or m.lower is None or m.upper is None:
        return result(
            Status.INSUFFICIENT_DATA,
            f"{m.metric} is undefined on these {n:,} {unit} (e.g. only one class present)",
        )
    if reference is None:
        return result(
            Status.OK, f"{shown} on {n:,} {unit}; no reference performance to compare with"
        )
    threshold = rule.threshold(m.metric, reference)
    better = m.metric in GREATER_IS_BETTER
    if interval is not None:
        return _judge_two_sample(m, n, reference, interval, threshold, rule, result, shown, unit)
    whole_beyond = m.upper < threshold if better else m.lower > threshold
    point_beyond = m.value < threshold if better else m.value > threshold
    if whole_beyond:
        status, verdict = Status.ALERT, "the whole interval is worse than"
    elif point_beyond:
        status, verdict = Status.WARN, "the estimate (not yet the interval) is worse than"
    else:
        status, verdict = Status.OK, "within the tolerance of"
    return result(
        status,
        f"{shown} on {n:,} {unit}; {verdict} the reference {_fmt(reference)} "
        f"(threshold {_fmt(threshold)})",
        threshold,
    )


def _judge_two_sample(
    m: _Measure,
    n: int,
    reference: float,
    interval: tuple[float, float],
    threshold: float,
    rule: PerformanceRule,
    result: Any,
    shown: str,
    unit: str = "labelled rows",
) -> CheckResult:
    """Both sides are estimates: judge the difference with both uncertainties.

    Each interval gives a standard error (half-width / z, as for a normal interval); the
    difference of two independent estimates has ``se = sqrt(se_ref^2 + se_cur^2)``. The
    window alerts when the whole interval of the difference is beyond the tolerance, and
    warns when only its estimate is (the same verdicts as against a fixed reference, with the
    reference's noise counted: a reference window measured on a few hundred rows no longer
    makes an unchanged model look worse).
    """
    from scipy.stats import norm

    value, lower, upper = float(m.value or 0.0), float(m.lower or 0.0), float(m.upper or 0.0)
    z = float(norm.ppf(0.5 + rule.confidence / 2))
    se_ref = (interval[1] - interval[0]) / (2 * z)
    se_cur = (upper - lower) / (2 * z)
    se = math.hypot(se_ref, se_cur)
    tol = abs(reference - threshold)
    better = m.metric in GREATER_IS_BETTER
    worse_by = (reference - value) if better else (value - reference)  # > 0: worse
    low_worse = worse_by - z * se  # the difference's interval, on the "worse" scale
    if low_worse > tol:
        status, verdict = Status.ALERT, "the whole interval of the difference is worse than"
    elif worse_by > tol:
        status, verdict = Status.WARN, "the difference (not yet its interval) is worse than"
    else:
        status, verdict = Status.OK, "within the tolerance of"
    out: CheckResult = result(
        status,
        f"{shown} on {n:,} {unit}; {verdict} the reference {_fmt(reference)} "
        f"({rule.confidence:.0%} CI {_fmt(interval[0])} to {_fmt(interval[1])}, itself "
        f"measured on a sample) by more than {_fmt(tol)}; difference "
        f"{_fmt(value - reference)} ± {_fmt(z * se)}",
        threshold,
    )
    return out


def check_realised_performance(
    y_true: Sequence[Any] | NDArray[Any],
    y_pred: Sequence[Any] | NDArray[Any],
    *,
    task: Task,
    scores: Sequence[Sequence[float]] | FloatArray | None = None,
    classes: Sequence[Any] | None = None,
    reference: Mapping[tuple[str, str], ReferenceValue] | None = None,
    rule: PerformanceRule | None = None,
) -> list[CheckResult]:
    """Realised performance on labelled rows, judged against a reference.

    Parameters
    ----------
    y_true, y_pred
        Labels and the model's predictions, row by row.
    task
        ``"classification"`` (accuracy, precision, recall, F1, ROC AUC, log loss; per class
        as well when there are more than two classes) or ``"regression"`` (MAE, RMSE, MAPE,
        R2).
    scores
        Class probabilities, one column per class of ``classes`` (classification; needed for
        ROC AUC and log loss).
    classes
        Class labels in the column order of ``scores`` (default: the sorted labels and
        predictions). Labels are compared as strings, as JSON may turn ``1`` into ``"1"``.
        With two classes the second is the positive one.
    reference
        Reference values by ``(metric, subject)``; ``subject`` is ``"model"`` or a class. A
        value measured on a sample may come as ``(value, lower, upper)`` with its interval
        at the rule's confidence: the window is then judged by a two-sample comparison that
        counts the reference's uncertainty too.
    rule
        Thresholds and interval settings (default :class:`PerformanceRule`).

    Returns
    -------
    list of CheckResult
        ``performance.<metric>`` results, subject ``"model"`` or a class label.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 400)
    >>> pred = np.where(rng.random(400) < 0.8, y, 1 - y)
    >>> found = check_realised_performance(y, pred, task="classification",
    ...                              reference={("accuracy", "model"): 0.95})
    >>> acc = next(r for r in found if r.check == "performance.accuracy")
    >>> acc.status.value, round(acc.value, 3), round(acc.lower, 3), round(acc.upper, 3)
    ('alert', 0.8, 0.758, 0.836)
    """
    from threadpoolctl import threadpool_limits

    rule = rule or PerformanceRule()
    with threadpool_limits(1):  # small products: threads cost more than they bring
        return _realised(y_true, y_pred, task, scores, classes, reference or {}, rule)


def _realised(
    y_true: Sequence[Any] | NDArray[Any],
    y_pred: Sequence[Any] | NDArray[Any],
    task: Task,
    scores: Sequence[Sequence[float]] | FloatArray | None,
    classes: Sequence[Any] | None,
    reference: Mapping[tuple[str, str], ReferenceValue],
    rule: PerformanceRule,
) -> list[CheckResult]:
    y = np.asarray(y_true, dtype=object)
    pred = np.asarray(y_pred, dtype=object)
    if y.shape != pred.shape or y.ndim != 1:
        raise InputError(
            f"y_true and y_pred must be 1-D and of the same length, got {y.shape} and {pred.shape}"
        )
    n = len(y)
    if task == "regression":
        try:
            yf, pf = y.astype(np.float64), pred.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"regression labels and predictions must be numbers: {exc}; is the model a "
                "classifier?"
            ) from exc
        keep = np.isfinite(yf) & np.isfinite(pf)
        measures = _regression_measures(yf[keep], pf[keep], rule) if keep.any() else []
        n = int(keep.sum())
    elif task == "classification":
        ys = np.array([str(v) for v in y], dtype=object)
        ps = np.array([str(v) for v in pred], dtype=object)
        names = [str(c) for c in classes] if classes is not None else sorted({*ys, *ps})
        proba = None
        if scores is not None:
            proba = np.asarray(scores, dtype=np.float64)
            if proba.shape != (n, len(names)):
                raise InputError(
                    f"scores must have one row per label and one column per class "
                    f"({n} x {len(names)}), got {proba.shape}"
                )
        measures = _class_measures(ys, ps, proba, names, rule) if n else []
    else:
        raise InputError(f"task must be 'classification' or 'regression', got {task!r}")
    if not measures:
        return [
            CheckResult(f"performance.{m}", "model", Status.INSUFFICIENT_DATA,
                        "no labelled rows yet", details={"n_labels": 0}, rule="performance")
            for m in (REGRESSION_METRICS if task == "regression" else ("accuracy",))
        ]  # fmt: skip
    return [_judge(m, n, reference.get((m.metric, m.subject)), rule) for m in measures]
