"""Generalisation: cross-validated scores with intervals, the train-validation gap, the learning
curve.

Every fit is done on a :func:`~sklearn.base.clone` of the candidate (its hyper-parameters, not
its fitted state), through scikit-learn's :func:`~sklearn.model_selection.cross_validate` and
:func:`~sklearn.model_selection.learning_curve`; the candidate itself is never modified.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.model_selection import cross_validate, learning_curve

from watchkeeper.checks import CheckResult, Status
from watchkeeper.lifecycle._common import corrected_interval, record_warnings, split_sizes
from watchkeeper.lifecycle._config import GeneralisationConfig
from watchkeeper.lifecycle._metrics import Task, get_metric

__all__ = ["cross_validation_checks", "learning_curve_check"]

# Smallest gain per doubling of the training rows worth calling "still improving": absolute
# for bounded scores, relative to the score for unbounded ones.
_MATERIAL_GAIN = 0.005


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _error(check: str, subject: str, exc: BaseException) -> CheckResult:
    return CheckResult(
        check=check,
        subject=subject,
        status=Status.ERROR,
        reason=f"could not refit the model: {type(exc).__name__}: {exc}",
    )


def cross_validation_checks(
    model: Any,
    X: Any,
    y: NDArray[Any],
    *,
    task: Task,
    metrics: tuple[str, ...],
    cv: Any,
    cv_name: str = "",
    config: GeneralisationConfig | None = None,
) -> list[CheckResult]:
    """Cross-validated score of every metric, and the overfitting gap of the primary one.

    One ``gate.cv`` result per metric (mean over folds, corrected t-interval; judged against
    ``config.required`` when the metric is listed there) and one ``gate.overfitting`` result
    for the first metric (train minus validation; see ``GeneralisationConfig.max_gap``).

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import StratifiedKFold
    >>> X, y = make_classification(200, random_state=0)
    >>> res = cross_validation_checks(LogisticRegression(), X, y, task="binary",
    ...                               metrics=("accuracy",), cv=StratifiedKFold(3))
    >>> [(r.check, r.status.value) for r in res]
    [('gate.cv', 'ok'), ('gate.overfitting', 'ok')]
    """
    cfg = config or GeneralisationConfig()
    classes = np.unique(y) if task != "regression" else None
    ms = [get_metric(m, task) for m in metrics]
    scoring = {m.name: m.scorer(task, classes) for m in ms}
    sizes = split_sizes(cv, X, y)
    ratio = float(np.mean([te / tr for tr, te in sizes]))
    try:
        with record_warnings() as seen:
            raw = cross_validate(
                clone(model),
                X,
                y,
                cv=cv,
                scoring=scoring,
                return_train_score=True,
                error_score="raise",
                n_jobs=1,
            )
    except Exception as exc:
        return [_error("gate.cv", metrics[0], exc)]
    out: list[CheckResult] = []
    for m in ms:
        test = m.from_scorer(np.asarray(raw[f"test_{m.name}"], dtype=float))
        mean, se, lo, hi = corrected_interval(test, ratio, cfg.confidence)
        # A t-interval over few folds can spill past the values the metric can take.
        lo, hi = max(lo, m.value_range[0]), min(hi, m.value_range[1])
        details: dict[str, Any] = {
            "cv": cv_name,
            "folds": test.tolist(),
            "standard_error": _num(se),
            "interval": "corrected resampled t (Nadeau & Bengio 2003), approximate",
            "fit_time_s": float(np.mean(raw["fit_time"])),
        }
        if seen:
            details["warnings"] = seen[:10]
        required = cfg.required.get(m.name)
        status, reason, rule = Status.OK, f"CV {m.name} {mean:.4g} ({lo:.4g} to {hi:.4g})", None
        if required is not None:
            # Oriented so that "short" means on the wrong side of the requirement.
            sign = 1.0 if m.greater_is_better else -1.0
            word = "at least" if m.greater_is_better else "at most"
            rule = f"CV mean must be {word} {required:g}"
            bound = hi if m.greater_is_better else lo
            if math.isfinite(bound) and sign * (bound - required) < 0:
                status = Status.ALERT
                reason += f": the whole interval misses the requirement ({word} {required:g})"
            elif sign * (mean - required) < 0:
                status = Status.WARN
                reason += f": the mean misses the requirement ({word} {required:g}), within noise"
            else:
                reason += f": meets the requirement ({word} {required:g})"
        out.append(
            CheckResult(
                check="gate.cv",
                subject=m.name,
                status=status,
                reason=reason,
                value=mean,
                threshold=required,
                lower=_num(lo),
                upper=_num(hi),
                rule=rule,
                details=details,
            )
        )
    out.append(_gap_result(ms[0], raw, ratio, cfg))
    return out


def _gap_result(
    metric: Any, raw: dict[str, Any], ratio: float, cfg: GeneralisationConfig
) -> CheckResult:
    train = metric.from_scorer(np.asarray(raw[f"train_{metric.name}"], dtype=float))
    test = metric.from_scorer(np.asarray(raw[f"test_{metric.name}"], dtype=float))
    # Gap signed so that positive means "better on the rows it was trained on".
    gap = train - test if metric.greater_is_better else test - train
    relative = not metric.bounded
    if relative:
        gap = gap / np.maximum(np.abs(test), 1e-12)
    mean, _, lo, hi = corrected_interval(gap, ratio, cfg.confidence)
    unit = "relative gap" if relative else "gap"
    evidence = (
        f"train {metric.name} {float(np.mean(train)):.4g} vs validation "
        f"{float(np.mean(test)):.4g} ({unit} {mean:.3g})"
    )
    over = mean > cfg.max_gap
    return CheckResult(
        check="gate.overfitting",
        subject=metric.name,
        status=Status(cfg.overfit_status) if over else Status.OK,
        reason=(
            f"overfitting: {evidence} exceeds {cfg.max_gap:g}; regularise more or add data"
            if over
            else f"{evidence} is within {cfg.max_gap:g}"
        ),
        value=mean,
        threshold=cfg.max_gap,
        lower=_num(lo),
        upper=_num(hi),
        rule=f"mean train-validation {unit} > {cfg.max_gap:g} -> {cfg.overfit_status}",
        details={
            "train_folds": train.tolist(),
            "validation_folds": test.tolist(),
            "gap_folds": gap.tolist(),
            "relative": relative,
        },
    )


def learning_curve_check(
    model: Any,
    X: Any,
    y: NDArray[Any],
    *,
    task: Task,
    metric: str,
    cv: Any,
    time_ordered: bool = False,
    config: GeneralisationConfig | None = None,
    random_state: int = 0,
) -> CheckResult:
    """Learning curve of ``metric``: train and validation score against training rows.

    Reported, not judged (status ``ok``), with a recommendation: whether the validation score
    was still rising by more than its standard error between the two largest sizes (more data
    is likely to help) or has levelled off.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.model_selection import KFold
    >>> X, y = make_regression(200, 5, noise=5, random_state=0)
    >>> r = learning_curve_check(Ridge(), X, y, task="regression", metric="r2", cv=KFold(3))
    >>> len(r.details["train_sizes"])
    3
    """
    cfg = config or GeneralisationConfig()
    m = get_metric(metric, task)
    classes = np.unique(y) if task != "regression" else None
    try:
        with record_warnings() as seen:
            sizes, train, test = learning_curve(
                clone(model),
                X,
                y,
                train_sizes=np.asarray(cfg.train_sizes),
                cv=cv,
                scoring=m.scorer(task, classes),
                shuffle=not time_ordered,
                random_state=None if time_ordered else random_state,
                error_score=np.nan,
                n_jobs=1,
            )
    except Exception as exc:
        return _error("gate.learning_curve", metric, exc)
    train = m.from_scorer(np.asarray(train, dtype=float))
    test = m.from_scorer(np.asarray(test, dtype=float))
    # Small training sizes can fail to fit (a class missing); keep sizes with a score.
    keep = np.isfinite(test).sum(axis=1) >= 2
    if keep.sum() < 2:
        return CheckResult(
            check="gate.learning_curve",
            subject=metric,
            status=Status.INSUFFICIENT_DATA,
            reason="fewer than two training sizes could be fitted; use more data or fewer folds",
            details={"warnings": seen[:10]},
        )
    sizes, train, test = sizes[keep], train[keep], test[keep]
    val_mean = np.nanmean(test, axis=1)
    # Every size is scored on the same validation folds, so the gain between the two largest
    # sizes is paired by fold. Still improving = a gain that is both clear of its noise (twice
    # its standard error) and material (per doubling of the data, see _MATERIAL_GAIN).
    sign = 1.0 if m.greater_is_better else -1.0
    fold_gain = sign * (test[-1] - test[-2])
    fold_gain = fold_gain[np.isfinite(fold_gain)]
    gain = float(np.mean(fold_gain)) if len(fold_gain) else math.nan
    se = float(np.std(fold_gain, ddof=1) / math.sqrt(len(fold_gain))) if len(fold_gain) > 1 else 0.0
    per_doubling = gain / math.log2(sizes[-1] / sizes[-2]) if sizes[-1] > sizes[-2] else 0.0
    floor = _MATERIAL_GAIN * (1.0 if m.bounded else max(abs(float(val_mean[-1])), 1e-12))
    rising = bool(per_doubling > floor and gain > 2 * se)
    recommendation = (
        f"validation {metric} still improves by {per_doubling:.3g} per doubling of the "
        f"training rows (clear of its noise): more training data is likely to help"
        if rising
        else f"validation {metric} has levelled off ({per_doubling:+.3g} per doubling of the "
        "training rows): more data of the same kind is unlikely to help much"
    )
    details: dict[str, Any] = {
        "train_sizes": [int(s) for s in sizes],
        "train_mean": np.nanmean(train, axis=1).tolist(),
        "train_std": np.nanstd(train, axis=1).tolist(),
        "validation_mean": val_mean.tolist(),
        "validation_std": np.nanstd(test, axis=1).tolist(),
        "gain_per_doubling": per_doubling,
        "still_improving": rising,
        "recommendation": recommendation,
    }
    if seen:
        details["warnings"] = seen[:10]
    return CheckResult(
        check="gate.learning_curve",
        subject=metric,
        status=Status.OK,
        reason=recommendation,
        value=float(val_mean[-1]),
        rule="reported, not judged",
        details=details,
    )
