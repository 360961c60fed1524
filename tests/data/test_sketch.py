"""The row sample: uniform, deterministic per seed, mergeable; priorities from content."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import stats

from watchkeeper.data import ColumnSpec, Profile, Schema
from watchkeeper.data._sketch import bottom_k, row_priorities

SCHEMA = Schema((ColumnSpec("i", "numeric"), ColumnSpec("g", "categorical")))


def _frame(n: int, start: int = 0) -> pd.DataFrame:
    i = np.arange(start, start + n)
    return pd.DataFrame({"i": i.astype(float), "g": [f"g{v % 7}" for v in i]})


def test_sample_is_uniform_over_rows() -> None:
    # Inclusion counts of 10 blocks of rows over 300 seeds: each block should hold 10% of the
    # sampled rows (chi-square goodness of fit; fails for position- or value-biased sampling).
    n, k, seeds = 1_000, 50, 300
    frame = _frame(n)
    hits = np.zeros(10)
    for seed in range(seeds):
        sample = Profile.from_data(frame, SCHEMA, sample_size=k, random_state=seed).sample
        idx = np.asarray(sample.column("i").to_numpy(), dtype=int)
        hits += np.bincount(idx // 100, minlength=10)
    assert hits.sum() == k * seeds
    assert stats.chisquare(hits).pvalue > 1e-3


def test_merged_sample_draws_batches_in_proportion() -> None:
    # A 900-row batch and a 100-row batch merged: ~10% of the merged sample from the small one.
    share = []
    for seed in range(200):
        kw = {"sample_size": 40, "random_state": seed}
        big = Profile.from_data(_frame(900), SCHEMA, **kw)
        small = Profile.from_data(_frame(100, start=900), SCHEMA, reference=big, **kw)
        merged = Profile.from_data(_frame(900), SCHEMA, reference=big, **kw).merge(small)
        idx = np.asarray(merged.sample.column("i").to_numpy())
        share.append(np.mean(idx >= 900))
    # Mean of 200 hypergeometric shares with p = 0.1 and sd ~ 0.047/sqrt(200).
    assert abs(np.mean(share) - 0.1) < 4 * 0.047 / np.sqrt(200)


def test_sample_deterministic_per_seed_and_row_order_free() -> None:
    frame = _frame(500)
    a = Profile.from_data(frame, SCHEMA, sample_size=20, random_state=5).sample
    b = Profile.from_data(
        frame.sample(frac=1.0, random_state=1), SCHEMA, sample_size=20, random_state=5
    ).sample
    c = Profile.from_data(frame, SCHEMA, sample_size=20, random_state=6).sample
    assert a.equals(b)  # priorities come from row content, not position
    assert not a.equals(c)


def test_priorities_do_not_depend_on_column_order_but_on_values() -> None:
    x = pa.chunked_array([pa.array([1.0, 2.0, None])])
    s = pa.chunked_array([pa.array(["a", "b", None])])
    p1 = row_priorities({"x": x, "s": s}, 3, seed=0)
    p2 = row_priorities({"s": s, "x": x}, 3, seed=0)
    np.testing.assert_array_equal(p1, p2)
    swapped = row_priorities({"x": x, "s": pa.chunked_array([pa.array(["b", "a", None])])}, 3, 0)
    assert len(set(p1.tolist()) & set(swapped.tolist())) == 1  # only the all-missing row
    assert len(set(p1.tolist())) == 3


def test_bottom_k_orders_by_priority() -> None:
    pr = np.array([5, 1, 9, 3, 7], dtype=np.uint64)
    np.testing.assert_array_equal(bottom_k(pr, 3), [1, 3, 0])
    np.testing.assert_array_equal(bottom_k(pr, 10), [1, 3, 0, 4, 2])
    assert bottom_k(pr, 0).size == 0
