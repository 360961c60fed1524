"""Classification metrics on numpy arrays: the one home of ROC AUC and F1.

Realised-metric code elsewhere (performance checks, fairness by group, validation gates) calls
these; every function takes weights so that bootstrap resamples are one matrix product.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "f1_from_counts",
    "macro_f1",
    "resampled_auc",
    "roc_auc",
    "weighted_roc_auc",
]

FloatArray = NDArray[np.float64]


def weighted_roc_auc(scores: ArrayLike, positive: ArrayLike, weights: ArrayLike) -> FloatArray:
    """ROC AUC (ties count one half) for each row of resampling ``weights``.

    ``weights`` is (B, n): how often each of the ``n`` rows is drawn in each of ``B``
    resamples. With unit weights this is the Mann–Whitney form of the AUC, equal to
    scikit-learn's ``roc_auc_score``; a resample without both classes gives NaN.

    Examples
    --------
    >>> s = np.array([0.1, 0.4, 0.35, 0.8]); y = np.array([False, False, True, True])
    >>> weighted_roc_auc(s, y, np.ones((1, 4)))
    array([0.75])
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    pos = np.asarray(positive, dtype=bool)[order].astype(np.float64)
    w = np.asarray(weights, dtype=np.float64)[:, order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    gp = np.add.reduceat(w * pos, starts, axis=1)
    gn = np.add.reduceat(w * (1.0 - pos), starts, axis=1)
    below = np.cumsum(gn, axis=1) - gn
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (gp * (below + 0.5 * gn)).sum(axis=1) / (gp.sum(axis=1) * gn.sum(axis=1))
    return np.asarray(out, dtype=np.float64)


def roc_auc(scores: ArrayLike, positive: ArrayLike) -> float:
    """ROC AUC of ``scores`` for the boolean labels ``positive`` (ties count one half).

    NaN when only one class is present.

    Examples
    --------
    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    """
    scores = np.asarray(scores, dtype=np.float64)
    return float(weighted_roc_auc(scores, positive, np.ones((1, scores.size)))[0])


def f1_from_counts(tp: ArrayLike, fp: ArrayLike, fn: ArrayLike) -> FloatArray:
    """F1 from true-positive, false-positive and false-negative counts (0 where undefined).

    Works elementwise on arrays (e.g. one count per bootstrap resample) and on scalars.

    Examples
    --------
    >>> float(f1_from_counts(8, 2, 2))
    0.8
    >>> float(f1_from_counts(0, 0, 0))
    0.0
    """
    t, f_p, f_n = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    den = 2 * t + f_p + f_n
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(den > 0, 2 * t / np.where(den > 0, den, 1.0), 0.0))


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, labels: ArrayLike | None = None) -> float:
    """Unweighted mean of each label's F1 (0 for a label never true nor predicted).

    ``labels`` defaults to every label in ``y_true`` or ``y_pred`` (scikit-learn's
    ``f1_score(..., average="macro", zero_division=0)``).

    Examples
    --------
    >>> macro_f1(["a", "a", "b", "c"], ["a", "b", "b", "c"])
    0.7777777777777777
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if labels is None:
        labels = np.union1d(y_true, y_pred)
    scores = []
    for label in np.asarray(labels):
        t, p = y_true == label, y_pred == label
        scores.append(f1_from_counts(np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)))
    return float(np.mean(scores)) if scores else 0.0


def resampled_auc(
    positive: NDArray[np.bool_], score: NDArray[np.float64], idx: NDArray[np.intp]
) -> FloatArray:
    """ROC AUC of each resample (row of ``idx``), by weighted Mann-Whitney counting.

    Scores are ranked once; each resample only re-weights the distinct scores by how often
    their rows were drawn, so the cost per resample is linear instead of a sort.
    Ties count one half, as in :func:`sklearn.metrics.roc_auc_score`.

    Examples
    --------
    >>> from sklearn.metrics import roc_auc_score
    >>> rng = np.random.default_rng(0)
    >>> pos = rng.random(300) < 0.4
    >>> s = np.round(rng.random(300) + pos, 1)
    >>> idx = rng.integers(0, 300, size=(3, 300))
    >>> got = resampled_auc(pos, s, idx)
    >>> bool(np.allclose(got, [roc_auc_score(pos[i], s[i]) for i in idx]))
    True
    """
    uniq, inv = np.unique(score, return_inverse=True)
    nu = len(uniq)
    b = idx.shape[0]
    cell = inv[idx] + (np.arange(b) * nu)[:, None]
    is_pos = positive[idx]
    pos = np.bincount(cell[is_pos], minlength=b * nu).reshape(b, nu).astype(float)
    neg = np.bincount(cell[~is_pos], minlength=b * nu).reshape(b, nu).astype(float)
    below = np.cumsum(neg, axis=1) - neg
    wins = np.sum(pos * (below + 0.5 * neg), axis=1)
    total = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, wins / total, np.nan)
