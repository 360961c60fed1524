"""Window profiles built as records are logged: partials per writer and hour merge into the
window's profile, the monitor checks them instead of re-reading the rows, and falls back to
the rows when a partial was lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor

from watchkeeper.data import Profile
from watchkeeper.logstore import (
    FeedbackRecord,
    GroupCommitWriter,
    PartialProfiler,
    PredictionRecord,
    SQLiteLogSink,
    reference_key,
)
from watchkeeper.monitor import Monitor, MonitorConfig, MonitorStore
from watchkeeper.monitor._window_checks import window_profile
from watchkeeper.registry import Registry

T0 = 1_700_006_400  # a UTC day boundary (multiple of 86,400)
SAMPLE = 400  # row sample of the windows' profiles: a fraction of a window


def _features(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    data: dict[str, Any] = {f"x{i}": rng.normal(shift * (i == 0), 1.0, n) for i in range(4)}
    data["city"] = rng.choice(np.array(["a", "b", "c"]), n, p=[0.5, 0.3, 0.2])
    data["count"] = rng.integers(0, 6, n)
    frame = pd.DataFrame(data)
    frame.loc[rng.random(n) < 0.03, "x1"] = np.nan
    return frame


class _Spy(SQLiteLogSink):
    """The SQLite log, counting reads of windows with their features."""

    whole_reads = 0

    def read_window(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("features", True) and (
            kwargs.get("start") is not None or kwargs.get("first") is not None
        ):
            type(self).whole_reads += 1
        return super().read_window(*args, **kwargs)


def _log(tmp: Path, *, workers: int = 2, hours: int = 48, per_hour: int = 60) -> Registry:
    """Log ``hours`` hours of predictions through ``workers`` group-commit writers, each with
    its own partial profiler, in random batches; the second day's x0 drifts."""
    rng = np.random.default_rng(11)
    registry = Registry(root=tmp)
    registry.register(
        "m", DummyRegressor().fit([[0.0]], [1.0]), actor="t", reference=_features(rng, 3000)
    )
    sinks = [SQLiteLogSink(tmp / "predictions.db") for _ in range(workers)]
    profilers = [
        PartialProfiler(s, registry.load_profile, sample_size=SAMPLE, flush_seconds=0.2)
        for s in sinks
    ]
    writers = [GroupCommitWriter(s, on_commit=p.add) for s, p in zip(sinks, profilers, strict=True)]
    n = hours * per_hour
    frame = _features(rng, n)
    frame.loc[n // 2 :, "x0"] += 0.4
    ts = T0 + np.sort(rng.uniform(0, hours * 3600, n))
    preds = rng.normal(10, 1, n)
    records = [
        PredictionRecord(f"r{i}", float(ts[i]), "m", 1, "champion", rec, float(preds[i]))
        for i, rec in enumerate(frame.to_dict("records"))
    ]
    futures = []
    at = 0
    while at < n:
        size = int(rng.integers(1, 40))
        writer = writers[int(rng.integers(0, workers))]
        futures.append(writer.submit(records[at : at + size]))
        at += size
    for f in futures:
        f.result(timeout=60)
    # labels for most rows (some twice: the latest counts), flags for a few
    labelled = np.flatnonzero(rng.random(n) < 0.7)
    feedback = [FeedbackRecord(f"r{i}", float(ts[i]) + 60, label=float(preds[i]) + 0.5)
                for i in labelled]  # fmt: skip
    feedback += [FeedbackRecord(f"r{i}", float(ts[i]) + 120, label=float(preds[i]) - 1.0)
                 for i in labelled[::7]]  # fmt: skip
    feedback += [FeedbackRecord(f"r{i}", float(ts[i]) + 90, flag=True) for i in labelled[::13]]
    writers[0].submit_feedback(feedback).result(timeout=60)
    for w, p, s in zip(writers, profilers, sinks, strict=True):
        w.close()
        p.close()
        s.close()
    return registry


def _config() -> MonitorConfig:
    # no label-free estimators: DLE reads each window's features (row-level), see
    # Monitor._needs_features; every other default check runs on the window's profile or on
    # the window's own columns (predictions, labels, latency)
    return MonitorConfig(
        every="1d", window_sample=SAMPLE, detectors=(), min_rows=200, estimators=()
    )


def _run(tmp: Path, registry: Registry, name: str) -> tuple[list[tuple[Any, ...]], int]:
    _Spy.whole_reads = 0
    sink = _Spy(tmp / "predictions.db")
    with MonitorStore(root=tmp / name) as store:
        summary = Monitor(_config()).run(sink, registry, store, now=T0 + 3 * 86_400)
    sink.close()
    found = [
        (r.check, r.subject, r.status.value, r.value, r.p_value)
        for key in sorted(summary.results)
        for r in summary.results[key]
        if not r.check.startswith("serving.throughput")
    ]
    return found, _Spy.whole_reads


def test_partials_of_several_writers_merge_to_the_profile_of_the_logged_rows(
    tmp_path: Path,
) -> None:
    registry = _log(tmp_path)
    reference = registry.load_profile("m", 1)
    with SQLiteLogSink(tmp_path / "predictions.db") as sink:
        partials = sink.profile_partials("m", start=T0, end=T0 + 86_400)
        rows = sink.read_window("m", start=T0, end=T0 + 86_400)
    assert len({p.writer for p in partials}) == 2
    assert len(partials) >= 24  # every hour, by each writer that logged in it
    assert {p.reference for p in partials} == {reference_key(reference)}
    merged = None
    for p in partials:
        one = Profile.from_bytes(p.profile)
        merged = one if merged is None else merged.merge(one)
    assert merged is not None
    assert sum(p.n_rows for p in partials) == merged.n_rows == rows.num_rows
    whole = window_profile(rows.drop_columns(["label"]), reference, _config())
    assert list(merged.columns) == list(whole.columns)
    for name, w in whole.columns.items():
        m = merged.columns[name]
        assert (m.count, m.n_missing) == (w.count, w.n_missing), name
        if w.kind == "numeric":
            assert m.bin_counts == w.bin_counts, name
            assert (m.min, m.max) == (w.min, w.max), name
            assert m.mean == pytest.approx(w.mean, rel=1e-12), name
            assert m.m2 == pytest.approx(w.m2, rel=1e-9), name
        else:
            assert (m.categories, m.counts, m.other_count) == (
                w.categories,
                w.counts,
                w.other_count,
            )
    # bottom-k samples merge exactly: the same rows as the whole window's sample
    assert whole.sample.num_rows == SAMPLE < rows.num_rows
    assert merged.sample.equals(whole.sample)


def test_the_monitor_checks_the_partials_and_falls_back_when_one_is_lost(
    tmp_path: Path,
) -> None:
    registry = _log(tmp_path)
    # every window covered by partials: no window read with its features (only the
    # version's baseline rows, for the prediction baseline)
    with_partials, reads = _run(tmp_path, registry, "a")
    assert reads == 1
    drifted = {s for c, s, st, _, _ in with_partials if c.startswith("drift.") and st == "alert"}
    assert "x0" in drifted, with_partials  # the second day's shift is found
    # a lost partial (as after kill -9 before a flush): that window is read whole
    db = sqlite3.connect(tmp_path / "predictions.db")
    with db:
        (writer, start) = db.execute(
            "SELECT writer, bucket_start FROM profile_partials WHERE bucket_start >= ? "
            "ORDER BY bucket_start LIMIT 1",
            (T0 + 86_400 + 3600 * 5,),
        ).fetchone()
        db.execute(
            "DELETE FROM profile_partials WHERE writer = ? AND bucket_start = ?", (writer, start)
        )
    lost, reads = _run(tmp_path, registry, "b")
    assert reads == 2  # the baseline rows, and the second day read whole
    # no partials at all: every window read whole, as before log-time profiling
    with db:
        db.execute("DELETE FROM profile_partials")
    db.close()
    without, reads = _run(tmp_path, registry, "c")
    assert reads == 3
    # same data, same verdicts (and the same figures) whichever way the windows were profiled
    skew = "skew."  # skew reads quantiles of the merged sketch: the verdicts must agree
    assert [r[:3] for r in with_partials] == [r[:3] for r in without] == [r[:3] for r in lost]
    exact = [r for r in without if not r[0].startswith(skew)]
    assert [r for r in with_partials if not r[0].startswith(skew)] == exact
    assert [r for r in lost if not r[0].startswith(skew)] == exact
    # late labels: the windows they fall in are re-evaluated from their own columns
    # (predictions, labels), never by re-reading their features
    with SQLiteLogSink(tmp_path / "predictions.db") as sink:
        ids = sink.read_window("m", start=T0, end=T0 + 86_400, features=False)
        unlabelled = [i for i, y in zip(ids.column("id").to_pylist(),
                                        ids.column("label").to_pylist(), strict=True)
                      if y is None][:50]  # fmt: skip
        sink.write_feedback([FeedbackRecord(i, T0 + 2 * 86_400, label=0.0) for i in unlabelled])
    again, reads = _run(tmp_path, registry, "a")
    assert reads == 1  # the baseline rows only (a new Monitor builds its baseline again)
    assert again
    assert all(c.startswith(("performance.", "feedback.")) for c, *_ in again)


def test_a_window_read_without_features_is_the_window_without_its_feature_columns(
    tmp_path: Path,
) -> None:
    _log(tmp_path, hours=6)
    with SQLiteLogSink(tmp_path / "predictions.db") as sink:
        for kwargs in ({}, {"start": T0 + 3600, "end": T0 + 5 * 3600, "version": 1}):
            whole = sink.read_window("m", include_shadow=True, **kwargs)
            lean = sink.read_window("m", include_shadow=True, features=False, **kwargs)
            own = [n for n in whole.column_names if n in lean.column_names]
            assert lean.column_names == own
            assert lean.equals(whole.select(own))
            assert lean.column("label").null_count < lean.num_rows  # labels were joined
            assert any(lean.column("flag").to_pylist())  # and flags


class _Reads(SQLiteLogSink):
    """The SQLite log, recording how every window read was asked for."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def read_window(self, *args: Any, **kwargs: Any) -> Any:
        type(self).calls.append(kwargs)
        return super().read_window(*args, **kwargs)


def _log_days(tmp: Path, registry: Registry, day: int, n: int, rng: np.random.Generator,
              shift: float = 0.0) -> None:  # fmt: skip
    """One day of predictions through two writers with their partial profilers (latency
    random, predictions shifted by ``shift``), with labels and flags for some."""
    sinks = [SQLiteLogSink(tmp / "predictions.db") for _ in range(2)]
    profilers = [
        PartialProfiler(s, registry.load_profile, sample_size=SAMPLE, flush_seconds=0.2)
        for s in sinks
    ]
    writers = [GroupCommitWriter(s, on_commit=p.add) for s, p in zip(sinks, profilers, strict=True)]
    ts = T0 + day * 86_400 + np.sort(rng.uniform(0, 86_400, n))
    frame = _features(rng, n)
    preds = rng.normal(10 + shift, 1, n)
    latency = rng.gamma(3.0, 1.5, n)
    records = [
        PredictionRecord(f"d{day}-{i}", float(ts[i]), "m", 1, "champion", rec, float(preds[i]),
                         latency_ms=float(latency[i]), status="ok" if i % 97 else "error")
        for i, rec in enumerate(frame.to_dict("records"))
    ]  # fmt: skip
    futures = [writers[k % 2].submit(records[k * 25 : (k + 1) * 25]) for k in range(n // 25 + 1)]
    for f in futures:
        f.result(timeout=60)
    feedback = [FeedbackRecord(f"d{day}-{i}", float(ts[i]) + 60, label=float(preds[i]) + 0.3)
                for i in range(0, n, 3)]  # fmt: skip
    feedback += [
        FeedbackRecord(f"d{day}-{i}", float(ts[i]) + 90, flag=True) for i in range(0, n, 40)
    ]
    writers[0].submit_feedback(feedback).result(timeout=60)
    for w, p, s in zip(writers, profilers, sinks, strict=True):
        w.close()
        p.close()
        s.close()


def test_summarised_windows_are_checked_without_reading_their_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(21)
    registry = Registry(root=tmp_path)
    registry.register(
        "m", DummyRegressor().fit([[0.0]], [1.0]), actor="t", reference=_features(rng, 3000)
    )
    _log_days(tmp_path, registry, 0, 1500, rng)
    # the first run makes the version's prediction baseline (its first 1,000 predictions)
    # and stores it in the log: the profilers bin later predictions on it
    with (
        SQLiteLogSink(tmp_path / "predictions.db") as sink,
        MonitorStore(root=tmp_path / "s0") as store,
    ):
        Monitor(_config()).run(sink, registry, store, now=T0 + 86_400)
        assert sink.prediction_baseline("m", 1) is not None
    _log_days(tmp_path, registry, 1, 1500, rng)
    _log_days(tmp_path, registry, 2, 1500, rng, shift=0.5)  # the predictions drift

    def run(name: str) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]], Any]:
        _Reads.calls = []
        sink = _Reads(tmp_path / "predictions.db")
        with MonitorStore(root=tmp_path / name) as store:
            summary = Monitor(_config()).run(sink, registry, store, now=T0 + 3 * 86_400)
        sink.close()
        found = [
            (key[3], r.check, r.subject, r.status.value, r.value, r.p_value, r.lower, r.upper)
            for key in sorted(summary.results)
            for r in summary.results[key]
        ]
        return found, _Reads.calls, summary

    summarised, reads, summary = run("a")
    # days 1 and 2 read nothing row by row but their rows with feedback; day 0's records
    # were logged before the baseline existed, so its own columns are read
    rows_read = [c for c in reads if not c.get("feedback_only")]
    assert sum(1 for c in reads if c.get("feedback_only")) == 1
    assert [c.get("first") for c in rows_read if c.get("first")] == [1000]  # the baseline
    own = [c for c in rows_read if not c.get("first")]
    assert len(own) == 1
    assert own[0]["start"] < T0 + 86_400
    assert own[0]["features"] is False
    assert [w.n_rows for w in summary.windows] == [1500, 1500, 1500]
    # a window without any partial (its records were never profiled): the log's rows are
    # not all covered, so the windows are read as before
    db = sqlite3.connect(tmp_path / "predictions.db")
    with db:
        db.execute(
            "DELETE FROM profile_partials WHERE bucket_start >= ? AND bucket_start < ?",
            (T0 + 86_400, T0 + 2 * 86_400),
        )
    db.close()
    gap, reads, _ = run("c")
    assert not any(c.get("feedback_only") for c in reads)
    assert [r[:4] for r in gap] == [r[:4] for r in summarised]
    # the same log without summaries (partials from before they were kept): the windows'
    # own columns are read, all at once
    db = sqlite3.connect(tmp_path / "predictions.db")
    with db:
        db.execute("UPDATE profile_partials SET summary = NULL")
    db.close()
    read, reads, _ = run("b")
    lean = [c for c in reads if c.get("features") is False]
    assert len(lean) == 1
    assert not lean[0].get("feedback_only")
    assert lean[0]["start"] is None
    assert [r[:4] for r in summarised] == [r[:4] for r in read]  # the same verdicts
    for a, b in zip(summarised, read, strict=True):
        if a[1].startswith("serving.latency"):
            assert a[4] == pytest.approx(b[4], rel=0.006), a  # the histogram's bound
        elif a[1] != "serving.throughput":
            assert a == b  # the same figures: counts, flags, labels, prediction drift
    ks = {
        int(r[0].timestamp() - T0) // 86_400: r
        for r in summarised
        if r[1] == "drift.ks" and r[2] == "prediction"
    }
    # day 2's predictions moved by half a sigma: found in the summarised profile
    assert ks[2][3] == "alert", ks
    assert ks[2][5] < 1e-9, ks
    assert min(ks[0][5], ks[1][5]) > 0.01, ks  # days 0 and 1 are like the baseline
