"""Is a rate of events (user flags, errors) higher now than in a reference period?

Both rates are estimates: the reference's own uncertainty must count, or a reference measured
on few rows raises false alarms. Conditioning on the total number of events makes the test
exact (Przyborowski and Wilenski 1940; the conditional test for two Poisson rates): under
equal rates, and given ``k = k_ref + k_cur`` events, the current count is
``Binomial(k, n_cur / (n_ref + n_cur))``. The one-sided p-value is the chance of at least
``k_cur`` of them falling in the current period. For binomial counts (at most one event per
row) with small rates the same test holds approximately and stays conservative.
"""

from __future__ import annotations

import math

from watchkeeper.exceptions import InputError
from watchkeeper.stats._result import TestResult

__all__ = ["conformal_exceedance", "rate_increase"]


def rate_increase(k_reference: int, n_reference: int, k_current: int, n_current: int) -> TestResult:
    """Exact conditional test that the current event rate exceeds the reference rate.

    Parameters
    ----------
    k_reference, n_reference
        Events and rows (exposure) of the reference period.
    k_current, n_current
        Events and rows of the current window.

    Returns
    -------
    TestResult
        ``statistic`` is the rate ratio (current / reference; ``inf`` when the reference had
        no event), ``p_value`` the one-sided p-value, ``effect_size`` the difference of the
        two rates (current minus reference), ``details`` both rates.

    Examples
    --------
    >>> r = rate_increase(10, 1000, 30, 1000)
    >>> round(r.statistic, 2), r.p_value < 0.01, round(r.effect_size, 3)
    (3.0, True, 0.02)
    >>> rate_increase(10, 1000, 12, 1000).p_value > 0.3
    True
    """
    for name, value in (("k_reference", k_reference), ("n_reference", n_reference),
                        ("k_current", k_current), ("n_current", n_current)):  # fmt: skip
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise InputError(f"{name} must be a count (a whole number >= 0), got {value!r}")
    if k_reference > n_reference or k_current > n_current:
        raise InputError("events cannot outnumber rows; pass counts of events and of rows")
    if n_reference == 0 or n_current == 0:
        raise InputError("both periods need at least one row to compare their rates")
    from scipy.stats import binom

    k = int(k_reference + k_current)
    share = n_current / (n_reference + n_current)
    p = 1.0 if k_current == 0 else float(binom.sf(int(k_current) - 1, k, share))
    ref_rate, cur_rate = k_reference / n_reference, k_current / n_current
    ratio = cur_rate / ref_rate if ref_rate > 0 else (math.inf if cur_rate > 0 else 1.0)
    return TestResult(
        method="rate_increase",
        statistic=ratio,
        p_value=min(1.0, p),
        effect_size=cur_rate - ref_rate,
        n_reference=int(n_reference),
        n_current=int(n_current),
        details={"reference_rate": ref_rate, "current_rate": cur_rate,
                 "reference_events": int(k_reference), "current_events": int(k_current)},
    )  # fmt: skip


def conformal_exceedance(
    n_above: int, n_calibration: int, k_current: int, n_current: int
) -> TestResult:
    """Exact test that more new rows exceed a split-conformal threshold than chance allows.

    A threshold set at an order statistic of ``n_calibration`` held-out scores, with
    ``n_above`` of them above it, is exceeded by a new score exchangeable with them with
    probability ``p ~ Beta(n_above + 1, n_calibration - n_above)`` (the coverage of an order
    statistic; Vovk et al. 2005, Angelopoulos and Bates 2021). So, given the calibration, the
    number of ``n_current`` new rows above the threshold is beta-binomial: the p-value below
    carries the calibration's own uncertainty (a plain binomial test at the nominal rate would
    raise false alarms whenever the calibration happened to set the threshold a little low).
    Exact for continuous scores; ties make it conservative.

    Parameters
    ----------
    n_above, n_calibration
        Calibration scores above the threshold, and calibration scores in all.
    k_current, n_current
        Rows of the current window above the threshold, and rows in all.

    Returns
    -------
    TestResult
        ``statistic`` is the current share, ``p_value`` the one-sided p-value of at least
        ``k_current`` exceedances, ``effect_size`` the current share minus the expected rate
        ``(n_above + 1) / (n_calibration + 1)``; ``details`` holds that expected rate.

    Examples
    --------
    >>> r = conformal_exceedance(9, 999, 40, 1000)
    >>> round(r.details["expected_rate"], 3), r.p_value < 0.001
    (0.01, True)
    >>> conformal_exceedance(9, 999, 11, 1000).p_value > 0.2
    True
    """
    for name, value in (("n_above", n_above), ("n_calibration", n_calibration),
                        ("k_current", k_current), ("n_current", n_current)):  # fmt: skip
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise InputError(f"{name} must be a count (a whole number >= 0), got {value!r}")
    if n_above >= n_calibration:
        raise InputError(
            f"n_above ({n_above}) must be below n_calibration ({n_calibration}): a threshold "
            "above every calibration score cannot be calibrated; use more calibration rows"
        )
    if k_current > n_current:
        raise InputError("rows above the threshold cannot outnumber rows; pass counts")
    if n_current == 0:
        raise InputError("the current window needs at least one row")
    from scipy.stats import betabinom

    a, b = int(n_above) + 1, int(n_calibration - n_above)
    p = 1.0 if k_current == 0 else float(betabinom.sf(int(k_current) - 1, int(n_current), a, b))
    expected = a / (a + b)
    share = k_current / n_current
    return TestResult(
        method="conformal_exceedance",
        statistic=share,
        p_value=min(1.0, max(0.0, p)),
        effect_size=share - expected,
        n_reference=int(n_calibration),
        n_current=int(n_current),
        details={"expected_rate": expected, "calibration_above": int(n_above),
                 "current_above": int(k_current)},
    )  # fmt: skip
