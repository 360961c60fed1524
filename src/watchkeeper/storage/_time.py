"""Timestamps as the stores keep them: always UTC."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["as_utc", "now_utc"]


def now_utc() -> datetime:
    """The current time in UTC.

    Examples
    --------
    >>> now_utc().tzinfo
    datetime.timezone.utc
    """
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC (SQLite hands back naive datetimes; everything stored is UTC).

    Examples
    --------
    >>> as_utc(datetime(2026, 1, 1, 12, 0)).isoformat()
    '2026-01-01T12:00:00+00:00'
    >>> from datetime import timedelta, timezone
    >>> as_utc(datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))).isoformat()
    '2026-01-01T12:00:00+00:00'
    """
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
