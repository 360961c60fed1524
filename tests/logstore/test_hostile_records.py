"""One caller's bad record never fails another's: records are checked and encoded before
they join a shared commit, a group write that fails because of one record is retried
submission by submission, and a reused prediction id is an idempotent retry or a conflict."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.exceptions import InputError
from watchkeeper.logstore import (
    FeedbackRecord,
    GroupCommitWriter,
    IdConflictError,
    LogOutcome,
    ParquetLogSink,
    PostgresLogSink,
    PredictionRecord,
    SQLiteLogSink,
    open_sink,
)


def rec(i: int | str, model: str = "churn", **changes: Any) -> PredictionRecord:
    values: dict[str, Any] = {"features": {"x": 1.0, "plan": "pro"}, "prediction": 1}
    values.update(changes)
    return PredictionRecord(str(i), 1.7e9, model, 1, "champion", **values)


@pytest.fixture
def sink(tmp_path: Path) -> Any:
    found = SQLiteLogSink(tmp_path / "log.db", synchronous="normal")
    yield found
    found.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.service),
        "parquet",
        pytest.param("s3", marks=pytest.mark.service),
    ]
)
def any_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Every log store (the id rules are the same for all)."""
    if request.param == "sqlite":
        found: Any = SQLiteLogSink(tmp_path / "log.db", synchronous="normal")
    elif request.param == "postgresql":
        found = open_sink(request.getfixturevalue("log_postgres").create_schema())
    elif request.param == "parquet":
        found = ParquetLogSink(tmp_path / "parquet")
    else:
        server = request.getfixturevalue("s3_server")
        found = ParquetLogSink(
            f"s3://{server.create_bucket()}/log", storage_options=server.storage_options
        )
    yield found
    found.close()


@pytest.mark.parametrize(
    "bad",
    [
        rec("s1", features={"x": 1.0, "plan": "\ud800"}),
        rec("s2", prediction="a\udfff"),
        rec("s3", scores={"yes": 0.5, "\ud800": 0.5}),
        rec("s4\ud800"),
        rec("s5", error="\ud800", status="error"),
    ],
)
def test_a_record_that_cannot_be_stored_fails_on_submit(sink: SQLiteLogSink, bad: Any) -> None:
    with GroupCommitWriter(sink, max_delay_ms=50) as writer:
        good = [writer.submit(rec(f"g{i}")) for i in range(5)]
        with pytest.raises(InputError, match="surrogate"):
            writer.submit(bad)
        assert {f.result(timeout=10) for f in good} == {LogOutcome.COMMITTED}
    assert sink.count("churn") == 5


@pytest.mark.parametrize(
    "bad",
    [
        FeedbackRecord("a", 1.7e9, label="\ud800"),
        FeedbackRecord("a", 1.7e9, label=1, note="\udfff"),
    ],
)
def test_bad_feedback_fails_on_submit(sink: SQLiteLogSink, bad: FeedbackRecord) -> None:
    with GroupCommitWriter(sink) as writer, pytest.raises(InputError, match="surrogate"):
        writer.submit_feedback(bad)


class _PoisonedSink:
    """A real SQLite sink whose driver chokes on one record (a value it cannot bind): the
    defence in depth for what checking before the commit might miss."""

    def __init__(self, inner: SQLiteLogSink) -> None:
        self.inner = inner
        self.gate = threading.Event()

    def write_predictions(self, records: Sequence[PredictionRecord]) -> Any:
        if any(r.id == "first" for r in records):
            self.gate.wait(10)  # the others queue up meanwhile and share the next commit
        if any(r.id == "poison" for r in records):
            raise sqlite3.InterfaceError("Error binding parameter 3: type 'X' is not supported")
        return self.inner.write_predictions(records)

    def write_feedback(self, records: Any) -> Any:
        return self.inner.write_feedback(records)

    def close(self) -> None:
        self.inner.close()


def test_a_group_failing_because_of_one_record_is_retried_without_it(
    sink: SQLiteLogSink,
) -> None:
    poisoned = _PoisonedSink(sink)
    writer = GroupCommitWriter(poisoned, max_delay_ms=200)  # type: ignore[arg-type]
    try:
        first = writer.submit(rec("first"))
        futures: list[Future[Any]] = [writer.submit(rec(f"ok{i}")) for i in range(3)]
        futures.insert(1, writer.submit(rec("poison")))
        futures += [writer.submit(rec(f"ok{i}")) for i in range(3, 6)]
        poisoned.gate.set()
        assert first.result(timeout=10) is LogOutcome.COMMITTED
        results = []
        for f in futures:
            try:
                results.append(f.result(timeout=10))
            except sqlite3.InterfaceError:
                results.append("failed")
    finally:
        writer.close()
    assert results.count("failed") == 1
    assert results[1] == "failed"
    assert sink.count("churn") == 7
    assert writer.stats()["failed_total"] == 1
    assert writer.stats()["split_retries_total"] == 1  # one shared group, split once


def test_ids_are_idempotent_conflicting_or_scoped_per_model(any_sink: Any) -> None:
    sink = any_sink
    with GroupCommitWriter(sink) as writer:
        assert writer.submit(rec("dup-1")).result(timeout=10) is LogOutcome.COMMITTED
        assert writer.submit(rec("dup-1")).result(timeout=10) is LogOutcome.COMMITTED  # retry
        clash = writer.submit(rec("dup-1", features={"x": 2.0, "plan": "pro"}))
        with pytest.raises(IdConflictError, match="already logged for model 'churn'"):
            clash.result(timeout=10)
        other_model = writer.submit(rec("dup-1", model="price", features={"x": 9.0}))
        assert other_model.result(timeout=10) is LogOutcome.COMMITTED
        # the same id and features in one batch: stored once
        assert writer.submit([rec("b-1"), rec("b-1")]).result(timeout=10) is LogOutcome.COMMITTED
        stats = writer.stats()
    assert stats["duplicates_total"] == 2
    assert stats["conflicts_total"] == 1
    window = sink.read_window("churn")
    assert window.column("id").to_pylist().count("dup-1") == 1
    assert window.column("x").to_pylist()[window.column("id").to_pylist().index("dup-1")] == 1.0
    assert sink.count("price") == 1
    # feedback for a model attaches to that model's prediction only
    sink.write_feedback([FeedbackRecord("dup-1", 1.7e9 + 5, label=7, model="price")])
    assert sink.read_window("price").column("label").to_pylist() == [7]
    assert set(sink.read_window("churn").column("label").to_pylist()) == {None}


def test_a_log_written_before_ids_were_scoped_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE predictions (id TEXT NOT NULL, arm TEXT NOT NULL, ts REAL NOT NULL,
            model TEXT NOT NULL, version INTEGER NOT NULL, shadow INTEGER NOT NULL,
            features TEXT NOT NULL, prediction TEXT, scores TEXT, latency_ms REAL NOT NULL,
            status TEXT NOT NULL, error TEXT, PRIMARY KEY (id, arm)) WITHOUT ROWID;
        CREATE UNIQUE INDEX predictions_live_id ON predictions(id) WHERE shadow = 0;
        CREATE TABLE feedback (seq INTEGER PRIMARY KEY AUTOINCREMENT,
            prediction_id TEXT NOT NULL, ts REAL NOT NULL, label TEXT, flag INTEGER, note TEXT);
        INSERT INTO predictions VALUES ('a', 'champion', 1.7e9, 'churn', 1, 0, '{"x":1}', '1',
            NULL, 0.0, 'ok', NULL);
        INSERT INTO feedback (prediction_id, ts, label) VALUES ('a', 1.7e9 + 1, '0');
        """
    )
    conn.close()
    with SQLiteLogSink(path) as migrated:
        migrated.write_predictions([rec("a", model="price", features={"x": 5})])
        assert migrated.count() == 2
        assert migrated.read_window("churn").column("label").to_pylist() == [0]
        assert migrated.read_window("price").column("x").to_pylist() == [5]


@pytest.mark.service
def test_a_postgres_log_written_before_ids_were_scoped_is_migrated(log_postgres: Any) -> None:
    import psycopg

    url = log_postgres.create_schema()
    with PostgresLogSink(url) as fresh:
        kwargs = dict(fresh._kwargs)
    with psycopg.connect(**kwargs, autocommit=True) as conn:
        for statement in (
            "DROP TABLE log_predictions", "DROP TABLE log_feedback",
            """CREATE TABLE log_predictions (id TEXT NOT NULL, arm TEXT NOT NULL,
                ts DOUBLE PRECISION NOT NULL, model TEXT NOT NULL, version BIGINT NOT NULL,
                shadow SMALLINT NOT NULL, features TEXT NOT NULL, prediction TEXT, scores TEXT,
                latency_ms DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, error TEXT,
                PRIMARY KEY (id, arm))""",
            "CREATE UNIQUE INDEX log_predictions_live_id ON log_predictions(id) WHERE shadow = 0",
            """CREATE TABLE log_feedback (seq BIGSERIAL PRIMARY KEY, prediction_id TEXT NOT NULL,
                ts DOUBLE PRECISION NOT NULL, label TEXT, flag BOOLEAN, note TEXT)""",
            """INSERT INTO log_predictions VALUES ('a', 'champion', 1.7e9, 'churn', 1, 0,
                '{"x":1}', '1', NULL, 0.0, 'ok', NULL)""",
            "INSERT INTO log_feedback (prediction_id, ts, label) VALUES ('a', 1.7e9 + 1, '0')",
        ):  # fmt: skip
            conn.execute(statement)
    with PostgresLogSink(url) as migrated:
        assert migrated.write_predictions([rec("a", model="price", features={"x": 5})]) is None
        assert migrated.count() == 2
        assert migrated.read_window("churn").column("label").to_pylist() == [0]
        assert migrated.read_window("price").column("x").to_pylist() == [5]
        clash = migrated.write_predictions([rec("a", features={"x": 2})])
        assert clash is not None
        assert clash.conflicts == (0,)
