"""Every log store behaves like the SQLite log: SQLite, PostgreSQL (a real server), Parquet on a
local folder and Parquet on a real S3-compatible server (moto in server mode).

The same records go into each store and the same windows, labels and counts must come out;
only what differs by design (Parquet is at least once: duplicates are dropped when read and
counted by compaction) is tested per store.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from watchkeeper.exceptions import InputError
from watchkeeper.logstore import (
    FeedbackRecord,
    GroupCommitWriter,
    ParquetLogSink,
    PostgresLogSink,
    PredictionRecord,
    open_sink,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC).timestamp()
KINDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.service),
    "parquet",
    pytest.param("s3", marks=pytest.mark.service),
]


@pytest.fixture(params=KINDS)
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        s: Any = open_sink(f"sqlite:///{tmp_path / 'log.db'}", synchronous="normal")
    elif request.param == "postgresql":
        s = open_sink(request.getfixturevalue("log_postgres").create_schema())
    elif request.param == "parquet":
        s = open_sink(f"file://{tmp_path / 'parquet'}")
    else:
        server = request.getfixturevalue("s3_server")
        s = ParquetLogSink(
            f"s3://{server.create_bucket()}/log", storage_options=server.storage_options
        )
    yield s
    s.close()


def _records(n: int, seed: int = 0, model: str = "churn") -> list[PredictionRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        shadow = rng.random() < 0.2
        out.append(
            PredictionRecord(
                id=f"r{i:04d}",
                ts=T0 + rng.uniform(0, 3 * 86_400),
                model=model,
                version=rng.choice([1, 2]),
                arm="challenger" if shadow else rng.choice(["champion", "canary"]),
                features={"age": rng.randint(18, 90), "plan": rng.choice(["free", "pro"])},
                prediction=rng.randint(0, 1),
                scores={"0": 0.25, "1": 0.75},
                latency_ms=rng.uniform(0.1, 5.0),
                shadow=shadow,
            )
        )
    return out


def _expected(records: list[PredictionRecord], labels: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in sorted(records, key=lambda r: (r.ts, r.id, r.arm)):
        rows.append(
            {
                "id": r.id,
                "ts": datetime.fromtimestamp(round(r.ts * 1e6) / 1e6, UTC),
                "version": r.version,
                "arm": r.arm,
                "shadow": r.shadow,
                "prediction": r.prediction,
                "label": labels.get(r.id),
                **dict(r.features),
            }
        )
    return rows


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    keep = ["id", "ts", "version", "arm", "shadow", "prediction", "label", "age", "plan"]
    return table.select(keep).to_pylist()


def test_windows_match_a_python_reference(sink: Any) -> None:
    records = _records(300)
    sink.write_predictions(records[:150])
    sink.write_predictions(records[150:])
    start, end = T0 + 86_400, T0 + 2 * 86_400
    got = sink.read_window("churn", start=datetime.fromtimestamp(start, UTC), end=end)
    want = [r for r in records if start <= r.ts < end and not r.shadow]
    assert 50 < len(want) < 150
    assert _rows(got) == _expected(want, {})
    live = sorted((r for r in records if not r.shadow), key=lambda r: (r.ts, r.id))
    assert _rows(sink.read_window("churn", last=25)) == _expected(live[-25:], {})
    got = sink.read_window("churn", last=10, end=live[100].ts)
    assert _rows(got) == _expected(live[90:100], {})
    for version in (1, 2):
        assert _rows(sink.read_window("churn", version=version)) == _expected(
            [r for r in records if r.version == version and not r.shadow], {}
        )
    assert _rows(sink.read_window("churn", arm="canary")) == _expected(
        [r for r in records if r.arm == "canary"], {}
    )
    assert _rows(sink.read_window("churn", include_shadow=True)) == _expected(records, {})
    assert sink.read_window("nobody").num_rows == 0
    assert sink.count() == 300
    assert sink.models() == ["churn"]


def test_retries_are_stored_once(sink: Any) -> None:
    records = _records(100, seed=3)
    sink.write_predictions(records)
    sink.write_predictions(records[:70])  # a retried batch: COPY fails, INSERT skips them
    sink.write_predictions(records[50:70])  # a small retried batch (INSERT only)
    sink.write_predictions(records[5:6])
    first = next(r for r in records if not r.shadow)
    other_arm = "canary" if first.arm == "champion" else "champion"
    clash = sink.write_predictions(
        [PredictionRecord(first.id, first.ts + 1, "churn", 9, other_arm, {"age": 1}, 0)]
    )
    assert sink.count() == 100
    window = sink.read_window("churn", include_shadow=True)
    assert _rows(window) == _expected(records, {})
    # a logged id with other features is a conflict the sink reports, not a retry
    assert clash is not None
    assert clash.conflicts == (0,)
    assert sink.duplicates_total == 70 + 20 + 1
    again = sink.write_predictions(records[10:12])
    assert again is not None
    assert again.conflicts == ()
    assert again.duplicates == 2
    retry = sink.write_predictions(
        [PredictionRecord(first.id, first.ts + 1, "churn", 9, other_arm, dict(first.features), 0)]
    )
    assert retry is not None
    assert (retry.duplicates, retry.conflicts) == (1, ())
    assert sink.duplicates_total == 70 + 20 + 1 + 2 + 1
    # ids are scoped per model: the same id for another model is a new record
    assert (
        sink.write_predictions([PredictionRecord(first.id, first.ts, "other", 1, "c", {}, 0)])
        is None
    )
    assert sink.count() == 101
    assert sink.count("churn") == 100


def test_labels_join_latest_first_and_count_unknown_ids(sink: Any) -> None:
    records = _records(50, seed=4)
    sink.write_predictions(records)
    live = [r for r in records if not r.shadow]
    labels = {r.id: i % 2 for i, r in enumerate(live[:20])}
    result = sink.write_feedback(
        [FeedbackRecord(i, T0 + 10 * 86_400, label=v) for i, v in labels.items()]
        + [FeedbackRecord("ghost", T0 + 10 * 86_400, label=1)]
    )
    assert (result.n_matched, result.n_unknown, result.unknown_ids) == (20, 1, ("ghost",))
    assert _rows(sink.read_window("churn")) == _expected(live, labels)
    sink.write_feedback([FeedbackRecord(live[0].id, T0 + 11 * 86_400, label=7)])
    sink.write_feedback([FeedbackRecord(live[0].id, T0 + 9 * 86_400, label=8)])  # older
    sink.write_feedback([FeedbackRecord(live[1].id, T0 + 12 * 86_400, flag=True, note="x")])
    batch = [FeedbackRecord(live[2].id, T0 + 10 * 86_400, label=labels[live[2].id])]
    sink.write_feedback(batch)  # an exact repeat
    by_id = {r["id"]: r for r in sink.read_window("churn").to_pylist()}
    assert by_id[live[0].id]["label"] == 7
    assert by_id[live[0].id]["label_ts"] == datetime.fromtimestamp(T0 + 11 * 86_400, UTC)
    assert (by_id[live[1].id]["label"], by_id[live[1].id]["flag"]) == (labels[live[1].id], True)
    stats = sink.feedback_stats("churn")
    assert (stats.n_received, stats.n_matched, stats.n_unknown, stats.n_unknown_ids) == (
        24,
        23,
        1,
        1,
    )
    assert stats.n_labelled == 20
    assert sink.feedback_stats("other").n_matched == 0


def test_shadow_records_share_the_label_and_types_are_unified(sink: Any) -> None:
    sink.write_predictions(
        [
            PredictionRecord("q1", T0, "m", 1, "champion", {"x": 1, "id": "dup", "s": 1}, 0),
            PredictionRecord("q1", T0, "m", 2, "challenger", {"x": 1}, 1, shadow=True),
            PredictionRecord("q2", T0 + 1, "m", 1, "champion", {"x": 2.5, "s": "t"}, 0),
        ]
    )
    sink.write_feedback([FeedbackRecord("q1", T0 + 5, label=1)])
    both = sink.read_window("m", include_shadow=True)
    assert [(r["arm"], r["label"]) for r in both.to_pylist()] == [
        ("challenger", 1),
        ("champion", 1),
        ("champion", None),
    ]
    t = sink.read_window("m")
    assert t.column("x").to_pylist() == [1.0, 2.5]
    assert t.column("features.id").to_pylist() == ["dup", None]
    assert t.column("s").to_pylist() == ["1", '"t"']  # mixed kinds: JSON text
    assert t.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert t.column_names[:13] == [
        "id", "ts", "version", "arm", "shadow", "status", "error", "latency_ms",
        "prediction", "scores", "label", "flag", "label_ts",
    ]  # fmt: skip


def test_bad_input_is_refused_and_nothing_is_stored(sink: Any) -> None:
    good = PredictionRecord("a", T0, "churn", 1, "champion", {"x": 1}, 0)
    bad = PredictionRecord("b", T0, "churn", 1, "champion", {"when": datetime(2024, 1, 1)}, 0)
    with pytest.raises(InputError, match="is a datetime"):
        sink.write_predictions([good, bad])
    with pytest.raises(InputError, match="has no time zone"):
        sink.read_window("churn", start=datetime(2024, 1, 1))
    with pytest.raises(InputError, match="invalid model name"):
        sink.read_window("churn'; DROP TABLE log_predictions; --")
    assert sink.count() == 0


def test_group_commit_writer_on_every_store(sink: Any) -> None:
    with GroupCommitWriter(sink, max_batch=100) as writer:
        futures = [writer.submit(r) for r in _records(200, seed=9)]
        assert {f.result(timeout=60).value for f in futures} == {"committed"}
    assert sink.count() == 200


def test_open_sink_refuses_unknown_urls(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="mysql:// prediction log is not supported"):
        open_sink("mysql://h/db")
    with pytest.raises(InputError, match="no prediction log at"):
        open_sink(tmp_path / "missing.db", create=False)
    with pytest.raises(InputError, match="needs a postgresql:// URL"):
        PostgresLogSink("sqlite:///x.db")


@pytest.mark.service
def test_postgresql_days_export_to_parquet_on_s3(log_postgres: Any, s3_server: Any) -> None:
    """Finished days move from the PostgreSQL log to Parquet on S3 and read back the same."""
    from watchkeeper.logstore import export_parquet, read_parquet

    with PostgresLogSink(log_postgres.create_schema()) as pg:
        records = _records(200, seed=11)
        pg.write_predictions(records)
        pg.write_feedback([FeedbackRecord(records[0].id, T0 + 5 * 86_400, label=1)])
        want = pg.read_window("churn", include_shadow=True)
        root = f"s3://{s3_server.create_bucket()}/export"
        import fsspec

        fsspec.config.conf["s3"] = s3_server.storage_options
        try:
            result = export_parquet(pg, root, until=T0 + 10 * 86_400, delete=True)
            back = read_parquet(root, "churn", include_shadow=True)
        finally:
            fsspec.config.conf.pop("s3", None)
        assert (result.n_rows, result.n_deleted, pg.count()) == (200, 200, 0)
        assert len(result.paths) == 3  # three days
    assert _rows(back) == _rows(want)
    assert back.column("label").to_pylist() == want.column("label").to_pylist()


@pytest.mark.parametrize("recent_keys", [100_000, 1])
def test_parquet_reused_ids_a_writer_cannot_see_are_counted_on_compaction(
    tmp_path: Path, recent_keys: int
) -> None:
    """Across writers (or once a key is forgotten) a Parquet log cannot refuse a reused id at
    write time: the first written record is read, compaction counts retries and conflicts."""
    url = f"file://{tmp_path / 'parquet'}"
    one = ParquetLogSink(url, recent_keys=recent_keys)
    two = ParquetLogSink(url)
    base = [
        PredictionRecord(f"r{i}", T0 + i, "churn", 1, "champion", {"x": i}, 0) for i in range(4)
    ]
    assert one.write_predictions(base) is None
    one.write_predictions(
        [PredictionRecord(f"z{i}", T0 + i, "churn", 1, "champion", {"x": i}, 0) for i in range(3)]
    )
    mine = one.write_predictions([base[0]])  # a retry, remembered only with room for it
    assert (mine is not None) == (recent_keys > 1)
    assert two.write_predictions([base[1]]) is None  # another writer's retry
    clash = PredictionRecord("r2", T0 + 9, "churn", 1, "champion", {"x": 99}, 0)
    assert two.write_predictions([clash]) is None  # not detectable by this writer
    assert one.read_window("churn").column("x").to_pylist() == [0, 0, 1, 1, 2, 2, 3]
    result = one.compact()
    assert result.n_conflicts == 1
    assert result.n_duplicates == (1 if recent_keys > 1 else 2)
    assert one.conflicts_total == 1
    assert sorted(one.read_window("churn").column("x").to_pylist()) == [0, 0, 1, 1, 2, 2, 3]
    one.close()
    two.close()


def test_batches_mixing_new_stored_and_repeated_records(sink: Any) -> None:
    # a batch whose fast write (PostgreSQL: one COPY) meets a stored key or repeats one of
    # its own keys still stores every new record, once, and counts the rest as retries
    records = _records(40, seed=5)
    assert sink.write_predictions(records[:10]) is None
    mixed = sink.write_predictions([*records[5:25], records[20]])
    assert mixed is not None
    assert (mixed.duplicates, mixed.conflicts) == (6, ())
    repeated = sink.write_predictions([records[30], records[30]])
    assert repeated is not None
    assert (repeated.duplicates, repeated.conflicts) == (1, ())
    assert sink.count() == 26
    stored = [*records[:25], records[30]]
    assert _rows(sink.read_window("churn", include_shadow=True)) == _expected(stored, {})


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
@pytest.mark.parametrize("n_feedback", [8, 150])
def test_sql_logs_count_windows_and_read_the_rows_with_feedback(
    kind: str, n_feedback: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # few feedback records (looked up by id) or many (read along the time index): same rows
    if kind == "sqlite":
        s: Any = open_sink(f"sqlite:///{tmp_path / 'log.db'}")
    else:
        s = open_sink(request.getfixturevalue("log_postgres").create_schema())
    records = _records(200, seed=9)
    s.write_predictions(records)
    rng = random.Random(3)
    picked = rng.sample(records, n_feedback)
    s.write_feedback(
        [FeedbackRecord(r.id, T0 + 9 * 86_400, label=i % 2) for i, r in enumerate(picked)]
        + [FeedbackRecord(r.id, T0 + 9 * 86_400, flag=True) for r in picked[::3]]
    )
    for kwargs in ({}, {"start": T0 + 86_400, "end": T0 + 2 * 86_400, "version": 2}):
        lean = s.read_window("churn", include_shadow=True, features=False, **kwargs).to_pylist()
        fed = s.read_window(
            "churn", include_shadow=True, features=False, feedback_only=True, **kwargs
        ).to_pylist()
        assert fed == [r for r in lean if r["label"] is not None or r["flag"] is not None]
        assert s.count_window("churn", **kwargs) == len(lean)
    ts = sorted(r.ts for r in records)
    lo, hi = s.time_span("churn")
    assert (lo, hi) == pytest.approx((ts[0], ts[-1]), abs=1e-6)
    ordered = sorted(records, key=lambda r: (r.ts, r.id, r.arm))
    first = s.read_window("churn", include_shadow=True, first=5)
    assert first.column("id").to_pylist() == [r.id for r in ordered[:5]]
    s.close()
