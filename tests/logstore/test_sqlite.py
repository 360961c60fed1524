"""SQLiteLogSink: windows by time and by count, label joins, idempotence, bad input."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from watchkeeper.exceptions import InputError
from watchkeeper.logstore import (
    FeedbackRecord,
    LogClosedError,
    PredictionRecord,
    SQLiteLogSink,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC).timestamp()


@pytest.fixture
def sink(tmp_path: Path) -> Any:
    s = SQLiteLogSink(tmp_path / "log.db", synchronous="normal")
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
    """Reference rows computed from the records in plain Python."""
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


def test_window_by_time_matches_a_python_reference(sink: SQLiteLogSink) -> None:
    records = _records(300)
    sink.write_predictions(records)
    start, end = T0 + 86_400, T0 + 2 * 86_400
    got = sink.read_window(
        "churn",
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(end, UTC),
    )
    want = [r for r in records if start <= r.ts < end and not r.shadow]
    assert 50 < len(want) < 150
    assert _rows(got) == _expected(want, {})
    # UTC seconds work as bounds too
    assert got.equals(sink.read_window("churn", start=start, end=end))


def test_window_by_count_is_the_newest_n_in_time_order(sink: SQLiteLogSink) -> None:
    records = _records(200, seed=1)
    sink.write_predictions(records)
    live = sorted((r for r in records if not r.shadow), key=lambda r: (r.ts, r.id))
    got = sink.read_window("churn", last=25)
    assert _rows(got) == _expected(live[-25:], {})
    end = live[100].ts
    got = sink.read_window("churn", last=10, end=end)
    assert _rows(got) == _expected(live[90:100], {})
    assert sink.read_window("churn", last=10_000).num_rows == len(live)


def test_filters_by_version_arm_and_shadow(sink: SQLiteLogSink) -> None:
    records = _records(300, seed=2)
    sink.write_predictions(records)
    for version in (1, 2):
        got = sink.read_window("churn", version=version)
        assert _rows(got) == _expected(
            [r for r in records if r.version == version and not r.shadow], {}
        )
    got = sink.read_window("churn", arm="canary")
    assert _rows(got) == _expected([r for r in records if r.arm == "canary"], {})
    assert sink.read_window("churn", arm="challenger").num_rows == 0  # shadow only
    got = sink.read_window("churn", include_shadow=True)
    assert _rows(got) == _expected(records, {})
    assert got.column("shadow").to_pylist().count(True) == sum(r.shadow for r in records)


def test_models_are_kept_apart(sink: SQLiteLogSink) -> None:
    sink.write_predictions(_records(20, model="churn"))
    sink.write_predictions(
        [PredictionRecord("f1", T0, "fraud", 1, "champion", {"amount": 10.5}, 0)]
    )
    assert sink.models() == ["churn", "fraud"]
    assert sink.count("fraud") == 1
    assert sink.count("churn") == 20
    assert sink.count() == 21
    assert sink.read_window("fraud").column_names[-1] == "amount"
    assert sink.read_window("nobody").num_rows == 0


def test_reinserting_is_idempotent(sink: SQLiteLogSink) -> None:
    records = _records(100, seed=3)
    sink.write_predictions(records)
    sink.write_predictions(records[:60])  # a retried batch
    sink.write_predictions(records[50:])
    assert sink.count() == 100
    assert sink.duplicates_total == 60 + 50
    # a second live record for an id already logged live (retry routed to another arm)
    first = next(r for r in records if not r.shadow)
    other_arm = "canary" if first.arm == "champion" else "champion"
    retry = PredictionRecord(first.id, first.ts + 1, "churn", 9, other_arm, {"age": 1}, 0)
    sink.write_predictions([retry])
    assert sink.count() == 100
    window = sink.read_window("churn").to_pylist()
    (row,) = [r for r in window if r["id"] == first.id]
    assert (row["arm"], row["version"]) == (first.arm, first.version)


def test_shadow_records_share_the_id_and_the_label(sink: SQLiteLogSink) -> None:
    live = PredictionRecord("q1", T0, "churn", 1, "champion", {"x": 1.0}, 0)
    shadow = PredictionRecord("q1", T0, "churn", 2, "challenger", {"x": 1.0}, 1, shadow=True)
    sink.write_predictions([live, shadow])
    sink.write_feedback([FeedbackRecord("q1", T0 + 5, label=1)])
    both = sink.read_window("churn", include_shadow=True).to_pylist()
    assert [(r["arm"], r["prediction"], r["label"]) for r in both] == [
        ("challenger", 1, 1),
        ("champion", 0, 1),
    ]
    assert sink.feedback_stats("churn").n_labelled == 1  # live predictions only


def test_labels_arriving_later_update_the_join(sink: SQLiteLogSink) -> None:
    records = _records(50, seed=4)
    sink.write_predictions(records)
    live = [r for r in records if not r.shadow]
    rng = random.Random(4)
    labels = {r.id: rng.randint(0, 1) for r in live[:20]}
    result = sink.write_feedback(
        [FeedbackRecord(i, T0 + 10 * 86_400, label=v) for i, v in labels.items()]
    )
    assert (result.n_matched, result.n_unknown) == (20, 0)
    assert _rows(sink.read_window("churn")) == _expected(live, labels)
    # a correction arrives later for some ids: the latest label wins
    corrections = {r.id: "corrected" for r in live[:5]}
    sink.write_feedback(
        [FeedbackRecord(i, T0 + 11 * 86_400, label=v) for i, v in corrections.items()]
    )
    # an older label arriving late does not override a newer one
    sink.write_feedback([FeedbackRecord(live[0].id, T0 + 9 * 86_400, label="stale")])
    got = sink.read_window("churn")
    by_id = {r["id"]: r for r in got.to_pylist()}
    for r in live[5:20]:  # mixed int and str labels: JSON text
        assert by_id[r.id]["label"] == json.dumps(labels[r.id])
    for i in corrections:
        assert by_id[i]["label"] == '"corrected"'
        assert by_id[i]["label_ts"] == datetime.fromtimestamp(T0 + 11 * 86_400, UTC)
    assert all(by_id[r.id]["label"] is None for r in live[20:])
    # mixed int and str labels are kept as JSON text, flagged in the field metadata
    field = got.schema.field("label")
    assert field.type == pa.string()
    assert field.metadata == {b"watchkeeper.encoding": b"json"}


def test_label_and_flag_are_joined_independently(sink: SQLiteLogSink) -> None:
    sink.write_predictions([PredictionRecord("a", T0, "churn", 1, "champion", {"x": 1}, 0)])
    sink.write_feedback([FeedbackRecord("a", T0 + 1, label=1)])
    sink.write_feedback([FeedbackRecord("a", T0 + 2, flag=True, note="customer complained")])
    (row,) = sink.read_window("churn").to_pylist()
    assert (row["label"], row["flag"]) == (1, True)
    assert row["label_ts"] == datetime.fromtimestamp(T0 + 1, UTC)


def test_feedback_for_unknown_ids_is_stored_and_counted(sink: SQLiteLogSink) -> None:
    sink.write_predictions(_records(10, seed=6))
    feedback = [FeedbackRecord("r0001", T0 + 1, label=1)] + [
        FeedbackRecord(f"ghost{i % 3}", T0 + i, label=0) for i in range(5)
    ]
    result = sink.write_feedback(feedback)
    assert (result.n_matched, result.n_unknown) == (1, 5)
    assert result.unknown_ids == ("ghost0", "ghost1", "ghost2")
    stats = sink.feedback_stats("churn")
    assert (stats.n_received, stats.n_matched, stats.n_unknown, stats.n_unknown_ids) == (
        6,
        1,
        5,
        3,
    )
    assert sink.feedback_stats("other").n_matched == 0
    # the prediction arrives after its label (a late log write): the label joins, no longer unknown
    sink.write_predictions([PredictionRecord("ghost1", T0, "churn", 1, "champion", {"age": 3}, 1)])
    assert sink.feedback_stats().n_unknown == 3
    by_id = {r["id"]: r for r in sink.read_window("churn").to_pylist()}
    assert by_id["ghost1"]["label"] == 0


def test_exact_feedback_repeats_are_ignored(sink: SQLiteLogSink) -> None:
    sink.write_predictions([PredictionRecord("a", T0, "churn", 1, "champion", {"x": 1}, 0)])
    batch = [FeedbackRecord("a", T0 + 1, label=1), FeedbackRecord("a", T0 + 2, flag=False)]
    sink.write_feedback(batch)
    sink.write_feedback(batch)  # retried
    sink.write_feedback([FeedbackRecord("a", T0 + 1, label=0)])  # same time, other label: kept
    assert sink.feedback_stats().n_received == 3


def test_non_finite_values_are_stored_as_null_and_counted(sink: SQLiteLogSink) -> None:
    record = PredictionRecord(
        "a",
        T0,
        "churn",
        1,
        "champion",
        {"x": float("nan"), "y": np.float64(np.inf), "z": [1.0, -math.inf], "w": np.int64(3)},
        np.float32(np.nan),
        scores={"1": float("nan")},
    )
    sink.write_predictions([record])
    sink.write_feedback([FeedbackRecord("a", T0 + 1, label=float("nan"), flag=np.bool_(True))])
    assert sink.nonfinite_total == 6
    (row,) = sink.read_window("churn").to_pylist()
    assert (row["x"], row["y"], row["z"], row["w"]) == (None, None, [1.0, None], 3)
    assert (row["prediction"], row["scores"], row["label"], row["flag"]) == (
        None,
        '{"1":null}',
        None,
        True,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": {"when": datetime(2024, 1, 1)}}, "features\\['when'\\] is a datetime"),
        ({"features": {"raw": b"x"}}, "is a bytes"),
        ({"features": {1: 2.0}}, "string keys"),
        ({"features": [1, 2]}, "features must be a mapping"),
        ({"prediction": object()}, "prediction is a object"),
        ({"scores": [0.1, 0.9]}, "scores must be a mapping"),
        ({"model": "../etc"}, "invalid model name"),
        ({"id": ""}, "id must be a non-empty string"),
        ({"ts": float("nan")}, "ts must be a finite number"),
        ({"version": "2"}, "version must be an integer"),
        ({"latency_ms": -1.0}, "latency_ms must be >= 0"),
        ({"shadow": "no"}, "shadow must be True or False"),
    ],
)
def test_bad_prediction_records_are_refused_clearly(
    sink: SQLiteLogSink, change: dict[str, Any], message: str
) -> None:
    base = {
        "id": "a",
        "ts": T0,
        "model": "churn",
        "version": 1,
        "arm": "champion",
        "features": {"x": 1},
        "prediction": 0,
    }
    good = PredictionRecord(**base)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=message):
        sink.write_predictions([good, PredictionRecord(**{**base, **change})])  # type: ignore[arg-type]
    assert sink.count() == 0  # the batch is all or nothing
    with pytest.raises(InputError, match="expected a PredictionRecord"):
        sink.write_predictions([base])  # type: ignore[list-item]


def test_bad_feedback_is_refused_clearly(sink: SQLiteLogSink) -> None:
    with pytest.raises(InputError, match="flag must be True, False or None"):
        sink.write_feedback([FeedbackRecord("a", T0, flag="yes")])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="label is a set"):
        sink.write_feedback([FeedbackRecord("a", T0, label={1})])
    assert sink.feedback_stats().n_received == 0


def test_feature_columns_union_types_and_reserved_names(sink: SQLiteLogSink) -> None:
    sink.write_predictions(
        [
            PredictionRecord("a", T0, "m", 1, "c", {"x": 1, "id": "dup", "s": 1}, 0),
            PredictionRecord("b", T0 + 1, "m", 1, "c", {"x": 2.5, "new": True, "s": "t"}, 0),
        ]
    )
    t = sink.read_window("m")
    assert t.column_names[13:] == ["x", "features.id", "s", "new"]
    assert t.schema.field("x").type == pa.float64()
    assert t.column("x").to_pylist() == [1.0, 2.5]
    assert t.column("features.id").to_pylist() == ["dup", None]
    assert t.column("new").to_pylist() == [None, True]
    assert t.column("s").to_pylist() == ["1", '"t"']  # mixed kinds: JSON text
    assert t.schema.field("ts").type == pa.timestamp("us", tz="UTC")


def test_bad_window_arguments(sink: SQLiteLogSink) -> None:
    with pytest.raises(InputError, match="has no time zone"):
        sink.read_window("churn", start=datetime(2024, 1, 1))
    with pytest.raises(InputError, match="last must be a positive"):
        sink.read_window("churn", last=0)
    with pytest.raises(InputError, match="invalid model name"):
        sink.read_window("churn'; DROP TABLE predictions; --")
    window = sink.read_window("churn", start=datetime.now(UTC) - timedelta(days=1))
    assert window.num_rows == 0
    assert window.column_names[:2] == ["id", "ts"]


def test_constructor_and_closed_sink(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="needs a database file path"):
        SQLiteLogSink(":memory:")
    with pytest.raises(InputError, match="synchronous must be"):
        SQLiteLogSink(tmp_path / "a.db", synchronous="off")  # type: ignore[arg-type]
    sink = SQLiteLogSink(tmp_path / "a.db")
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    sink.close()
    sink.close()
    with pytest.raises(LogClosedError):
        sink.write_predictions(_records(1))
    with pytest.raises(LogClosedError):
        sink.read_window("churn")
    # reopening an existing log keeps its rows
    with SQLiteLogSink(tmp_path / "b.db") as first:
        first.write_predictions(_records(5))
    with SQLiteLogSink(tmp_path / "b.db") as again:
        assert again.count() == 5


def test_two_sinks_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    a = SQLiteLogSink(tmp_path / "shared.db")
    b = SQLiteLogSink(tmp_path / "shared.db")
    records = _records(40, seed=8)
    a.write_predictions(records[:20])
    b.write_predictions(records[10:])
    assert a.count() == b.count() == 40
    a.close()
    b.close()


def test_writers_sharing_a_file_take_turns(tmp_path: Path) -> None:
    # Two sinks on one file (as two gateway workers): the second writer waits for the first
    # one's turn to end instead of polling SQLite's lock, and then writes.
    import threading

    path = tmp_path / "log.db"
    first, second = SQLiteLogSink(path), SQLiteLogSink(path)
    inside, release, done = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with first._write_turn():
            inside.set()
            release.wait(10)

    def write() -> None:
        second.write_predictions([PredictionRecord("r1", 1.7e9, "m", 1, "champion", {"x": 1}, 0)])
        done.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    writer = threading.Thread(target=write)
    writer.start()
    assert not done.wait(0.3)  # waiting for its turn
    release.set()
    assert done.wait(10)
    holder.join()
    writer.join()
    assert second.count("m") == 1
    assert (tmp_path / "log.db-writer.lock").exists()
    first.close()
    second.close()
