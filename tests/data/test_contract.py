"""Contract rules: JSON form in the schema file, errors that name the rule, exact counts on
rows against a plain pandas computation, the proposal, and TFDV / Great Expectations import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from watchkeeper.data import (
    AllowedValues,
    ColumnSpec,
    Contract,
    Monotone,
    NotNull,
    Profile,
    Range,
    Regex,
    Relation,
    RowCount,
    Schema,
    Unique,
)
from watchkeeper.exceptions import InputError

ALL_KINDS = [
    {"kind": "not_null", "column": "x"},
    {"kind": "allowed_values", "column": "c", "values": ["a", "b"], "mostly": 0.9},
    {"kind": "range", "column": "x", "min": 0, "max": 10, "strict": True},
    {"kind": "regex", "column": "c", "pattern": "^[a-z]$", "severity": "warn"},
    {"kind": "relation", "left": "y", "op": ">", "right": "x"},
    {"kind": "unique", "column": "c"},
    {"kind": "monotone", "column": "t", "direction": "decreasing", "strict": True},
    {"kind": "freshness", "column": "t", "max_age_seconds": 60},
    {"kind": "row_count", "min": 1, "max": 100},
]


def _schema(contract: Contract | None = None) -> Schema:
    return Schema(
        (
            ColumnSpec("x", "numeric"),
            ColumnSpec("y", "numeric"),
            ColumnSpec("c", "categorical"),
            ColumnSpec("t", "datetime", "timestamp"),
        ),
        contract,
    )


def test_every_rule_kind_round_trips_through_the_schema_file(tmp_path: Path) -> None:
    contract = Contract.from_dict({"rules": ALL_KINDS})
    schema = _schema(contract)
    path = schema.save(tmp_path / "schema.json")
    payload = json.loads(path.read_text())
    assert payload["format_version"] == 2
    assert [r["kind"] for r in payload["contract"]["rules"]] == [r["kind"] for r in ALL_KINDS]
    again = Schema.load(path)
    assert again == schema
    assert again.contract is not None
    assert again.contract.to_dict() == contract.to_dict()


def test_version_1_schema_files_are_still_read(tmp_path: Path) -> None:
    old = {"format_version": 1, "columns": [{"name": "x", "kind": "numeric", "role": "feature"}]}
    (tmp_path / "s.json").write_text(json.dumps(old))
    schema = Schema.load(tmp_path / "s.json")
    assert schema.names == ("x",)
    assert schema.contract is None


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": "no_such_rule", "column": "x"}, "unknown contract rule kind 'no_such_rule'"),
        ({"kind": "range", "column": "x"}, "contract rule 'range' on 'x': give min, max or both"),
        ({"kind": "range", "column": "x", "min": 5, "max": 1}, "min 5.0 is above max 1.0"),
        ({"kind": "range", "column": "x", "min": "low"}, "min must be a number"),
        ({"kind": "range", "column": "x", "minimum": 0}, "unknown parameters ['minimum']"),
        ({"kind": "not_null", "column": "x", "mostly": 1.5}, "mostly must be in (0, 1]"),
        ({"kind": "not_null", "column": "x", "severity": "page"}, "severity must be 'alert'"),
        ({"kind": "regex", "column": "c", "pattern": "(unclosed"}, "is not a regular expression"),
        ({"kind": "relation", "left": "x", "op": "=>", "right": "y"}, "op must be one of"),
        ({"kind": "allowed_values", "column": "c", "values": "ab"}, "values must be a list"),
        ({"kind": "monotone", "column": "t", "direction": "up"}, "direction must be"),
        ({"kind": "freshness", "column": "t", "max_age_seconds": 0}, "positive number"),
        ({"kind": "row_count", "min": -1}, "whole number >= 0"),
        ({"column": "x"}, "must be an object with a 'kind'"),
    ],
)
def test_bad_rules_raise_input_errors_naming_the_rule(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as info:
        Contract.from_dict({"rules": [rule]})
    assert message in str(info.value)


def test_rules_may_only_name_columns_of_the_schema() -> None:
    with pytest.raises(InputError, match=r"range\(z\) names column 'z'"):
        _schema(Contract((Range(column="z", min=0),)))
    with pytest.raises(InputError, match="the same rule twice"):
        Contract((NotNull(column="x"), NotNull(column="x")))


def test_derived_schemas_keep_the_contract_and_select_keeps_the_rules_it_can() -> None:
    contract = Contract((NotNull(column="x"), Relation(left="y", right="x"), RowCount(min=1)))
    schema = _schema(contract)
    assert schema.with_roles({"y": "target"}).contract == contract
    assert schema.with_kinds({"c": "text"}).contract == contract
    assert schema.with_categories({"c": ["a"]}).contract == contract
    picked = schema.select(["x"]).contract
    assert picked is not None
    assert [r.kind for r in picked.rules] == ["not_null", "row_count"]
    assert schema.with_contract(None).contract is None


def _random_frame(seed: int, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(5, 3, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "y": x + rng.normal(0.5, 1, n),
            "c": rng.choice(["a", "b", "cc", "D"], n),
            "t": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(np.sort(rng.integers(0, 10**6, n)), "s"),
        }
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counts_on_rows_equal_a_plain_pandas_computation(seed: int) -> None:
    df = _random_frame(seed)
    df.loc[df.sample(7, random_state=seed).index, "t"] = pd.Timestamp("2023-06-01")
    contract = Contract.from_dict({"rules": ALL_KINDS[:7]})
    got = {o.rule.kind: o.n_violations for o in contract.evaluate(df)}
    present = df["x"].dropna()
    both = df[["x", "y"]].dropna()
    t = df["t"].dropna().astype("int64")
    expected = {
        "not_null": int(df["x"].isna().sum()),
        "allowed_values": int((~df["c"].isin(["a", "b"])).sum()),
        "range": int(((present <= 0) | (present >= 10)).sum()),
        "regex": int((~df["c"].str.fullmatch("[a-z]")).sum()),
        "relation": int((both["y"] <= both["x"]).sum()),
        "unique": int(len(df) - df["c"].nunique()),
        "monotone": int((np.diff(t.to_numpy()) >= 0).sum()),
    }
    assert got == expected


def test_profile_counts_merge_to_the_counts_of_all_rows() -> None:
    df = _random_frame(3)
    schema = Schema.infer(df).with_contract(Contract.from_dict({"rules": ALL_KINDS[:5]}))
    whole = Profile.from_data(df, schema)
    parts = [
        Profile.from_data(df.iloc[i : i + 300], reference=whole) for i in range(0, len(df), 300)
    ]
    merged = Profile.merge_all(parts)
    assert merged.contract_counts is not None
    assert whole.contract_counts is not None
    for key, count in whole.contract_counts.items():
        got = merged.contract_counts[key]
        assert (got.n_checked, got.n_violations, got.examples) == (
            count.n_checked,
            count.n_violations,
            count.examples,
        )


def test_rebased_profiles_keep_the_counts_made_in_row_order() -> None:
    df = pd.DataFrame({"t": np.arange(50.0), "x": np.ones(50)})
    schema = Schema.infer(df).with_contract(Contract((Monotone(column="t"),)))
    reference = Profile.from_data(pd.DataFrame({"t": np.arange(10.0), "x": np.ones(10)}), schema)
    alone = Profile.from_data(df, schema)
    rebased = alone.rebased(reference)
    assert rebased.contract_counts == alone.contract_counts
    (outcome,) = Contract((Monotone(column="t"),)).evaluate_profile(rebased)
    assert outcome.n_violations == 0


def test_record_checks_name_the_rule_and_skip_absent_optional_values() -> None:
    contract = Contract(
        (
            NotNull(column="x"),
            AllowedValues(column="c", values=("a", "b", "true", "1")),
            Range(column="x", min=0),
            Regex(column="c", pattern="^[a-z1]+$"),
            Relation(left="y", op=">=", right="x"),
            Unique(column="c"),
            Range(column="y", max=1, mostly=0.9),  # tolerance: not applied per record
        )
    )
    assert contract.check_record({"x": 1.0, "y": 5, "c": "a"}) == []
    assert contract.check_record({"x": 1, "c": True}) == []  # booleans compare as "true"
    assert contract.check_record({"x": 1, "c": 1.0}) == []  # whole floats as "1"
    found = [(r.name, why) for r, why in contract.check_record({"x": -2, "y": -3, "c": "Z"})]
    assert found == [
        ("allowed_values(c)", "must be one of 'a', 'b', 'true', '1', got 'Z'"),
        ("range(x)", "must be at least 0, got -2"),
        ("regex(c)", "must match '^[a-z1]+$', got 'Z'"),
        ("relation(y >= x)", "must be >= x (-2), got -3"),
    ]
    assert [r.name for r, _ in contract.check_record({"y": 1})] == ["not_null(x)"]
    times = Contract((Relation(left="end", op=">=", right="start"),))
    bad = times.check_record({"start": "2024-01-02T00:00:00Z", "end": "2024-01-01"})
    assert [r.name for r, _ in bad] == ["relation(end >= start)"]


def test_value_shapes() -> None:
    from watchkeeper.data._contract_propose import value_shape

    assert value_shape(["AB-12", "C-3"]) == r"^[A-Z]{1,2}\-[0-9]{1,2}$"
    assert value_shape(["ab", "a1"]) is None
    ids = [f"u{i:04d}x" for i in range(30)]
    pattern = value_shape(ids)
    assert pattern is not None
    rule = Regex(column="id", pattern=pattern)
    assert rule.evaluate(pa_table({"id": [*ids, "u12x", "U0001x"]})).n_violations == 2


def pa_table(columns: dict[str, list[Any]]) -> Any:
    import pyarrow as pa

    return pa.table(columns)


def test_the_proposal_holds_on_its_data_for_random_frames() -> None:
    for seed in range(5):
        df = _random_frame(seed, n=300)
        df["id"] = [f"K{seed}-{i:03d}" for i in range(len(df))]
        contract = Contract.propose(df)
        kinds = {r.kind for r in contract.rules}
        assert {"range", "allowed_values", "unique", "regex", "monotone", "freshness"} <= kinds
        outcomes = contract.evaluate(df, as_of=df["t"].max())
        assert all(o.n_violations == 0 for o in outcomes), [
            (o.rule.name, o.examples) for o in outcomes if o.n_violations
        ]


TFDV_TEXT = """
# A TFDV schema (text format) as tfdv.write_schema_text writes it.
feature {
  name: "age"
  type: INT
  presence { min_fraction: 1.0 min_count: 1 }
  int_domain { min: 0 max: 120 }
}
feature {
  name: "score"
  type: FLOAT
  float_domain { min: -1.5 max: 1.5 }
  presence: { min_fraction: 0.95 }
  distribution_constraints { min_domain_mass: 0.9 }
}
feature {
  name: "plan"
  type: BYTES
  domain: "plan"
  drift_comparator { infinity_norm { threshold: 0.01 } }
}
string_domain {
  name: "plan"
  value: "free"
  value: "pro"
  value: "team \\"x\\""
}
dataset_constraints { min_examples_count: 10 }
default_environment: "SERVING"
"""


def test_tfdv_text_schema_maps_presence_domains_and_row_counts() -> None:
    found = Contract.from_tfdv(TFDV_TEXT)
    rules = {r.name: r for r in found.contract.rules}
    assert rules["not_null(age)"].mostly == 1.0
    assert rules["not_null(score)"].mostly == 0.95
    assert (rules["range(age)"].min, rules["range(age)"].max) == (0.0, 120.0)
    assert (rules["range(score)"].min, rules["range(score)"].max) == (-1.5, 1.5)
    assert rules["allowed_values(plan)"].values == ("free", "pro", 'team "x"')
    assert rules["row_count(dataset)"].min == 10
    assert set(found.unmapped) == {
        "feature score: distribution_constraints",
        "feature plan: drift_comparator",
        "default_environment",
    }


def test_tfdv_json_form_gives_the_same_contract() -> None:
    payload = {
        "feature": [
            {"name": "age", "type": "INT", "presence": {"minFraction": 1.0, "minCount": "1"},
             "intDomain": {"min": "0", "max": "120"}},
            {"name": "plan", "type": "BYTES", "stringDomain": {"value": ["free", "pro"]}},
        ]
    }  # fmt: skip
    found = Contract.from_tfdv(json.dumps(payload))
    assert [r.name for r in found.contract.rules] == [
        "not_null(age)",
        "range(age)",
        "allowed_values(plan)",
    ]
    assert found.unmapped == ()
    assert Contract.from_tfdv(payload).contract == found.contract


def test_bad_tfdv_text_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unclosed"):
        Contract.from_tfdv('feature { name: "a" ')


GE_SUITE = {
    "expectation_suite_name": "rides",
    "expectations": [
        {"expectation_type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {"expectation_type": "expect_column_values_to_be_between",
         "kwargs": {"column": "fare", "min_value": 0, "max_value": 500, "mostly": 0.99}},
        {"expectation_type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "plan", "value_set": ["free", "pro"]}},
        {"expectation_type": "expect_column_values_to_match_regex",
         "kwargs": {"column": "id", "regex": "^R-[0-9]+$"}},
        {"expectation_type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"expectation_type": "expect_table_row_count_to_be_between",
         "kwargs": {"min_value": 100, "max_value": None}},
        {"expectation_type": "expect_column_pair_values_A_to_be_greater_than_B",
         "kwargs": {"column_A": "end", "column_B": "start", "or_equal": True}},
        {"type": "expect_column_values_to_be_increasing",
         "kwargs": {"column": "start", "strictly": True}},
        {"expectation_type": "expect_column_mean_to_be_between",
         "kwargs": {"column": "fare", "min_value": 5}},
        {"expectation_type": "expect_column_values_to_be_between",
         "kwargs": {"column": "fare", "min_value": 0, "parse_strings_as_datetimes": True}},
    ],
}  # fmt: skip


def test_great_expectations_suite_maps_and_lists_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(GE_SUITE))
    found = Contract.from_great_expectations(path)
    assert [r.name for r in found.contract.rules] == [
        "not_null(id)",
        "range(fare)",
        "allowed_values(plan)",
        "regex(id)",
        "unique(id)",
        "row_count(dataset)",
        "relation(end >= start)",
        "monotone(start)",
    ]
    rules = found.contract.rules
    assert rules[1].mostly == 0.99
    assert isinstance(rules[7], Monotone)
    assert rules[7].strict
    assert found.unmapped == (
        "expect_column_mean_to_be_between(column=fare, min_value=5)",
        "expect_column_values_to_be_between(column=fare, min_value=0, "
        "parse_strings_as_datetimes=True)",
    )
    assert Contract.from_great_expectations(json.dumps(GE_SUITE)).contract == found.contract


def test_great_expectations_errors_name_the_expectation() -> None:
    suite = {"expectations": [{"expectation_type": "expect_column_values_to_not_be_null",
                               "kwargs": {}}]}  # fmt: skip
    with pytest.raises(InputError, match="expect_column_values_to_not_be_null"):
        Contract.from_great_expectations(suite)
    with pytest.raises(InputError, match="list 'expectations'"):
        Contract.from_great_expectations({"rules": []})


def test_rows_without_order_leave_row_order_rules_uncounted() -> None:
    df = pd.DataFrame({"t": [3.0, 1.0, 2.0], "x": [1.0, 1.0, 1.0]})
    contract = Contract((Monotone(column="t"), Unique(column="x")))
    schema = Schema.infer(df).with_contract(contract)
    ordered = Profile.from_data(df, schema)
    unordered = Profile.from_data(df, schema, row_order=False)
    assert [o.n_violations for o in contract.evaluate_profile(ordered)] == [1, 2]
    monotone, unique = contract.evaluate_profile(unordered)
    assert monotone.n_violations is None
    assert "no order" in monotone.note
    assert unique.n_violations == 2


@pytest.mark.parametrize("kind", ["numbers", "strings"])
def test_unique_counts_repeats_across_merged_batches(kind: str) -> None:
    values = np.arange(600.0) if kind == "numbers" else np.array([f"id{i}" for i in range(600)])
    values[450] = values[10]  # a repeat across batches (rows 10 and 450)
    values[20] = values[21]  # and one inside the first batch
    df = pd.DataFrame({"k": values})
    contract = Contract((Unique(column="k"),))
    schema = Schema.infer(df).with_contract(contract)
    ref = Profile.from_data(df, schema)
    parts = [Profile.from_data(df.iloc[i : i + 200], reference=ref) for i in range(0, 600, 200)]
    chained = parts[0].merge(parts[1]).merge(parts[2])
    at_once = Profile.merge_all(parts)
    (rows,) = contract.evaluate(df)
    for merged in (chained, at_once, Profile.from_bytes(at_once.to_bytes())):
        (outcome,) = contract.evaluate_profile(merged)
        assert outcome.n_violations == rows.n_violations == 2
    # Without the repeat inside a batch, the merged profile still finds the one across.
    df.loc[20, "k"] = values[22] if kind == "numbers" else "other"
    df.loc[22, "k"] = 10_000.0 if kind == "numbers" else "other2"
    parts = [Profile.from_data(df.iloc[i : i + 200], reference=ref) for i in range(0, 600, 200)]
    (outcome,) = contract.evaluate_profile(Profile.merge_all(parts))
    assert outcome.n_violations == 1


def test_unique_beyond_the_tracked_size_is_decided_within_batches_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import watchkeeper.data._contract as core
    import watchkeeper.data._contract_sets as sets

    monkeypatch.setattr(sets, "MAX_SEEN", 50)
    monkeypatch.setattr(core, "MAX_SEEN", 50)
    df = pd.DataFrame({"k": np.r_[np.arange(100.0), [5.0]]})  # a repeat in the last batch
    contract = Contract((Unique(column="k"),))
    schema = Schema.infer(df).with_contract(contract)
    ref = Profile.from_data(df, schema)
    clean = [Profile.from_data(df.iloc[i : i + 40], reference=ref) for i in (0, 40)]
    (outcome,) = contract.evaluate_profile(Profile.merge_all(clean))
    assert outcome.n_violations is None
    assert "does not track it across batches" in outcome.note
