"""Binned drift methods for numeric columns: a categorical distance on reference-decile bins.

Both samples are counted on bins at the reference quantiles
(:func:`watchkeeper.stats.reference_bin_edges`, deciles by default, values equal to an edge
going left) and the categorical method of the same name is applied to the two count vectors.
Profiles keep histograms on the same bins, so the result computed from two profiles is
identical. The p-value is Pearson's chi-square test on the same bins.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from watchkeeper.exceptions import InputError
from watchkeeper.stats._binning import DEFAULT_BINS, bin_counts, reference_bin_edges
from watchkeeper.stats._categorical import compare_counts
from watchkeeper.stats._inputs import numeric_sample, sorted_sample
from watchkeeper.stats._registry import drift_method
from watchkeeper.stats._result import TestResult

__all__ = ["hellinger", "jensen_shannon", "psi"]


def _binned(
    method: str,
    reference: ArrayLike,
    current: ArrayLike,
    *,
    n_bins: int,
    reference_sorted: bool,
) -> TestResult:
    if reference_sorted:
        a = sorted_sample(reference, "reference", assume_sorted=True)
    else:
        a = numeric_sample(reference, "reference")
    b = numeric_sample(current, "current")
    try:
        edges = reference_bin_edges(a, n_bins)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if reference_sorted:
        # Same bins as bin_counts ((e_{i-1}, e_i]), by binary search of the edges in the
        # sorted reference instead of a pass over it.
        cumulative = np.searchsorted(a, edges, side="right")
        ref_counts = np.diff(cumulative, prepend=0, append=a.size)
    else:
        ref_counts = bin_counts(a, edges)
    cur_counts = bin_counts(b, edges)
    return compare_counts(
        method, ref_counts, cur_counts, n_reference=a.size, n_current=b.size,
        extra={"n_bins": int(edges.size + 1)},
    )  # fmt: skip


@drift_method("psi", kind="numeric", effect_floor=0.1, binned=True)
def psi(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    n_bins: int = DEFAULT_BINS,
    reference_sorted: bool = False,
) -> TestResult:
    """Population stability index on bins at the reference quantiles (deciles by default).

    Equals :func:`watchkeeper.stats.psi_counts` on the bin counts; p-value from the
    chi-square test on the same bins.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = psi(rng.normal(size=5000), rng.normal(0.3, size=4000))
    >>> round(r.effect_size, 3), r.details["n_bins"]
    (0.109, 10)
    """
    return _binned("psi", reference, current, n_bins=n_bins, reference_sorted=reference_sorted)


@drift_method("jensen_shannon", kind="numeric", effect_floor=0.1, binned=True)
def jensen_shannon(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    n_bins: int = DEFAULT_BINS,
    reference_sorted: bool = False,
) -> TestResult:
    """Jensen–Shannon distance (base 2) between the binned distributions.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(jensen_shannon(rng.normal(size=5000), rng.normal(0.3, size=4000)).effect_size, 3)
    0.14
    """
    return _binned(
        "jensen_shannon", reference, current, n_bins=n_bins, reference_sorted=reference_sorted
    )


@drift_method("hellinger", kind="numeric", effect_floor=0.1, binned=True)
def hellinger(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    n_bins: int = DEFAULT_BINS,
    reference_sorted: bool = False,
) -> TestResult:
    """Hellinger distance between the binned distributions.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(hellinger(rng.normal(size=5000), rng.normal(0.3, size=4000)).effect_size, 3)
    0.117
    """
    return _binned(
        "hellinger", reference, current, n_bins=n_bins, reference_sorted=reference_sorted
    )
