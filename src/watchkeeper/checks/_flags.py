"""User flags: is the share of predictions users flagged higher than in the reference period?"""

from __future__ import annotations

from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.stats import wilson_interval

__all__ = ["check_flag_rate"]


def check_flag_rate(
    flags: int,
    n_rows: int,
    reference_flags: int | None,
    reference_rows: int,
    *,
    alpha: float = 0.01,
    min_ratio: float = 1.25,
    min_rows: int = 100,
) -> CheckResult:
    """``feedback.flag_rate``: the window's flag rate against the reference period's.

    The decision is the exact conditional test of :func:`watchkeeper.stats.rate_increase`,
    which carries the reference's own uncertainty (a reference of a few hundred rows does not
    make every busier window look worse): ``alert`` when the one-sided p-value is below
    ``alpha`` and the rate is at least ``min_ratio`` times the reference's (so that a huge
    window does not alert on a trivial rise).

    Examples
    --------
    >>> check_flag_rate(40, 1000, 10, 1000).status.value
    'alert'
    >>> check_flag_rate(12, 1000, 10, 1000).status.value
    'ok'
    >>> check_flag_rate(3, 50, 10, 1000).status.value
    'insufficient_data'
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be between 0 and 1, got {alpha!r}")
    from watchkeeper.stats import rate_increase

    lo, hi = wilson_interval(flags, n_rows) if n_rows else (0.0, 1.0)
    rate = flags / n_rows if n_rows else 0.0
    details: dict[str, object] = {"flags": int(flags), "n_rows": int(n_rows)}
    if reference_flags is None or reference_rows < min_rows or n_rows < min_rows:
        why = (
            f"only {n_rows:,} rows in the window"
            if n_rows < min_rows
            else f"the reference period has only {reference_rows:,} rows"
        )
        return CheckResult(
            "feedback.flag_rate", "model", Status.INSUFFICIENT_DATA,
            f"{why}; at least {min_rows:,} are needed to compare flag rates "
            f"(flag rate {rate:.2%}, {flags:,} flags)",
            value=rate, lower=lo, upper=hi, details=details,
        )  # fmt: skip
    test = rate_increase(reference_flags, reference_rows, flags, n_rows)
    ref_rate = reference_flags / reference_rows
    ratio = None if test.statistic == float("inf") else test.statistic
    details.update(
        reference_flags=int(reference_flags), reference_rows=int(reference_rows), rate_ratio=ratio
    )
    p = float(test.p_value if test.p_value is not None else 1.0)
    higher = rate >= min_ratio * ref_rate and flags > 0
    if p < alpha and higher:
        status = Status.ALERT
        reason = (
            f"flag rate {rate:.2%} ({flags:,} of {n_rows:,}) is significantly above the "
            f"reference's {ref_rate:.2%} (one-sided exact p={p:.3g} < {alpha:g})"
        )
    else:
        status = Status.OK
        reason = f"flag rate {rate:.2%} ({flags:,} of {n_rows:,}); reference {ref_rate:.2%}"
        if rate > ref_rate:
            reason += (
                f", not significantly higher (p={p:.3g})"
                if p >= alpha
                else (f", below {min_ratio:g} times the reference")
            )
    return CheckResult(
        "feedback.flag_rate", "model", status, reason,
        value=rate, lower=lo, upper=hi, threshold=ref_rate, p_value=p,
        rule=f"exact rate test, alpha={alpha:g}, ratio>={min_ratio:g}", details=details,
    )  # fmt: skip
