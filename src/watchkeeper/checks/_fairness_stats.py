"""Intervals and tests behind the fairness checks: pure functions over counts and sums.

- Newcombe's hybrid score interval of a difference of two independent proportions (Newcombe,
  1998, method 10), built from the two Wilson (1927) intervals.
- Log (Katz) interval of a ratio of two proportions (Katz et al., 1978), with 0.5 added to
  every cell when a count is zero.
- Pearson's chi-square test of homogeneity of k proportions (k = 2 is the pooled two-proportion
  z-test, squared).
- Welch's t interval and test for two means, and Welch's (1951) heteroscedastic one-way ANOVA
  for k means, from counts, sums and sums of squares only (what profiles keep).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _sps

from watchkeeper.stats import wilson_interval

__all__ = [
    "chi2_homogeneity",
    "katz_ratio_interval",
    "mean_interval",
    "newcombe_interval",
    "two_proportion_test",
    "welch_anova",
    "welch_interval",
    "welch_test",
]


def _z(confidence: float) -> float:
    return float(_sps.norm.ppf(0.5 + confidence / 2))


def newcombe_interval(
    x1: float, n1: float, x2: float, n2: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``x1/n1 - x2/n2``.

    Examples
    --------
    >>> lo, hi = newcombe_interval(56, 70, 48, 80)  # Newcombe (1998), example (a)
    >>> round(lo, 4), round(hi, 4)
    (0.0524, 0.3339)
    """
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(round(x1), round(n1), confidence)
    l2, u2 = wilson_interval(round(x2), round(n2), confidence)
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lower), min(1.0, upper)


def katz_ratio_interval(
    x1: float, n1: float, x2: float, n2: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Log-method interval of the ratio ``(x1/n1) / (x2/n2)``.

    Examples
    --------
    >>> lo, hi = katz_ratio_interval(30, 100, 45, 100)
    >>> round(lo, 3), round(hi, 3)
    (0.461, 0.965)
    """
    if min(x1, x2, n1 - x1, n2 - x2) == 0:
        x1, x2, n1, n2 = x1 + 0.5, x2 + 0.5, n1 + 1.0, n2 + 1.0
    log_ratio = math.log((x1 / n1) / (x2 / n2))
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
    z = _z(confidence)
    return math.exp(log_ratio - z * se), math.exp(log_ratio + z * se)


def chi2_homogeneity(x: Sequence[float], n: Sequence[float]) -> float:
    """p-value of Pearson's chi-square test that the proportions ``x_i / n_i`` are equal.

    Returns 1 when every group has the same extreme proportion (all 0 or all 1), where the
    statistic is undefined and there is no evidence of a difference.

    Examples
    --------
    >>> round(chi2_homogeneity([30, 45], [100, 100]), 4)
    0.0285
    """
    xs, ns = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    pooled = xs.sum() / ns.sum()
    if pooled <= 0 or pooled >= 1 or len(xs) < 2:
        return 1.0
    expected_yes, expected_no = ns * pooled, ns * (1 - pooled)
    stat = float(
        (((xs - expected_yes) ** 2) / expected_yes).sum()
        + (((ns - xs - expected_no) ** 2) / expected_no).sum()
    )
    return float(_sps.chi2.sf(stat, len(xs) - 1))


def two_proportion_test(x1: float, n1: float, x2: float, n2: float) -> float:
    """Two-sided p-value of the pooled z-test that two proportions are equal.

    Examples
    --------
    >>> round(two_proportion_test(30, 100, 45, 100), 4)
    0.0285
    """
    return chi2_homogeneity([x1, x2], [n1, n2])


def _mean_var(n: float, total: float, total_sq: float) -> tuple[float, float]:
    mean = total / n
    var = max(total_sq - n * mean * mean, 0.0) / (n - 1) if n > 1 else math.nan
    return mean, var


def welch_test(
    n1: float, s1: float, ss1: float, n2: float, s2: float, ss2: float
) -> tuple[float, float, float]:
    """``(difference of means, standard error, two-sided p-value)`` of Welch's t-test.

    Each sample is given by its size, sum and sum of squares.

    Examples
    --------
    >>> a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0])
    >>> d, se, p = welch_test(4, a.sum(), (a**2).sum(), 3, b.sum(), (b**2).sum())
    >>> round(d, 4), round(p, 4)  # scipy.stats.ttest_ind(a, b, equal_var=False)
    (-1.5, 0.3338)
    """
    m1, v1 = _mean_var(n1, s1, ss1)
    m2, v2 = _mean_var(n2, s2, ss2)
    d = float(m1 - m2)
    a, b = v1 / n1, v2 / n2
    se = math.sqrt(a + b) if a + b > 0 else 0.0
    if not se or not math.isfinite(se):
        return d, se, (1.0 if d == 0 or not math.isfinite(se) else 0.0)
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    return d, se, float(2 * _sps.t.sf(abs(d) / se, df))


def welch_interval(
    n1: float, s1: float, ss1: float, n2: float, s2: float, ss2: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Welch t interval of the difference of two means (sizes, sums, sums of squares).

    Examples
    --------
    >>> lo, hi = welch_interval(4, 10.0, 30.0, 3, 12.0, 56.0)
    >>> round(lo, 3), round(hi, 3)
    (-5.542, 2.542)
    """
    m1, v1 = _mean_var(n1, s1, ss1)
    m2, v2 = _mean_var(n2, s2, ss2)
    a, b = v1 / n1, v2 / n2
    if not a + b > 0:
        return m1 - m2, m1 - m2
    df = (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n2 - 1))
    half = float(_sps.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(a + b)
    return m1 - m2 - half, m1 - m2 + half


def mean_interval(
    n: float, total: float, total_sq: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Student t interval of a mean from its sample size, sum and sum of squares.

    Examples
    --------
    >>> lo, hi = mean_interval(4, 10.0, 30.0)  # the values 1, 2, 3, 4
    >>> round(lo, 3), round(hi, 3)
    (0.446, 4.554)
    """
    mean, var = _mean_var(n, total, total_sq)
    if n < 2:
        return math.nan, math.nan
    half = float(_sps.t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(var / n)
    return mean - half, mean + half


def welch_anova(n: Sequence[float], sums: Sequence[float], sums_sq: Sequence[float]) -> float:
    """p-value of Welch's heteroscedastic one-way ANOVA that k group means are equal.

    With two groups it equals Welch's t-test.

    Examples
    --------
    >>> a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0])
    >>> round(welch_anova([4, 3], [a.sum(), b.sum()], [(a**2).sum(), (b**2).sum()]), 4)
    0.3338
    """
    ns = np.asarray(n, dtype=float)
    k = len(ns)
    means = np.asarray(sums, dtype=float) / ns
    var = np.maximum(np.asarray(sums_sq, dtype=float) - ns * means * means, 0.0) / (ns - 1)
    if k < 2:
        return 1.0
    if np.any(var <= 0):
        # A group with no spread: Welch's weights are undefined. Equal means then carry no
        # evidence; different ones are as strong as evidence gets.
        return 1.0 if np.ptp(means) == 0 else 0.0
    w = ns / var
    mean_w = float((w * means).sum() / w.sum())
    a = float((w * (means - mean_w) ** 2).sum()) / (k - 1)
    tmp = float((((1 - w / w.sum()) ** 2) / (ns - 1)).sum())
    b = 1 + 2 * (k - 2) / (k * k - 1) * tmp
    df2 = (k * k - 1) / (3 * tmp)
    return float(_sps.f.sf(a / b, k - 1, df2))
