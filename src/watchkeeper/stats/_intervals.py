"""Confidence intervals of proportions and of means (pure numpy/scipy; no pandas, no I/O)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from watchkeeper.exceptions import InputError

__all__ = ["mean_interval", "wilson_interval"]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion.

    Examples
    --------
    >>> lo, hi = wilson_interval(90, 100)
    >>> round(lo, 4), round(hi, 4)
    (0.8256, 0.9448)
    """
    if n <= 0:
        return (0.0, 1.0)
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(
    values: ArrayLike,
    confidence: float = 0.95,
    *,
    method: Literal["t", "bca"] = "t",
    n_bootstrap: int = 2000,
    random_state: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``values`` (one per independent unit, e.g. per query) and its interval.

    ``method="t"``: Student's t interval, ``mean ± t(n-1) * sd / sqrt(n)``.
    ``method="bca"``: bias-corrected and accelerated percentile bootstrap (Efron, 1987) with
    ``n_bootstrap`` seeded resamples; the jackknife acceleration of the mean is exact
    (leave-one-out means in closed form), so it costs ``O(n)`` memory, not ``O(n^2)``.

    Returns ``(mean, lower, upper)``; the bounds are NaN with fewer than two values, and equal
    the mean when every value is the same.

    Examples
    --------
    >>> m, lo, hi = mean_interval([0.2, 0.4, 0.6, 0.8])
    >>> round(m, 4), round(lo, 4), round(hi, 4)
    (0.5, 0.0891, 0.9109)
    >>> rng = np.random.default_rng(0)
    >>> m, lo, hi = mean_interval(rng.random(200), method="bca")
    >>> bool(lo < m < hi)
    True
    """
    from scipy.stats import norm, t

    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(x).all():
        raise InputError("values must be finite numbers (drop or fill missing values first)")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    if method not in ("t", "bca"):
        raise InputError(f"method must be 't' or 'bca', got {method!r}")
    n = x.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return (mean, math.nan, math.nan)
    if float(np.ptp(x)) == 0.0:
        return (mean, mean, mean)
    alpha = 1 - confidence
    if method == "t":
        half = float(t.ppf(1 - alpha / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
        return (mean, mean - half, mean + half)
    if n_bootstrap < 100:
        raise InputError(f"n_bootstrap must be at least 100 for a BCa interval, got {n_bootstrap}")
    rng = np.random.default_rng(random_state)
    boot = np.empty(n_bootstrap)
    per_chunk = max(1, 2_000_000 // n)
    for start in range(0, n_bootstrap, per_chunk):
        stop = min(n_bootstrap, start + per_chunk)
        boot[start:stop] = x[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    # bias correction: the share of resampled means below the estimate (as scipy's
    # bootstrap counts it), kept off 0 and 1 so that it stays finite
    below = float(np.clip(np.mean(boot < mean), 0.5 / n_bootstrap, 1 - 0.5 / n_bootstrap))
    z0 = float(norm.ppf(below))
    jack = (x.sum() - x) / (n - 1)  # leave-one-out means
    d = jack.mean() - jack
    a = float((d**3).sum() / (6 * (d**2).sum() ** 1.5))
    z = norm.ppf([alpha / 2, 1 - alpha / 2])
    adjusted = norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
    lo, hi = np.quantile(boot, adjusted)
    return (mean, float(lo), float(hi))
