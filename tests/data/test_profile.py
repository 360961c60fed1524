"""Profile contents against reference implementations, edge cases and persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from scipy import stats

from watchkeeper.data import (
    CategoricalColumnProfile,
    ColumnSpec,
    DatetimeColumnProfile,
    NumericColumnProfile,
    Profile,
    Schema,
    TextColumnProfile,
)
from watchkeeper.data.profile import BINARY_FORMAT_VERSION, PROFILE_MAGIC
from watchkeeper.exceptions import InputError
from watchkeeper.stats import bin_counts, reference_bin_edges

from ._helpers import assert_profiles_match


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 5_000
    x = rng.gamma(2.0, 3.0, size=n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(-3, 4, size=n),
            "c": rng.choice(["red", "green", "blue", "grey"], p=[0.5, 0.3, 0.15, 0.05], size=n),
            "b": rng.random(n) < 0.2,
            "t": pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.integers(0, 10**6, n), "s"),
            "note": [f"free text number {i} with words" for i in rng.integers(0, 800, n)],
        }
    )


@pytest.fixture(scope="module")
def schema(frame: pd.DataFrame) -> Schema:
    return Schema.infer(frame, kinds={"note": "text"})


def test_numeric_matches_numpy_and_scipy(frame: pd.DataFrame, schema: Schema) -> None:
    p = Profile.from_data(frame, schema)
    col = p.columns["x"]
    assert isinstance(col, NumericColumnProfile)
    x = frame["x"].to_numpy()
    finite = x[np.isfinite(x)]
    assert (col.count, col.n_missing, col.n_inf, col.n_type_errors) == (
        finite.size, int(np.isnan(x).sum()), 0, 0,
    )  # fmt: skip
    assert col.n == len(frame)
    assert col.min == finite.min()
    assert col.max == finite.max()
    np.testing.assert_allclose(col.mean, finite.mean(), rtol=1e-12)
    np.testing.assert_allclose(col.variance, finite.var(ddof=1), rtol=1e-12)
    np.testing.assert_allclose(col.std, finite.std(ddof=1), rtol=1e-12)
    np.testing.assert_allclose(col.skewness, stats.skew(finite), rtol=1e-9)
    np.testing.assert_allclose(col.kurtosis, stats.kurtosis(finite), rtol=1e-9)
    edges = reference_bin_edges(finite)
    assert col.bin_edges == tuple(edges)
    assert col.bin_counts == tuple(bin_counts(finite, edges))
    assert col.n_below_reference_min is None  # no reference
    for q in (0.05, 0.5, 0.95):
        # Within the documented rank error of the exact inverse-CDF quantile.
        exact_rank = np.mean(finite <= col.quantile(q))
        assert abs(exact_rank - q) <= 2 * col.quantile_rank_error + 1 / finite.size


def test_current_profile_uses_reference_bins_and_range(frame: pd.DataFrame, schema: Schema) -> None:
    ref = Profile.from_data(frame, schema)
    shifted = frame.assign(x=frame["x"] + 20.0, c=frame["c"].replace({"grey": "purple"}))
    cur = Profile.from_data(shifted, schema, reference=ref, sample_size=0)
    col = cur.columns["x"]
    assert isinstance(col, NumericColumnProfile)
    assert col.bin_edges == ref.columns["x"].bin_edges
    x = shifted["x"].to_numpy()
    finite = x[np.isfinite(x)]
    assert col.bin_counts == tuple(bin_counts(finite, np.asarray(col.bin_edges)))
    lo, hi = ref.columns["x"].min, ref.columns["x"].max
    assert col.reference_range == (lo, hi)
    assert col.n_below_reference_min == int((finite < lo).sum())
    assert col.n_above_reference_max == int((finite > hi).sum())
    assert col.out_of_range_examples == tuple(np.sort(np.unique(finite[finite > hi]))[::-1][:5])
    cat = cur.columns["c"]
    assert isinstance(cat, CategoricalColumnProfile)
    assert cat.categories == ref.columns["c"].categories == ("red", "green", "blue", "grey")
    counts = shifted["c"].value_counts()
    assert cat.counts == tuple(int(counts.get(c, 0)) for c in cat.categories)
    assert cat.unseen == {"purple": int(counts["purple"])}
    assert cat.n_unseen == cat.other_count == int(counts["purple"])
    assert cur.sample is None


def test_boolean_datetime_text(frame: pd.DataFrame, schema: Schema) -> None:
    p = Profile.from_data(frame, schema)
    b = p.columns["b"]
    assert isinstance(b, CategoricalColumnProfile)
    assert b.kind == "boolean"
    assert b.categories == ("false", "true")
    assert b.counts == (int((~frame["b"]).sum()), int(frame["b"].sum()))
    t = p.columns["t"]
    assert isinstance(t, DatetimeColumnProfile)
    assert t.min == frame["t"].min().value
    assert t.max_iso is not None
    assert pd.Timestamp(t.max_iso) == frame["t"].max().tz_localize("UTC")
    note = p.columns["note"]
    assert isinstance(note, TextColumnProfile)
    assert note.mean_length == pytest.approx(frame["note"].str.len().mean())
    true_distinct = frame["note"].nunique()
    assert abs(note.n_distinct - true_distinct) <= 0.05 * true_distinct


def test_ten_thousand_categories_stay_bounded() -> None:
    rng = np.random.default_rng(0)
    values = np.array([f"cat{i:05d}" for i in range(10_000)])
    # Zipf-like frequencies so the top categories are well defined.
    weights = 1.0 / np.arange(1, 10_001)
    data = pd.DataFrame({"c": rng.choice(values, size=50_000, p=weights / weights.sum())})
    schema = Schema((ColumnSpec("c", "categorical"),))
    col = Profile.from_data(data, schema, max_categories=20, sample_size=0).columns["c"]
    assert isinstance(col, CategoricalColumnProfile)
    counts = data["c"].value_counts()
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    assert col.categories == tuple(k for k, _ in expected)
    assert col.counts == tuple(int(v) for _, v in expected)
    assert col.other_count == len(data) - sum(col.counts)
    assert col.n_unseen is None
    assert not col.n_distinct_is_exact
    assert abs(col.n_distinct - counts.size) <= 0.05 * counts.size
    # Against this truncated reference, values outside its top 20 may be rare, not new.
    cur = Profile.from_data(
        data[:1000], schema, reference=Profile.from_data(data, schema, max_categories=20)
    )
    assert cur.columns["c"].n_unseen is None


def test_declared_categories_count_undeclared_values() -> None:
    schema = Schema((ColumnSpec("size", "categorical", categories=("S", "M", "L")),))
    col = Profile.from_data(
        pd.DataFrame({"size": ["S", "XL", "M", "XL", "S", None]}), schema
    ).columns["size"]
    assert isinstance(col, CategoricalColumnProfile)
    assert (col.categories, col.counts, col.other_count, col.n_missing) == (
        ("S", "M", "L"),
        (2, 1, 0),
        2,
        1,
    )
    assert col.unseen == {"XL": 2}
    assert col.n_distinct == 3
    assert not col.n_distinct_is_exact


def _write_all(frame: pd.DataFrame, tmp_path: Path) -> dict[str, object]:
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    return {
        "pandas": frame,
        "polars": pl.from_pandas(frame),
        "arrow": pa.Table.from_pandas(frame, preserve_index=False),
        "csv": tmp_path / "d.csv",
        "parquet": tmp_path / "d.parquet",
    }


def test_every_adapter_gives_the_same_profile(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 150  # KLL is exact below 200 values, so the sketches agree too
    x = rng.normal(size=n).round(6)
    x[:7] = np.nan
    frame = pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 9, size=n),
            "c": rng.choice(["a", "b", None], size=n),
            "b": rng.random(n) < 0.5,
            "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**5, n), "s"),
            "s": [f"row {i}" for i in range(n)],
        }
    )
    schema = Schema.infer(frame, roles={"s": "feature"}, kinds={"s": "text"})
    profiles = {
        label: Profile.from_data(data, schema, sample_size=40, random_state=9)
        for label, data in _write_all(frame, tmp_path).items()
    }
    base = profiles.pop("pandas")
    for label, p in profiles.items():
        assert_profiles_match(base, p, rel=1e-12)
        assert base.columns["x"].quantile(0.3) == p.columns["x"].quantile(0.3), label


def test_round_trip_save_load(tmp_path: Path, frame: pd.DataFrame, schema: Schema) -> None:
    ref = Profile.from_data(frame, schema, sample_size=300, random_state=4)
    cur = Profile.from_data(frame[:999], schema, reference=ref, sample_size=300, random_state=4)
    for p, fmt in [(ref, "binary"), (cur, "binary"), (ref, "json"), (cur, "json")]:
        path = p.save(tmp_path / "p.json", format=fmt)  # the name does not decide the layout
        loaded = Profile.load(path)
        assert_profiles_match(loaded, p, rel=0.0)
        assert loaded.meta == p.meta
        assert loaded.schema == p.schema
        assert loaded.sample.equals(p.sample)
        np.testing.assert_array_equal(loaded.sample_priorities, p.sample_priorities)
        for q in (0.1, 0.5, 0.9):
            assert loaded.columns["x"].quantile(q) == p.columns["x"].quantile(q)
        assert loaded.columns["note"].n_distinct == p.columns["note"].n_distinct
        if fmt == "json":
            assert json.loads(path.read_text())["format_version"] == 1
        else:
            assert path.read_bytes().startswith(PROFILE_MAGIC)
    # A loaded profile merges like the original.
    other = Profile.from_data(frame[999:], schema, reference=ref, sample_size=300, random_state=4)
    assert_profiles_match(Profile.load(tmp_path / "p.json").merge(other), cur.merge(other))


def test_load_rejects_newer_or_damaged_files(tmp_path: Path) -> None:
    p = Profile.from_data(pd.DataFrame({"x": [1.0, 2.0]}))
    payload = p.to_dict()
    cases = {
        "newer": {**payload, "format_version": 2},
        "no_version": {k: v for k, v in payload.items() if k != "format_version"},
        "bad_sketch": {**payload, "columns": {"x": {**payload["columns"]["x"], "kll": "AAAA"}}},
        "bad_base64": {**payload, "sample": {**payload["sample"], "data": "%%%"}},
        "bad_kind": {**payload, "columns": {"x": {**payload["columns"]["x"], "kind": "vector"}}},
    }
    for label, bad in cases.items():
        path = tmp_path / f"{label}.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(InputError):
            Profile.load(path)
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps(payload)[:100])
    with pytest.raises(InputError, match="not valid JSON"):
        Profile.load(truncated)
    with pytest.raises(InputError, match="upgrade watchkeeper"):
        Profile.load(tmp_path / "newer.json")


def test_binary_layout_refuses_newer_or_damaged_files(tmp_path: Path) -> None:
    p = Profile.from_data(pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}))
    blob = p.to_bytes()
    start = len(PROFILE_MAGIC)
    newer = blob[:start] + (BINARY_FORMAT_VERSION + 1).to_bytes(4, "little") + blob[start + 4 :]
    (tmp_path / "newer.wkp").write_bytes(newer)
    with pytest.raises(InputError, match=r"newer.wkp.*version 2 is not supported.*upgrade"):
        Profile.load(tmp_path / "newer.wkp")
    cases = {
        "truncated": blob[: len(blob) // 2],
        "header_only": blob[: start + 2],
        "garbage": PROFILE_MAGIC + b"\x01\x00\x00\x00" + b"\x00" * 40,
    }
    for label, bad in cases.items():
        (tmp_path / label).write_bytes(bad)
        with pytest.raises(InputError, match="profile"):
            Profile.load(tmp_path / label)
    (tmp_path / "other").write_bytes(b"PAR1 not a profile")
    with pytest.raises(InputError):
        Profile.load(tmp_path / "other")
    # A newer JSON layout inside a binary container is refused the same way.
    header = p.to_dict()
    with pytest.raises(InputError, match="upgrade watchkeeper"):
        Profile.from_bytes(json.dumps({**header, "format_version": 2}).encode())


def test_binary_layout_without_sample_and_with_group_counts() -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "g": rng.choice(["u", "v"], 300),
            "y": rng.integers(0, 2, 300),
            "p": rng.integers(0, 2, 300),
        }
    )
    schema = Schema.infer(df, roles={"g": "sensitive", "y": "target", "p": "prediction"})
    for size in (0, 50):
        p = Profile.from_data(df, schema, sample_size=size)
        q = Profile.from_bytes(p.to_bytes())
        assert_profiles_match(q, p, rel=0.0)
        assert q.meta == p.meta
        assert q.group_counts is not None
        assert p.group_counts is not None
        np.testing.assert_array_equal(q.group_counts.counts, p.group_counts.counts)
        assert (q.sample is None) == (size == 0)


def test_edge_cases_give_clear_values() -> None:
    frame = pd.DataFrame(
        {
            "all_missing": [np.nan] * 4,
            "with_inf": [1.0, np.inf, -np.inf, 3.0],
            "constant": [5.0] * 4,
            "mixed": [1, "a", 2.5, "b"],
        }
    )
    p = Profile.from_data(frame)
    empty = p.columns["all_missing"]
    assert isinstance(empty, NumericColumnProfile)
    assert (empty.count, empty.n_missing, empty.min, empty.mean, empty.variance) == (
        0,
        4,
        None,
        None,
        None,
    )
    assert empty.bin_edges == ()
    with pytest.raises(InputError, match="no finite values"):
        empty.quantile(0.5)
    inf = p.columns["with_inf"]
    assert (inf.count, inf.n_inf, inf.mean, inf.max) == (2, 2, 2.0, 3.0)
    const = p.columns["constant"]
    assert (const.std, const.skewness, const.bin_edges, const.bin_counts) == (
        0.0,
        None,
        (5.0,),
        (4, 0),
    )
    mixed = p.columns["mixed"]
    assert isinstance(mixed, CategoricalColumnProfile)
    assert sorted(mixed.categories) == ["1", "2.5", "a", "b"]
    with pytest.raises(InputError, match="between 0 and 1"):
        inf.quantile(1.5)


def test_single_row_and_empty_frames() -> None:
    one = Profile.from_data(pd.DataFrame({"x": [2.0], "c": ["a"]}))
    x = one.columns["x"]
    assert (x.count, x.mean, x.variance, x.std, x.quantile(0.5)) == (1, 2.0, None, None, 2.0)
    with pytest.raises(InputError, match="no rows"):
        Profile.from_data(pd.DataFrame({"x": []}))  # nothing to infer a schema from
    empty = Profile.from_data(
        pd.DataFrame({"x": pd.Series([], dtype=float), "c": pd.Series([], dtype=object)}),
        one.schema,
        reference=one,
    )
    assert empty.n_rows == 0
    assert empty.columns["x"].count == 0
    assert empty.columns["x"].bin_counts == (0,) * len(one.columns["x"].bin_counts)
    assert empty.sample is not None
    assert empty.sample.num_rows == 0
    # An empty profile is an identity for merge.
    cur = Profile.from_data(
        pd.DataFrame({"x": [2.0, 9.0], "c": ["a", "z"]}), one.schema, reference=one
    )
    assert_profiles_match(empty.merge(cur), cur)


def test_type_errors_in_numeric_column() -> None:
    schema = Schema((ColumnSpec("x", "numeric"),))
    p = Profile.from_data(pd.DataFrame({"x": ["1", "2.5", "n/a?", None, "zz", "4"]}), schema)
    col = p.columns["x"]
    assert (col.count, col.n_missing, col.n_type_errors) == (3, 1, 2)
    assert col.type_error_examples == ("n/a?", "zz")
    assert col.mean == pytest.approx(2.5)


def test_subset_of_reference_columns(frame: pd.DataFrame, schema: Schema) -> None:
    ref = Profile.from_data(frame, schema, sample_size=0)
    table = pa.Table.from_pandas(frame[["x", "c"]], preserve_index=False)
    sub = Profile.from_data(table, schema.select(["x", "c"]), reference=ref, sample_size=0)
    assert list(sub.columns) == ["x", "c"]
    with pytest.raises(InputError, match=r"lacks columns \['k'"):
        Profile.from_data(table, schema, reference=ref)


def test_merge_refuses_incompatible_profiles(frame: pd.DataFrame, schema: Schema) -> None:
    a = Profile.from_data(frame[:2000], schema)
    b = Profile.from_data(frame[2000:], schema)
    with pytest.raises(InputError, match="same reference= profile"):
        a.merge(b)  # each made its own bins
    c = Profile.from_data(frame[:100], schema, reference=a, random_state=1)
    d = Profile.from_data(frame[100:200], schema, reference=a, random_state=2)
    with pytest.raises(InputError, match="different random_state"):
        c.merge(d)
    e = Profile.from_data(frame[:100], schema.select(["x"]), reference=a)
    with pytest.raises(InputError, match="different columns"):
        c.merge(e)
    # Without samples the seed does not matter.
    c0 = Profile.from_data(frame[:100], schema, reference=a, sample_size=0, random_state=1)
    assert c0.merge(d).sample is None


def test_reference_kind_must_match(frame: pd.DataFrame, schema: Schema) -> None:
    ref = Profile.from_data(frame, schema, sample_size=0)
    with pytest.raises(InputError, match="numeric in the schema but categorical"):
        Profile.from_data(frame, schema.with_kinds({"c": "numeric"}), reference=ref)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_bins": 1}, "n_bins"),
        ({"sample_size": -1}, "sample_size"),
        ({"random_state": 1.5}, "random_state"),
        ({"max_categories": 0}, "max_categories"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Profile.from_data(pd.DataFrame({"x": [1.0]}), **kwargs)  # type: ignore[arg-type]


def test_sample_values_sorted_and_cached(frame: pd.DataFrame, schema: Schema) -> None:
    p = Profile.from_data(frame, schema, sample_size=500)
    v = p.sample_values("x")
    assert v.size == np.isfinite(p.sample.column("x").to_numpy()).sum()
    assert np.all(np.diff(v) >= 0)
    assert p.sample_values("x") is v
    assert not v.flags.writeable
    with pytest.raises(InputError, match="not numeric"):
        p.sample_values("c")
    with pytest.raises(InputError, match="sample_size=0"):
        Profile.from_data(frame, schema, sample_size=0).sample_values("x")


def test_typed_accessors(frame: pd.DataFrame, schema: Schema) -> None:
    p = Profile.from_data(frame, schema, sample_size=0)
    assert p.numeric("x") is p.columns["x"]
    assert p.categorical("b").kind == "boolean"
    assert p.datetime("t").count == len(frame)
    assert p.text("note").count == len(frame)
    with pytest.raises(InputError, match="not NumericColumnProfile"):
        p.numeric("c")
    with pytest.raises(InputError, match="not in the profile"):
        p.numeric("nope")


def test_overflowing_moments_survive_save_load(tmp_path: Path) -> None:
    p = Profile.from_data(pd.DataFrame({"x": [1e200, -1e200, 0.0]}))
    assert p.numeric("x").m4 == np.inf
    loaded = Profile.load(p.save(tmp_path / "p.json"))
    assert loaded.numeric("x").m4 == np.inf
    assert loaded.numeric("x").max == 1e200
    col = Profile.from_data(pd.DataFrame({"x": [1e150, -1e150, 0.0]})).numeric("x")
    assert col.variance == pytest.approx(1e300)
    assert col.skewness is None
    assert col.kurtosis is None  # m4 overflowed: no number rather than a wrong one
    merged = Profile.from_data(pd.DataFrame({"x": [1e200]}), p.schema, reference=p).merge(
        Profile.from_data(pd.DataFrame({"x": [-1e200]}), p.schema, reference=p)
    )
    assert not np.isfinite(merged.numeric("x").m4)
    assert merged.numeric("x").kurtosis is None
    assert merged.numeric("x").count == 2
    Profile.load(merged.save(tmp_path / "merged.json"))


def test_the_name_picks_the_format_and_compare_reads_either(tmp_path: Path) -> None:
    """A ``.json`` name holds JSON, any other name the binary layout; ``compare`` takes both,
    and a binary profile under any name, as a reference (told apart by content)."""

    import watchkeeper as wk

    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=2_000)})
    cur = pd.DataFrame({"x": rng.normal(0.5, size=2_000)})
    profile = Profile.from_data(ref)
    as_json = profile.save(tmp_path / "ref.json")
    as_binary = profile.save(tmp_path / "ref.wkp")
    unnamed = profile.save(tmp_path / "reference-profile")
    assert json.loads(as_json.read_text())["format_version"] >= 1
    assert as_binary.read_bytes().startswith(PROFILE_MAGIC)
    assert unnamed.read_bytes().startswith(PROFILE_MAGIC)
    p_values = {
        str(path.name): wk.compare(path, cur).column("x").p_value
        for path in (as_json, as_binary, unnamed)
    }
    assert len(set(p_values.values())) == 1, p_values
    assert wk.compare(as_binary, cur).drifted
