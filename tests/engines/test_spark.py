"""The Spark engine (local[2]) gives the local engine's profiles and verdicts on the same data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from watchkeeper import compare
from watchkeeper.data import Profile, Schema
from watchkeeper.engines import profile_windows, window_reports
from watchkeeper.engines import spark as spark_engine
from watchkeeper.exceptions import InputError

ROLES = {"sex": "sensitive", "y": "target", "yhat": "prediction"}


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
            "t": pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC"),
        }
    )
    df.loc[::97, "x"] = np.nan
    return df


def _parquet_dir(df: pd.DataFrame, path: Path, parts: int) -> Path:
    """Several files, so that Spark reads several partitions."""
    path.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(df)), parts)):
        df.iloc[chunk].to_parquet(path / f"part-{i}.parquet", index=False)
    return path


def _assert_same(local: Profile, other: Profile) -> None:
    """Identical counts, bins, categories, sample and group counts; moments to rounding;
    quantiles within the KLL bound of each other."""
    assert other.n_rows == local.n_rows
    assert list(other.columns) == list(local.columns)
    for name, a in local.columns.items():
        b = other.columns[name]
        if a.kind != "numeric":
            assert a == b, name
            continue
        moments = ("mean", "m2", "m3", "m4")
        for m in moments:
            if getattr(a, m) is None:  # no values
                assert getattr(b, m) is None, (name, m)
                continue
            assert getattr(b, m) == pytest.approx(getattr(a, m), rel=1e-9, abs=1e-9), (name, m)
        fields = [f for f in a.__dataclass_fields__ if f not in (*moments, "sketch")]
        assert {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}, name
        if a.count and a.sketch is not None:
            bound = a.quantile_rank_error + b.quantile_rank_error
            values = np.sort(other.sample_values(name)) if other.sample is not None else None
            for q in (0.1, 0.5, 0.9):
                if values is not None and values.size == a.count:  # the sample holds every row
                    # Ties (discrete values) span ranks: q must fall in the value's span.
                    v, n = b.quantile(q), values.size
                    low = np.searchsorted(values, v, side="left") / n
                    high = np.searchsorted(values, v, side="right") / n
                    assert low - bound - 1 / n <= q <= high + bound + 1 / n, (name, q)
    if local.sample is not None:
        assert other.sample is not None
        assert other.sample.equals(local.sample)
    if local.group_counts is not None:
        assert other.group_counts is not None
        assert other.group_counts.to_dict() == local.group_counts.to_dict()


def test_profile_without_reference_equals_local(spark: Any, tmp_path: Path) -> None:
    df = _frame(6_000, 1)
    path = _parquet_dir(df, tmp_path / "ref", parts=3)
    schema = Schema.infer(df, roles=ROLES)
    local = Profile.from_data(df, schema)
    on_spark = spark_engine.profile_parquet(path, schema, spark=spark)
    assert spark.read.parquet(str(path)).rdd.getNumPartitions() >= 2
    _assert_same(local, on_spark)
    assert local.group_counts is not None
    # Beyond the sample: the bottom-k sample merged over partitions is the sample of all rows.
    small = spark_engine.profile_parquet(path, schema, spark=spark, sample_size=500)
    assert small.sample.equals(Profile.from_data(df, schema, sample_size=500).sample)
    assert small.columns["c"] == local.columns["c"]
    assert small.numeric("k").bin_counts == local.numeric("k").bin_counts


def test_profile_against_reference_and_verdicts_equal_local(spark: Any, tmp_path: Path) -> None:
    ref_df = _frame(5_000, 2)
    reference = Profile.from_data(ref_df, Schema.infer(ref_df, roles=ROLES))
    cur = _frame(7_000, 3, shift=0.2)
    path = _parquet_dir(cur, tmp_path / "cur", parts=4)
    frame = spark.read.parquet(str(path)).repartition(3)
    local = Profile.from_data(cur, reference=reference)
    on_spark = spark_engine.profile_dataframe(frame, reference=reference)
    _assert_same(local, on_spark)
    a = compare(reference, local, multivariate=None)
    b = compare(reference, on_spark, multivariate=None)
    assert [(c.name, c.status, c.p_value, c.statistic) for c in a.columns] == [
        (c.name, c.status, c.p_value, c.statistic) for c in b.columns
    ]
    assert "x" in b.drifted_columns
    # ... and the same verdicts as comparing the raw rows (the samples hold every row).
    raw = compare(reference, cur, multivariate=None)
    assert [(c.name, c.status) for c in raw.columns] == [(c.name, c.status) for c in b.columns]


def test_many_partitions_merge_on_the_workers_in_rounds(spark: Any, tmp_path: Path) -> None:
    """More partitions than one task merges (70 > 8, two rounds): the partial profiles are
    merged on the workers in fixed groups, never all shipped to the driver at once, and the
    profile is the local one, run after run."""
    ref_df = _frame(4_000, 4)
    reference = Profile.from_data(ref_df, Schema.infer(ref_df, roles=ROLES))
    cur = _frame(7_000, 5, shift=0.1)
    path = _parquet_dir(cur, tmp_path / "many", parts=2)
    frame = spark.read.parquet(str(path)).repartition(70)
    assert frame.rdd.getNumPartitions() == 70 > spark_engine._FAN_IN**2 / 8
    local = Profile.from_data(cur, reference=reference)
    first = spark_engine.profile_dataframe(frame, reference=reference)
    _assert_same(local, first)
    again = spark_engine.profile_dataframe(frame, reference=reference)
    # Everything but the sketches' bytes (KLL compaction flips coins: the local engine's
    # differ from run to run too) is identical run after run.
    a, b = again.to_dict()["columns"], first.to_dict()["columns"]
    diff = {c: [k for k in a[c] if a[c][k] != b[c][k] and k not in ("kll", "hll")] for c in a}
    assert not any(diff.values()), diff
    assert again.sample.equals(first.sample)


def _logged_year() -> tuple[pd.DataFrame, list[str]]:
    """A year of the demo's prediction log: its model (trained on January) predicting every
    hour of 2011 of the bikeshare data, with the hour's time and the label."""
    from watchkeeper.datasets import BIKESHARE_FEATURES, load_bikeshare
    from watchkeeper.demo._model import make_model

    data = load_bikeshare()
    features = list(BIKESHARE_FEATURES)
    january = data[data["month"] == 1]
    model = make_model(features).fit(january[features], january["bikers"])
    log = data[features].copy()
    log["prediction"] = model.predict(data[features])
    log["bikers"] = data["bikers"].astype("float64")
    log["ts"] = pd.to_datetime(data["timestamp"], utc=True)
    log["date"] = log["ts"].dt.strftime("%Y-%m-%d")
    return log, [*features, "prediction", "bikers"]


def test_a_year_of_the_demo_log_gives_identical_window_verdicts(spark: Any, tmp_path: Path) -> None:
    log, columns = _logged_year()
    january = log[log["ts"].dt.month == 1][columns]
    schema = Schema.infer(january).with_roles({"bikers": "target", "prediction": "prediction"})
    reference = Profile.from_data(january, schema)
    # Exported like the Parquet log store writes it: hive partitions by date.
    root = tmp_path / "log"
    log.to_parquet(root, partition_cols=["date"], index=False)
    local = profile_windows(root, reference, time_column="ts", every="7d")
    on_spark = spark_engine.profile_windows(
        root, reference, time_column="ts", every="7d", spark=spark
    )
    assert list(on_spark) == list(local)
    assert len(local) == 53
    assert sum(p.n_rows for p in local.values()) == len(log)
    for start in local:
        _assert_same(local[start], on_spark[start])
    verdicts_local = window_reports(reference, local)
    verdicts_spark = window_reports(reference, on_spark)
    for start, a in verdicts_local.items():
        b = verdicts_spark[start]
        assert [(c.name, c.status, c.p_value) for c in a.columns] == [
            (c.name, c.status, c.p_value) for c in b.columns
        ], start
        assert a.drifted == b.drifted
    drifted = [start.month for start, r in verdicts_local.items() if "temp" in r.drifted_columns]
    assert 7 in drifted  # summer temperatures are far from January's


def test_bad_input_is_refused_clearly(spark: Any, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        spark_engine.profile_parquet(tmp_path / "nothing-here", spark=spark)
    df = _frame(100, 4)
    path = _parquet_dir(df, tmp_path / "d", parts=1)
    with pytest.raises(InputError, match=r"lacks columns \['nope'\]"):
        spark_engine.profile_parquet(path, Schema.infer(pd.DataFrame({"nope": [1.0]})), spark=spark)
    reference = Profile.from_data(df[["x"]])
    with pytest.raises(InputError, match="count window"):
        spark_engine.profile_windows(path, reference, time_column="t", every="100", spark=spark)
