"""The prediction log as the gateway sees it: await durability, then answer.

:class:`WriterLog` fronts the logstore's group-commit writer (many requests share one
fsync). :class:`SinkLog` writes straight to a sink from a worker thread, one batch at a
time, for callers whose writes do not overlap (offline batch scoring) and for sinks other
than SQLite.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from watchkeeper.logstore import (
    FeedbackRecord,
    FeedbackResult,
    GroupCommitWriter,
    IdConflictError,
    LogOutcome,
    LogSink,
    PartialProfiler,
    PredictionRecord,
    open_sink,
)

__all__ = ["PredictionLog", "SinkLog", "WriterLog", "open_log", "writable_problem"]


class PredictionLog(Protocol):
    """What the gateway needs from the prediction log."""

    async def log(self, records: Sequence[PredictionRecord]) -> int:
        """Return once ``records`` are durable; the number of records dropped instead."""
        ...

    async def feedback(self, records: Sequence[FeedbackRecord]) -> FeedbackResult:
        """Store feedback durably."""
        ...

    def stats(self) -> dict[str, Any]:
        """Queue depth and counters for metrics."""
        ...

    def close(self) -> None:
        """Flush and release."""
        ...


#: Seconds during which a successful commit proves the log writable without a probe.
_RECENT = 5.0


def writable_problem(log: PredictionLog) -> str | None:
    """Why ``log`` cannot be written now (``None`` when it can, or cannot tell).

    Asks the sink to commit a probe write when it can (``check_writable``, as
    :class:`~watchkeeper.logstore.SQLiteLogSink` does): a read-only or full disk shows here
    before any prediction fails on it.
    """
    sink = getattr(log, "sink", None)
    writer = getattr(log, "writer", None)
    if isinstance(writer, GroupCommitWriter):
        sink = writer.sink
        committed, failed = writer.last_commit_at, writer.last_failure_at
        if (
            committed is not None
            and (failed is None or committed > failed)
            and time.monotonic() - committed < _RECENT
        ):
            return None  # it committed just now: no probe (it would wait for a busy log)
    check = getattr(sink, "check_writable", None)
    if check is None:
        return None
    try:
        check()
    except Exception as exc:
        text = str(exc).strip().splitlines()
        return (text[0] if text else type(exc).__name__)[:300]
    return None


class SinkLog:
    """Writes each batch straight to ``sink`` (no batching across requests).

    Examples
    --------
    >>> import asyncio
    >>> class Memory:
    ...     def __init__(self): self.rows = []
    ...     def write_predictions(self, records): self.rows.extend(records)
    ...     def close(self): pass
    >>> sink = Memory()
    >>> record = PredictionRecord(id="a", ts=0.0, model="m", version=1, arm="champion",
    ...                           features={"x": 1.0}, prediction=0)
    >>> asyncio.run(SinkLog(sink).log([record])), [r.id for r in sink.rows]
    (0, ['a'])
    """

    def __init__(self, sink: LogSink) -> None:
        self.sink = sink
        # One writer at a time: sinks are not required to be thread-safe.
        self._lock = threading.Lock()

    def _write(self, records: Sequence[PredictionRecord]) -> None:
        with self._lock:
            result = self.sink.write_predictions(records)
        conflicts = getattr(result, "conflicts", ())
        if conflicts:
            ids = tuple(dict.fromkeys(records[i].id for i in conflicts))
            raise IdConflictError(
                f"prediction id {ids[0]!r} is already logged for model "
                f"{records[conflicts[0]].model!r} with other features, so this record was not "
                "logged; use a new id for a new prediction (a retry must send the same record)",
                ids,
            )

    def _feedback(self, records: Sequence[FeedbackRecord]) -> FeedbackResult:
        with self._lock:
            return self.sink.write_feedback(records)

    async def log(self, records: Sequence[PredictionRecord]) -> int:
        """Write ``records`` in a worker thread; 0 records are ever dropped."""
        await asyncio.to_thread(self._write, records)
        return 0

    async def feedback(self, records: Sequence[FeedbackRecord]) -> FeedbackResult:
        """Write feedback in a worker thread."""
        return await asyncio.to_thread(self._feedback, records)

    def stats(self) -> dict[str, Any]:
        """No queue: depth 0."""
        return {"queue_depth": 0}

    def close(self) -> None:
        """Close the sink."""
        with self._lock:
            self.sink.close()


class WriterLog:
    """Fronts a :class:`~watchkeeper.logstore.GroupCommitWriter` (and owns its sink and its
    partial profiler, when records are profiled as they are logged)."""

    def __init__(self, writer: GroupCommitWriter, profiler: PartialProfiler | None = None) -> None:
        self.writer = writer
        self.profiler = profiler

    async def log(self, records: Sequence[PredictionRecord]) -> int:
        """Return when the batch holding ``records`` committed; the number dropped instead."""
        outcome = await self.writer.log(records)
        return len(records) if outcome is LogOutcome.DROPPED else 0

    async def feedback(self, records: Sequence[FeedbackRecord]) -> FeedbackResult:
        """Store feedback through the writer; return once it is durable."""
        return await self.writer.log_feedback(records)

    def stats(self) -> dict[str, Any]:
        """The writer's counters and queue depth."""
        return self.writer.stats()

    def close(self) -> None:
        """Flush the writer, store the last partial profiles, then close the sink."""
        self.writer.close()
        if self.profiler is not None:
            self.profiler.close()
        self.writer.sink.close()


def open_log(
    path: str,
    *,
    on_full: Literal["block", "drop"] = "block",
    synchronous: Literal["full", "normal"] = "full",
    reference: Callable[[str, int], Any] | None = None,
) -> PredictionLog:
    """The log at ``path`` (a SQLite file, or any URL :func:`~watchkeeper.logstore.open_sink`
    accepts: ``postgresql://...``, ``s3://...``) behind a group-commit writer.

    With ``reference`` (``reference(model, version)``: the version's reference profile or
    ``None``) and a log that stores them (SQLite), committed records are also profiled into
    hourly partial profiles (:class:`~watchkeeper.logstore.PartialProfiler`), which a monitor
    merges instead of re-reading the window's rows.

    Examples
    --------
    >>> import asyncio, os, tempfile
    >>> record = PredictionRecord(id="a", ts=1.7e9, model="m", version=1, arm="champion",
    ...                           features={"x": 1.0}, prediction=0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     log = open_log(os.path.join(d, "predictions.db"))
    ...     dropped = asyncio.run(log.log([record]))
    ...     log.close()
    >>> dropped
    0
    """
    sink = open_sink(path, synchronous=synchronous)
    profiler = None
    if reference is not None and getattr(sink, "write_profile_partials", None) is not None:
        profiler = PartialProfiler(sink, reference)
    on_commit = None if profiler is None else profiler.add
    return WriterLog(GroupCommitWriter(sink, on_full=on_full, on_commit=on_commit), profiler)
