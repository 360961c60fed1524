"""Outliers per window: is the share of records the detector flagged above its rate?"""

from __future__ import annotations

from typing import Any

from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.exceptions import InputError

__all__ = ["check_outlier_rate"]


def check_outlier_rate(
    flagged: int,
    n_rows: int,
    n_above: int,
    n_calibration: int,
    *,
    rate: float,
    alpha: float = 0.01,
    min_ratio: float = 1.5,
    min_rows: int = 100,
) -> CheckResult:
    """``outliers.rate``: is the window's share of flagged records above the reference rate?

    The decision is the exact beta-binomial test of
    :func:`watchkeeper.stats.conformal_exceedance` (it carries the calibration's own
    uncertainty): ``alert`` when the one-sided p-value is below ``alpha`` and the share is at
    least ``min_ratio`` times the detector's false-positive rate (so that a huge window does
    not alert on a trivial rise). ``upper`` is the Wilson 95% upper bound of the share.

    Parameters
    ----------
    flagged, n_rows
        Flagged records of the window, and its records with a score.
    n_above, n_calibration
        The detector's held-out reference rows above its threshold, and all of them.
    rate
        The detector's stated false-positive rate (reported beside the decision).
    alpha, min_ratio, min_rows
        Significance level, effect-size floor and the fewest rows for a verdict.

    Examples
    --------
    >>> check_outlier_rate(60, 1000, 9, 999, rate=0.01).status.value
    'alert'
    >>> check_outlier_rate(12, 1000, 9, 999, rate=0.01).status.value
    'ok'
    >>> check_outlier_rate(3, 40, 9, 999, rate=0.01).status.value
    'insufficient_data'
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be between 0 and 1, got {alpha!r}")
    from watchkeeper.stats import conformal_exceedance, wilson_interval

    lo, hi = wilson_interval(flagged, n_rows) if n_rows else (0.0, 1.0)
    share = flagged / n_rows if n_rows else 0.0
    expected = (n_above + 1) / (n_calibration + 1)
    details: dict[str, Any] = {
        "flagged": int(flagged),
        "n_rows": int(n_rows),
        "stated_rate": float(rate),
        "false_positive_rate": expected,
        "n_calibration": int(n_calibration),
        "calibration_above": int(n_above),
    }
    rule = f"beta-binomial exceedance test, alpha={alpha:g}, ratio>={min_ratio:g}"
    if n_rows < min_rows:
        return CheckResult(
            "outliers.rate", "model", Status.INSUFFICIENT_DATA,
            f"only {n_rows:,} scored rows in the window; at least {min_rows:,} are needed "
            f"(outlier share {share:.2%}, {flagged:,} flagged)",
            value=share, lower=lo, upper=hi, threshold=expected, rule=rule, details=details,
        )  # fmt: skip
    test = conformal_exceedance(n_above, n_calibration, flagged, n_rows)
    p = float(test.p_value if test.p_value is not None else 1.0)
    details["ratio"] = share / expected
    if p < alpha and share >= min_ratio * expected:
        status = Status.ALERT
        reason = (
            f"outlier share {share:.2%} ({flagged:,} of {n_rows:,}) is significantly above "
            f"the reference rate {expected:.2%} (stated {rate:g}; one-sided exact p={p:.3g} "
            f"< {alpha:g})"
        )
    else:
        status = Status.OK
        reason = (
            f"outlier share {share:.2%} ({flagged:,} of {n_rows:,}); reference rate "
            f"{expected:.2%} (stated {rate:g})"
        )
        if share > expected:
            reason += (
                f", not significantly higher (p={p:.3g})"
                if p >= alpha
                else f", below {min_ratio:g} times the reference rate"
            )
    return CheckResult(
        "outliers.rate", "model", status, reason,
        value=share, lower=lo, upper=hi, threshold=expected, p_value=p, rule=rule,
        details=details,
    )  # fmt: skip
