"""Schema inference, declaration, validation and persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from watchkeeper.data import ColumnKind, ColumnSpec, Role, Schema, SchemaReport
from watchkeeper.exceptions import InputError, SchemaError


def _kinds(schema: Schema) -> dict[str, tuple[str, str]]:
    return {c.name: (c.kind.value, c.role.value) for c in schema}


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 2_000
    words = np.array(["alpha", "beta", "gamma", "delta", "storm", "river", "mountain"])
    text = [" ".join(rng.choice(words, size=8)) + f" #{i}" for i in range(n)]
    return pd.DataFrame(
        {
            "amount": rng.normal(size=n),
            "n_items": rng.integers(0, 3, size=n),  # few distinct ints stay numeric
            "is_new": rng.random(n) < 0.5,
            "ts": pd.date_range("2024-01-01", periods=n, freq="h"),
            "plan": rng.choice(["free", "pro", "team"], size=n),
            "zip": rng.choice([f"Z{i:03d}" for i in range(30)], size=n).astype(object),
            "sku": rng.choice([f"S{i:04d}" for i in range(40)], size=n),
            "code": [f"C{i % 1000:04d}" for i in range(n)],  # 1000 distinct short codes
            "session": [f"s-{i:06d}" for i in range(n)],  # all unique, no id-like name
            "user_id": np.arange(n),
            "comment": text,
            "segment": pd.Categorical(rng.choice(["a", "b"], size=n)),
        }
    )


def test_inference_rules(mixed_frame: pd.DataFrame) -> None:
    schema = Schema.infer(mixed_frame, roles={"is_new": "target"})
    assert _kinds(schema) == {
        "amount": ("numeric", "feature"),
        "n_items": ("numeric", "feature"),
        "is_new": ("boolean", "target"),
        "ts": ("datetime", "timestamp"),
        "plan": ("categorical", "feature"),
        "zip": ("categorical", "feature"),
        "sku": ("categorical", "feature"),
        "code": ("text", "feature"),
        "session": ("categorical", "id"),
        "user_id": ("numeric", "id"),
        "comment": ("text", "feature"),
        "segment": ("categorical", "feature"),
    }
    assert "distinct" in schema["code"].note
    assert "kinds=" in schema["code"].note
    assert "unique" in schema["session"].note
    assert "free text" in schema["comment"].note
    assert schema["amount"].dtype == "double"
    assert schema.features == (
        "amount", "n_items", "plan", "zip", "sku", "code", "comment", "segment",
    )  # fmt: skip


def test_high_cardinality_relative_to_rows_is_categorical() -> None:
    rng = np.random.default_rng(1)
    cats = [f"c{i}" for i in range(120)]
    df = pd.DataFrame({"c": rng.choice(cats, size=20_000)})
    spec = Schema.infer(df)["c"]
    assert spec.kind is ColumnKind.CATEGORICAL
    assert "high-cardinality" in spec.note
    assert Schema.infer(df, max_categories=200)["c"].note == ""


def test_two_datetime_columns_are_features_unless_declared() -> None:
    t = pd.date_range("2024-01-01", periods=3, freq="D")
    df = pd.DataFrame({"a": t, "b": t})
    assert _kinds(Schema.infer(df)) == {"a": ("datetime", "feature"), "b": ("datetime", "feature")}
    declared = Schema.infer(df, roles={"b": Role.TIMESTAMP})
    assert declared["a"].role is Role.FEATURE
    assert declared["b"].role is Role.TIMESTAMP


def test_mixed_types_are_categorical_with_note_and_validate_reports_them() -> None:
    df = pd.DataFrame({"m": ["a", "b", 3, "c", 4.5, "d"]})
    schema = Schema.infer(df)
    spec = schema["m"]
    assert spec.kind is ColumnKind.CATEGORICAL
    assert "mixed Python types" in spec.note
    assert "int: 1" in spec.note
    report = schema.validate(df)
    assert not report.ok
    (mismatch,) = report.type_mismatches
    assert mismatch.column == "m"
    assert mismatch.n_bad == 2
    assert set(mismatch.examples) == {"3", "4.5"}


def test_all_missing_and_nested_columns() -> None:
    table = pa.table({"none": pa.array([None, None], pa.null()), "lists": pa.array([[1], [2, 3]])})
    schema = Schema.infer(table)
    assert schema["none"].kind is ColumnKind.CATEGORICAL
    assert "missing" in schema["none"].note
    assert (schema["lists"].kind, schema["lists"].role) == (ColumnKind.TEXT, Role.IGNORED)


def test_declared_kinds_override() -> None:
    df = pd.DataFrame({"code": [1, 2, 3, 1], "x": [0.1, 0.2, 0.3, 0.4]})
    schema = Schema.infer(df, kinds={"code": "categorical"})
    assert schema["code"].kind is ColumnKind.CATEGORICAL
    assert schema["code"].note == "kind declared"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"roles": {"nope": "target"}}, "not in the data"),
        ({"roles": {"x": "boss"}}, "unknown role 'boss'"),
        ({"kinds": {"x": "vector"}}, "unknown column kind"),
        ({"max_categories": 0}, "max_categories"),
    ],
)
def test_infer_rejects_bad_declarations(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Schema.infer(pd.DataFrame({"x": [1.0]}), **kwargs)  # type: ignore[arg-type]


def test_single_row_infers() -> None:
    schema = Schema.infer(pd.DataFrame({"id": ["a"], "x": [1.0]}))
    # One value cannot prove uniqueness, so a one-row "id" column stays a feature.
    assert _kinds(schema) == {"id": ("categorical", "feature"), "x": ("numeric", "feature")}


def test_access_and_new_schemas() -> None:
    schema = Schema(
        (
            ColumnSpec("a", "numeric"),
            ColumnSpec("b", "categorical"),
            ColumnSpec("y", "numeric", "target"),
        )
    )
    assert "a" in schema
    assert "zz" not in schema
    assert len(schema) == 3
    with pytest.raises(KeyError, match="not in the schema"):
        schema["zz"]
    with pytest.raises(InputError, match="not in the schema"):
        schema["zz"]
    assert schema.select(["y", "a"]).names == ("y", "a")
    with pytest.raises(InputError, match="unknown columns"):
        schema.select(["a", "zz"])
    assert schema.with_roles({"b": "sensitive"})["b"].role is Role.SENSITIVE
    assert schema["b"].role is Role.FEATURE  # unchanged original
    assert schema.with_kinds({"a": "categorical"})["a"].kind is ColumnKind.CATEGORICAL
    assert schema.with_role("target") == ("y",)
    with pytest.raises(InputError, match="appears twice"):
        Schema((ColumnSpec("a", "numeric"), ColumnSpec("a", "text")))


def test_validate_finds_missing_extra_and_mismatched_columns() -> None:
    schema = Schema(
        (
            ColumnSpec("x", "numeric"),
            ColumnSpec("when", "datetime"),
            ColumnSpec("ok", "boolean"),
            ColumnSpec("size", "categorical", categories=("S", "M")),
            ColumnSpec("gone", "numeric"),
        )
    )
    df = pd.DataFrame(
        {
            "x": ["1", "2", "three", "4"],
            "when": ["2024-01-01", "2024-01-02", "yesterday", None],
            "ok": ["true", "0", "maybe", "1"],
            "size": ["S", "M", "XL", "XL"],
            "new": [1, 2, 3, 4],
        }
    )
    report = schema.validate(df)
    assert report.missing_columns == ("gone",)
    assert report.extra_columns == ("new",)
    found = {m.column: (m.expected_kind, m.n_bad, m.examples) for m in report.type_mismatches}
    assert found == {
        "x": ("numeric", 1, ("three",)),
        "when": ("datetime", 1, ("yesterday",)),
        "ok": ("boolean", 1, ("maybe",)),
        "size": ("categorical", 2, ("XL",)),
    }
    assert not report.ok
    with pytest.raises(SchemaError) as info:
        report.raise_for_errors()
    message = str(info.value)
    for piece in (
        "missing column 'gone'",
        "'x' should be numeric",
        "e.g. three",
        "extra column 'new'",
    ):
        assert piece in message
    assert len(message.splitlines()) == 1 + 6 + 1
    json.dumps(report.to_dict())


def test_validate_passes_on_matching_data() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"], "t": pd.to_datetime(["2024-01-01"] * 2)})
    report = Schema.infer(df).validate(df)
    assert report == SchemaReport()
    assert report.ok
    report.raise_for_errors()


def test_round_trip(tmp_path: Path, mixed_frame: pd.DataFrame) -> None:
    schema = Schema.infer(mixed_frame).with_categories({"plan": ["free", "pro", "team"]})
    path = schema.save(tmp_path / "sub" / "schema.json")
    assert Schema.load(path) == schema
    assert Schema.from_dict(json.loads(path.read_text())) == schema


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        Schema.load(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        Schema.load(broken)
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"format_version": 99, "columns": []}))
    with pytest.raises(InputError, match="upgrade watchkeeper"):
        Schema.load(newer)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"columns": [{"kind": "numeric"}]}))
    with pytest.raises(InputError, match="not a valid watchkeeper schema"):
        Schema.load(wrong)
