"""Acceptance of data contracts: a contract proposed from the bundled bikeshare data passes on
that data and catches one planted violation of each rule kind on frames, on merged window
profiles and (for per-record kinds) on single records."""

from __future__ import annotations

from functools import cache
from typing import Any

import pandas as pd
import pytest

from watchkeeper.checks import CheckResult, Status, check_contract
from watchkeeper.data import Contract, Profile, Schema
from watchkeeper.datasets import load_bikeshare

KINDS = (
    "not_null",
    "allowed_values",
    "range",
    "regex",
    "relation",
    "unique",
    "monotone",
    "freshness",
    "row_count",
)
PER_RECORD = ("not_null", "allowed_values", "range", "regex", "relation")
#: Rules counted within profiled batches only: a merged profile without a violation inside
#: any batch says "not decidable" for them (never "ok").
WITHIN_BATCHES = {"unique", "monotone"}


@cache
def _reference() -> pd.DataFrame:
    df = load_bikeshare()
    # The bundled data has no identifier column: add ride ids of one shape, so that the
    # proposal has an id to put regex and uniqueness rules on.
    df.insert(0, "ride_id", [f"R-{i:05d}" for i in range(len(df))])
    return df


@cache
def _schema() -> Schema:
    schema = Schema.infer(_reference())
    return schema.with_contract(Contract.propose(_reference(), schema))


def _as_of(df: pd.DataFrame) -> pd.Timestamp:
    return pd.Timestamp(_reference()["timestamp"].max())


def _plant(kind: str) -> tuple[pd.DataFrame, Any]:
    """A copy of the reference with one violation of ``kind`` and the as_of to check it at."""
    df = _reference().copy()
    as_of: Any = _as_of(df)
    if kind == "not_null":
        df.loc[5, "temp"] = None
    elif kind == "allowed_values":
        df.loc[5, "weathersit"] = "tornado"
    elif kind == "range":
        df.loc[5, "hum"] = 7.5
    elif kind == "regex":
        df.loc[5, "ride_id"] = "ride five"
    elif kind == "relation":
        row = int(df.index[df["bikers"] < 50][0])
        df.loc[row, "casual"] = df.loc[row, "bikers"] + 1
    elif kind == "unique":
        df.loc[5, "ride_id"] = df.loc[6, "ride_id"]
    elif kind == "monotone":
        df.loc[[100, 101], "timestamp"] = df.loc[[101, 100], "timestamp"].to_numpy()
    elif kind == "freshness":
        as_of = as_of + pd.Timedelta(days=30)
    elif kind == "row_count":
        df = df.iloc[:0]
    return df, as_of


def _by_kind(results: list[CheckResult]) -> dict[str, set[Status]]:
    out: dict[str, set[Status]] = {}
    for r in results:
        out.setdefault(r.check.removeprefix("contract."), set()).add(r.status)
    return out


def _broken(results: list[CheckResult]) -> set[str]:
    return {
        r.check.removeprefix("contract.")
        for r in results
        if r.status in (Status.WARN, Status.ALERT)
    }


def _merged_profile(df: pd.DataFrame, n_parts: int = 4) -> Profile:
    reference = Profile.from_data(_reference(), _schema(), sample_size=1000)
    size = max(1, -(-len(df) // n_parts))
    parts = [
        Profile.from_data(df.iloc[i : i + size], _schema(), reference=reference, sample_size=1000)
        for i in range(0, max(len(df), 1), size)
    ]
    return Profile.merge_all(parts)


def test_the_proposal_has_every_rule_kind_and_passes_on_the_reference() -> None:
    contract = _schema().contract
    assert contract is not None
    assert {r.kind for r in contract.rules} == set(KINDS)
    results = check_contract(contract, _reference(), as_of=_as_of(_reference()))
    assert len(results) == len(contract)
    assert {r.status for r in results} == {Status.OK}
    assert all(r.value == 0.0 for r in results)


def test_the_proposal_passes_on_merged_profiles_of_the_reference() -> None:
    contract = _schema().contract
    assert contract is not None
    merged = _merged_profile(_reference())
    statuses = _by_kind(check_contract(contract, merged, as_of=_as_of(_reference())))
    for kind, found in statuses.items():
        # Order across batches is not tracked; repeats are (8,645 distinct values fit).
        expected = Status.INSUFFICIENT_DATA if kind == "monotone" else Status.OK
        assert found == {expected}, kind
    # One batch: decidable, and a pass.
    whole = Profile.from_data(_reference(), _schema())
    statuses = _by_kind(check_contract(contract, whole, as_of=_as_of(_reference())))
    assert set().union(*statuses.values()) == {Status.OK}


#: Rules a planted violation breaks besides its own kind (an empty frame has no timestamp).
_ALSO = {"row_count": {"freshness"}}


@pytest.mark.parametrize("kind", KINDS)
def test_a_planted_violation_is_caught_on_the_frame(kind: str) -> None:
    df, as_of = _plant(kind)
    results = check_contract(_schema(), df, as_of=as_of)
    assert _broken(results) == {kind} | _ALSO.get(kind, set())
    (hit,) = [r for r in results if r.check == f"contract.{kind}" and r.status is not Status.OK]
    assert hit.status is Status.ALERT
    assert hit.details["n_violations"] >= 1
    if kind not in ("freshness", "row_count", "not_null"):
        assert hit.details["examples"], hit.reason


@pytest.mark.parametrize("kind", KINDS)
def test_a_planted_violation_is_caught_on_merged_profiles(kind: str) -> None:
    df, as_of = _plant(kind)
    merged = _merged_profile(df)
    results = check_contract(_schema(), merged, as_of=as_of)
    assert _broken(results) == {kind} | _ALSO.get(kind, set())
    frame = {r.rule: r for r in check_contract(_schema(), df, as_of=as_of)}
    for r in results:
        if r.status is Status.INSUFFICIENT_DATA:
            assert r.check.removeprefix("contract.") in WITHIN_BATCHES, r.reason
            continue
        # Same verdict, same counts and examples as the concatenated rows.
        same = frame[r.rule]
        assert (r.status, r.value, r.details["examples"]) == (
            same.status,
            same.value,
            same.details["examples"],
        ), r.rule


def _record(df: pd.DataFrame, row: int) -> dict[str, Any]:
    values = df.iloc[row].to_dict()
    return {k: (None if pd.isna(v) else v) for k, v in values.items()}


@pytest.mark.parametrize("kind", PER_RECORD)
def test_a_planted_violation_is_caught_on_a_single_record(kind: str) -> None:
    contract = _schema().contract
    assert contract is not None
    reference = _reference()
    assert contract.check_record(_record(reference, 5)) == []
    df, _ = _plant(kind)
    row = 5 if kind != "relation" else int(df.index[df["casual"] > df["bikers"]][0])
    broken = contract.check_record(_record(df, row))
    assert [rule.kind for rule, _ in broken] == [kind]


def test_set_rules_are_not_applied_to_single_records() -> None:
    contract = _schema().contract
    assert contract is not None
    record = _record(_reference(), 0)
    record["timestamp"] = "1990-01-01T00:00:00"  # would break freshness on a window
    assert contract.check_record(record) == []
    assert not any(r.applies_to_records for r in contract.rules if r.kind in WITHIN_BATCHES)


def test_merge_and_merge_all_and_saved_profiles_keep_the_same_counts(tmp_path: Any) -> None:
    df, _ = _plant("regex")
    reference = Profile.from_data(_reference(), _schema(), sample_size=100)
    parts = [
        Profile.from_data(df.iloc[i : i + 3000], reference=reference, sample_size=100)
        for i in range(0, len(df), 3000)
    ]
    chained = parts[0].merge(parts[1]).merge(parts[2])
    at_once = Profile.merge_all(parts)
    assert chained.contract_counts == at_once.contract_counts
    for path in (tmp_path / "p.json", tmp_path / "p.wkprof"):
        again = Profile.load(at_once.save(path))
        assert again.contract_counts == at_once.contract_counts
        assert again.schema.contract == _schema().contract


def _profile_without_contract(df: pd.DataFrame) -> Profile:
    schema = Schema(_schema().columns)
    return Profile.from_data(df, schema)


@pytest.mark.parametrize(
    ("kind", "decided"),
    [
        ("not_null", True),
        ("allowed_values", True),
        ("range", True),
        ("freshness", True),
        ("row_count", True),
        ("regex", False),
        ("relation", False),
        ("unique", False),
        ("monotone", False),
    ],
)
def test_profiles_made_without_the_contract_decide_what_their_summaries_hold(
    kind: str, decided: bool
) -> None:
    df, as_of = _plant(kind)
    results = [
        r for r in check_contract(_schema(), _profile_without_contract(df), as_of=as_of)
        if r.check == f"contract.{kind}"
    ]  # fmt: skip
    assert results
    if decided:  # the planted column alerts; the other columns' rules of the kind pass
        assert sorted(r.status.value for r in results) == ["alert"] + ["ok"] * (len(results) - 1)
    else:
        assert {r.status for r in results} == {Status.INSUFFICIENT_DATA}
        assert "not decidable" in results[0].reason


def test_mostly_tolerates_a_share_and_severity_sets_the_status() -> None:
    df = pd.DataFrame({"x": [1.0] * 95 + [-1.0] * 5})
    loose = Contract.from_dict(
        {"rules": [{"kind": "range", "column": "x", "min": 0, "mostly": 0.95}]}
    )
    tight = Contract.from_dict({"rules": [{"kind": "range", "column": "x", "min": 0, "mostly": 0.96,
                                           "severity": "warn"}]})  # fmt: skip
    (ok,) = check_contract(loose, df)
    (warn,) = check_contract(tight, df)
    assert (ok.status, ok.value) == (Status.OK, 0.05)
    assert (warn.status, warn.value) == (Status.WARN, 0.05)
    assert not loose.rules[0].applies_to_records


def test_freshness_without_as_of_is_not_decided() -> None:
    (r,) = [
        r
        for r in check_contract(_schema(), _reference().head(100))
        if r.check == "contract.freshness"
    ]
    assert r.status is Status.INSUFFICIENT_DATA
    assert "as_of" in r.reason


def test_compare_lists_the_contract_with_the_quality_findings() -> None:
    import watchkeeper as wk

    reference = _reference().head(3000)
    current, _ = _plant("allowed_values")
    report = wk.compare(reference, current.head(3000), schema=_schema(), multivariate=None)
    contract = [q for q in report.quality if q.check.startswith("contract.")]
    # every rule but freshness (which needs a time), once
    assert sorted(r.rule for r in contract) == sorted(
        r.name for r in _schema().contract.rules if r.kind != "freshness"
    )
    assert [r.check for r in report.quality_findings if r.check.startswith("contract.")] == [
        "contract.allowed_values"
    ]
    assert "tornado" in report.to_html()
    without = wk.compare(reference, reference, schema=Schema(_schema().columns), multivariate=None)
    assert not [q for q in without.quality if q.check.startswith("contract.")]
