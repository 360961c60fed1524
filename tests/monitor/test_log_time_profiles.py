"""Window profiles built as records are logged: partials per writer and hour merge into the
window's profile, the monitor checks them instead of re-reading the rows, and falls back to
the rows when a partial was lost."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

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
        if kwargs.get("features", True) and kwargs.get("start") is not None:
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
