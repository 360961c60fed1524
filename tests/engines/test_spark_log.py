"""A year of the demo's prediction log in the Parquet log store on a real S3-compatible server
(moto): the local engine and the Spark engine (local[2], reading s3:// through fsspec in its
tasks, no Hadoop file system) give identical weekly window profiles and verdicts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from tests._moto import serve_s3
from tests.engines.test_spark import _assert_same

from watchkeeper.data import Profile
from watchkeeper.engines import profile_log_windows, profile_windows, window_reports
from watchkeeper.engines import spark as spark_engine
from watchkeeper.exceptions import InputError
from watchkeeper.logstore import FeedbackRecord, ParquetLogSink, PredictionRecord

MODEL = "bikeshare-demand"  # the demo's model name
LABEL_LAG_DAYS = 3  # as the demo's replay: labels arrive three days late
WEEK = "7d"  # the demo's monitoring windows


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    yield from serve_s3()


def _served_year() -> tuple[list[PredictionRecord], list[FeedbackRecord], pa.Table]:
    """The demo's replay of 2011 as its gateway logs it, without the gateway: the demo's
    model (its pipeline, fitted on its reference months January to March; 40 boosting
    rounds rather than 200 to keep the test fast — the engines are compared, not the model)
    predicts every hour; one request per day stamped with the day's last hour; each day's
    true counts come back as labels three days later, so the last three days stay
    unlabelled. Also returns the reference months' rows as the log types them."""
    from watchkeeper.datasets import BIKESHARE_FEATURES, load_bikeshare
    from watchkeeper.demo._model import make_model

    data = load_bikeshare()
    features = list(BIKESHARE_FEATURES)
    months = data[data["month"].isin((1, 2, 3))]
    model = make_model(features).set_params(model__max_iter=40)
    predicted = model.fit(months[features], months["bikers"]).predict(data[features])
    ts = pd.to_datetime(data["timestamp"]).dt.tz_localize("UTC")
    event = ts.groupby(ts.dt.floor("D")).transform("max")  # the day's request time
    seconds = event.astype("int64").to_numpy() / 1e6
    rows = [{k: v.item() if hasattr(v, "item") else v for k, v in r.items()}
            for r in data[features].to_dict("records")]  # fmt: skip
    bikers = data["bikers"].astype(int).tolist()
    predictions, labels, reference = [], [], []
    for i, (stamp, when) in enumerate(zip(ts, seconds, strict=True)):
        pid = f"bikes-{stamp:%Y%m%dT%H}"
        predictions.append(
            PredictionRecord(pid, float(when), MODEL, 1, "champion", rows[i], float(predicted[i]))
        )
        due = float(when) + LABEL_LAG_DAYS * 86_400
        if due <= seconds.max():
            labels.append(FeedbackRecord(pid, due, label=bikers[i]))
        if stamp.month <= 3:
            reference.append({**rows[i], "prediction": float(predicted[i]), "label": bikers[i]})
    return predictions, labels, pa.Table.from_pylist(reference)


@pytest.fixture(scope="module")
def served_year() -> tuple[list[PredictionRecord], list[FeedbackRecord], pa.Table]:
    return _served_year()


@pytest.mark.slow
@pytest.mark.service
def test_a_year_of_the_demo_log_on_s3_gives_identical_window_verdicts(
    spark: Any, s3: Any, served_year: Any
) -> None:
    predictions, labels, reference_rows = served_year
    url = f"s3://{s3.create_bucket()}/log"
    options = s3.storage_options
    with ParquetLogSink(url, storage_options=options) as sink:
        # (labels first, only to spare the test the check of every label's id against the
        # whole year's files; they are stored and joined at read time all the same)
        fixed = FeedbackRecord(labels[100].id, labels[100].ts + 600, label=0)  # a correction
        sink.write_feedback([*labels, fixed])
        sink.write_predictions(predictions)  # one file per day, as daily requests write them
        # at least once: another gateway worker stored a week of requests again
        retried = [p for p in predictions if p.id.startswith("bikes-2011050")]
        ParquetLogSink(url, storage_options=options).write_predictions(retried)
    reference = _reference(reference_rows)
    columns = reference_rows.column_names

    local = profile_log_windows(url, MODEL, reference, every=WEEK, storage_options=options)
    on_spark = spark_engine.profile_log_windows(
        url, MODEL, reference, every=WEEK, storage_options=options, spark=spark
    )

    assert len(local) == 53
    assert sum(p.n_rows for p in local.values()) == len(predictions)  # retries read once
    n_labels = sum(p.columns["label"].count for p in local.values())
    assert n_labels == len(labels) < len(predictions)
    assert list(on_spark) == list(local)
    for start in local:
        _assert_same(local[start], on_spark[start])
    assert set(columns) <= set(next(iter(local.values())).columns)

    verdicts_local = window_reports(reference, local)
    verdicts_spark = window_reports(reference, on_spark)
    for start, a in verdicts_local.items():
        b = verdicts_spark[start]
        assert [(c.name, c.method, c.status, c.p_value, c.statistic) for c in a.columns] == [
            (c.name, c.method, c.status, c.p_value, c.statistic) for c in b.columns
        ], start
        assert a.drifted_columns == b.drifted_columns
    # The verdicts say something: summer is far from the reference's winter, and only the
    # two partial weeks (the year's first and last days) have another mix of weekdays.
    july = [r for start, r in verdicts_local.items() if start.month == 7]
    assert all("temp" in r.drifted_columns for r in july)
    weekdays = [start for start, r in verdicts_local.items() if "weekday" in r.drifted_columns]
    assert weekdays == [min(local), max(local)]


def test_the_log_read_window_by_window_is_the_log_the_monitor_reads(
    tmp_path: Any, served_year: Any
) -> None:
    """The local engine's windows (each read apart) equal the monitor's way: the whole log
    read at once by read_window, then cut into windows (a local folder: same code as s3)."""
    predictions, labels, reference_rows = served_year
    root = tmp_path / "log"
    with ParquetLogSink(root) as sink:
        sink.write_predictions(predictions[: 24 * 60])
        sink.write_predictions(predictions[24 * 50 : 24 * 70])  # a retry across days
        sink.write_feedback(labels[: 24 * 58])
        whole = sink.read_window(MODEL)
    reference = _reference(reference_rows)
    columns = [*reference_rows.column_names, "ts"]
    local = profile_log_windows(root, MODEL, reference, every="1d")
    monitor_way = profile_windows(whole.select(columns), reference, time_column="ts", every="1d")
    assert len(local) == len({p.ts // 86_400 for p in predictions[: 24 * 70]}) > 60
    assert list(local) == list(monitor_way)
    for start in local:
        _assert_same(local[start], monitor_way[start])


def _reference(table: Any) -> Profile:
    from watchkeeper.data import Schema

    schema = Schema.infer(table).with_roles({"label": "target", "prediction": "prediction"})
    return Profile.from_data(table, schema)


def test_log_windows_refuse_bad_input_clearly(spark: Any, tmp_path: Any) -> None:
    reference = Profile.from_data(pd.DataFrame({"x": np.arange(10.0)}))
    with ParquetLogSink(tmp_path / "log") as sink:
        sink.write_predictions([PredictionRecord("a", 1.7e9, "m", 1, "c", {"y": 1.0}, 0.5)])
    with pytest.raises(InputError, match=r"lacks columns \['x'\]"):
        spark_engine.profile_log_windows(tmp_path / "log", "m", reference, spark=spark)
    with pytest.raises(InputError, match=r"lacks columns \['x'\]"):
        profile_log_windows(tmp_path / "log", "m", reference)
    assert spark_engine.profile_log_windows(tmp_path / "log", "other", reference, spark=spark) == {}
    with pytest.raises(InputError, match="not a time window"):
        spark_engine.profile_log_windows(tmp_path / "log", "m", reference, every="100", spark=spark)


@pytest.mark.service
def test_profiles_of_parquet_on_s3_read_by_spark_tasks_equal_local(
    spark: Any, s3: Any, tmp_path: Any
) -> None:
    """Any fsspec URL: Spark spreads the files over its tasks, which read them with pyarrow
    (no Hadoop connector); profiles and window profiles equal the local engine's."""
    import s3fs
    from tests.engines.test_spark import ROLES, _frame

    from watchkeeper.data import Schema

    df = _frame(6_000, 5)
    df["ts"] = pd.date_range("2024-03-01", periods=len(df), freq="5min", tz="UTC")
    df["date"] = df["ts"].dt.strftime("%Y-%m-%d")
    local_dir = tmp_path / "data"
    df.to_parquet(local_dir, partition_cols=["date"], index=False)
    fs = s3fs.S3FileSystem(**s3.storage_options)
    url = f"s3://{s3.create_bucket()}/data"
    fs.put(str(local_dir), url.removeprefix("s3://"), recursive=True)
    options = s3.storage_options
    columns = [c for c in df.columns if c not in ("ts", "date")]
    schema = Schema.infer(df[columns], roles=ROLES)

    on_s3 = spark_engine.profile_parquet(url, schema, spark=spark, storage_options=options)
    _assert_same(Profile.from_data(df[columns], schema), on_s3)

    reference = Profile.from_data(_frame(3_000, 6)[columns], schema)
    local = profile_windows(local_dir, reference, time_column="ts", every="1d")
    windows = spark_engine.profile_windows(
        url, reference, time_column="ts", every="1d", spark=spark, storage_options=options
    )
    assert list(windows) == list(local)
    assert len(local) == 21
    for start in local:
        _assert_same(local[start], windows[start])
    with pytest.raises(InputError, match="cannot read"):
        spark_engine.profile_parquet(url + "-nothing", schema, spark=spark, storage_options=options)


@pytest.mark.service
def test_profile_command_reads_s3_on_spark_with_storage_options(
    spark: Any, s3: Any, tmp_path: Any
) -> None:
    """``watchkeeper profile s3://... --engine spark --storage-option K=V``: the schema is
    inferred through fsspec and the profile equals the local engine's; the local engine says
    the options are for Spark instead of ignoring them."""
    import json

    import s3fs
    from tests.engines.test_spark import _frame
    from typer.testing import CliRunner

    from watchkeeper.cli._app import _register_commands, app
    from watchkeeper.data import Schema

    _register_commands()
    df = _frame(4_000, 7)
    local = tmp_path / "data.parquet"
    df.to_parquet(local, index=False)
    fs = s3fs.S3FileSystem(**s3.storage_options)
    url = f"s3://{s3.create_bucket()}/data.parquet"
    fs.put(str(local), url.removeprefix("s3://"))
    pairs = [f"{k}={json.dumps(v)}" for k, v in s3.storage_options.items()]
    flags = [arg for pair in pairs for arg in ("--storage-option", pair)]
    out = tmp_path / "profile.json"
    runner = CliRunner()
    result = runner.invoke(app, ["profile", url, "--out", str(out), "--engine", "spark", *flags])
    assert result.exit_code == 0, result.output
    _assert_same(Profile.from_data(df, Schema.infer(df)), Profile.load(out))

    refused = runner.invoke(app, ["profile", url, "--out", str(out), *flags])
    assert refused.exit_code == 2
    assert "--storage-option is for --engine spark" in refused.output
    bad = runner.invoke(app, ["profile", url, "-o", str(out), "--engine", "spark",
                              "--storage-option", "no-equals-sign"])  # fmt: skip
    assert bad.exit_code == 2
    assert "KEY=VALUE" in bad.output
