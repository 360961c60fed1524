"""Score calibration and expected metrics for :class:`~watchkeeper.checks.CBPE`.

Isotonic regression (pool-adjacent-violators, :func:`scipy.optimize.isotonic_regression`) of
the positive share on the score, fitted on a grid of score values: the distinct scores, or the
means of ``_MAX_GRID`` quantile bins when there are more (each bin then holds a tiny share of
the rows, so the fit barely moves). Between grid points the map is linear, beyond them flat, as
scikit-learn's ``IsotonicRegression(out_of_bounds="clip")`` predicts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import isotonic_regression

__all__ = ["Calibrator", "expected_auc", "expected_confusion", "metrics_from_confusion"]

N_CALIBRATORS = 50  # bootstrap calibrators; each simulated draw uses one of them in turn
N_FOLDS = 5
_MAX_GRID = 4096  # score values the calibrators are fitted on (quantile bins beyond that)


class Calibrator:
    """Isotonic maps from one score column to P(class), on a fixed grid of score values.

    Row 0 of ``fits`` is the fit on the whole reference; rows 1.. are bootstrap refits.
    """

    def __init__(self, s: NDArray[np.float64], y: NDArray[np.bool_], rng: np.random.Generator):
        self.grid, cell = _grid(s)
        pos = np.bincount(cell, weights=y, minlength=self.grid.size)
        neg = np.bincount(cell, weights=~y, minlength=self.grid.size)
        fits = [_isotonic(self.grid, pos, neg)]
        # Poisson bootstrap: a row's count in a resample is Poisson(1), so a cell's count of
        # positives (negatives) is Poisson(its count) — resampling cells is resampling rows.
        for _ in range(N_CALIBRATORS):
            fits.append(_isotonic(self.grid, rng.poisson(pos), rng.poisson(neg)))
        self.fits = np.vstack(fits)
        self.cell = cell
        self.pos, self.neg = pos, neg

    def cross_fitted(
        self, y: NDArray[np.bool_], folds: NDArray[np.int64], s: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """P(class) of each reference row from a calibrator fitted without its fold."""
        out = np.empty(s.size)
        for k in range(N_FOLDS):
            held = folds == k
            pos = self.pos - np.bincount(self.cell[held], weights=y[held], minlength=self.grid.size)
            neg = self.neg - np.bincount(
                self.cell[held], weights=~y[held], minlength=self.grid.size
            )
            out[held] = _interp(self.grid, _isotonic(self.grid, pos, neg)[None], s[held])[0]
        return out

    def __call__(self, s: NDArray[np.float64]) -> NDArray[np.float64]:
        """Calibrated probabilities, shape (1 + bootstraps, rows)."""
        return _interp(self.grid, self.fits, s)


def _grid(s: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Distinct score values (or the means of quantile bins when there are many) and the
    cell of each row."""
    grid, cell = np.unique(s, return_inverse=True)
    if grid.size > _MAX_GRID:
        edges = np.quantile(s, np.linspace(0, 1, _MAX_GRID + 1)[1:-1])
        cell = np.searchsorted(edges, s, side="right")
        _, cell = np.unique(cell, return_inverse=True)
        grid = np.bincount(cell, weights=s) / np.bincount(cell)
    return grid, cell.astype(np.int64).ravel()


def _isotonic(
    grid: NDArray[np.float64], pos: NDArray[Any], neg: NDArray[Any]
) -> NDArray[np.float64]:
    """Weighted isotonic fit of the positive share per cell, evaluated on the whole grid."""
    w = pos + neg
    keep = w > 0
    fitted = isotonic_regression(pos[keep] / w[keep], weights=w[keep]).x
    return np.asarray(np.interp(grid, grid[keep], fitted), dtype=np.float64)


def _interp(
    grid: NDArray[np.float64], fits: NDArray[np.float64], s: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Linear interpolation of every fit (rows of ``fits``) at ``s``; flat beyond the ends."""
    if grid.size == 1:
        return np.repeat(fits[:, :1], s.size, axis=1)
    j = np.clip(np.searchsorted(grid, s, side="right") - 1, 0, grid.size - 2)
    t = np.clip((s - grid[j]) / (grid[j + 1] - grid[j]), 0.0, 1.0)
    return np.asarray(fits[:, j] * (1.0 - t) + fits[:, j + 1] * t, dtype=np.float64)


def expected_confusion(p: NDArray[np.float64], yhat: NDArray[np.int64], k: int) -> Any:
    """Expected confusion matrix ``[true, predicted]`` from class probabilities ``p`` (n, k)."""
    c = np.zeros((k, k))
    for j in range(k):
        c[:, j] = p[yhat == j].sum(axis=0)
    return c


def expected_auc(p: NDArray[np.float64], ranks: NDArray[np.float64]) -> float:
    """Expected correctly ordered (positive, negative) pairs over expected pairs.

    With independent labels of probabilities ``p`` and midranks ``r`` of the score, a row's
    wins against all others are ``r - 1``, so the expected Mann–Whitney count is
    ``sum p (r - 1) - ((sum p)^2 - sum p^2) / 2`` and the expected number of pairs is
    ``sum p * sum (1 - p) - sum p (1 - p)`` (a row is never paired with itself).
    """
    # Contiguous copies: a strided column would send the dot products through slow paths.
    p, ranks = np.ascontiguousarray(p), np.ascontiguousarray(ranks)
    sp, sp2 = float(p.sum()), float((p * p).sum())
    pairs = sp * (p.size - sp) - (sp - sp2)
    if pairs <= 0:
        return math.nan
    return float((np.sum(p * (ranks - 1.0)) - 0.5 * (sp * sp - sp2)) / pairs)


def metrics_from_confusion(c: Any, auc: Any) -> dict[str, Any]:
    """Per-class metrics from confusion matrices ``c`` (..., k, k) and AUCs ``auc`` (..., k)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        tp = np.diagonal(c, axis1=-2, axis2=-1)
        predicted = c.sum(axis=-2)
        actual = c.sum(axis=-1)
        return {
            "accuracy": tp.sum(axis=-1) / c.sum(axis=(-2, -1)),
            "precision": tp / predicted,
            "recall": tp / actual,
            "f1": 2 * tp / (predicted + actual),
            "roc_auc": auc,
        }


def binary_moments(
    p: NDArray[np.float64],
    predicted: NDArray[np.float64],
    count: NDArray[np.float64],
    ranks: NDArray[np.float64],
) -> tuple[dict[str, NDArray[np.float64]], dict[str, NDArray[np.float64]]]:
    """Expected binary metrics and their label-noise variances, per row of ``p``.

    The window is summarised by its distinct scores ("cells"): ``count`` rows per cell, of
    which ``predicted`` are predicted positive, with the cell's midrank ``ranks``; ``p``
    (calibrators, cells) holds the positive-class probability of each cell. With independent
    Bernoulli labels, ``TP`` and ``FN`` are independent Poisson-binomial sums (over rows
    predicted positive and negative) with variances ``sum p (1 - p)``; the metrics are smooth
    functions of ``(TP, FN)`` — and ROC AUC of the positives' rank sum ``W`` and count ``P`` —
    so their variances follow by the delta method. The expectations are the
    ratio-of-expectations estimates CBPE reports.
    """
    n = float(count.sum())
    q = p * (1.0 - p)
    tp, fn = p @ predicted, p @ (count - predicted)
    v1, v0 = q @ predicted, q @ (count - predicted)
    pp = float(predicted.sum())
    t = tp + fn
    d = pp + t
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = {
            "accuracy": (tp + (n - pp) - fn) / n,
            "precision": tp / pp if pp else np.full_like(tp, np.nan),
            "recall": tp / t,
            "f1": 2 * tp / d,
        }
        var = {
            "accuracy": (v1 + v0) / n**2,
            "precision": v1 / pp**2 if pp else np.full_like(tp, np.nan),
            "recall": (fn / t**2) ** 2 * v1 + (tp / t**2) ** 2 * v0,
            "f1": (2 * (pp + fn) / d**2) ** 2 * v1 + (2 * tp / d**2) ** 2 * v0,
        }
        rw = ranks * count
        s, s2, w = p @ count, (p * p) @ count, p @ rw
        pairs = s * (n - s) - (s - s2)
        mean["roc_auc"] = np.where(pairs > 0, (w - s - 0.5 * (s * s - s2)) / pairs, np.nan)
        # Delta method for AUC = (W - P (P + 1) / 2) / (P (n - P)) at W = E W, P = E P.
        den = s * (n - s)
        d_w = 1.0 / den
        d_p = (-(s + 0.5) * den - (w - s * (s + 1) / 2) * (n - 2 * s)) / den**2
        var["roc_auc"] = (
            d_w**2 * (q @ (ranks * rw)) + d_p**2 * (q @ count) + 2 * d_w * d_p * (q @ rw)
        )
    return mean, var
