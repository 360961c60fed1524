"""Contracts on Spark: partition profiles made with a schema that carries a contract keep the
rule counts, merged on the workers and the driver; the verdicts equal those of the local
engine and of the raw rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.checks import Status, check_contract
from watchkeeper.data import Contract, Profile, Schema
from watchkeeper.datasets import load_bikeshare
from watchkeeper.engines import spark as spark_engine


def test_contract_verdicts_on_spark_profiles_equal_local_and_rows(
    spark: Any, tmp_path: Path
) -> None:
    rides = load_bikeshare()
    schema = Schema.infer(rides)
    schema = schema.with_contract(Contract.propose(rides, schema))
    reference = Profile.from_data(rides, schema)
    current = rides.copy()
    current.loc[100, "hum"] = 9.0  # range
    current.loc[5000, "weathersit"] = "hail"  # allowed values
    current.loc[7000, "casual"] = current.loc[7000, "bikers"] + 1  # relation
    path = tmp_path / "cur"
    path.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(current)), 4)):
        current.iloc[chunk].to_parquet(path / f"part-{i}.parquet", index=False)
    on_spark = spark_engine.profile_parquet(path, spark=spark, reference=reference)
    local = Profile.from_data(current, reference=reference)
    assert on_spark.contract_counts is not None
    assert local.contract_counts is not None
    as_of = pd.Timestamp(rides["timestamp"].max())
    a = check_contract(schema, on_spark, as_of=as_of)
    rows = check_contract(schema, current, as_of=as_of)
    decided = [r for r in a if r.status is not Status.INSUFFICIENT_DATA]
    # Uniqueness and order are only decided inside partitions (none broken there).
    assert {r.check for r in a} - {r.check for r in decided} <= {
        "contract.unique",
        "contract.monotone",
    }
    by_rule = {r.rule: r for r in rows}
    for r in decided:
        same = by_rule[r.rule]
        assert (r.status, r.value, r.details["examples"]) == (
            same.status,
            same.value,
            same.details["examples"],
        ), r.rule
    broken = sorted(r.rule for r in a if r.status is Status.ALERT)
    assert broken == ["allowed_values(weathersit)", "range(hum)", "relation(bikers >= casual)"]
    local_verdicts = [
        (r.rule, r.status, r.value) for r in check_contract(schema, local, as_of=as_of)
    ]
    assert [(r.rule, r.status, r.value) for r in decided] == [
        v for v in local_verdicts if v[0] in {r.rule for r in decided}
    ]


def test_spark_window_profiles_leave_row_order_rules_undecided(spark: Any, tmp_path: Path) -> None:
    """Spark's partitions come in no meaningful order: a window profile made on Spark does not
    count ``monotone``, so a shuffled frame gives "not decidable", never a false violation,
    while every other rule is decided as on the local engine."""
    from pyspark.sql import functions

    from watchkeeper.data import Monotone, Range
    from watchkeeper.engines import profile_windows as local_windows

    rides = load_bikeshare().iloc[:2000]
    schema = Schema.infer(rides).with_contract(
        Contract([Monotone(column="timestamp"), Range(column="hum", min=0.0, max=1.0)])
    )
    reference = Profile.from_data(rides, schema)
    rides.to_parquet(tmp_path / "rides.parquet", index=False)
    shuffled = spark.read.parquet(str(tmp_path / "rides.parquet")).orderBy(functions.rand(0))
    windows = spark_engine.profile_windows(
        shuffled.repartition(3), reference, time_column="timestamp", every="7d", schema=schema
    )
    local = local_windows(rides, reference, time_column="timestamp", every="7d", schema=schema)
    assert list(windows) == list(local)
    for start, profile in windows.items():
        on_spark = {r.rule: r for r in check_contract(schema, profile)}
        here = {r.rule: r for r in check_contract(schema, local[start])}
        assert on_spark["monotone(timestamp)"].status is Status.INSUFFICIENT_DATA
        assert here["monotone(timestamp)"].status is Status.OK  # the local rows are in order
        assert (on_spark["range(hum)"].status, on_spark["range(hum)"].value) == (
            here["range(hum)"].status,
            here["range(hum)"].value,
        )
