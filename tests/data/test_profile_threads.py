"""Profiling columns in threads gives exactly the single-threaded profile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from watchkeeper.data import Profile


def test_threaded_profile_equals_sequential() -> None:
    rng = np.random.default_rng(0)
    n = 60_000  # above the threshold where columns are profiled in threads
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.exponential(size=n),
            "c": rng.choice(["x", "y", "z"], n),
            "d": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        }
    )
    one = Profile.from_data(df, n_jobs=1, sample_size=1000)
    many = Profile.from_data(df, n_jobs=4, sample_size=1000)

    # The KLL sketch is randomised inside datasketches (bounded error, not bit-identical
    # between runs), so compare everything else exactly.
    def exact(p: Profile) -> dict[str, dict[str, object]]:
        cols = p.to_dict()["columns"]
        return {k: {f: v for f, v in c.items() if f != "kll"} for k, c in cols.items()}

    assert exact(one) == exact(many)
    assert one.sample is not None
    assert many.sample is not None
    assert one.sample.equals(many.sample)


def test_profile_without_sketch_refuses_quantiles_but_keeps_everything_else() -> None:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=1000)})
    full = Profile.from_data(df, sample_size=0)
    lean = Profile.from_data(df, sample_size=0, sketch=False)
    a, b = full.numeric("a"), lean.numeric("a")
    assert (a.count, a.min, a.max, a.bin_counts, a.mean) == (
        b.count,
        b.min,
        b.max,
        b.bin_counts,
        b.mean,
    )
    with pytest.raises(ValueError, match="sketch=True"):
        b.quantile(0.5)
    # merging a lean profile keeps counts exact and drops the sketch
    merged = lean.merge(lean)
    assert merged.numeric("a").count == 2000
    assert Profile.from_dict(merged.to_dict()).numeric("a").sketch is None
