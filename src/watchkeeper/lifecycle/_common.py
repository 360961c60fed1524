"""Plumbing shared by the gate checks: CV splitters, fold intervals, warning capture."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit

from watchkeeper.lifecycle._metrics import Task

__all__ = ["corrected_interval", "make_cv", "record_warnings", "split_sizes"]


@contextmanager
def record_warnings() -> Iterator[list[str]]:
    """Collect warnings raised by user models instead of letting them escape.

    A gate reports a model's convergence or overflow warnings as evidence; it must not turn
    them into errors (as ``-W error`` would) nor lose them.

    Examples
    --------
    >>> with record_warnings() as seen:
    ...     warnings.warn("did not converge")
    >>> seen
    ['UserWarning: did not converge']
    """
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in messages:
            messages.append(text)


def make_cv(
    task: Task, folds: int, y: NDArray[Any], *, time_ordered: bool, random_state: int
) -> tuple[Any, str]:
    """The splitter for ``task`` and a short description of it.

    Stratified for classifiers when every class has at least ``folds`` rows, a forward-chaining
    :class:`~sklearn.model_selection.TimeSeriesSplit` when rows are in time order.

    Examples
    --------
    >>> make_cv("binary", 3, np.array([0, 1] * 10), time_ordered=False, random_state=0)[1]
    'stratified 3-fold'
    """
    if time_ordered:
        return TimeSeriesSplit(n_splits=folds), f"time-series split, {folds} folds"
    if task != "regression":
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= folds:
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
            return cv, f"stratified {folds}-fold"
    return KFold(n_splits=folds, shuffle=True, random_state=random_state), f"{folds}-fold"


def split_sizes(cv: Any, X: Any, y: NDArray[Any]) -> list[tuple[int, int]]:
    """(train rows, test rows) of every split of ``cv``."""
    return [(len(tr), len(te)) for tr, te in cv.split(X, y)]


def corrected_interval(
    values: NDArray[np.float64], test_train_ratio: float, confidence: float
) -> tuple[float, float, float, float]:
    """Mean, standard error and t-interval of fold scores, corrected for fold overlap.

    Folds share training rows, so fold scores are positively correlated and the naive
    ``s / sqrt(k)`` understates the uncertainty. The corrected resampled t-test of Nadeau &
    Bengio (2003) inflates the variance to ``(1/k + n_test/n_train) s^2``; it is still an
    approximation.

    Returns
    -------
    tuple
        ``(mean, standard_error, lower, upper)``.

    Examples
    --------
    >>> m, se, lo, hi = corrected_interval(np.array([0.8, 0.82, 0.79, 0.81, 0.8]), 0.25, 0.95)
    >>> round(m, 3), bool(lo < m < hi)
    (0.804, True)
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    k = len(v)
    if k == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(np.mean(v))
    if k < 2:
        return mean, math.nan, math.nan, math.nan
    se = float(np.sqrt((1.0 / k + test_train_ratio) * np.var(v, ddof=1)))
    half = float(sps.t.ppf(0.5 + confidence / 2, df=k - 1)) * se
    return mean, se, mean - half, mean + half


def final_step(model: Any) -> tuple[Any | None, Any]:
    """Split a :class:`~sklearn.pipeline.Pipeline` into (preprocessing, final estimator)."""
    steps = getattr(model, "steps", None)
    if steps and len(steps) >= 1:
        head = model[:-1] if len(steps) > 1 else None
        return head, steps[-1][1]
    return None, model
