"""Multiple-testing procedures: adjusted p-values and rejections for a family of tests.

- ``bh``: Benjamini–Hochberg (1995), controls the false discovery rate under independence
  or positive dependence (PRDS) — the default for many columns of one dataset.
- ``by``: Benjamini–Yekutieli (2001), FDR under any dependence (BH times ``sum 1/i``).
- ``holm``: Holm (1979) step-down, family-wise error rate under any dependence.
- ``bonferroni``: ``min(1, m p)``, family-wise error rate; Holm is never less powerful.
- ``none``: no adjustment.

Missing p-values (``None`` or NaN: a test that could not run) are left out of the family,
so ``m`` counts only the tests that ran; their adjusted p-value stays NaN and they are never
rejected. A hypothesis is rejected when its adjusted p-value is at most ``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.exceptions import InputError

__all__ = [
    "Correction",
    "MultipleTestResult",
    "adjust_p_values",
    "benjamini_hochberg",
    "benjamini_yekutieli",
    "bonferroni",
    "holm",
]

Correction = Literal["bh", "by", "holm", "bonferroni", "none"]
_METHODS: tuple[str, ...] = ("bh", "by", "holm", "bonferroni", "none")


@dataclass(frozen=True, slots=True)
class MultipleTestResult:
    """Adjusted p-values and decisions for a family of tests, aligned with the input.

    ``excluded`` marks the missing p-values that were left out of the family (their
    ``adjusted`` is NaN and ``reject`` False); ``n_tests`` is the family size actually used.
    The arrays are read-only.

    Examples
    --------
    >>> r = holm([0.01, None, 0.04])
    >>> r.adjusted, r.reject, r.n_tests
    (array([0.02, nan, 0.04]), array([ True, False,  True]), 2)
    """

    adjusted: NDArray[np.float64]
    reject: NDArray[np.bool_]
    method: str
    alpha: float
    excluded: NDArray[np.bool_]

    @property
    def n_tests(self) -> int:
        """Number of p-values in the family (the missing ones excluded)."""
        return int(self.excluded.size - np.count_nonzero(self.excluded))


def adjust_p_values(
    p_values: ArrayLike, *, alpha: float = 0.05, method: Correction = "bh"
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """``(adjusted p-values, reject mask)`` for the family, aligned with ``p_values``.

    NaN (or ``None``) entries are excluded from the family, stay NaN in ``adjusted`` and are
    False in ``reject``. ``method="none"`` returns the p-values unchanged with
    ``reject = p <= alpha``.

    Examples
    --------
    >>> adjusted, reject = adjust_p_values([0.01, 0.02, float("nan"), 0.04], method="bh")
    >>> adjusted
    array([0.03, 0.03,  nan, 0.04])
    >>> reject
    array([ True,  True, False,  True])
    """
    if method not in _METHODS:
        raise InputError(f"unknown correction {method!r}; choose one of: {', '.join(_METHODS)}")
    if not isinstance(alpha, int | float) or not 0.0 < float(alpha) < 1.0:
        raise InputError(f"alpha must be a number strictly between 0 and 1, got {alpha!r}")
    p = _as_p_values(p_values)
    present = ~np.isnan(p)
    adjusted = np.full(p.shape, np.nan)
    if method == "none":
        adjusted[present] = p[present]
    else:
        adjusted[present] = _ADJUST[method](p[present])
    reject = np.zeros(p.shape, dtype=bool)
    reject[present] = adjusted[present] <= alpha
    return adjusted, reject


def _as_p_values(p_values: ArrayLike) -> NDArray[np.float64]:
    try:
        p = np.array(p_values, dtype=np.float64)  # a copy: never alias the caller's array
    except (TypeError, ValueError) as exc:
        raise InputError(
            "p_values must be a 1-D sequence of numbers (None or NaN if missing)"
        ) from exc
    if p.ndim == 0:
        p = p.reshape(1)
    if p.ndim != 1:
        raise InputError(f"p_values must be 1-D, got an array of shape {p.shape}")
    bad = ~np.isnan(p) & ((p < 0.0) | (p > 1.0))
    if bad.any():
        raise InputError(
            f"p-values must lie in [0, 1]; got {p[bad][:3].tolist()} at positions "
            f"{np.flatnonzero(bad)[:3].tolist()}"
        )
    return p


def _bh(p: NDArray[np.float64]) -> NDArray[np.float64]:
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    # Step-up: the adjusted value of rank i is the smallest scaled value at rank >= i.
    adjusted_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted_sorted, 1.0)
    return out


def _by(p: NDArray[np.float64]) -> NDArray[np.float64]:
    harmonic = float(np.sum(1.0 / np.arange(1, p.size + 1)))
    return np.minimum(_bh(p) * harmonic, 1.0)


def _holm(p: NDArray[np.float64]) -> NDArray[np.float64]:
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p)
    scaled = p[order] * (m - np.arange(m))
    # Step-down: the adjusted value of rank i is the largest scaled value at rank <= i.
    out = np.empty(m)
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def _bonferroni(p: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.minimum(p * p.size, 1.0)


_ADJUST = {"bh": _bh, "by": _by, "holm": _holm, "bonferroni": _bonferroni}


def _result(p_values: ArrayLike, alpha: float, method: Correction) -> MultipleTestResult:
    adjusted, reject = adjust_p_values(p_values, alpha=alpha, method=method)
    excluded = np.isnan(_as_p_values(p_values))
    for arr in (adjusted, reject, excluded):
        arr.flags.writeable = False
    return MultipleTestResult(adjusted, reject, method, float(alpha), excluded)


def benjamini_hochberg(p_values: ArrayLike, alpha: float = 0.05) -> MultipleTestResult:
    """Benjamini–Hochberg false-discovery-rate control.

    Examples
    --------
    >>> benjamini_hochberg([0.001, 0.02, 0.03, 0.5]).reject
    array([ True,  True,  True, False])
    """
    return _result(p_values, alpha, "bh")


def benjamini_yekutieli(p_values: ArrayLike, alpha: float = 0.05) -> MultipleTestResult:
    """Benjamini–Yekutieli false-discovery-rate control under arbitrary dependence.

    Examples
    --------
    >>> benjamini_yekutieli([0.001, 0.02, 0.03, 0.5]).reject
    array([ True, False, False, False])
    """
    return _result(p_values, alpha, "by")


def holm(p_values: ArrayLike, alpha: float = 0.05) -> MultipleTestResult:
    """Holm's step-down family-wise error control.

    Examples
    --------
    >>> holm([0.001, 0.02, 0.03, 0.5]).adjusted
    array([0.004, 0.06 , 0.06 , 0.5  ])
    """
    return _result(p_values, alpha, "holm")


def bonferroni(p_values: ArrayLike, alpha: float = 0.05) -> MultipleTestResult:
    """Bonferroni family-wise error control.

    Examples
    --------
    >>> bonferroni([0.001, 0.02, 0.03, 0.5]).adjusted
    array([0.004, 0.08 , 0.12 , 1.   ])
    """
    return _result(p_values, alpha, "bonferroni")
