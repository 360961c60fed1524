"""Bins fixed by the reference, shared by binned drift methods and profiles.

Binned methods computed from raw data and from two profiles' histograms give the same number
only because both use these two functions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["DEFAULT_BINS", "bin_counts", "reference_bin_edges"]

#: Number of quantile bins of the reference (the usual convention for PSI).
DEFAULT_BINS = 10


def reference_bin_edges(reference: ArrayLike, n_bins: int = DEFAULT_BINS) -> NDArray[np.float64]:
    """Interior bin edges at the reference's quantiles ``1/n_bins, ..., (n_bins-1)/n_bins``.

    The bins are ``(-inf, e_1], (e_1, e_2], ..., (e_k, +inf)``, so values outside the
    reference range still fall into the outer bins. Repeated edges (discrete data) are
    collapsed, so there are at most ``n_bins`` bins.

    Examples
    --------
    >>> reference_bin_edges(np.arange(100.0), n_bins=4)
    array([24.75, 49.5 , 74.25])
    >>> reference_bin_edges([1.0, 1.0, 1.0, 2.0], n_bins=4)
    array([1.  , 1.25])
    """
    if n_bins < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins}")
    values = np.asarray(reference, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.empty(0, dtype=np.float64)
    qs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    edges = np.unique(np.quantile(values, qs))
    return edges.astype(np.float64, copy=False)


def bin_counts(values: ArrayLike, edges: NDArray[np.float64]) -> NDArray[np.int64]:
    """Count finite ``values`` in the bins defined by interior ``edges``.

    Returns ``len(edges) + 1`` counts; a value equal to an edge goes to the bin on its left.

    Examples
    --------
    >>> bin_counts([0.0, 1.0, 1.5, 3.0], np.array([1.0, 2.0]))
    array([2, 1, 1])
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    idx = np.searchsorted(edges, x, side="left")
    return np.bincount(idx, minlength=edges.size + 1).astype(np.int64, copy=False)
