"""The Spark engine profiles text and embedding columns as the local engine does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.checks import ComparisonConfig, run_comparison
from watchkeeper.data import Profile, Schema
from watchkeeper.engines import spark as spark_engine


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(300)])
    p = 1 / np.arange(1, 301)
    docs = [" ".join(rng.choice(words, size=rng.integers(3, 15), p=p / p.sum())) for _ in range(n)]
    z = rng.normal(size=(n, 4))
    z[:, 0] += shift
    vectors = z @ np.random.default_rng(9).normal(size=(4, 16)) + rng.normal(size=(n, 16))
    return pd.DataFrame({"t": docs, "e": list(vectors), "x": rng.normal(size=n)})


def _parquet_dir(df: pd.DataFrame, path: Path, parts: int) -> Path:
    path.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(df)), parts)):
        df.iloc[chunk].to_parquet(path / f"part-{i}.parquet", index=False)
    return path


def test_text_and_embedding_profiles_and_verdicts_equal_local(spark: Any, tmp_path: Path) -> None:
    ref_df, cur_df = _frame(1_500, 1), _frame(900, 2, shift=1.0)
    schema = Schema.infer(ref_df)
    local = Profile.from_data(ref_df, schema)
    on_spark = spark_engine.profile_parquet(
        _parquet_dir(ref_df, tmp_path / "r", 3), schema, spark=spark
    )
    t, w = on_spark.text("t"), local.text("t")
    assert (t.vocabulary, t.vocabulary_counts, t.bucket_pairs) == (
        w.vocabulary,
        w.vocabulary_counts,
        w.bucket_pairs,
    )
    for name in w.descriptors:
        assert t.descriptors[name].bin_counts == w.descriptors[name].bin_counts
    assert on_spark.embedding("e") == local.embedding("e")
    cur_spark = spark_engine.profile_parquet(
        _parquet_dir(cur_df, tmp_path / "c", 3), schema, spark=spark, reference=local
    )
    cur_local = Profile.from_data(cur_df, schema, reference=local)
    assert cur_spark.text("t").bucket_pairs == cur_local.text("t").bucket_pairs
    assert cur_spark.embedding("e") == cur_local.embedding("e")
    config = ComparisonConfig(multivariate=None, quality=False, plots=False)
    a = run_comparison(local, cur_spark, config)
    b = run_comparison(local, cur_local, config)
    assert [(c.name, c.p_value, c.status) for c in a.columns] == [
        (c.name, c.p_value, c.status) for c in b.columns
    ]
    assert a.column("e").drifted
