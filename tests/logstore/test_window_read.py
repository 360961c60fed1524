"""The window read path decodes the log's JSON in bulk and gives the row-by-row table."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from watchkeeper.logstore import _arrow


def _rows(features: list[dict[str, Any]], predictions: list[Any], labels: list[Any]) -> list[Any]:
    return [
        (f"r{i}", 1.7e9 + i, 1, "champion", 0, "ok", None, 1.0,
         json.dumps(p), None, json.dumps(f), None if y is None else json.dumps(y), None, None)
        for i, (f, p, y) in enumerate(zip(features, predictions, labels, strict=True))
    ]  # fmt: skip


def _row_by_row(rows: list[Any], monkeypatch: pytest.MonkeyPatch) -> pa.Table:
    with monkeypatch.context() as m:
        m.setattr(_arrow, "_bulk_objects", lambda texts: None)
        m.setattr(_arrow, "_bulk_values", lambda texts: None)
        return _arrow.window_table(rows)


CASES: dict[str, Any] = {
    "numbers": lambda i, rng: {"x": float(rng.normal()), "k": int(i % 3), "b": bool(i % 2)},
    "ints and floats": lambda i, rng: {"x": 1 if i % 2 else 2.5},
    "missing keys": lambda i, rng: {"a": 1.0} if i % 3 else {"b": "s"},
    "all null": lambda i, rng: {"n": None, "x": 1.0},
    "dates as text": lambda i, rng: {"when": f"2024-01-{i % 28 + 1:02d}T00:00:00", "x": 1.0},
    "date only": lambda i, rng: {"day": f"2024-02-{i % 28 + 1:02d}"},
    "mixed kinds": lambda i, rng: {"m": "a" if i % 2 else 3, "x": 1.0},
    "nested": lambda i, rng: {"v": [1, 2], "o": {"p": 1}},
    "huge int": lambda i, rng: {"h": 2**70 if i == 3 else 1},
    "reserved names": lambda i, rng: {"id": "x", "label": 3.0, "prediction": 1},
    "unicode": lambda i, rng: {"s": 'é\u2028\\n"q"', "t": "ok"},
    "empty": lambda i, rng: {},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bulk_decode_equals_row_by_row(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    make = CASES[case]
    features = [make(i, rng) for i in range(40)]
    predictions = [
        float(i % 4) if case != "mixed kinds" else ("a" if i % 2 else 1) for i in range(40)
    ]
    labels = [None if i % 5 == 0 else i % 2 for i in range(40)]
    rows = _rows(features, predictions, labels)
    bulk = _arrow.window_table(rows)
    slow = _row_by_row(rows, monkeypatch)
    assert bulk.schema.equals(slow.schema, check_metadata=True)
    assert bulk.equals(slow)


def test_bulk_path_is_taken_for_plain_features() -> None:
    texts = [json.dumps({"x": float(i), "c": "a"}) for i in range(10)]
    table = _arrow._bulk_objects(texts)
    assert table is not None
    assert table.column_names == ["x", "c"]
    assert _arrow._bulk_objects([json.dumps({"m": 1}), json.dumps({"m": "a"})]) is None


def test_a_window_read_in_chunks_equals_one_table(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks whose feature columns differ (absent, int then float, number then text) unify
    into the table a single pass would build."""
    from pathlib import Path

    from watchkeeper.logstore import PredictionRecord, SQLiteLogSink, _sqlite

    sink = SQLiteLogSink(str(Path(str(tmp_path)) / "log.db"))
    records = []
    for i in range(2500):
        features: dict[str, Any] = {"x": i if i < 1000 else i + 0.5}
        if i >= 1200:
            features["late"] = "a"
        features["m"] = 1 if i < 2000 else "text"
        records.append(PredictionRecord(f"r{i:05d}", 1.7e9 + i, "m", 1, "c", features, 1.0))
    sink.write_predictions(records)
    whole = sink.read_window("m")
    monkeypatch.setattr(_sqlite, "_READ_CHUNK", 1000)
    chunked = sink.read_window("m")
    sink.close()
    assert chunked.num_rows == 2500
    assert chunked.schema.equals(whole.schema, check_metadata=True)
    assert chunked.equals(whole)
