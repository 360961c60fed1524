"""Drift methods for numeric columns: two 1-D samples of finite values.

==================== ============================ ============================== ======== =====
method               statistic                    p-value                        effect   floor
==================== ============================ ============================== ======== =====
``ks``               D = max |F_r - F_c|          exact (n <= 10 000) / Smirnov  D        0.02
``cramer_von_mises`` T (Anderson 1962)            exact (n <= 20) / asymptotic   RMS gap  0.015
``anderson_darling`` standardised A2 (S&S 1987)   S&S table / limit law          AD gap   0.035
``wasserstein``      W1                           permutation                    W1 / s   0.05
``energy``           energy distance              permutation                    E / √s   0.05
``psi``              PSI on reference deciles     chi-square on the bins         PSI      0.1
``jensen_shannon``   JS distance on the deciles   chi-square on the bins         same     0.1
``hellinger``        Hellinger on the deciles     chi-square on the bins         same     0.1
==================== ============================ ============================== ======== =====

Effect sizes are population quantities estimated from the samples, so they do not grow with
the sample sizes; the floors say how large an effect must be to matter. The floors of the
ECDF methods are calibrated on one reference change, a shift of a normal mean by 0.05
standard deviations (KS ``D = 0.02``):

- ``ks``: ``D``. A 0.05 sigma shift gives ``D = 0.0199``.
- ``cramer_von_mises``: the root-mean-square ECDF gap over the pooled sample,
  ``sqrt(mean (F_r - F_c)^2)`` (``= sqrt(T N / (n m))`` without ties); 0.05 sigma gives
  0.0152, floor 0.015.
- ``anderson_darling``: the same gap weighted by ``1 / (H (1 - H))`` (``H`` the pooled
  ECDF), ``sqrt(A2 N / (n m))``, which stresses the tails; 0.05 sigma gives 0.0347, floor
  0.035.
- ``wasserstein``: ``W1`` divided by the reference standard deviation ``s`` (population,
  ddof=0); a shift of 0.05 sigma gives exactly 0.05.
- ``energy``: scipy's energy distance ``sqrt(2 ∫ (F_r - F_c)^2)`` scales as the square root
  of the unit, so it is divided by ``sqrt(s)`` (the energy distance of the data divided by
  ``s``); 0.05 sigma gives 0.0376, and the floor 0.05 corresponds to a 0.067 sigma shift.

When the reference is constant (``s = 0``) the scale falls back to the standard deviation of
the pooled sample, and when both samples are the same constant the distances are 0; the
scale used is in ``details["scale"]`` and ``details["scale_source"]``.

The binned methods (defined in ``_numeric_binned`` and registered from here) count both
samples on bins at the reference deciles and apply the categorical method of the same name,
so their result computed from two profiles' histograms is identical.

Every method accepts ``reference_sorted=True`` when the reference is already sorted (a saved
profile keeps its sorted sample), which skips the dominant sort; the claim is checked in
O(n). A current sample that happens to be sorted is detected and not sorted again.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.exceptions import InputError
from watchkeeper.stats._inputs import sorted_sample
from watchkeeper.stats._ks import kolmogorov_smirnov
from watchkeeper.stats._numeric_binned import hellinger, jensen_shannon, psi
from watchkeeper.stats._permutation import (
    DEFAULT_MAX_SAMPLES,
    DEFAULT_PERMUTATIONS,
    permutation_p_value,
)
from watchkeeper.stats._pooled import (
    PooledSample,
    anderson_darling_a2,
    anderson_darling_p_value,
    cdf_distances,
    cramer_von_mises_p_value,
    cramer_von_mises_t,
)
from watchkeeper.stats._registry import drift_method
from watchkeeper.stats._result import TestResult

__all__ = [
    "anderson_darling",
    "cramer_von_mises",
    "energy",
    "hellinger",
    "jensen_shannon",
    "ks",
    "psi",
    "wasserstein",
]

#: ``cramervonmises_2samp(method="auto")`` is exact when both sizes are at most this.
_CVM_MAX_EXACT_N = 20


def _samples(
    reference: ArrayLike, current: ArrayLike, reference_sorted: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    a = sorted_sample(reference, "reference", assume_sorted=reference_sorted)
    b = sorted_sample(current, "current")
    return a, b


@drift_method("ks", kind="numeric", effect_floor=0.02)
def ks(reference: ArrayLike, current: ArrayLike, *, reference_sorted: bool = False) -> TestResult:
    """Two-sample Kolmogorov–Smirnov test.

    Statistic and p-value agree with ``scipy.stats.ks_2samp(reference, current)`` (exact
    p-value when both samples have at most 10 000 values, Smirnov's approximation otherwise),
    several times faster on large samples. The effect size is ``D`` itself.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = ks(rng.normal(size=500), rng.normal(0.3, size=400))
    >>> round(r.statistic, 3), r.p_value < 0.001, r.details["p_value_method"]
    (0.158, True, 'exact')
    """
    a, b = _samples(reference, current, reference_sorted)
    out = kolmogorov_smirnov(a, b)
    return TestResult(
        method="ks",
        statistic=out.statistic,
        p_value=out.p_value,
        effect_size=out.statistic,
        n_reference=a.size,
        n_current=b.size,
        details={
            "p_value_method": out.p_value_method,
            "statistic_location": out.location,
            "statistic_sign": out.sign,
        },
    )


@drift_method("cramer_von_mises", kind="numeric", effect_floor=0.015)
def cramer_von_mises(
    reference: ArrayLike, current: ArrayLike, *, reference_sorted: bool = False
) -> TestResult:
    """Two-sample Cramér–von Mises test (midranks for ties).

    Statistic and p-value agree with ``scipy.stats.cramervonmises_2samp`` (exact p-value
    when both samples have at most 20 values, asymptotic otherwise). The effect size is the
    root-mean-square gap between the two ECDFs over the pooled sample. Needs at least two
    values per side.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = cramer_von_mises(rng.normal(size=500), rng.normal(0.3, size=400))
    >>> round(r.statistic, 3), r.p_value < 0.001, round(r.effect_size, 3)
    (2.12, True, 0.098)
    """
    a, b = _samples(reference, current, reference_sorted)
    _require_sizes("cramer_von_mises", a, b, minimum=2)
    t, rms = cramer_von_mises_t(PooledSample.merge(a, b))
    if max(a.size, b.size) <= _CVM_MAX_EXACT_N:
        from scipy import stats

        p, how = float(stats.cramervonmises_2samp(a, b, method="exact").pvalue), "exact"
    else:
        p, how = cramer_von_mises_p_value(t, a.size, b.size), "asymptotic"
    return TestResult(
        method="cramer_von_mises",
        statistic=t,
        p_value=p,
        effect_size=rms,
        n_reference=a.size,
        n_current=b.size,
        details={"p_value_method": how},
    )


@drift_method("anderson_darling", kind="numeric", effect_floor=0.035)
def anderson_darling(
    reference: ArrayLike, current: ArrayLike, *, reference_sorted: bool = False
) -> TestResult:
    """Two-sample Anderson–Darling test (Scholz & Stephens, midrank version for ties).

    The statistic is the standardised ``(A2 - 1) / sigma_N`` of
    ``scipy.stats.anderson_ksamp(..., variant="midrank")``, and so is the p-value wherever
    scipy interpolates its table (0.001 to 0.25). Beyond the table scipy caps the p-value at
    0.25 or floors it at 0.001 (and warns); here it continues with the limiting
    distribution that the table tabulates, so p-values span (0, 1] and a strict correction
    over many columns can still reject. ``details["p_value_method"]`` says which was used
    and ``details["a2"]`` holds the unstandardised statistic. If every value in both
    samples is the same, the samples are identical and the p-value is 1.

    The effect size is the ECDF gap weighted towards the tails, ``sqrt(A2 N / (n m))``.
    Needs at least four values in total.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = anderson_darling(rng.normal(size=500), rng.normal(0.3, size=400))
    >>> round(r.statistic, 2), r.p_value < 0.001, r.details["p_value_method"]
    (13.01, True, 'asymptotic')
    """
    a, b = _samples(reference, current, reference_sorted)
    if a.size + b.size < 4:
        raise InputError(
            "anderson_darling needs at least 4 values in total (reference and current); "
            f"got {a.size} + {b.size}"
        )
    pooled = PooledSample.merge(a, b)
    details: dict[str, Any]
    if pooled.values.size < 2:
        a2, z, p = 0.0, 0.0, 1.0
        details = {"a2": 0.0, "p_value_method": "all values identical"}
    else:
        a2 = anderson_darling_a2(pooled)
        z, p, how = anderson_darling_p_value(a2, a.size, b.size)
        details = {"a2": a2, "p_value_method": how}
    big_n = a.size + b.size
    return TestResult(
        method="anderson_darling",
        statistic=z,
        p_value=p,
        effect_size=math.sqrt(max(a2, 0.0) * big_n / (a.size * b.size)),
        n_reference=a.size,
        n_current=b.size,
        details=details,
    )


@drift_method("wasserstein", kind="numeric", effect_floor=0.05)
def wasserstein(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    reference_sorted: bool = False,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    random_state: int = 0,
) -> TestResult:
    """Wasserstein-1 (earth mover's) distance, in units of the reference standard deviation.

    ``statistic`` and ``details["wasserstein_distance"]`` hold the raw ``W1`` (equal to
    ``scipy.stats.wasserstein_distance``); ``effect_size`` is ``W1 / s``. The p-value comes
    from a seeded permutation test on at most ``max_samples`` values per side
    (``n_permutations=0`` skips it and returns ``p_value=None``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = wasserstein(rng.normal(size=500), rng.normal(0.3, size=400), n_permutations=199)
    >>> round(r.effect_size, 2), r.p_value
    (0.3, 0.005)
    """
    a, b = _samples(reference, current, reference_sorted)
    w1, _ = cdf_distances(PooledSample.merge(a, b))
    scale, source = _reference_scale(a, b)
    return _distance_result(
        "wasserstein", w1, w1 / scale if scale > 0 else 0.0, scale, source, a, b,
        n_permutations=n_permutations, max_samples=max_samples, random_state=random_state,
    )  # fmt: skip


@drift_method("energy", kind="numeric", effect_floor=0.05)
def energy(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    reference_sorted: bool = False,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    random_state: int = 0,
) -> TestResult:
    """Energy distance ``sqrt(2 ∫ (F_r - F_c)^2)``, scale-free as ``E / sqrt(s)``.

    ``statistic`` and ``details["energy_distance"]`` hold the raw distance (equal to
    ``scipy.stats.energy_distance``); ``effect_size`` divides it by the square root of the
    reference standard deviation, i.e. it is the energy distance of the data in units of
    ``s``. p-value: as :func:`wasserstein`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = energy(rng.normal(size=500), rng.normal(0.3, size=400), n_permutations=199)
    >>> round(r.effect_size, 2), r.p_value
    (0.24, 0.005)
    """
    a, b = _samples(reference, current, reference_sorted)
    _, dist = cdf_distances(PooledSample.merge(a, b))
    scale, source = _reference_scale(a, b)
    return _distance_result(
        "energy", dist, dist / math.sqrt(scale) if scale > 0 else 0.0, scale, source, a, b,
        n_permutations=n_permutations, max_samples=max_samples, random_state=random_state,
    )  # fmt: skip


def _distance_result(
    method: str,
    raw: float,
    effect: float,
    scale: float,
    source: str,
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    *,
    n_permutations: int,
    max_samples: int,
    random_state: int,
) -> TestResult:
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int | np.integer):
        raise InputError(f"n_permutations must be a whole number, got {n_permutations!r}")
    if n_permutations < 0:
        raise InputError(f"n_permutations must be >= 0 (0 skips the test), got {n_permutations}")
    if max_samples < 2:
        raise InputError(f"max_samples must be at least 2, got {max_samples}")
    details: dict[str, Any] = {
        f"{method}_distance": raw,
        "scale": scale,
        "scale_source": source,
        "p_value_source": "permutation",
        "n_permutations": int(n_permutations),
    }
    p_value: float | None = None
    if n_permutations > 0:
        p_value, used_a, used_b = permutation_p_value(
            a, b, distance="wasserstein" if method == "wasserstein" else "energy",
            n_permutations=int(n_permutations), max_samples=int(max_samples),
            random_state=random_state,
        )  # fmt: skip
        details["permutation_n_reference"] = used_a
        details["permutation_n_current"] = used_b
    else:
        details["p_value_source"] = "none (n_permutations=0)"
    return TestResult(
        method=method,
        statistic=raw,
        p_value=p_value,
        effect_size=effect,
        n_reference=a.size,
        n_current=b.size,
        details=details,
    )


def _reference_scale(a: NDArray[np.float64], b: NDArray[np.float64]) -> tuple[float, str]:
    """The unit of the distance effect sizes: reference std, else pooled std, else 0."""
    if a[0] != a[-1]:  # sorted: not constant
        return float(np.std(a)), "reference_std"
    n_a, n_b = a.size, b.size
    mean_b = float(np.mean(b))
    mean = (n_a * float(a[0]) + n_b * mean_b) / (n_a + n_b)
    var = (n_a * (float(a[0]) - mean) ** 2 + n_b * (float(np.var(b)) + (mean_b - mean) ** 2)) / (
        n_a + n_b
    )
    if var > 0:
        return math.sqrt(var), "pooled_std (reference is constant)"
    return 0.0, "none (both samples are the same constant)"


def _require_sizes(
    method: str, a: NDArray[np.float64], b: NDArray[np.float64], *, minimum: int
) -> None:
    for x, name in ((a, "reference"), (b, "current")):
        if x.size < minimum:
            raise InputError(
                f"{method} needs at least {minimum} values per side; {name} has {x.size}"
            )
