"""Validation of the inputs every drift method takes: samples of numbers and count vectors.

Each function returns arrays the caller may read but never writes to, so the user's arrays
are never mutated (a conversion to float64 may return the very array that was passed in).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.exceptions import InputError

__all__ = ["count_vectors", "numeric_sample", "sorted_sample"]


def numeric_sample(values: ArrayLike, name: str) -> NDArray[np.float64]:
    """``values`` as a 1-D float64 array of finite numbers, or an :class:`InputError`.

    Examples
    --------
    >>> numeric_sample([3, 1, 2], "reference")
    array([3., 1., 2.])
    >>> numeric_sample([1.0, float("nan")], "current")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: current contains 1 NaN or infinite value(s); ...
    """
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{name} must be an array of numbers; convert or drop non-numeric values first"
        ) from exc
    if x.ndim != 1:
        raise InputError(f"{name} must be a 1-D array of numbers, got an array of shape {x.shape}")
    if x.size == 0:
        raise InputError(f"{name} is empty; a two-sample test needs at least one value per side")
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(x.size - np.count_nonzero(finite))
        raise InputError(
            f"{name} contains {bad} NaN or infinite value(s); drop them before the test "
            "(watchkeeper's drift checks do this and report the missing share separately)"
        )
    return x


def sorted_sample(
    values: ArrayLike, name: str, *, assume_sorted: bool = False
) -> NDArray[np.float64]:
    """Validated ``values`` in ascending order, sorting only when needed.

    With ``assume_sorted=True`` the order is checked (O(n), far cheaper than a sort) and a
    wrong claim raises instead of silently producing wrong numbers. Without it an input that
    happens to be sorted already is used as is.

    Examples
    --------
    >>> sorted_sample([2.0, 1.0], "current")
    array([1., 2.])
    >>> sorted_sample([2.0, 1.0], "reference", assume_sorted=True)
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: reference_sorted=True but reference is not sorted ...
    """
    x = numeric_sample(values, name)
    is_sorted = x.size < 2 or not bool(np.any(x[1:] < x[:-1]))
    if assume_sorted and not is_sorted:
        raise InputError(
            f"{name}_sorted=True but {name} is not sorted in ascending order; "
            f"pass np.sort({name}) or leave {name}_sorted=False"
        )
    return x if is_sorted else np.sort(x)


def count_vectors(
    reference_counts: ArrayLike, current_counts: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Two aligned vectors of non-negative whole counts, as float64, or an :class:`InputError`.

    Examples
    --------
    >>> count_vectors([3, 0, 1], [2, 2, 0])
    (array([3., 0., 1.]), array([2., 2., 0.]))
    """
    out = []
    for counts, name in (
        (reference_counts, "reference_counts"),
        (current_counts, "current_counts"),
    ):
        try:
            c = np.asarray(counts, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{name} must be a 1-D array of whole counts") from exc
        if c.ndim != 1 or c.size == 0:
            raise InputError(
                f"{name} must be a non-empty 1-D array of counts (one per category), "
                f"got shape {c.shape}"
            )
        if not np.isfinite(c).all() or bool(np.any(c < 0)) or bool(np.any(c != np.round(c))):
            raise InputError(
                f"{name} must hold non-negative whole counts (not proportions); "
                "pass the number of rows per category"
            )
        if c.sum() <= 0:
            raise InputError(f"{name} sum to zero: there are no observations on that side")
        out.append(c)
    ref, cur = out
    if ref.size != cur.size:
        raise InputError(
            f"reference_counts has {ref.size} categories but current_counts has {cur.size}; "
            "align both on the same categories (with an 'other' bucket) first"
        )
    return ref, cur
