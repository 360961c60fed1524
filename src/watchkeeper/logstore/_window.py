"""Checking the arguments of a window (time bounds, count, filters) and turning them into SQL.

Shared by every reader of the log (the SQLite sink and the Parquet reader), so that the same
window arguments mean the same rows everywhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from watchkeeper.exceptions import InputError
from watchkeeper.logstore._normalize import validate_model_name

__all__ = ["check_last", "to_seconds", "window_filters"]


def to_seconds(value: datetime | float | None, name: str) -> float | None:
    """UTC seconds of an aware datetime or a number; naive datetimes are refused.

    Examples
    --------
    >>> from datetime import timezone
    >>> to_seconds(datetime(1970, 1, 2, tzinfo=timezone.utc), "start")
    86400.0
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InputError(
                f"{name}={value!r} has no time zone; pass an aware datetime, e.g. "
                "datetime(2024, 5, 1, tzinfo=timezone.utc)"
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a datetime or UTC seconds, got {value!r}")
    return float(value)


def check_last(last: object, name: str = "last") -> None:
    """Raise :class:`InputError` unless ``last`` (the argument ``name``) is ``None`` or a
    positive int.

    Examples
    --------
    >>> check_last(10)
    """
    if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 1):
        raise InputError(f"{name} must be a positive number of records, got {last!r}")


def window_filters(
    model: str,
    start: datetime | float | None,
    end: datetime | float | None,
    last: int | None,
    version: int | None,
    arm: str | None,
    include_shadow: bool,
    *,
    time_index: bool = True,
) -> tuple[str, list[Any]]:
    """SQL ``WHERE`` clause (over ``predictions AS p``) and its parameters for a window.
    ``time_index=False`` writes the time bounds as ``+p.ts``, which keeps the planner off the
    ``(model, ts)`` index (to look rows up by id instead).

    Examples
    --------
    >>> window_filters("churn", None, 10.0, None, 2, None, False)
    ('p.model = ? AND p.ts < ? AND p.version = ? AND p.shadow = 0', ['churn', 10.0, 2])
    """
    validate_model_name(model)
    check_last(last)
    lo, hi = to_seconds(start, "start"), to_seconds(end, "end")
    where: list[str] = ["p.model = ?"]
    params: list[Any] = [model]
    ts = "p.ts" if time_index else "+p.ts"
    if lo is not None:
        where.append(f"{ts} >= ?")
        params.append(lo)
    if hi is not None:
        where.append(f"{ts} < ?")
        params.append(hi)
    if version is not None:
        where.append("p.version = ?")
        params.append(version)
    if arm is not None:
        where.append("p.arm = ?")
        params.append(arm)
    if not include_shadow:
        where.append("p.shadow = 0")
    return " AND ".join(where), params
