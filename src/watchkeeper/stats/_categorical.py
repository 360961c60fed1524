"""Drift methods for categorical columns: two aligned count vectors over the same categories.

The caller aligns categories (same order on both sides, rare ones pooled into an "other"
bucket). Categories empty on both sides carry no information and are dropped first.

======================  =========================  =======================  ===========  =====
method                  statistic                  p-value                  effect size  floor
======================  =========================  =======================  ===========  =====
``chi2``                Pearson X^2 (2xK table)    chi-square, K-1 df       Cramér's V   0.05
``g_test``              G = 2 sum O ln(O/E)        chi-square, K-1 df       Cramér's V   0.05
``psi``                 PSI                        Pearson chi-square test  PSI          0.1
``jensen_shannon``      JS distance, base 2        Pearson chi-square test  same         0.1
``hellinger``           Hellinger distance         Pearson chi-square test  same         0.1
``l_infinity``          max |p - q|                Pearson chi-square test  same         0.05
``tvd``                 (1/2) sum |p - q|          Pearson chi-square test  same         0.05
======================  =========================  =======================  ===========  =====

Choices, and why:

- ``chi2`` follows ``scipy.stats.chi2_contingency`` defaults: Yates' continuity correction
  when the table has one degree of freedom (two categories), none otherwise. ``g_test`` uses
  no correction (Williams' or Yates'), the textbook G-test.
- The effect size of both tests is Cramér's V of the table of *proportions* (each side
  weighted equally): ``V = sqrt(1/2 * sum (p - q)^2 / (p + q))`` in [0, 1]. The V of the
  table of counts also depends on how unequal the two sample sizes are (it shrinks towards 0
  when the reference is much larger than the window), which would make the floor meaningless.
  The count-table V is reported as ``details["cramers_v_counts"]``. V = 0.05 is, for a
  binary column, a shift of 5 percentage points around 50 %.
- PSI replaces a proportion of zero on either side by ``PSI_EPSILON = 1e-4`` before the
  logarithm (without renormalising), the convention of most PSI write-ups; the other
  distances are finite without smoothing and use none.
- The distances have no test of their own: their p-value is that of Pearson's chi-square
  test on the same table (``details["p_value_source"] == "chi2"``), reliable when expected
  counts are not tiny (the usual rule: at least 5 in most cells).
- Floors: PSI 0.1 is the usual "no significant change" bound; JS and Hellinger 0.1; TVD
  and L-infinity 0.05 (5 percentage points of probability mass moved).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.stats._inputs import count_vectors
from watchkeeper.stats._registry import drift_method
from watchkeeper.stats._result import TestResult

__all__ = [
    "PSI_EPSILON",
    "chi2",
    "compare_counts",
    "g_test",
    "hellinger_counts",
    "jensen_shannon_counts",
    "l_infinity",
    "psi_counts",
    "tvd",
]

#: Proportion substituted for an empty cell in PSI.
PSI_EPSILON = 1e-4


def _observed(
    reference_counts: ArrayLike, current_counts: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    a, b = count_vectors(reference_counts, current_counts)
    keep = (a + b) > 0
    return a[keep], b[keep]


def _contingency(
    a: NDArray[np.float64], b: NDArray[np.float64], *, log_likelihood: bool, correction: bool
) -> tuple[float, int, float, bool]:
    """``(statistic, dof, p_value, corrected)`` of the 2xK test, as ``chi2_contingency``."""
    from scipy import special

    dof = a.size - 1
    if dof == 0:
        return 0.0, 0, 1.0, False
    observed = np.vstack([a, b])
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    corrected = correction and dof == 1
    if corrected:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    if log_likelihood:
        stat = 2.0 * float(np.sum(special.xlogy(observed, observed / expected)))
    else:
        stat = float(np.sum((observed - expected) ** 2 / expected))
    return stat, dof, float(special.chdtrc(dof, stat)), corrected


def _proportions(
    a: NDArray[np.float64], b: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    return a / a.sum(), b / b.sum()


def _cramers_v(a: NDArray[np.float64], b: NDArray[np.float64]) -> tuple[float, float]:
    """``(V of the proportions table, V of the counts table)``."""
    p, q = _proportions(a, b)
    v_prop = math.sqrt(0.5 * float(np.sum((p - q) ** 2 / (p + q))))
    pearson, _, _, _ = _contingency(a, b, log_likelihood=False, correction=False)
    v_counts = math.sqrt(pearson / float(a.sum() + b.sum()))
    return v_prop, v_counts


def _test_result(
    method: str,
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    *,
    log_likelihood: bool,
    correction: bool,
) -> TestResult:
    stat, dof, p, corrected = _contingency(
        a, b, log_likelihood=log_likelihood, correction=correction
    )
    v_prop, v_counts = _cramers_v(a, b)
    return TestResult(
        method=method,
        statistic=stat,
        p_value=p,
        effect_size=v_prop,
        n_reference=int(a.sum()),
        n_current=int(b.sum()),
        details={
            "dof": dof,
            "n_categories": int(a.size),
            "continuity_correction": corrected,
            "cramers_v_counts": v_counts,
            "p_value_source": "g_test" if log_likelihood else "chi2",
        },
    )


@drift_method("chi2", kind="categorical", effect_floor=0.05)
def chi2(reference_counts: ArrayLike, current_counts: ArrayLike) -> TestResult:
    """Pearson's chi-square test of homogeneity on the 2xK table of counts.

    Matches ``scipy.stats.chi2_contingency`` (Yates' correction only for two categories).
    The effect size is Cramér's V of the table of proportions (see the module notes).

    Examples
    --------
    >>> r = chi2([500, 300, 200], [450, 330, 220])
    >>> round(r.statistic, 3), round(r.p_value, 4), round(r.effect_size, 4)
    (5.013, 0.0816, 0.0501)
    """
    a, b = _observed(reference_counts, current_counts)
    return _test_result("chi2", a, b, log_likelihood=False, correction=True)


@drift_method("g_test", kind="categorical", effect_floor=0.05)
def g_test(reference_counts: ArrayLike, current_counts: ArrayLike) -> TestResult:
    """Likelihood-ratio (G) test of homogeneity on the 2xK table, without correction.

    Examples
    --------
    >>> r = g_test([500, 300, 200], [450, 330, 220])
    >>> round(r.statistic, 3), round(r.p_value, 4)
    (5.015, 0.0815)
    """
    a, b = _observed(reference_counts, current_counts)
    return _test_result("g_test", a, b, log_likelihood=True, correction=False)


def compare_counts(
    method: str,
    reference_counts: ArrayLike,
    current_counts: ArrayLike,
    *,
    n_reference: int | None = None,
    n_current: int | None = None,
    extra: dict[str, Any] | None = None,
) -> TestResult:
    """Distance ``method`` between two count vectors, with the chi-square test's p-value.

    Shared by the categorical distances and their binned numeric versions, which pass the
    sample sizes and extra details.

    Examples
    --------
    >>> compare_counts("tvd", [5, 5], [6, 4]).effect_size
    0.1
    """
    a, b = _observed(reference_counts, current_counts)
    p, q = _proportions(a, b)
    distance = _DISTANCES[method](p, q)
    _, dof, p_value, corrected = _contingency(a, b, log_likelihood=False, correction=True)
    details: dict[str, Any] = {
        "p_value_source": "chi2",
        "dof": dof,
        "n_categories": int(a.size),
        "continuity_correction": corrected,
    }
    details.update(extra or {})
    return TestResult(
        method=method,
        statistic=distance,
        p_value=p_value,
        effect_size=distance,
        n_reference=int(a.sum()) if n_reference is None else n_reference,
        n_current=int(b.sum()) if n_current is None else n_current,
        details=details,
    )


def _psi(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    p = np.maximum(p, PSI_EPSILON)
    q = np.maximum(q, PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def _jensen_shannon(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    from scipy import special

    m = 0.5 * (p + q)
    js = float(np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m)))
    # Rounding can leave a tiny negative divergence for identical inputs.
    return math.sqrt(max(js / math.log(2.0), 0.0) / 2.0)


def _hellinger(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    return math.sqrt(0.5 * float(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)))


def _l_infinity(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    return float(np.max(np.abs(p - q)))


def _tvd(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    return 0.5 * float(np.sum(np.abs(p - q)))


_DISTANCES = {
    "psi": _psi,
    "jensen_shannon": _jensen_shannon,
    "hellinger": _hellinger,
    "l_infinity": _l_infinity,
    "tvd": _tvd,
}


@drift_method("psi", kind="categorical", effect_floor=0.1)
def psi_counts(reference_counts: ArrayLike, current_counts: ArrayLike) -> TestResult:
    """Population stability index ``sum (q - p) ln(q / p)`` of the category proportions.

    Empty cells get proportion ``PSI_EPSILON`` (1e-4) so the index stays finite.

    Examples
    --------
    >>> round(psi_counts([500, 300, 200], [300, 300, 400]).effect_size, 4)
    0.2408
    """
    return compare_counts("psi", reference_counts, current_counts)


@drift_method("jensen_shannon", kind="categorical", effect_floor=0.1)
def jensen_shannon_counts(reference_counts: ArrayLike, current_counts: ArrayLike) -> TestResult:
    """Jensen–Shannon distance (square root of the divergence, base 2, so in [0, 1]).

    Equals ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.

    Examples
    --------
    >>> round(jensen_shannon_counts([500, 300, 200], [300, 300, 400]).effect_size, 4)
    0.2067
    """
    return compare_counts("jensen_shannon", reference_counts, current_counts)


@drift_method("hellinger", kind="categorical", effect_floor=0.1)
def hellinger_counts(reference_counts: ArrayLike, current_counts: ArrayLike) -> TestResult:
    """Hellinger distance ``sqrt(1/2 * sum (sqrt(p) - sqrt(q))^2)``, in [0, 1].

    Examples
    --------
    >>> round(hellinger_counts([500, 300, 200], [300, 300, 400]).effect_size, 4)
    0.1728
    """
    return compare_counts("hellinger", reference_counts, current_counts)


@drift_method("l_infinity", kind="categorical", effect_floor=0.05)
def l_infinity(reference_counts: ArrayLike, current_counts: ArrayLike) -> TestResult:
    """Largest change of any category's proportion, ``max |p - q|``.

    Examples
    --------
    >>> l_infinity([500, 300, 200], [300, 300, 400]).effect_size
    0.2
    """
    return compare_counts("l_infinity", reference_counts, current_counts)


@drift_method("tvd", kind="categorical", effect_floor=0.05)
def tvd(reference_counts: ArrayLike, current_counts: ArrayLike) -> TestResult:
    """Total variation distance ``1/2 * sum |p - q|``: the share of mass that moved.

    Examples
    --------
    >>> tvd([500, 300, 200], [300, 300, 400]).effect_size
    0.2
    """
    return compare_counts("tvd", reference_counts, current_counts)
