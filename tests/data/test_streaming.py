"""Profiles built batch by batch (streamed Parquet) equal the profile of all rows at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from watchkeeper import compare
from watchkeeper.data import Profile, Schema
from watchkeeper.data.streaming import Pilot, iter_parquet
from watchkeeper.exceptions import InputError


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, n),
            "k": rng.integers(0, 5, n),
            "c": rng.choice(list("abcdefg"), n, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05]),
            "b": rng.random(n) < 0.3,
            "sex": rng.choice(["f", "m"], n),
            "y": rng.integers(0, 2, n),
            "yhat": rng.integers(0, 2, n),
            "t": pd.date_range("2024-01-01", periods=n, freq="min"),
        }
    )
    df.loc[::97, "x"] = np.nan
    return df


ROLES = {"sex": "sensitive", "y": "target", "yhat": "prediction"}


def assert_same_profile(a: Profile, b: Profile) -> None:
    """Equal counts, bins, categories, sample and group counts; moments to float rounding."""
    assert a.n_rows == b.n_rows
    assert list(a.columns) == list(b.columns)
    for name, ca in a.columns.items():
        cb = b.columns[name]
        if ca.kind == "numeric":
            moments = ("mean", "m2", "m3", "m4")
            for m in moments:
                va, vb = getattr(ca, m), getattr(cb, m)
                assert (va is None) == (vb is None)
                if va is not None:
                    assert vb == pytest.approx(va, rel=1e-9, abs=1e-9), (name, m)
            skip = (*moments, "sketch")  # KLL compaction is randomised: checked by rank below
            others = {f: getattr(ca, f) for f in ca.__dataclass_fields__ if f not in skip}
            assert others == {f: getattr(cb, f) for f in others}, name
        else:
            assert ca == cb, name
    assert (a.sample is None) == (b.sample is None)
    if a.sample is not None:
        assert a.sample.equals(b.sample)
    assert (a.group_counts is None) == (b.group_counts is None)
    if a.group_counts is not None:
        assert a.group_counts.to_dict() == b.group_counts.to_dict()
    assert {k: v for k, v in a.meta.items() if k != "created"} == {
        k: v for k, v in b.meta.items() if k != "created"
    }


def assert_quantiles_within_bound(profile: Profile, column: str, values: np.ndarray) -> None:
    col = profile.numeric(column)
    v = np.sort(values[np.isfinite(values)])
    for q in (0.01, 0.25, 0.5, 0.75, 0.99):
        rank = np.searchsorted(v, col.quantile(q), side="right") / v.size
        assert abs(rank - q) <= col.quantile_rank_error + 1.0 / v.size, (column, q)


def test_batches_without_reference_equal_the_whole_profile() -> None:
    df = _frame(20_000, 1)
    schema = Schema.infer(df, roles=ROLES)
    whole = Profile.from_data(df, schema)
    streamed = Profile.from_batches([df[i : i + 3_000] for i in range(0, len(df), 3_000)], schema)
    assert_same_profile(whole, streamed)
    assert whole.group_counts is not None
    assert_quantiles_within_bound(streamed, "x", df["x"].to_numpy())


def test_batches_against_a_reference_equal_the_whole_profile() -> None:
    ref = Profile.from_data(_frame(5_000, 2), Schema.infer(_frame(5_000, 2), roles=ROLES))
    cur = _frame(12_000, 3, shift=0.3)
    whole = Profile.from_data(cur, reference=ref, sample_size=1_000)
    streamed = Profile.from_batches(
        lambda: (cur[i : i + 2_500] for i in range(0, len(cur), 2_500)),
        ref.schema,
        reference=ref,
        sample_size=1_000,
    )
    assert_same_profile(whole, streamed)


def test_beyond_the_sample_bins_are_sample_quantiles_and_counts_exact() -> None:
    df = _frame(30_000, 4)
    schema = Schema.infer(df, roles=ROLES)
    streamed = Profile.from_batches([df[:10_000], df[10_000:]], schema, sample_size=2_000)
    whole = Profile.from_data(df, schema, sample_size=2_000)
    x, wx = streamed.numeric("x"), whole.numeric("x")
    # Counts are exact on the streamed bins; each bin holds about a tenth of the values.
    values = df["x"].to_numpy()
    values = values[np.isfinite(values)]
    edges = np.asarray(x.bin_edges)
    expected = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    assert x.bin_counts == tuple(int(c) for c in expected)
    shares = np.asarray(x.bin_counts) / x.count
    assert np.all(np.abs(shares - 0.1) < 0.03)  # 2,000-row sample: rank error ~ 1/sqrt(2000)
    assert (x.count, x.min, x.max) == (wx.count, wx.min, wx.max)
    assert streamed.categorical("c") == whole.categorical("c")
    assert streamed.sample.equals(whole.sample)


def test_without_a_sample_the_bins_still_come_from_a_pilot_sample() -> None:
    df = _frame(20_000, 11)
    schema = Schema.infer(df, roles=ROLES)
    streamed = Profile.from_batches([df[:7_000], df[7_000:]], schema, sample_size=0)
    whole = Profile.from_data(df, schema, sample_size=0)
    assert streamed.sample is None
    assert streamed.meta["sample_size"] == 0
    assert streamed.numeric("x").bin_edges == whole.numeric("x").bin_edges
    assert streamed.numeric("x").bin_counts == whole.numeric("x").bin_counts


def test_merged_pilots_hold_the_sample_of_all_rows() -> None:
    df = _frame(9_000, 5)
    schema = Schema.infer(df)
    table = pa.Table.from_pandas(df, preserve_index=False)
    whole = Pilot.from_table(table, schema, sample_size=500, random_state=3)
    parts = [Pilot.from_table(table.slice(i, 2_000), schema, sample_size=500, random_state=3)
             for i in range(0, 9_000, 2_000)]  # fmt: skip
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    assert merged.sample.equals(whole.sample)
    assert merged.category_counts == whole.category_counts
    again = Pilot.from_dict(merged.to_dict())
    assert np.array_equal(again.priorities, merged.priorities)


def test_from_parquet_reads_row_groups_and_matches(tmp_path: Path) -> None:
    df = _frame(15_000, 6)
    path = tmp_path / "d.parquet"
    df.to_parquet(path, row_group_size=4_000)
    assert [t.num_rows for t in iter_parquet(path, ["x"], 5_000)] == [5_000] * 3
    schema = Schema.infer(df, roles=ROLES)
    assert_same_profile(
        Profile.from_data(df, schema), Profile.from_parquet(path, schema, batch_rows=5_000)
    )


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    schema = Schema.infer(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(InputError, match="one-shot iterator"):
        Profile.from_batches(iter([pd.DataFrame({"x": [1.0]})]), schema)
    with pytest.raises(InputError, match="does not exist"):
        Profile.from_parquet(tmp_path / "missing.parquet")
    path = tmp_path / "y.parquet"
    pq.write_table(pa.table({"y": [1.0]}), path)
    with pytest.raises(InputError, match=r"lacks columns \['x'\]"):
        Profile.from_parquet(path, schema)


def test_streamed_compare_matches_the_in_memory_compare(tmp_path: Path) -> None:
    ref = _frame(6_000, 7)
    cur = _frame(6_000, 8, shift=0.15)
    path = tmp_path / "cur.parquet"
    cur.to_parquet(path, row_group_size=1_500)
    reference = Profile.from_data(ref, Schema.infer(ref, roles=ROLES))
    loaded = compare(reference, path, stream=False)
    streamed = compare(reference, path, stream=True, batch_rows=2_000)
    assert streamed.meta["current"] == "profile"
    assert streamed.meta["n_current_rows"] == 6_000
    assert [(c.name, c.status, c.p_value) for c in streamed.columns] == [
        (c.name, c.status, c.p_value) for c in loaded.columns
    ]
    assert "x" in streamed.drifted_columns
    assert [(q.check, q.subject, q.status) for q in streamed.quality] == [
        (q.check, q.subject, q.status) for q in loaded.quality
    ]


def test_streamed_compare_uses_a_sample_for_exact_tests(tmp_path: Path) -> None:
    ref = _frame(4_000, 9)
    cur = _frame(8_000, 10, shift=0.5)
    path = tmp_path / "cur.parquet"
    cur.to_parquet(path, row_group_size=2_000)
    report = compare(
        Profile.from_data(ref), path, stream=True, sample_size=1_000, multivariate=None
    )
    x = next(c for c in report.columns if c.name == "x")
    assert x.drifted
    assert 900 < x.n_current <= 1_000  # KS ran on the sample (its finite values)
    assert report.meta["n_current_rows"] == 8_000


def test_reading_parquet_holds_one_batch_not_the_file(tmp_path: Path) -> None:
    # Arrow's allocations are deterministic: with the reader's pre-buffering, every row group
    # read stayed cached until the end, and memory grew with the file.
    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(12)
    with pq.ParquetWriter(path, pa.schema([(f"f{i}", pa.float64()) for i in range(4)])) as w:
        for _ in range(20):
            w.write_table(pa.table({f"f{i}": rng.normal(size=50_000) for i in range(4)}))
    batch_bytes = 50_000 * 4 * 8
    before = pa.total_allocated_bytes()
    most = 0
    for table in iter_parquet(path, batch_rows=50_000):
        most = max(most, pa.total_allocated_bytes() - before)
        assert table.num_rows == 50_000
    assert most < 8 * batch_bytes  # the file is 20 batches (pre-buffered: over 20)
