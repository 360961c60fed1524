"""Windows over the prediction log: by time (aligned to UTC) or by count of rows.

Every window is a half-open interval ``[start, end)`` of prediction times in whole
microseconds, so that one row belongs to exactly one window and the same bounds read the
same rows back from the log.

- Time windows (``every="1h"``, ``"15m"``, ``"1d"``) are aligned to the UTC epoch: an hourly
  window starts on the hour, a daily one at midnight UTC. A window is evaluated once it is
  closed (its end is not after the run's ``now``).
- Count windows (``every=1000``) follow each (version, arm) from where its previous window
  ended: a window closes after ``every`` rows, extended to the end of the microsecond of its
  last row so that rows logged in one batch (one timestamp) are never split. A trailing
  window with fewer rows waits for more.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from watchkeeper.exceptions import InputError

__all__ = ["Window", "WindowSpec", "count_windows", "parse_every", "time_windows"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """How windows are cut: ``kind`` ``"time"`` (``size`` seconds) or ``"count"`` (rows).

    Examples
    --------
    >>> parse_every("1h"), parse_every(500).kind
    (WindowSpec(kind='time', size=3600), 'count')
    """

    kind: Literal["time", "count"]
    size: int

    def describe(self) -> str:
        """A few words, e.g. ``"1h windows"`` or ``"windows of 1,000 rows"``."""
        if self.kind == "count":
            return f"windows of {self.size:,} rows"
        for unit in ("w", "d", "h", "m", "s"):
            if self.size % _UNITS[unit] == 0:
                return f"{self.size // _UNITS[unit]}{unit} windows"
        return f"{self.size}s windows"  # pragma: no cover - every size is a whole second


def parse_every(every: str | int) -> WindowSpec:
    """Parse a window size: ``"1h"``, ``"30m"``, ``"1d"`` (time) or a row count.

    Examples
    --------
    >>> parse_every("15m").size, parse_every("1000").kind
    (900, 'count')
    >>> parse_every("1y")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: every='1y' is not a window size; ...
    """
    if isinstance(every, bool):
        raise InputError(f"every must be a duration like '1h' or a row count, got {every!r}")
    if isinstance(every, int) or (isinstance(every, str) and every.strip().isdigit()):
        n = int(every)
        if n < 1:
            raise InputError(f"a count window needs at least 1 row, got {every!r}")
        return WindowSpec("count", n)
    match = _PATTERN.match(str(every))
    if match is None or int(match.group(1)) < 1:
        raise InputError(
            f"every={every!r} is not a window size; use a duration such as '15m', '1h' or "
            "'1d' (s, m, h, d, w) or a number of rows such as 1000"
        )
    size = int(match.group(1)) * _UNITS[match.group(2)]
    if 86400 % size and size % 86400:
        raise InputError(
            f"every={every!r} does not divide a day nor is a whole number of days; pick a "
            "size that does (e.g. 10m, 1h, 6h, 1d) so windows align with UTC midnight"
        )
    return WindowSpec("time", size)


@dataclass(frozen=True, slots=True)
class Window:
    """Bounds ``[start, end)`` in UTC microseconds and the slice ``rows`` of sorted rows."""

    start_us: int
    end_us: int
    kind: str
    first: int
    stop: int

    @property
    def start(self) -> datetime:
        """Start as an aware UTC datetime."""
        return from_us(self.start_us)

    @property
    def end(self) -> datetime:
        """End (exclusive) as an aware UTC datetime."""
        return from_us(self.end_us)

    @property
    def n_rows(self) -> int:
        """Rows in the window."""
        return self.stop - self.first

    @property
    def seconds(self) -> float:
        """Width of the window in seconds."""
        return (self.end_us - self.start_us) / 1e6


def from_us(us: int) -> datetime:
    """Aware UTC datetime of ``us`` microseconds since the epoch (exact).

    Examples
    --------
    >>> from_us(86_400_000_001).isoformat()
    '1970-01-02T00:00:00.000001+00:00'
    """
    seconds, micros = divmod(int(us), 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def to_us(when: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact).

    Examples
    --------
    >>> to_us(from_us(1_700_000_000_123_456))
    1700000000123456
    """
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def time_windows(ts_us: NDArray[np.int64], size: int, now_us: int) -> list[Window]:
    """Closed, non-empty time windows of ``size`` seconds over sorted times ``ts_us``.

    Examples
    --------
    >>> ts = np.array([0, 10, 3_600_000_000, 7_300_000_000], dtype=np.int64)
    >>> [(w.start_us, w.n_rows) for w in time_windows(ts, 3600, 7_300_000_000)]
    [(0, 2), (3600000000, 1)]
    """
    step = size * 1_000_000
    out: list[Window] = []
    if ts_us.size == 0:
        return out
    keys = ts_us // step
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    stops = np.r_[starts[1:], ts_us.size]
    for first, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        start = int(keys[first]) * step
        if start + step <= now_us:
            out.append(Window(start, start + step, "time", first, stop))
    return out


def count_windows(ts_us: NDArray[np.int64], size: int, start_us: int | None) -> list[Window]:
    """Full count windows of ``size`` rows over sorted times ``ts_us``, the first starting at
    ``start_us`` (the previous window's end) or at the first row.

    Examples
    --------
    >>> ts = np.array([5, 6, 6, 7, 9, 12], dtype=np.int64)
    >>> [(w.start_us, w.end_us, w.n_rows) for w in count_windows(ts, 2, None)]
    [(5, 7, 3), (7, 10, 2)]
    """
    out: list[Window] = []
    if ts_us.size == 0:
        return out
    start = int(ts_us[0]) if start_us is None else int(start_us)
    first = int(np.searchsorted(ts_us, start, side="left"))
    while first + size <= ts_us.size:
        end = int(ts_us[first + size - 1]) + 1
        stop = int(np.searchsorted(ts_us, end, side="left"))
        out.append(Window(start, end, "count", first, stop))
        start, first = end, stop
    return out


def seconds_to_us(seconds: float) -> int:
    """Microseconds of UTC seconds (rounded down, as the log's timestamps are).

    Examples
    --------
    >>> seconds_to_us(1.5)
    1500000
    """
    return math.floor(seconds * 1e6)
