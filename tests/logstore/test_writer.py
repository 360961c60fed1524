"""GroupCommitWriter: group commit, bounded memory, back-pressure, counted drops, failures."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.exceptions import InputError
from watchkeeper.logstore import (
    FeedbackRecord,
    FeedbackResult,
    GroupCommitWriter,
    LogClosedError,
    LogFullError,
    LogOutcome,
    PredictionRecord,
    SQLiteLogSink,
)

T0 = 1.7e9


def rec(i: int | str, model: str = "churn") -> PredictionRecord:
    return PredictionRecord(f"r{i}", T0, model, 1, "champion", {"x": 1.0}, 0)


class GateSink:
    """Wraps a sink; each write waits until the gate is open (a stalled disk, controlled)."""

    def __init__(self, inner: SQLiteLogSink) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def write_predictions(self, records: Sequence[PredictionRecord]) -> None:
        self.entered.set()
        assert self.gate.wait(10), "test gate never opened"
        self.batches.append(len(records))
        self.inner.write_predictions(records)

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> FeedbackResult:
        self.entered.set()
        assert self.gate.wait(10), "test gate never opened"
        return self.inner.write_feedback(records)

    def read_window(self, model: str, **kw: Any) -> Any:
        return self.inner.read_window(model, **kw)

    def close(self) -> None:
        self.inner.close()


class SlowSink(GateSink):
    """Sleeps per batch (a slow disk) and records the writer's queue depth at each write."""

    def __init__(self, inner: SQLiteLogSink, seconds: float) -> None:
        super().__init__(inner)
        self.gate.set()
        self.seconds = seconds
        self.writer: GroupCommitWriter | None = None
        self.depths: list[int] = []

    def write_predictions(self, records: Sequence[PredictionRecord]) -> None:
        assert self.writer is not None
        self.depths.append(self.writer.queue_depth)
        time.sleep(self.seconds)
        super().write_predictions(records)


class FailingSink(GateSink):
    def write_predictions(self, records: Sequence[PredictionRecord]) -> None:
        if any(r.id.startswith("bad") for r in records):
            raise OSError("disk full")
        super().write_predictions(records)


@pytest.fixture
def sqlite(tmp_path: Path) -> Any:
    sink = SQLiteLogSink(tmp_path / "log.db", synchronous="normal")
    yield sink
    sink.close()


def _ids(sink: SQLiteLogSink) -> list[str]:
    return sorted(sink.read_window("churn", include_shadow=True).column("id").to_pylist())


def test_concurrent_producers_share_commits(sqlite: SQLiteLogSink) -> None:
    n_threads, per_thread = 8, 100
    # Each commit takes at least 10 ms, so while one is written the other producers are
    # already waiting: sharing then does not depend on how busy the machine is.
    slow = SlowSink(sqlite, seconds=0.01)
    with GroupCommitWriter(slow, max_delay_ms=2.0) as writer:
        slow.writer = writer

        def produce(t: int) -> None:
            for i in range(per_thread):
                assert writer.submit(rec(f"{t}-{i}")).result(30) is LogOutcome.COMMITTED

        threads = [threading.Thread(target=produce, args=(t,)) for t in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    stats = writer.stats()
    total = n_threads * per_thread
    assert stats["committed_total"] == total == sqlite.count()
    assert stats["commits_total"] == writer.commit_seconds.count == writer.batch_records.count
    # eight waiting producers: commits must be shared, far fewer than one per record
    assert stats["commits_total"] < total / 2
    assert writer.batch_records.sum == total
    assert stats["queue_depth"] == 0
    assert stats["closed"] is True


def test_one_submission_is_one_transaction_and_batches_respect_max_batch(
    sqlite: SQLiteLogSink,
) -> None:
    sink = GateSink(sqlite)
    writer = GroupCommitWriter(sink, max_batch=10, max_pending=1_000, max_delay_ms=0)
    first = writer.submit([rec("first")])
    assert sink.entered.wait(10)
    futures = [writer.submit([rec(f"{i}-{j}") for j in range(3)]) for i in range(10)]
    big = writer.submit([rec(f"big{j}") for j in range(25)])  # more than max_batch: alone
    sink.gate.set()
    assert {f.result(10) for f in [first, *futures, big]} == {LogOutcome.COMMITTED}
    writer.close()
    # first alone, then groups of whole submissions (3 records each, at most 10), then 25
    assert sink.batches == [1, 9, 9, 9, 3, 25]
    assert sqlite.count() == 1 + 30 + 25


def test_queue_full_blocks_producers_then_lets_them_through(sqlite: SQLiteLogSink) -> None:
    sink = GateSink(sqlite)
    writer = GroupCommitWriter(sink, max_pending=20, max_batch=5, max_delay_ms=0)
    futures = [writer.submit(rec(0))]
    assert sink.entered.wait(10)  # the writer holds record 0 in a stalled write
    futures += [writer.submit(rec(i)) for i in range(1, 20)]
    assert writer.queue_depth == 20
    with pytest.raises(LogFullError, match="stayed full"):
        writer.submit(rec("late"), timeout=0.05)
    done: list[Future[LogOutcome]] = []
    blocked = threading.Thread(target=lambda: done.append(writer.submit(rec("waits"))))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # back-pressure: it cannot queue yet
    assert not done
    sink.gate.set()
    blocked.join(10)
    assert not blocked.is_alive()
    assert {f.result(10) for f in [*futures, *done]} == {LogOutcome.COMMITTED}
    writer.close()
    stats = writer.stats()
    assert stats["blocked_total"] == 2
    assert stats["blocked_seconds_total"] > 0
    assert stats["max_queue_depth"] == 20
    assert stats["dropped_total"] == 0
    assert _ids(sqlite) == sorted([f"r{i}" for i in range(20)] + ["rwaits"])


def test_drop_mode_counts_exactly_what_it_refuses(sqlite: SQLiteLogSink) -> None:
    sink = GateSink(sqlite)
    writer = GroupCommitWriter(sink, max_pending=20, max_batch=5, max_delay_ms=0, on_full="drop")
    accepted = [writer.submit(rec(0))]
    assert sink.entered.wait(10)
    accepted += [writer.submit(rec(i)) for i in range(1, 18)]
    accepted.append(writer.submit([rec(18), rec(19)]))
    refused = [writer.submit(rec(f"x{i}")) for i in range(7)]
    refused.append(writer.submit([rec("y1"), rec("y2"), rec("y3")]))
    assert all(f.result(0) is LogOutcome.DROPPED for f in refused)
    assert writer.dropped_total == 7 + 3
    sink.gate.set()
    assert {f.result(10) for f in accepted} == {LogOutcome.COMMITTED}
    assert writer.flush(10)
    # room again: accepted
    assert writer.submit(rec("after")).result(10) is LogOutcome.COMMITTED
    writer.close()
    assert writer.stats()["dropped_total"] == 10
    assert writer.stats()["blocked_total"] == 0
    assert _ids(sqlite) == sorted([f"r{i}" for i in range(20)] + ["rafter"])


@pytest.mark.parametrize("on_full", ["block", "drop"])
def test_slow_sink_keeps_memory_bounded_and_loses_nothing_silently(
    sqlite: SQLiteLogSink, on_full: str
) -> None:
    sink = SlowSink(sqlite, seconds=0.01)
    writer = GroupCommitWriter(
        sink,
        max_pending=40,
        max_batch=8,
        max_delay_ms=1.0,
        on_full=on_full,  # type: ignore[arg-type]
    )
    sink.writer = writer
    outcomes: dict[str, LogOutcome] = {}
    seen_depths: list[int] = []
    lock = threading.Lock()

    def produce(t: int) -> None:
        rng = random.Random(t)
        mine = []
        for i in range(60):
            size = rng.randint(1, 3)
            batch = [rec(f"{t}-{i}-{j}") for j in range(size)]
            mine.append((batch, writer.submit(batch)))
            seen_depths.append(writer.queue_depth)
        for batch, future in mine:
            outcome = future.result(60)
            with lock:
                outcomes.update({r.id: outcome for r in batch})

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    stats = writer.stats()
    assert max(seen_depths + sink.depths) <= 40
    assert stats["max_queue_depth"] <= 40
    committed = sorted(i for i, o in outcomes.items() if o is LogOutcome.COMMITTED)
    dropped = [i for i, o in outcomes.items() if o is LogOutcome.DROPPED]
    assert _ids(sqlite) == committed
    assert stats["committed_total"] == len(committed)
    assert stats["dropped_total"] == len(dropped)
    if on_full == "block":
        assert not dropped
        assert stats["blocked_total"] > 0
    else:
        assert dropped  # 6 fast producers against a 10 ms-per-batch sink
        assert stats["blocked_total"] == 0


def test_failed_writes_reach_the_callers(sqlite: SQLiteLogSink) -> None:
    sink = FailingSink(sqlite)
    sink.gate.set()
    with GroupCommitWriter(sink, max_delay_ms=0) as writer:
        bad = writer.submit([rec("ok-in-bad-batch"), PredictionRecord(
            "bad1", T0, "churn", 1, "champion", {"x": 1.0}, 0)])  # fmt: skip
        with pytest.raises(OSError, match="disk full"):
            bad.result(10)
        assert writer.submit(rec("good")).result(10) is LogOutcome.COMMITTED
    stats = writer.stats()
    assert stats["failed_total"] == 2
    assert stats["last_error"] == "OSError: disk full"
    assert _ids(sqlite) == ["rgood"]


def test_bad_records_fail_their_own_submission_only(sqlite: SQLiteLogSink) -> None:
    with GroupCommitWriter(sqlite) as writer:
        with pytest.raises(InputError, match="features\\['f'\\] is a set"):
            writer.submit(PredictionRecord("a", T0, "churn", 1, "c", {"f": {1}}, 0))
        with pytest.raises(InputError, match="expected a FeedbackRecord"):
            writer.submit_feedback([rec(1)])  # type: ignore[list-item]
        with pytest.raises(InputError, match="exceed max_pending"):
            writer.submit([rec(i) for i in range(10_001)])
        nan = PredictionRecord("n", T0, "churn", 1, "c", {"f": float("nan")}, 0)
        assert writer.submit([nan, rec(2)]).result(10) is LogOutcome.COMMITTED
        assert writer.submit([]).result(0) is LogOutcome.COMMITTED
    assert writer.nonfinite_total == 1
    assert writer.committed_total == 2
    with pytest.raises(InputError, match="on_full must be"):
        GroupCommitWriter(sqlite, on_full="sample")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="max_pending must be a positive"):
        GroupCommitWriter(sqlite, max_pending=0)


def test_feedback_goes_through_the_writer_after_its_predictions(sqlite: SQLiteLogSink) -> None:
    with GroupCommitWriter(sqlite, max_delay_ms=5) as writer:
        p = writer.submit([rec(1), rec(2)])
        f1 = writer.submit_feedback(
            [FeedbackRecord("r1", T0 + 1, label=1), FeedbackRecord("ghost", T0, label=0)]
        )
        f2 = writer.submit_feedback(FeedbackRecord("r2", T0 + 1, label=0))
        assert p.result(10) is LogOutcome.COMMITTED
        assert f1.result(10) == FeedbackResult(1, 1, ("ghost",))
        assert f2.result(10) == FeedbackResult(1, 0, ())
    assert writer.feedback_committed_total == 3
    assert writer.feedback_unknown_total == 1
    labels = sqlite.read_window("churn").column("label").to_pylist()
    assert labels == [1, 0]


def test_asyncio_bridge_waits_for_room_without_blocking_the_loop(sqlite: SQLiteLogSink) -> None:
    sink = GateSink(sqlite)
    writer = GroupCommitWriter(sink, max_pending=4, max_batch=4, max_delay_ms=0)

    async def main() -> list[LogOutcome]:
        first = asyncio.ensure_future(writer.log(rec(0)))
        await asyncio.to_thread(sink.entered.wait, 10)
        rest = [asyncio.ensure_future(writer.log(rec(i))) for i in range(1, 8)]
        await asyncio.sleep(0.1)  # the loop keeps running while the log is full
        assert not first.done()
        assert not any(t.done() for t in rest)
        assert writer.queue_depth == 4
        rest.pop().cancel()  # r7: a client that goes away while waiting for room
        admitted = rest.pop(0)  # r1: a client that goes away while its commit is pending
        admitted.cancel()
        await asyncio.sleep(0)
        assert admitted.cancelled()
        sink.gate.set()
        feedback = await writer.log_feedback(FeedbackRecord("r1", T0 + 1, label=1))
        assert feedback == FeedbackResult(1, 0, ())
        return [await first, *[await t for t in rest]]

    outcomes = asyncio.run(main())
    writer.close()
    assert outcomes == [LogOutcome.COMMITTED] * 6
    assert writer.stats()["blocked_total"] >= 3
    # r1 was admitted before its caller left: it is in the log; r7 never was
    assert _ids(sqlite) == sorted(f"r{i}" for i in range(7))


def test_asyncio_drop_mode(sqlite: SQLiteLogSink) -> None:
    sink = GateSink(sqlite)
    writer = GroupCommitWriter(sink, max_pending=2, max_delay_ms=0, on_full="drop")

    async def main() -> list[LogOutcome]:
        first = asyncio.ensure_future(writer.log(rec(0)))
        await asyncio.to_thread(sink.entered.wait, 10)
        second = writer.submit(rec(1))  # the queue is now full
        third = await writer.log(rec(2))
        sink.gate.set()
        return [await first, await asyncio.wrap_future(second), third]

    assert asyncio.run(main()) == [LogOutcome.COMMITTED, LogOutcome.COMMITTED, LogOutcome.DROPPED]
    writer.close()
    assert writer.dropped_total == 1


def test_close_flushes_and_refuses_new_records(sqlite: SQLiteLogSink) -> None:
    writer = GroupCommitWriter(sqlite, max_delay_ms=50)
    futures = [writer.submit(rec(i)) for i in range(50)]
    assert writer.close(timeout=30)
    assert all(f.done() and f.result() is LogOutcome.COMMITTED for f in futures)
    assert sqlite.count() == 50
    with pytest.raises(LogClosedError, match="writer is closed"):
        writer.submit(rec("late"))


def test_close_wakes_producers_waiting_for_room(sqlite: SQLiteLogSink) -> None:
    sink = GateSink(sqlite)
    writer = GroupCommitWriter(sink, max_pending=1, max_delay_ms=0)
    first = writer.submit(rec(0))
    assert sink.entered.wait(10)
    errors: list[BaseException] = []

    def wait_for_room() -> None:
        try:
            writer.submit(rec(1))
        except LogClosedError as exc:
            errors.append(exc)

    t = threading.Thread(target=wait_for_room)
    t.start()
    t.join(0.1)
    closer = threading.Thread(target=writer.close)
    closer.start()
    t.join(10)
    assert len(errors) == 1
    sink.gate.set()
    closer.join(10)
    assert first.result(10) is LogOutcome.COMMITTED
    assert _ids(sqlite) == ["r0"]


def test_waiting_for_company_is_capped_by_the_commit_time(sqlite: SQLiteLogSink) -> None:
    # a 30 s max_delay would stall every record if the writer waited for it: the wait is
    # skipped for a lone caller and capped by the average commit time under concurrency
    with GroupCommitWriter(sqlite, max_delay_ms=30_000) as writer:
        for i in range(20):
            assert writer.submit(rec(f"alone{i}")).result(10) is LogOutcome.COMMITTED

        def produce(t: int) -> None:
            for i in range(50):
                assert writer.submit(rec(f"{t}-{i}")).result(10) is LogOutcome.COMMITTED

        threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert writer.committed_total == 20 + 200
    assert writer.stats()["commit_seconds_count"] < 20 + 200
