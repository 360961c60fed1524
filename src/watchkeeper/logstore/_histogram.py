"""A fixed-bucket histogram of durations, shaped like a Prometheus histogram."""

from __future__ import annotations

import bisect
import math

__all__ = ["DEFAULT_SECONDS_BUCKETS", "Histogram"]

#: Upper bounds (seconds) from 50 µs (a commit without fsync) to 10 s (a stalled disk).
DEFAULT_SECONDS_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class Histogram:
    """Counts of observations per bucket, plus their sum and count; memory does not grow.

    Not thread-safe on its own: the writer updates it under its lock.

    Parameters
    ----------
    buckets
        Increasing upper bounds; an implicit ``+inf`` bucket catches the rest.

    Examples
    --------
    >>> h = Histogram((0.001, 0.01))
    >>> for s in (0.0005, 0.002, 0.003, 5.0):
    ...     h.observe(s)
    >>> h.cumulative(), h.count, round(h.sum, 4)
    ([(0.001, 1), (0.01, 3), (inf, 4)], 4, 5.0055)
    >>> h.quantile(0.5)
    0.01
    """

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_SECONDS_BUCKETS) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError("histogram buckets must be a non-empty increasing sequence")
        self.buckets = tuple(float(b) for b in buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0
        self.max = 0.0

    def observe(self, value: float) -> None:
        """Add one observation."""
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1
        self.max = max(self.max, value)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` per bucket, ending with ``+inf``."""
        out, total = [], 0
        for bound, n in zip((*self.buckets, math.inf), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the ``q`` quantile (the maximum past the last bucket;
        ``nan`` when empty)."""
        if self.count == 0:
            return math.nan
        rank = q * self.count
        for bound, total in self.cumulative():
            if total >= rank:
                return bound if math.isfinite(bound) else self.max
        return self.max
