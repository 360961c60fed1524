"""Log summaries: what a monitor needs of a window's own columns, kept as records are logged
(counts per status, a latency histogram, the predictions' profile on the version's
prediction baseline), merged exactly, and the reads that go with them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from watchkeeper.data import Profile, Schema
from watchkeeper.exceptions import InputError
from watchkeeper.logstore import (
    FeedbackRecord,
    LogSummary,
    PredictionBaseline,
    PredictionRecord,
    SQLiteLogSink,
    prediction_columns,
)


@pytest.mark.parametrize("dist", ["gamma", "lognormal", "discrete"])
def test_latency_quantiles_are_within_half_a_percent_of_numpy(dist: str) -> None:
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 100, 5_000):
        if dist == "gamma":
            x = rng.gamma(2.0, 3.0, n)
        elif dist == "lognormal":
            x = rng.lognormal(0.0, 2.0, n)
        else:
            x = rng.choice([1.0, 2.0, 250.0], n)
        summary = LogSummary.of(x.tolist(), ["ok"] * n)
        xs = np.sort(x)
        for q in (0, 1, 50, 90, 99, 99.9, 100):
            got = summary.latency_quantiles([q])[0]
            rank = q / 100 * (n - 1)
            lo, hi = xs[math.floor(rank)], xs[math.ceil(rank)]
            # within 0.5 % of a value between the two order statistics numpy interpolates
            assert lo / 1.005 <= got <= hi * 1.005, (n, q, got, lo, hi)
            if n == 5_000 and q == 50:  # dense order statistics: numpy's value, to 1 %
                assert got == pytest.approx(np.percentile(x, q), rel=0.01)


def test_summaries_merge_exactly_whatever_the_split() -> None:
    rng = np.random.default_rng(5)
    n = 3_000
    latency = rng.gamma(3.0, 2.0, n)
    status = rng.choice(["ok", "ok", "ok", "error", "timeout"], n).tolist()
    ts = np.sort(rng.uniform(0, 1e4, n))
    whole = LogSummary.of(latency.tolist(), status, ts.tolist())
    cuts = np.sort(rng.choice(np.arange(1, n), 6, replace=False))
    parts = [
        LogSummary.of(latency[a:b].tolist(), status[a:b], ts[a:b].tolist())
        for a, b in zip([0, *cuts], [*cuts, n], strict=True)
    ]
    merged = LogSummary.merge_all(reversed(parts))
    assert merged == whole
    assert merged.errors == sum(s != "ok" for s in status)
    assert merged.ts_max == ts.max()
    assert LogSummary.from_bytes(merged.to_bytes()) == merged


def test_prediction_profiles_merge_only_on_one_baseline() -> None:
    rng = np.random.default_rng(7)
    table = prediction_columns(rng.normal(size=400).tolist(), None, "regression", None)
    baseline = Profile.from_data(table.slice(0, 200), Schema.infer(table.slice(0, 200)))
    a = Profile.from_data(table.slice(0, 200), baseline.schema, reference=baseline)
    b = Profile.from_data(table.slice(200), baseline.schema, reference=baseline)
    one = LogSummary.of([1.0] * 200, ["ok"] * 200, predictions=a, predictions_key="k1")
    two = LogSummary.of([1.0] * 200, ["ok"] * 200, predictions=b, predictions_key="k1")
    merged = one.merge(two)
    assert merged.predictions_key == "k1"
    assert list(merged.predictions.columns["prediction"].bin_counts) == [
        x + y
        for x, y in zip(
            a.columns["prediction"].bin_counts, b.columns["prediction"].bin_counts, strict=True
        )
    ]
    back = LogSummary.from_bytes(merged.to_bytes())
    assert back.predictions.n_rows == 400
    assert back.predictions_key == "k1"
    # another baseline, or records logged before there was one: no prediction profile
    other = LogSummary.of([1.0], ["ok"], predictions=b, predictions_key="k2")
    assert one.merge(other).predictions is None
    assert one.merge(LogSummary.of([1.0], ["ok"])).predictions is None


def test_unreadable_summaries_are_refused_clearly() -> None:
    with pytest.raises(InputError, match="bad magic"):
        LogSummary.from_bytes(b"not a summary")
    good = LogSummary.of([1.0], ["ok"]).to_bytes()
    newer = good.replace(b'"format":1', b'"format":9')
    with pytest.raises(InputError, match="format 9 is not readable"):
        LogSummary.from_bytes(newer)
    with pytest.raises(InputError, match="one value per record"):
        LogSummary.of([1.0, 2.0], ["ok"])


def test_prediction_columns_match_the_monitor_rules() -> None:
    t = prediction_columns(
        [1, 0.0, True, None], [{"a": 0.3, "b": 0.7}, None, None, None], "classification",
        ["a", "b"],
    )  # fmt: skip
    assert t.to_pydict() == {
        "prediction": ["1", "0", "true", None],
        "score.b": [0.7, None, None, None],
    }
    ranked = prediction_columns([["x", "y"], [], None], None, "ranking", None)
    assert ranked.column("prediction").to_pylist() == ["x", None, None]
    three = prediction_columns(
        [2.5], [{"a": 0.1, "b": 0.2, "c": 0.7}], "regression", ["a", "b", "c"]
    )
    assert three.column_names == ["prediction", "score.a", "score.b", "score.c"]


def _sink(tmp: Path, n: int = 200) -> SQLiteLogSink:
    sink = SQLiteLogSink(tmp / "log.db")
    sink.write_predictions(
        [
            PredictionRecord(
                f"r{i}",
                1000.0 + i,
                "m",
                1 + i % 2,
                "champion" if i % 3 else "b",
                {"x": i},
                float(i),
            )
            for i in range(n)
        ]
    )
    return sink


def test_index_only_counts_and_first_rows(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    frame = sink.read_window("m", include_shadow=True).to_pandas()
    ts = frame["ts"].astype("int64") / 1e6
    cases = [(None, None, None, None), (1010, 1100, 2, None), (1000, 1050, None, "b"),
             (1200, 1300, None, None)]  # fmt: skip
    for start, end, version, arm in cases:
        keep = pd.Series(True, index=frame.index)
        if start is not None:
            keep &= (ts >= start) & (ts < end)
        if version is not None:
            keep &= frame["version"] == version
        if arm is not None:
            keep &= frame["arm"] == arm
        assert sink.count_window("m", start=start, end=end, version=version, arm=arm) == int(
            keep.sum()
        )
    assert sink.time_span("m") == (1000.0, 1199.0)
    assert sink.time_span("other") is None
    first = sink.read_window("m", start=1005, version=2, first=3)
    assert first.column("id").to_pylist() == ["r5", "r7", "r9"]
    with pytest.raises(InputError, match="first must be a positive"):
        sink.read_window("m", first=0)
    with pytest.raises(InputError, match="not both"):
        sink.read_window("m", first=2, last=2)
    sink.close()


@pytest.mark.parametrize("n_feedback", [5, 150])
def test_feedback_only_reads_the_rows_with_feedback(tmp_path: Path, n_feedback: int) -> None:
    # few feedback records (read from their ids) or many (read along the time index)
    sink = _sink(tmp_path)
    rng = np.random.default_rng(1)
    ids = rng.choice(200, n_feedback, replace=False)
    sink.write_feedback(
        [FeedbackRecord(f"r{i}", 5000.0 + k, label=int(i) % 2) for k, i in enumerate(ids)]
        + [FeedbackRecord(f"r{i}", 6000.0, flag=True) for i in ids[::2]]
        + [FeedbackRecord("r-unknown", 6000.0, label=1)]
    )
    for kwargs in ({}, {"start": 1020, "end": 1150}, {"version": 2, "arm": "champion"}):
        lean = sink.read_window("m", include_shadow=True, features=False, **kwargs)
        fed = sink.read_window(
            "m", include_shadow=True, features=False, feedback_only=True, **kwargs
        )
        labels, flags = lean.column("label").to_pylist(), lean.column("flag").to_pylist()
        has = [a is not None or b is not None for a, b in zip(labels, flags, strict=True)]
        expected = [r for r, keep in zip(lean.to_pylist(), has, strict=True) if keep]
        assert fed.to_pylist() == expected
    with pytest.raises(InputError, match="feedback_only"):
        sink.read_window("m", feedback_only=True)
    sink.close()


def test_prediction_baselines_are_stored_per_version(tmp_path: Path) -> None:
    sink = _sink(tmp_path, 10)
    assert sink.prediction_baseline("m", 1) is None
    base = PredictionBaseline("classification", ("a", "b"), b"\x00profile", "k1")
    sink.write_prediction_baseline("m", 1, base)
    assert sink.prediction_baseline("m", 1) == base
    sink.write_prediction_baseline("m", 1, PredictionBaseline("regression", None, b"p", "k2"))
    assert sink.prediction_baseline("m", 1) == PredictionBaseline("regression", None, b"p", "k2")
    assert sink.prediction_baseline("m", 2) is None
    sink.close()


def test_the_profiler_bins_predictions_on_the_baseline_the_monitor_stored(tmp_path: Path) -> None:
    import time

    from watchkeeper.logstore import GroupCommitWriter, PartialProfiler

    rng = np.random.default_rng(2)
    reference = Profile.from_data(pd.DataFrame({"x": rng.normal(size=500)}))
    sink = SQLiteLogSink(tmp_path / "log.db")
    profiler = PartialProfiler(sink, lambda model, version: reference, flush_seconds=0.05)

    def log(hour: int, n: int = 50) -> None:
        with GroupCommitWriter(sink, on_commit=profiler.add) as writer:
            records = [
                PredictionRecord(f"h{hour}-{i}", 3600.0 * hour + i, "m", 1, "champion",
                                 {"x": float(rng.normal())}, float(rng.normal(5)),
                                 latency_ms=float(i + 1))
                for i in range(n)
            ]  # fmt: skip
            writer.submit(records).result(timeout=10)
        profiler.flush()

    def summary(hour: int) -> LogSummary:
        (data,) = sink.partial_summaries("m", start=3600.0 * hour, end=3600.0 * (hour + 1))
        assert data is not None
        return LogSummary.from_bytes(data)

    log(0)  # no baseline yet: counts and latency only
    assert summary(0).predictions is None
    assert summary(0).n_rows == 50
    assert summary(0).latency_quantiles([100]) == [50.0]
    table = prediction_columns(rng.normal(5, 1, 300).tolist(), None, "regression", None)
    first = Profile.from_data(table, Schema.infer(table))
    sink.write_prediction_baseline(
        "m", 1, PredictionBaseline("regression", None, first.to_bytes(), "k1")
    )
    time.sleep(0.1)
    log(1)
    one = summary(1)
    assert one.predictions_key == "k1"
    assert one.predictions.columns["prediction"].bin_edges == first.columns["prediction"].bin_edges
    assert one.predictions.n_rows == 50
    # the monitor replaces the baseline: later records follow it
    table = prediction_columns(rng.normal(7, 1, 300).tolist(), None, "regression", None)
    second = Profile.from_data(table, Schema.infer(table))
    sink.write_prediction_baseline(
        "m", 1, PredictionBaseline("regression", None, second.to_bytes(), "k2")
    )
    time.sleep(0.1)
    log(2)
    assert summary(2).predictions_key == "k2"
    profiler.close()
    sink.close()
