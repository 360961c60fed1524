"""compare(): the report contract, every input kind, profiles as references, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from watchkeeper import InputError, Profile, Schema, compare
from watchkeeper.checks import Status, ThresholdRule

COLUMN_KEYS = {"name", "kind", "method", "statistic", "p_value", "effect_size", "threshold",
               "status", "drifted"}  # fmt: skip


def _frames(seed: int = 0, n: int = 3000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "city": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "active": rng.random(n) < 0.3,
        }
    )
    cur = pd.DataFrame(
        {
            "age": rng.normal(45, 10, n),  # half a standard deviation: drift
            "income": rng.lognormal(10, 0.5, n),  # unchanged
            "city": rng.choice(["a", "b", "c", "d"], n, p=[0.1, 0.2, 0.3, 0.4]),  # drift
            "active": rng.random(n) < 0.3,  # unchanged
        }
    )
    return ref, cur


def test_detects_the_planted_drift_and_nothing_else() -> None:
    ref, cur = _frames()
    report = compare(ref, cur, multivariate=None)
    assert set(report.drifted_columns) == {"age", "city"}
    assert report.drifted
    assert report.dataset.n_drifted == 2
    assert report.dataset.n_tested == 4
    assert report.dataset.share_drifted == pytest.approx(0.5)
    # alerts sort first
    assert [c.status for c in report.columns[:2]] == [Status.ALERT, Status.ALERT]


def test_json_contract() -> None:
    ref, cur = _frames()
    report = compare(ref, cur)
    doc = json.loads(report.to_json())
    assert doc["format"] == "watchkeeper.drift-report/1"
    for col in doc["columns"]:
        assert set(col) >= COLUMN_KEYS
    assert {"drifted", "n_drifted", "share_drifted", "rule"} <= set(doc["dataset"])
    assert isinstance(doc["multivariate"], list)
    assert doc["multivariate"]
    assert isinstance(doc["quality"], list)
    meta = doc["meta"]
    assert meta["n_reference_rows"] == len(ref)
    assert meta["n_current_rows"] == len(cur)
    assert "total" in meta["timings_seconds"]
    assert meta["watchkeeper_version"]
    # strict JSON: no NaN anywhere
    json.loads(report.to_json(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))


def test_ks_column_agrees_with_scipy() -> None:
    from scipy import stats as sps

    ref, cur = _frames()
    report = compare(ref, cur, multivariate=None)
    col = report.column("age")
    expected = sps.ks_2samp(ref["age"], cur["age"])
    assert col.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert col.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_saved_profile_as_reference_gives_the_same_numbers(tmp_path: Path) -> None:
    ref, cur = _frames()
    schema = Schema.infer(ref)
    path = tmp_path / "ref.json"
    Profile.from_data(ref, schema).save(path)  # 3,000 rows: the sample keeps them all
    from_data = compare(ref, cur, schema=schema, multivariate=None)
    from_profile = compare(path, cur, multivariate=None)
    for a in from_data.columns:
        b = from_profile.column(a.name)
        assert (a.statistic, a.p_value, a.drifted) == pytest.approx(
            (b.statistic, b.p_value, b.drifted)
        )
    assert from_profile.meta["reference"] == "profile"
    assert "profile" in from_profile.column("age").reference_source


def test_profile_sample_smaller_than_reference_is_stated() -> None:
    ref, cur = _frames(n=5000)
    profile = Profile.from_data(ref, sample_size=1000)
    report = compare(profile, cur, multivariate=None)
    assert "1,000 of 5,000" in report.column("age").reference_source
    # binned and categorical methods use the profile's full counts
    assert "counts" in report.column("city").reference_source
    assert report.column("age").drifted


@pytest.mark.parametrize("kind", ["pandas", "polars", "arrow", "csv", "parquet"])
def test_every_input_kind_gives_the_same_report(kind: str, tmp_path: Path) -> None:
    ref, cur = _frames(n=1500)
    base = compare(ref, cur, multivariate=None)

    def convert(df: pd.DataFrame, name: str) -> object:
        if kind == "pandas":
            return df
        if kind == "polars":
            import polars as pl

            return pl.from_pandas(df)
        table = pa.Table.from_pandas(df, preserve_index=False)
        if kind == "arrow":
            return table
        path = tmp_path / f"{name}.{kind}"
        if kind == "csv":
            df.to_csv(path, index=False)
        else:
            pq.write_table(table, path)
        return str(path)

    other = compare(convert(ref, "ref"), convert(cur, "cur"), multivariate=None)
    for a in base.columns:
        b = other.column(a.name)
        assert a.statistic == pytest.approx(b.statistic, rel=1e-12)
        assert a.drifted == b.drifted


def test_threshold_and_chunks_rules_are_selectable() -> None:
    ref, cur = _frames()
    r1 = compare(ref, cur, rule=ThresholdRule(), multivariate=None)
    r2 = compare(ref, cur, rule="chunks", multivariate=None)
    assert r1.dataset.rule == "fixed_threshold"
    assert r2.dataset.rule == "reference_chunks"
    assert {"age", "city"} <= set(r1.drifted_columns)
    assert {"age", "city"} <= set(r2.drifted_columns)
    assert all(
        "reference chunks" in c.reason
        for c in r2.columns
        if c.status is not Status.INSUFFICIENT_DATA
    )


def test_methods_are_selectable_by_kind() -> None:
    ref, cur = _frames()
    report = compare(ref, cur, methods=["numeric=psi", "categorical=jensen_shannon"],
                     multivariate=None)  # fmt: skip
    assert report.column("age").method == "psi"
    assert report.column("city").method == "jensen_shannon"
    with pytest.raises(InputError, match="unknown drift method"):
        compare(ref, cur, methods={"numeric": "nope"})


def test_html_is_self_contained(tmp_path: Path) -> None:
    ref, cur = _frames()
    report = compare(ref, cur)
    html = report.to_html(tmp_path / "r.html")
    assert "<svg" in html
    assert "age" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert "<script" not in html


# ---------------------------------------------------------------- bad input


def test_empty_current_is_a_clear_error() -> None:
    ref, cur = _frames()
    with pytest.raises(InputError, match="no rows"):
        compare(ref, cur.iloc[:0])


def test_all_missing_column() -> None:
    ref, cur = _frames()
    cur["age"] = np.nan
    report = compare(ref, cur, multivariate=None)
    assert report.column("age").status is Status.INSUFFICIENT_DATA
    assert any(q.check == "quality.all_missing" and q.subject == "age" for q in report.quality)


def test_inf_values_are_reported_not_silently_used() -> None:
    ref, cur = _frames()
    cur.loc[:9, "income"] = np.inf
    report = compare(ref, cur, multivariate=None)
    q = [q for q in report.quality if q.check == "quality.non_finite"]
    assert q
    assert q[0].subject == "income"
    assert report.column("income").n_current == len(cur) - 10


def test_missing_and_extra_columns() -> None:
    ref, cur = _frames()
    cur = cur.drop(columns=["income"]).assign(new=1.0)
    report = compare(ref, cur, multivariate=None)
    checks = {(q.check, q.subject) for q in report.quality}
    assert ("quality.missing_column", "income") in checks
    assert ("quality.new_column", "new") in checks
    assert "income" not in [c.name for c in report.columns]


def test_zero_variance_reference() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x": np.full(500, 3.0), "y": rng.normal(size=500)})
    cur = pd.DataFrame({"x": rng.normal(3.0, 1.0, 500), "y": rng.normal(size=500)})
    report = compare(ref, cur, multivariate=None)
    x = report.column("x")
    assert x.drifted
    assert all(v is None or math.isfinite(v) for v in (x.statistic, x.p_value, x.effect_size))
    assert any(q.check == "quality.out_of_range" and q.subject == "x" for q in report.quality)


def test_single_row_current_is_insufficient() -> None:
    ref, cur = _frames()
    report = compare(ref, cur.iloc[:1])
    assert not report.drifted
    assert all(c.status is Status.INSUFFICIENT_DATA for c in report.columns)
    assert all(m.status is Status.INSUFFICIENT_DATA for m in report.multivariate)


def test_mixed_types_in_a_column() -> None:
    ref, cur = _frames()
    cur["age"] = cur["age"].astype(object)
    cur.loc[:4, "age"] = "unknown"
    report = compare(ref, cur, multivariate=None)
    found = [q for q in report.quality if q.subject == "age" and q.status is not Status.OK]
    assert found, "strings in a numeric column must be reported"


def test_ten_thousand_categories() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"code": [f"c{i}" for i in rng.integers(0, 10_000, 20_000)],
                        "x": rng.normal(size=20_000)})  # fmt: skip
    cur = pd.DataFrame({"code": [f"c{i}" for i in rng.integers(0, 10_000, 20_000)],
                        "x": rng.normal(size=20_000)})  # fmt: skip
    report = compare(ref, cur, multivariate=None)
    doc = json.loads(report.to_json())
    assert len(json.dumps(doc)) < 2_000_000  # bounded: top categories plus "other"
    statuses = {c["name"]: c["status"] for c in doc["columns"]}
    skipped = {s["name"] for s in report.meta["skipped_columns"]}
    assert "code" in statuses or "code" in skipped
    assert not report.drifted
