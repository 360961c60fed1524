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

__all__ = ["rate_increase"]


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
