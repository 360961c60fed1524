"""Parquet export: round trip equals read_window, idempotent, incremental, deletes, fsspec."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from watchkeeper.exceptions import InputError
from watchkeeper.logstore import (
    FeedbackRecord,
    PredictionRecord,
    SQLiteLogSink,
    export_parquet,
    read_parquet,
)

DAY0 = datetime(2024, 5, 1, tzinfo=UTC)
T0 = DAY0.timestamp()
UNTIL = DAY0 + timedelta(days=30)


def _records(n: int, seed: int, days: int = 3, model: str = "churn") -> list[PredictionRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        shadow = rng.random() < 0.2
        features: dict[str, Any] = {"age": rng.randint(18, 90), "plan": rng.choice(["a", "b"])}
        if rng.random() < 0.3:
            features["promo"] = rng.random()  # a feature present on some rows only
        out.append(
            PredictionRecord(
                id=f"{model}{seed}-{i}",
                ts=T0 + rng.uniform(0, days * 86_400),
                model=model,
                version=rng.choice([1, 2]),
                arm="shadow" if shadow else "champion",
                features=features,
                prediction=rng.random(),
                scores=None,
                latency_ms=rng.uniform(0.1, 3),
                shadow=shadow,
            )
        )
    return out


@pytest.fixture
def sink(tmp_path: Path) -> Any:
    s = SQLiteLogSink(tmp_path / "log.db", synchronous="normal")
    yield s
    s.close()


def _day(i: int) -> datetime:
    return DAY0 + timedelta(days=i)


def _values(table: pa.Table) -> list[dict[str, Any]]:
    """Rows without their null cells, so that a column absent from a window compares equal."""
    return [{k: v for k, v in row.items() if v is not None} for row in table.to_pylist()]


def _label_some(sink: SQLiteLogSink, records: list[PredictionRecord], seed: int) -> None:
    rng = random.Random(seed)
    sink.write_feedback(
        [FeedbackRecord(r.id, r.ts + 60, label=rng.randint(0, 1)) for r in records[::3]]
    )


def test_round_trip_equals_read_window(sink: SQLiteLogSink, tmp_path: Path) -> None:
    records = _records(400, seed=1)
    sink.write_predictions(records)
    _label_some(sink, records, 1)
    root = tmp_path / "export"
    result = export_parquet(sink, root, until=UNTIL)
    assert result.n_rows == 400
    assert result.n_deleted == 0
    assert [Path(p).relative_to(root).parts[:2] for p in result.paths] == [
        ("model=churn", f"date={_day(i).date().isoformat()}") for i in range(3)
    ]
    for kwargs in (
        {},
        {"include_shadow": True},
        {"version": 2},
        {"start": _day(1), "end": _day(2)},
        {"start": _day(1), "end": _day(3), "include_shadow": True},
    ):
        assert read_parquet(root, "churn", **kwargs).equals(sink.read_window("churn", **kwargs))
    for last in (1, 50, 10_000):
        # types are inferred per window (one row has no "promo", no label): compare values
        assert _values(read_parquet(root, "churn", last=last)) == _values(
            sink.read_window("churn", last=last)
        )
    # any Hive-aware reader sees the partitions
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    assert dataset.count_rows() == 400
    assert dataset.to_table(filter=ds.field("model") == "churn").num_rows == 400


def test_export_is_idempotent_and_incremental(sink: SQLiteLogSink, tmp_path: Path) -> None:
    records = _records(200, seed=2)
    sink.write_predictions(records)
    root = tmp_path / "export"
    first = export_parquet(sink, root, until=UNTIL)
    before = {p: Path(p).read_bytes() for p in first.paths}
    again = export_parquet(sink, root, until=UNTIL)
    assert again.paths == first.paths
    assert read_parquet(root, "churn", include_shadow=True).num_rows == 200
    assert {p: Path(p).read_bytes() for p in again.paths} == before
    # labels arriving after an export reach the file on the next export
    _label_some(sink, records, 2)
    export_parquet(sink, root, until=UNTIL)
    assert read_parquet(root, "churn").equals(sink.read_window("churn"))
    assert read_parquet(root, "churn").column("label").null_count < sum(
        not r.shadow for r in records
    )


def test_until_defaults_to_complete_days(sink: SQLiteLogSink, tmp_path: Path) -> None:
    now = datetime.now(UTC).timestamp()
    old = PredictionRecord("old", now - 2 * 86_400, "churn", 1, "c", {"x": 1}, 0)
    today = PredictionRecord("today", now, "churn", 1, "c", {"x": 2}, 0)
    sink.write_predictions([old, today])
    result = export_parquet(sink, tmp_path / "export", delete=True)
    assert result.n_rows == 1
    assert read_parquet(tmp_path / "export", "churn").column("id").to_pylist() == ["old"]
    assert sink.read_window("churn").column("id").to_pylist() == ["today"]


def test_delete_keeps_exported_rows_and_merges_late_ones(
    sink: SQLiteLogSink, tmp_path: Path
) -> None:
    records = _records(300, seed=3)
    sink.write_predictions(records)
    _label_some(sink, records, 3)
    full = sink.read_window("churn", include_shadow=True)
    root = tmp_path / "export"
    result = export_parquet(sink, root, until=UNTIL, delete=True)
    assert result.n_deleted == 300
    assert sink.count() == 0
    assert sink.feedback_stats().n_received == 0  # the exported labels went with their rows
    assert read_parquet(root, "churn", include_shadow=True).equals(full)
    # a late record for an exported day, and feedback for an exported (deleted) prediction
    late = PredictionRecord("late", T0 + 3600, "churn", 1, "champion", {"age": 50}, 0.5)
    sink.write_predictions([late])
    gone = records[0].id
    fb = sink.write_feedback([FeedbackRecord(gone, T0 + 10 * 86_400, label=1)])
    assert fb.n_unknown == 1  # documented: counted as unknown in SQLite, not lost
    assert sink.feedback_stats().n_unknown == 1
    export_parquet(sink, root, until=UNTIL, delete=True)
    back = read_parquet(root, "churn", include_shadow=True)
    assert back.num_rows == 301
    assert "late" in back.column("id").to_pylist()
    assert sink.count() == 0


def test_feature_types_that_change_between_days(sink: SQLiteLogSink, tmp_path: Path) -> None:
    sink.write_predictions(
        [
            PredictionRecord("a", T0, "m", 1, "c", {"x": 1, "y": 1, "z": None}, 0),
            PredictionRecord("b", T0 + 86_400, "m", 1, "c", {"x": 2.5, "y": "s", "z": 3}, 0),
        ]
    )
    root = tmp_path / "export"
    export_parquet(sink, root, until=UNTIL)
    back = read_parquet(root, "m")
    assert back.column("x").to_pylist() == [1.0, 2.5]  # int64 and double: double
    assert back.column("y").to_pylist() == ["1", '"s"']  # int and str: JSON text
    assert back.column("z").to_pylist() == [None, 3]  # all-null day: null type
    assert back.equals(sink.read_window("m"))


def test_several_models_and_one_model_only(sink: SQLiteLogSink, tmp_path: Path) -> None:
    sink.write_predictions(_records(50, seed=4) + _records(30, seed=5, model="fraud"))
    root = tmp_path / "export"
    result = export_parquet(sink, root, until=UNTIL, model="fraud", delete=True)
    assert all("model=fraud" in p for p in result.paths)
    assert sink.models() == ["churn"]
    assert read_parquet(root, "fraud", include_shadow=True).num_rows == 30
    assert read_parquet(root, "churn").num_rows == 0


def test_fsspec_url(sink: SQLiteLogSink) -> None:
    import fsspec  # the storage extra, part of dev: never skipped

    records = _records(100, seed=6)
    sink.write_predictions(records)
    root = "memory://watchkeeper-test/export"
    try:
        result = export_parquet(sink, root, until=UNTIL)
        assert all(p.startswith("/watchkeeper-test/export/model=churn/date=") for p in result.paths)
        assert read_parquet(root, "churn").equals(sink.read_window("churn"))
        export_parquet(sink, root, until=UNTIL)  # rewrites, no duplicates
        assert read_parquet(root, "churn", include_shadow=True).num_rows == 100
    finally:
        fsspec.filesystem("memory").rm("/watchkeeper-test", recursive=True)


def test_bad_arguments(sink: SQLiteLogSink, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no Parquet export"):
        read_parquet(tmp_path / "nothing", "churn")
    with pytest.raises(InputError, match="has no time zone"):
        export_parquet(sink, tmp_path, until=datetime(2024, 1, 1))
    with pytest.raises(InputError, match="reads a SQLiteLogSink"):
        export_parquet(object(), tmp_path)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="invalid model name"):
        read_parquet(tmp_path, "../x")


def test_interrupted_write_leaves_no_visible_partial_file(
    sink: SQLiteLogSink, tmp_path: Path
) -> None:
    sink.write_predictions(_records(20, seed=7, days=1))
    root = tmp_path / "export"
    export_parquet(sink, root, until=UNTIL)
    folder = next((root / "model=churn").iterdir())
    (folder / ".part-0.parquet.dead.tmp").write_bytes(b"half a file")  # a crash mid-write
    assert read_parquet(root, "churn", include_shadow=True).num_rows == 20
    assert ds.dataset(root, format="parquet", partitioning="hive").count_rows() == 20
    export_parquet(sink, root, until=UNTIL)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".part-0.parquet.dead.tmp",
        "part-0.parquet",
    ]


def test_records_at_midnight_are_exported_exactly_once(sink: SQLiteLogSink, tmp_path: Path) -> None:
    midnight = T0 + 86_400
    times = [math.nextafter(midnight, 0), midnight, math.nextafter(midnight, math.inf)]
    times += [midnight - 1e-7, midnight - 0.5e-6]
    sink.write_predictions(
        [PredictionRecord(f"m{i}", t, "churn", 1, "c", {"i": i}, 0) for i, t in enumerate(times)]
    )
    root = tmp_path / "export"
    result = export_parquet(sink, root, until=UNTIL, delete=True)
    assert (result.n_rows, result.n_deleted, sink.count()) == (5, 5, 0)
    back = read_parquet(root, "churn")
    assert sorted(back.column("id").to_pylist()) == [f"m{i}" for i in range(5)]
