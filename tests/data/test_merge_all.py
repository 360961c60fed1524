"""Profile.merge_all: one n-way merge equal to the pairwise chain and to profiling the whole."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from watchkeeper.data import GroupCounts, Profile, Schema
from watchkeeper.exceptions import InputError

from ._helpers import assert_profiles_match


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 3.0, size=n)
    x[rng.random(n) < 0.03] = np.nan
    x[rng.random(n) < 0.01] = np.inf
    return pd.DataFrame(
        {
            "x": x,
            "z": rng.normal(5.0, 2.0, size=n) * 1e3,
            "c": rng.choice(
                ["a", "b", "c", "new1", "new2"], p=[0.5, 0.3, 0.18, 0.01, 0.01], size=n
            ),
            "g": rng.choice(["f", "m"], size=n),
            "y": rng.integers(0, 2, size=n),
            "p": rng.integers(0, 2, size=n),
        }
    )


@pytest.fixture(scope="module")
def setup() -> tuple[Schema, Profile, pd.DataFrame]:
    ref_frame = _frame(3_000, 0)
    ref_frame = ref_frame[~ref_frame["c"].isin(["new1", "new2"])]
    schema = Schema.infer(ref_frame, roles={"g": "sensitive", "y": "target", "p": "prediction"})
    ref = Profile.from_data(ref_frame, schema, sample_size=100)
    cur = _frame(20_000, 1)
    cur.loc[:50, "z"] = 1e7  # out of the reference's range
    return schema, ref, cur


@pytest.mark.parametrize("k", [2, 7, 168])
def test_random_split_merges_like_the_chain_and_the_whole(
    setup: tuple[Schema, Profile, pd.DataFrame], k: int
) -> None:
    schema, ref, cur = setup
    rng = np.random.default_rng(k)
    cuts = np.sort(rng.choice(np.arange(1, len(cur)), size=k - 1, replace=False))
    bounds = [0, *cuts.tolist(), len(cur)]
    parts = [
        Profile.from_data(cur[a:b], schema, reference=ref, sample_size=100, n_jobs=1)
        for a, b in itertools.pairwise(bounds)
    ]
    merged = Profile.merge_all(parts)
    chain = parts[0]
    for p in parts[1:]:
        chain = chain.merge(p)
    whole = Profile.from_data(cur, schema, reference=ref, sample_size=100)
    assert_profiles_match(merged, chain, rel=1e-12)
    assert_profiles_match(merged, whole, rel=1e-12)
    assert merged.group_counts is not None
    assert whole.group_counts is not None
    assert merged.group_counts.keys == whole.group_counts.keys
    np.testing.assert_array_equal(merged.group_counts.counts, whole.group_counts.counts)
    np.testing.assert_array_equal(merged.sample_priorities, whole.sample_priorities)
    assert merged.columns["z"].n_above_reference_max >= 51  # the 51 planted, and a few more
    assert merged.columns["c"].n_unseen == whole.columns["c"].n_unseen > 0
    # Quantiles from the merged KLL sketch: within its documented rank error of the truth.
    z = np.sort(cur["z"].to_numpy())
    col = merged.numeric("z")
    for q in (0.1, 0.5, 0.9):
        rank = np.searchsorted(z, col.quantile(q), side="right") / z.size
        assert abs(rank - q) <= col.quantile_rank_error + 1 / z.size
    assert merged.columns["c"].n_distinct == whole.columns["c"].n_distinct


def test_group_counts_merge_all_equals_chain() -> None:
    rng = np.random.default_rng(3)
    parts = [
        GroupCounts.from_arrays(
            {"g": rng.choice(["a", "b", "c"], 50)}, rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        )
        for _ in range(9)
    ]
    chain = parts[0]
    for p in parts[1:]:
        chain = chain.merge(p)
    both = GroupCounts.merge_all(parts)
    assert both.keys == chain.keys
    np.testing.assert_array_equal(both.counts, chain.counts)


def test_merge_all_refuses_what_merge_refuses(setup: tuple[Schema, Profile, pd.DataFrame]) -> None:
    schema, ref, cur = setup
    a = Profile.from_data(cur[:500], schema, reference=ref)
    with pytest.raises(InputError, match="at least one"):
        Profile.merge_all([])
    with pytest.raises(InputError, match="only merge Profiles"):
        Profile.merge_all([a, "b"])  # type: ignore[list-item]
    assert Profile.merge_all([a]) is a
    own_bins = Profile.from_data(cur[500:900], schema)
    with pytest.raises(InputError, match=r"column 'x'.*different histogram bins"):
        Profile.merge_all([a, a, own_bins])
    other_seed = Profile.from_data(cur[500:900], schema, reference=ref, random_state=9)
    with pytest.raises(InputError, match="different random_state"):
        Profile.merge_all([a, other_seed])
    no_groups = Profile.from_data(cur[500:900], schema.select(["x", "z", "c"]), reference=ref)
    with pytest.raises(InputError, match="different columns"):
        Profile.merge_all([a, no_groups])
