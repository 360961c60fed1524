"""Group commit: many callers' records share one transaction, with a bounded queue.

Callers (gateway request handlers) hand records to :meth:`GroupCommitWriter.submit` (threads)
or ``await`` :meth:`GroupCommitWriter.log` (asyncio) and get a future that resolves once the
transaction holding their records has committed, so a response is sent only after its
prediction is durable. One background thread drains the queue: it takes what accumulated
while the previous commit ran, waits at most ``max_delay_ms`` after the oldest waiting record
for more company, and writes up to ``max_batch`` records in one transaction. Under load the
cost of a commit (an fsync with ``synchronous="full"``) is shared by the whole batch; without
load a record waits at most ``max_delay_ms`` plus one commit.

Memory is bounded: at most ``max_pending`` records are queued or being written. When the
sink falls behind and the queue is full, ``on_full="block"`` makes callers wait
(back-pressure reaches the clients as latency), ``on_full="drop"`` refuses the records at once
and counts them in ``dropped_total``; the caller's future then resolves to
:attr:`LogOutcome.DROPPED`, so it knows those records are not in the log. Nothing is lost
silently: a failed write sets the exception on the futures of every record in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from watchkeeper.exceptions import InputError
from watchkeeper.logstore._errors import (
    IdConflictError,
    LogClosedError,
    LogFullError,
    LogStoreError,
)
from watchkeeper.logstore._histogram import Histogram
from watchkeeper.logstore._normalize import Checked
from watchkeeper.logstore._records import (
    FeedbackRecord,
    FeedbackResult,
    LogSink,
    PredictionRecord,
    WriteResult,
)

__all__ = ["GroupCommitWriter", "LogOutcome"]

_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000)


class LogOutcome(StrEnum):
    """What became of submitted prediction records."""

    COMMITTED = "committed"
    """In the log: the transaction holding them committed."""
    DROPPED = "dropped"
    """Not logged: the queue was full under ``on_full="drop"`` (counted in ``dropped_total``)."""


@dataclass(slots=True, eq=False)
class _Item:
    feedback: bool
    records: Checked
    # a concurrent.futures.Future for threads, or an asyncio.Future of ``loop``
    future: Any
    enqueued: float
    loop: asyncio.AbstractEventLoop | None = None


#: A caller's outcome: its submission, the value or exception to resolve its future with.
_Outcome = tuple[_Item, Any, BaseException | None]
#: What one write attempt gives: every submission's outcome, and the write's own error.
_Written = tuple[list[_Outcome], BaseException | None]


def _checked(items: list[_Item]) -> Checked:
    """The items' records as one list the sink need not check nor encode again (they were,
    on submit)."""
    if len(items) == 1:
        return items[0].records
    return Checked(
        (r for item in items for r in item.records),
        nonfinite=sum(item.records.nonfinite for item in items),
        encoded=[e for item in items for e in item.records.encoded],
    )


def _record_specific(error: BaseException) -> bool:
    """Whether a failed group write may be the fault of one record rather than of the store.

    Store-wide failures (an ``OSError``, a DB-API ``OperationalError`` such as a full,
    read-only or locked disk, a closed log) would fail every record alone too, so the writer
    does not retry them record by record; anything else (a value the driver cannot bind, a
    constraint) might be one record's fault.
    """
    if isinstance(error, OSError | LogStoreError):
        return False
    return not any(c.__name__ == "OperationalError" for c in type(error).__mro__)


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _settle(results: list[tuple[Any, Any, BaseException | None]]) -> None:
    """Resolve futures (run in their event loop for asyncio ones); cancelled ones are skipped."""
    for future, value, failure in results:
        if future.done():  # the caller gave up waiting; its records were written anyway
            continue
        if failure is None:
            future.set_result(value)
        else:
            future.set_exception(failure)


class GroupCommitWriter:
    """Background writer that commits records in groups, with bounded memory.

    Parameters
    ----------
    sink
        Where records go (e.g. :class:`~watchkeeper.logstore.SQLiteLogSink`); the writer
        thread is its only user while the writer runs. The writer does not close it.
    max_pending
        Most records queued or being written at any time; the memory bound.
    max_batch
        Most records per transaction (one submission is never split, so a larger one is
        written alone).
    max_delay_ms
        Longest a record waits for others to share its commit (``0``: commit whatever has
        accumulated as soon as the previous commit is done). The wait is shorter when commits
        are cheap and skipped without concurrent callers (see the module docstring).
    on_full
        ``"block"`` (default): callers wait for room. ``"drop"``: prediction records that do
        not fit are refused and counted; feedback always waits, it is never dropped.
    on_commit
        Called from the writer thread after each committed write of predictions as
        ``on_commit(records, features)`` (the records stored and their encoded feature
        texts), e.g. :meth:`~watchkeeper.logstore.PartialProfiler.add`. It must be quick; an
        error it raises is counted (``on_commit_errors_total``), never given to callers.

    Notes
    -----
    Call :meth:`close` on shutdown (e.g. in the ASGI lifespan) to write what is queued. The
    writer thread is a daemon: after a hard exit, records still queued are lost, but none of
    them was acknowledged (their futures never resolved), so no response claimed them.
    Callers blocked under ``on_full="block"`` hold their records outside the queue; bound
    their number with the server's concurrency limit, or pass ``timeout`` and answer 503.

    Examples
    --------
    >>> import tempfile, os
    >>> from watchkeeper.logstore import PredictionRecord, SQLiteLogSink
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sink = SQLiteLogSink(os.path.join(d, "log.db"), synchronous="normal")
    ...     with GroupCommitWriter(sink) as writer:
    ...         futures = [writer.submit([PredictionRecord(f"r{i}", 1.7e9 + i, "churn", 1,
    ...                                                    "champion", {"x": i}, i % 2)])
    ...                    for i in range(100)]
    ...         outcomes = {f.result(timeout=10) for f in futures}
    ...     n, stats = sink.count("churn"), writer.stats()
    ...     sink.close()
    >>> outcomes, n, stats["committed_total"], stats["dropped_total"]
    ({<LogOutcome.COMMITTED: 'committed'>}, 100, 100, 0)
    """

    def __init__(
        self,
        sink: LogSink,
        *,
        max_pending: int = 10_000,
        max_batch: int = 1_000,
        max_delay_ms: float = 2.0,
        on_full: Literal["block", "drop"] = "block",
        on_commit: Callable[[Sequence[PredictionRecord], Sequence[str]], None] | None = None,
    ) -> None:
        for name, value in (("max_pending", max_pending), ("max_batch", max_batch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(max_delay_ms, bool) or not isinstance(max_delay_ms, int | float):
            raise InputError(f"max_delay_ms must be a number >= 0, got {max_delay_ms!r}")
        if not 0 <= max_delay_ms < 60_000:
            raise InputError(f"max_delay_ms must be in [0, 60000), got {max_delay_ms!r}")
        if on_full not in ("block", "drop"):
            raise InputError(
                f"on_full must be 'block' (back-pressure) or 'drop' (refuse and count), "
                f"got {on_full!r}"
            )
        self.sink = sink
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.max_delay_ms = float(max_delay_ms)
        self.on_full = on_full
        self.on_commit = on_commit
        #: Errors raised by ``on_commit`` (the commits themselves succeeded).
        self.on_commit_errors_total = 0
        self._delay = self.max_delay_ms / 1000
        self._commit_average = 0.0  # moving average of commit seconds (caps the wait)
        self._last_items = 0  # submissions in the previous batch (wait only if > 1)
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the writer waits here for records
        self._space = threading.Condition(self._lock)  # producers wait here for room
        self._queue: deque[_Item] = deque()
        self._queued = 0  # records in the queue
        self._pending = 0  # records in the queue or being written
        self._inflight: list[_Item] = []
        self._closed = False
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        #: Highest ``queue_depth`` seen.
        self.max_queue_depth = 0
        #: Prediction records committed, and transactions that committed them.
        self.committed_total = 0
        self.commits_total = 0
        #: Feedback records committed; those whose id matched no prediction.
        self.feedback_committed_total = 0
        self.feedback_unknown_total = 0
        #: Prediction records refused because the queue was full (``on_full="drop"``).
        self.dropped_total = 0
        #: Records whose write raised (their futures hold the exception).
        self.failed_total = 0
        #: Predictions not stored again: idempotent retries (same model, id and features).
        self.duplicates_total = 0
        #: Predictions refused because their id was logged for the model with other features.
        self.conflicts_total = 0
        #: Group writes that failed and were retried submission by submission.
        self.split_retries_total = 0
        #: Submissions that had to wait for room, and the seconds they waited in total.
        self.blocked_total = 0
        self.blocked_seconds_total = 0.0
        #: Non-finite values (NaN, inf) stored as null.
        self.nonfinite_total = 0
        #: The last write error, as text (``None`` if none).
        self.last_error: str | None = None
        #: ``time.monotonic()`` of the last successful commit and of the last failed write.
        self.last_commit_at: float | None = None
        self.last_failure_at: float | None = None
        #: Seconds per commit (a transaction of predictions or of feedback).
        self.commit_seconds = Histogram()
        #: Records per commit.
        self.batch_records = Histogram(_BATCH_BUCKETS)
        self._thread = threading.Thread(
            target=self._run, name="watchkeeper-log-writer", daemon=True
        )
        self._thread.start()

    # -- metrics -----------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Records queued or being written now (never above ``max_pending``)."""
        return self._pending

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the writer thread stopped on an error)."""
        return self._closed

    def stats(self) -> dict[str, Any]:
        """Counters and gauges as a flat dict (what the gateway exports as metrics)."""
        with self._lock:
            commits = self.commit_seconds.count
            return {
                "queue_depth": self._pending,
                "max_queue_depth": self.max_queue_depth,
                "max_pending": self.max_pending,
                "committed_total": self.committed_total,
                "commits_total": self.commits_total,
                "feedback_committed_total": self.feedback_committed_total,
                "feedback_unknown_total": self.feedback_unknown_total,
                "dropped_total": self.dropped_total,
                "failed_total": self.failed_total,
                "duplicates_total": self.duplicates_total,
                "conflicts_total": self.conflicts_total,
                "split_retries_total": self.split_retries_total,
                "blocked_total": self.blocked_total,
                "blocked_seconds_total": self.blocked_seconds_total,
                "nonfinite_total": self.nonfinite_total,
                "commit_seconds_sum": self.commit_seconds.sum,
                "commit_seconds_count": commits,
                "commit_seconds_max": self.commit_seconds.max,
                "mean_batch_records": self.batch_records.sum / commits if commits else 0.0,
                "last_error": self.last_error,
                "closed": self._closed,
            }

    # -- submitting ----------------------------------------------------------------------

    def _prepare(self, records: Any, feedback: bool) -> tuple[Checked, int]:
        if isinstance(records, PredictionRecord | FeedbackRecord):
            records = [records]
        if not isinstance(records, Sequence) or isinstance(records, str | bytes):
            kind = "FeedbackRecord" if feedback else "PredictionRecord"
            raise InputError(f"pass a list of {kind}, got {type(records).__name__}")
        if len(records) > self.max_pending:
            raise InputError(
                f"{len(records)} records in one submission exceed max_pending="
                f"{self.max_pending}; submit them in smaller groups or raise max_pending"
            )
        clean = Checked.of(records, feedback)
        return clean, clean.nonfinite

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(
                "the log writer is closed; records submitted now would not be logged. "
                "Create a new GroupCommitWriter (and check stats()['last_error'] if it stopped "
                "on its own)"
            )

    def _admit_locked(
        self,
        feedback: bool,
        records: Checked,
        nonfinite: int,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Any:
        future: Any = Future() if loop is None else loop.create_future()
        self._queue.append(_Item(feedback, records, future, time.monotonic(), loop))
        self._queued += len(records)
        self._pending += len(records)
        self.max_queue_depth = max(self.max_queue_depth, self._pending)
        self.nonfinite_total += nonfinite
        self._work.notify()
        return future

    def _wait_for_room_locked(self, n: int, timeout: float | None) -> None:
        self.blocked_total += 1
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        try:
            while self._pending + n > self.max_pending:
                self._check_open()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise LogFullError(
                        f"the prediction log queue stayed full ({self._pending} of "
                        f"{self.max_pending} records) for {timeout} s: the sink is slower "
                        "than the traffic; answer 503 and retry later, or use a faster sink"
                    )
                self._space.wait(remaining)
            self._check_open()
        finally:
            self.blocked_seconds_total += time.monotonic() - start

    def _submit(
        self, records: Any, feedback: bool, timeout: float | None, may_drop: bool
    ) -> Future[Any]:
        clean, nonfinite = self._prepare(records, feedback)
        if not clean:
            return _done(FeedbackResult(0, 0, ()) if feedback else LogOutcome.COMMITTED)
        with self._lock:
            self._check_open()
            if self._pending + len(clean) > self.max_pending:
                if may_drop and self.on_full == "drop":
                    self.dropped_total += len(clean)
                    return _done(LogOutcome.DROPPED)
                self._wait_for_room_locked(len(clean), timeout)
            future: Future[Any] = self._admit_locked(feedback, clean, nonfinite)
            return future

    def submit(
        self,
        records: Sequence[PredictionRecord] | PredictionRecord,
        *,
        timeout: float | None = None,
    ) -> Future[LogOutcome]:
        """Queue prediction records; the future resolves once they are committed.

        The future's result is :attr:`LogOutcome.COMMITTED`, or :attr:`LogOutcome.DROPPED`
        under ``on_full="drop"`` when the queue was full; if the write failed it holds the
        exception (answer 5xx rather than claim the record is logged). The records of one
        submission are committed together or not at all.

        Bad records raise :class:`InputError` here, before anything is queued. Under
        ``on_full="block"`` this waits for room; after ``timeout`` seconds it raises
        :class:`LogFullError`.
        """
        return self._submit(records, False, timeout, may_drop=True)

    def submit_feedback(
        self, records: Sequence[FeedbackRecord] | FeedbackRecord, *, timeout: float | None = None
    ) -> Future[FeedbackResult]:
        """Queue feedback records; the future resolves to their :class:`FeedbackResult`.

        Feedback is never dropped: with a full queue this waits for room (up to ``timeout``).
        """
        return self._submit(records, True, timeout, may_drop=False)

    async def _asubmit(self, records: Any, feedback: bool) -> Any:
        clean, nonfinite = self._prepare(records, feedback)
        if not clean:
            return FeedbackResult(0, 0, ()) if feedback else LogOutcome.COMMITTED
        loop = asyncio.get_running_loop()
        blocked_since: float | None = None
        while True:
            with self._lock:
                self._check_open()
                if self._pending + len(clean) <= self.max_pending:
                    if blocked_since is not None:
                        self.blocked_seconds_total += time.monotonic() - blocked_since
                    future = self._admit_locked(feedback, clean, nonfinite, loop)
                    break
                if not feedback and self.on_full == "drop":
                    self.dropped_total += len(clean)
                    return LogOutcome.DROPPED
                if blocked_since is None:
                    blocked_since = time.monotonic()
                    self.blocked_total += 1
                waiter: asyncio.Future[None] = loop.create_future()
                self._async_waiters.append((loop, waiter))
            try:
                await waiter
            except asyncio.CancelledError:
                with self._lock:
                    self.blocked_seconds_total += time.monotonic() - blocked_since
                raise
        # A cancelled caller cancels only this future: its records are written all the same.
        return await future

    async def log(self, records: Sequence[PredictionRecord] | PredictionRecord) -> LogOutcome:
        """``await`` version of :meth:`submit` for asyncio code; never blocks the event loop.

        While the queue is full under ``on_full="block"`` the await waits for room
        (back-pressure) without holding a thread.

        Examples
        --------
        >>> import asyncio, tempfile, os
        >>> from watchkeeper.logstore import FeedbackRecord, PredictionRecord, SQLiteLogSink
        >>> tmp = tempfile.TemporaryDirectory()
        >>> sink = SQLiteLogSink(os.path.join(tmp.name, "log.db"))
        >>> writer = GroupCommitWriter(sink)
        >>> async def handle(i: int) -> str:
        ...     record = PredictionRecord(f"r{i}", 1.7e9, "churn", 1, "champion", {"x": i}, 0)
        ...     outcome = await writer.log(record)  # answer only once the record is logged
        ...     return outcome.value
        >>> async def serve() -> list[str]:
        ...     return list(await asyncio.gather(*(handle(i) for i in range(3))))
        >>> asyncio.run(serve())
        ['committed', 'committed', 'committed']
        >>> asyncio.run(writer.log_feedback(FeedbackRecord("r1", 1.7e9 + 60, label=1)))
        FeedbackResult(n_matched=1, n_unknown=0, unknown_ids=())
        >>> writer.close(); sink.close(); tmp.cleanup()
        True
        """
        outcome: LogOutcome = await self._asubmit(records, feedback=False)
        return outcome

    async def log_feedback(
        self, records: Sequence[FeedbackRecord] | FeedbackRecord
    ) -> FeedbackResult:
        """``await`` version of :meth:`submit_feedback`."""
        result: FeedbackResult = await self._asubmit(records, feedback=True)
        return result

    # -- the writer thread ---------------------------------------------------------------

    def _notify_room_locked(self) -> None:
        self._space.notify_all()
        for loop, waiter in self._async_waiters:
            # a closed event loop raises RuntimeError: nobody waits there any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, waiter)
        self._async_waiters.clear()

    def _next_batch(self) -> list[_Item] | None:
        with self._lock:
            while not self._queue and not self._closed:
                self._work.wait()
            if not self._queue:
                return None
            delay = min(self._delay, self._commit_average) if self._last_items > 1 else 0.0
            if delay > 0:
                # wait in slices and stop at the first slice without a new arrival: once every
                # caller is queued (each waits for its own commit) nobody else is coming
                deadline = self._queue[0].enqueued + delay
                step = delay / 4
                while self._queued < self.max_batch and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    before = self._queued
                    self._work.wait(min(step, remaining))
                    if self._queued == before:
                        break
            batch = [self._queue.popleft()]
            n = len(batch[0].records)
            while self._queue and n + len(self._queue[0].records) <= self.max_batch:
                item = self._queue.popleft()
                batch.append(item)
                n += len(item.records)
            self._queued -= n
            self._last_items = len(batch)
            self._inflight = batch
            return batch

    def _write(self, batch: list[_Item]) -> None:
        for item in batch:
            if item.loop is None:
                # a caller may have cancelled its future: its records are still written
                item.future.set_running_or_notify_cancel()
        outcomes: list[tuple[_Item, Any, BaseException | None]] = []
        predictions = [item for item in batch if not item.feedback]
        feedback = [item for item in batch if item.feedback]
        if predictions:
            outcomes.extend(self._write_group(predictions, self._write_predictions))
        if feedback:
            outcomes.extend(self._write_group(feedback, self._write_feedback))
        with self._lock:
            self._pending -= sum(len(item.records) for item in batch)
            self._inflight = []
            self._notify_room_locked()
        self._settle(outcomes)

    def _write_group(
        self, items: list[_Item], write: Callable[[list[_Item]], _Written]
    ) -> list[_Outcome]:
        """Write ``items`` in one transaction; if that fails for a reason one record may
        cause, write them again one submission at a time, so only the guilty one fails."""
        outcomes, error = write(items)
        if error is None or len(items) == 1 or not _record_specific(error):
            return outcomes
        with self._lock:
            self.split_retries_total += 1
            self.failed_total -= sum(len(item.records) for item in items)  # counted again
        return [outcome for item in items for outcome in write([item])[0]]

    def _write_predictions(self, items: list[_Item]) -> _Written:
        records = _checked(items)
        result: list[WriteResult | None] = []
        error, seconds = self._timed(lambda: result.append(self.sink.write_predictions(records)))
        written = result[0] if result and result[0] is not None else WriteResult()
        conflicts = set(written.conflicts)
        with self._lock:
            if error is None:
                self._observe(seconds, len(records))
                self.committed_total += len(records) - len(conflicts) - written.duplicates
                self.duplicates_total += written.duplicates
                self.conflicts_total += len(conflicts)
            else:
                self._failed(error, len(records))
        if error is None and self.on_commit is not None:
            self._committed(records, conflicts)
        if error is not None or not conflicts:
            return [(item, LogOutcome.COMMITTED, error) for item in items], error
        outcomes: list[tuple[_Item, Any, BaseException | None]] = []
        start = 0
        for item in items:
            mine = [records[i] for i in range(start, start + len(item.records)) if i in conflicts]
            start += len(item.records)
            failure = None
            if mine:
                ids = tuple(dict.fromkeys(r.id for r in mine))
                failure = IdConflictError(
                    f"prediction id {ids[0]!r} is already logged for model {mine[0].model!r} "
                    "with other features, so this record was not logged; use a new id for a "
                    "new prediction (a retry must send the same record)",
                    ids,
                )
            outcomes.append((item, LogOutcome.COMMITTED, failure))
        return outcomes, None

    def _committed(self, records: Checked, conflicts: set[int]) -> None:
        assert self.on_commit is not None
        texts = [e[0] for e in records.encoded]
        stored: Sequence[PredictionRecord] = records
        if conflicts:
            keep = [i for i in range(len(records)) if i not in conflicts]
            stored, texts = [records[i] for i in keep], [texts[i] for i in keep]
        try:
            self.on_commit(stored, texts)
        except Exception:  # the commit succeeded: its callers are not failed by a hook
            with self._lock:
                self.on_commit_errors_total += 1

    def _write_feedback(self, items: list[_Item]) -> _Written:
        records = _checked(items)
        result: list[FeedbackResult] = []
        error, seconds = self._timed(lambda: result.append(self.sink.write_feedback(records)))
        with self._lock:
            if error is None:
                self._observe(seconds, len(records))
                self.feedback_committed_total += len(records)
                self.feedback_unknown_total += result[0].n_unknown
            else:
                self._failed(error, len(records))
        unknown = set(result[0].unknown_ids) if result else set()
        outcomes: list[tuple[_Item, Any, BaseException | None]] = []
        for item in items:
            ids = [r.id for r in item.records if r.id in unknown]
            own = FeedbackResult(len(item.records) - len(ids), len(ids), tuple(dict.fromkeys(ids)))
            outcomes.append((item, own, error))
        return outcomes, error

    @staticmethod
    def _settle(outcomes: list[tuple[_Item, Any, BaseException | None]]) -> None:
        """Resolve callers' futures: threads' directly, asyncio ones with one call per loop.

        One ``call_soon_threadsafe`` per event loop and batch (not per record) keeps the
        cross-thread wake-ups of the event loop to one per commit.
        """
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, BaseException | None]]]
        by_loop = {}
        direct = []
        for item, value, failure in outcomes:
            if item.loop is None:
                direct.append((item.future, value, failure))
            else:
                by_loop.setdefault(item.loop, []).append((item.future, value, failure))
        _settle(direct)
        for loop, results in by_loop.items():
            # a closed event loop raises RuntimeError: nobody waits there any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, results)

    @staticmethod
    def _timed(write: Any) -> tuple[Exception | None, float]:
        start = time.perf_counter()
        try:
            write()
        except Exception as exc:  # handed to the callers' futures, never swallowed
            return exc, time.perf_counter() - start
        return None, time.perf_counter() - start

    def _observe(self, seconds: float, n: int) -> None:
        # exponential moving average over ~10 commits: follows a disk that slows down
        self._commit_average += 0.1 * (seconds - self._commit_average)
        self.commits_total += 1
        self.last_commit_at = time.monotonic()
        self.commit_seconds.observe(seconds)
        self.batch_records.observe(n)

    def _failed(self, error: Exception, n: int) -> None:
        self.failed_total += n
        self.last_failure_at = time.monotonic()
        self.last_error = f"{type(error).__name__}: {error}"

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._write(batch)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            self._stop_on_error(exc)

    def _stop_on_error(self, exc: BaseException) -> None:
        error = LogStoreError(f"the log writer stopped on an unexpected error: {exc!r}")
        with self._lock:
            self._closed = True
            stranded = [*self._inflight, *self._queue]
            self._queue.clear()
            self.failed_total += sum(len(item.records) for item in stranded)
            self.last_error = str(error)
            self._pending = self._queued = 0
            self._notify_room_locked()
        self._settle([(item, None, error) for item in stranded])

    # -- shutting down -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._pending and not (self._closed and not self._thread.is_alive()):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._space.wait(remaining)
            return self._pending == 0

    def close(self, timeout: float | None = None) -> bool:
        """Stop accepting records, write what is queued, stop the thread.

        Returns ``True`` when everything was written within ``timeout`` seconds. Callers
        still waiting for room get :class:`LogClosedError`. The sink stays open.
        """
        with self._lock:
            self._closed = True
            self._work.notify_all()
            self._notify_room_locked()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> GroupCommitWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"GroupCommitWriter({self.sink!r}, max_pending={self.max_pending}, "
            f"max_batch={self.max_batch}, max_delay_ms={self.max_delay_ms}, "
            f"on_full={self.on_full!r})"
        )
