"""Inputs of a model version from its schema and its own feature names; value checks by
kind; the model input built once per batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from watchkeeper.data import ColumnKind, ColumnSpec, Schema
from watchkeeper.gateway._validation import (
    InputSpec,
    build_input,
    check_columns,
    check_record_id,
    records_to_columns,
)

SCHEMA = Schema(
    (
        ColumnSpec("n", "numeric"),
        ColumnSpec("flag", "boolean"),
        ColumnSpec("size", "categorical", categories=["S", "M"]),
        ColumnSpec("city", "categorical"),
        ColumnSpec("text", "text"),
        ColumnSpec("when", "datetime"),
        ColumnSpec("y", "numeric", "target"),
    )
)


def _locate(i: int, name: str) -> str:
    return f"[{i}].{name}"


def test_inputs_come_from_the_models_feature_names_in_its_order() -> None:
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(
        pd.DataFrame({"flag": [0, 1, 0], "n": [1.0, 2.0, 4.0]}), [1, 2, 3]
    )
    spec = InputSpec.for_model(SCHEMA, model)
    assert spec.columns == ("flag", "n")
    assert spec.kinds == (ColumnKind.BOOLEAN, ColumnKind.NUMERIC)
    assert spec.as_frame  # the model knows column names: give it a DataFrame
    assert "y" in spec.known  # the target is known (not "unknown"), but not an input


def test_inputs_from_the_schema_features_when_the_model_has_no_names() -> None:
    from sklearn.linear_model import LinearRegression

    numeric = Schema((ColumnSpec("a", "numeric"), ColumnSpec("b", "boolean")))
    model = LinearRegression().fit(np.eye(2), [1.0, 2.0])
    spec = InputSpec.for_model(numeric, model)
    assert spec.columns == ("a", "b")
    assert not spec.as_frame  # all numeric, no names: a float matrix
    mixed = InputSpec.for_model(SCHEMA, None)
    assert mixed.columns == ("n", "flag", "size", "city", "text", "when")
    assert mixed.as_frame


def test_no_schema_and_no_names_is_positional() -> None:
    from sklearn.linear_model import LinearRegression

    spec = InputSpec.for_model(None, LinearRegression().fit(np.eye(3), [1.0, 2.0, 3.0]))
    assert spec.n_positional == 3
    assert spec.columns == ()


GOOD: dict[str, list[Any]] = {
    "n": [1, 2.5, -0.0],
    "flag": [True, 0, 1],
    "size": ["S", "M", "S"],
    "city": ["Oslo", 7, True],
    "text": ["a", "", "long words here"],
    "when": ["2024-05-01T12:00:00+00:00", "2024-05-01", "2024-05-01T12:00:00Z"],
}


def test_good_values_pass_and_booleans_are_normalised() -> None:
    spec = InputSpec.for_model(SCHEMA, None)
    columns = {k: list(v) for k, v in GOOD.items()}
    assert check_columns(columns, spec, missing="reject", locate=_locate) == []
    assert columns["flag"] == [True, False, True]
    assert all(type(v) is bool for v in columns["flag"])


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("n", "1", "expected a number, got a string"),
        ("n", True, "expected a number, got true"),
        ("n", float("inf"), "must be a finite number"),
        ("n", [1], "expected a number, got a list"),
        ("flag", 2, "expected true or false, got a number"),
        ("flag", "true", "expected true or false, got a string"),
        ("size", "XL", "'XL' is not one of the declared categories (M, S)"),
        ("city", {"a": 1}, "expected a single value, got an object"),
        ("city", float("nan"), "must be a finite number or a string"),
        ("text", 3, "expected a string, got a number"),
        (
            "when",
            "yesterday",
            "'yesterday' is not an ISO 8601 date-time (e.g. 2024-05-01T12:00:00Z)",
        ),
        ("when", 1714560000, "expected an ISO 8601 date-time string, got a number"),
        ("n", None, "must not be null"),
    ],
)
def test_bad_values_are_named_with_the_reason(column: str, value: Any, problem: str) -> None:
    spec = InputSpec.for_model(SCHEMA, None)
    columns = {k: list(v) for k, v in GOOD.items()}
    columns[column][1] = value
    found = check_columns(columns, spec, missing="reject", locate=_locate)
    assert [p.to_dict() for p in found] == [{"field": f"[1].{column}", "problem": problem}]


def test_null_is_allowed_under_the_null_policy() -> None:
    spec = InputSpec.for_model(SCHEMA, None)
    columns = {k: list(v) for k, v in GOOD.items()}
    columns["n"][0] = None
    assert check_columns(columns, spec, missing="null", locate=_locate) == []


def test_records_policies_ids_and_known_fields() -> None:
    spec = InputSpec.for_model(SCHEMA, None)
    base = {k: v[0] for k, v in GOOD.items()}
    records = [
        {**base, "id": "r-1", "y": 3.0},  # target: known, not an input, not unknown
        {**base, "colour": "red"},
        {k: v for k, v in base.items() if k != "text"},
        {**base, "id": ""},
    ]
    columns, ids, problems = records_to_columns(
        records, spec, unknown="reject", missing="reject", locate=_locate
    )
    assert ids == ["r-1", None, None, None]
    assert [(p.field, p.problem.split(";")[0]) for p in problems] == [
        ("[1].colour", "unknown field"),
        ("[2].text", "is required"),
        ("[3].id", "must be a non-empty string of at most 128 printable characters"),
    ]
    # The missing field is reported once, not again as null.
    assert check_columns(columns, spec, missing="reject", locate=_locate) == []
    _, _, lenient = records_to_columns(
        records, spec, unknown="ignore", missing="null", locate=_locate
    )
    assert [p.field for p in lenient] == ["[3].id"]


def test_an_input_named_id_is_a_feature_not_the_prediction_id() -> None:
    spec = InputSpec.for_model(Schema((ColumnSpec("id", "numeric"),)), None)
    columns, ids, problems = records_to_columns(
        [{"id": 5}], spec, unknown="reject", missing="reject", locate=_locate
    )
    assert (columns, ids, problems) == ({"id": [5]}, [None], [])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a", "a"),
        (12, "12"),
        ("x" * 128, "x" * 128),
        ("x" * 129, None),
        ("a\nb", None),
        (1.5, None),
        (True, None),
    ],
)
def test_record_ids(value: Any, expected: str | None) -> None:
    found = check_record_id(value, "id")
    assert (found if isinstance(found, str) else None) == expected


def test_build_input_matrix_and_frame() -> None:
    numeric = Schema((ColumnSpec("a", "numeric"), ColumnSpec("b", "boolean")))
    matrix = build_input({"b": [True, False], "a": [1, None]}, InputSpec.for_model(numeric, None))
    np.testing.assert_array_equal(matrix, np.array([[1.0, 1.0], [np.nan, 0.0]]))
    assert matrix.flags.c_contiguous
    frame = build_input({k: list(v) for k, v in GOOD.items()}, InputSpec.for_model(SCHEMA, None))
    assert list(frame.columns) == ["n", "flag", "size", "city", "text", "when"]
    assert frame["n"].dtype == np.float64
    assert isinstance(frame["when"].dtype, pd.DatetimeTZDtype)
    assert frame["when"].iloc[1] == pd.Timestamp("2024-05-01", tz="UTC")
