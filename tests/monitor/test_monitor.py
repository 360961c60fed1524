"""The monitor over a real prediction log (SQLite, written through GroupCommitWriter).

Known answers: a shift planted in window 3 is found there and not in windows 1-2; realised
metrics equal scikit-learn's on the same rows; late labels recompute a window's performance
without duplicate rows; an interrupted run resumes to the same rows as an uninterrupted one;
detectors are fed each labelled row once across runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier

from watchkeeper.checks import Status
from watchkeeper.logstore import FeedbackRecord, GroupCommitWriter, PredictionRecord, SQLiteLogSink
from watchkeeper.monitor import Monitor, MonitorConfig, MonitorStore
from watchkeeper.registry import Registry

T0 = 1_700_006_400.0  # 2023-11-15 00:00:00 UTC, on the hour
HOUR = 3600.0
N = 400  # rows per hourly window


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x1": rng.normal(shift, 1.0, n),
            "x2": rng.normal(0.0, 1.0, n),
            "c": rng.choice(["a", "b", "c"], n),
        }
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(7)
    registry = Registry(root=tmp_path)
    model = DummyClassifier().fit([[0.0], [1.0]], [0, 1])
    registry.register(
        "churn",
        model,
        reference=_rows(rng, 3000),
        metrics={"holdout.accuracy": 0.7},
        actor="test",
        output_kind="classification",
    )
    sink = SQLiteLogSink(tmp_path / "predictions.db", synchronous="normal")
    store = MonitorStore(root=tmp_path)
    truth: dict[str, int] = {}
    records = []
    for w in range(3):
        frame = _rows(rng, N, shift=1.0 if w == 2 else 0.0)
        for i, row in enumerate(frame.itertuples(index=False)):
            p = float(1 / (1 + np.exp(-1.5 * row.x1)))
            rid = f"w{w}-{i}"
            truth[rid] = int(rng.random() < p)
            records.append(
                PredictionRecord(
                    rid,
                    T0 + w * HOUR + i * (HOUR / N),
                    "churn",
                    1,
                    "champion",
                    {"x1": row.x1, "x2": row.x2, "c": row.c},
                    int(p > 0.5),
                    scores={"0": 1 - p, "1": p},
                    latency_ms=2.0 + (i % 7),
                )
            )
    with GroupCommitWriter(sink) as writer:
        writer.submit(records).result(timeout=60)
        # labels for 3 of every 4 rows of windows 1 and 2, none yet for window 3
        fb = [
            FeedbackRecord(rid, T0 + 4 * HOUR, label=y)
            for rid, y in truth.items()
            if not rid.startswith("w2") and int(rid.split("-")[1]) % 4
        ]
        fb.append(FeedbackRecord("no-such-id", T0 + 4 * HOUR, label=1))
        writer.submit_feedback(fb).result(timeout=60)
    yield {"registry": registry, "sink": sink, "store": store, "truth": truth, "tmp": tmp_path}
    sink.close()
    registry.close()
    store.close()


def _run(world: dict[str, Any], config: MonitorConfig | None = None, **kw: Any) -> Any:
    config = config or MonitorConfig(every="1h", baseline_rows=300)
    return Monitor(config).run(
        world["sink"], world["registry"], world["store"], now=T0 + 5 * HOUR, **kw
    )


def _keyed(store: MonitorStore) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {
        (r.window_start, r.check, r.subject): (r.status, r.value, r.lower, r.upper, r.n_labels)
        for r in store.results("churn")
    }


def test_planted_shift_is_found_in_window_three_only(world: dict[str, Any]) -> None:
    summary = _run(world)
    assert [w.n_rows for w in summary.windows] == [N, N, N]
    drift = {
        (r.window_start.hour, r.subject): r.status
        for r in world["store"].results("churn", check="drift.ks")
    }
    assert drift[(2, "x1")] is Status.ALERT
    assert drift[(0, "x1")] is not Status.ALERT
    assert drift[(1, "x1")] is not Status.ALERT
    assert drift[(2, "x2")] is not Status.ALERT
    # the labels for an unknown id are counted, not lost
    assert summary.feedback["churn"].n_unknown == 1
    windows = world["store"].windows("churn")
    assert [round(w.label_coverage, 2) for w in windows] == [0.75, 0.75, 0.0]


def test_realised_metrics_equal_scikit_learn(world: dict[str, Any]) -> None:
    _run(world)
    window = world["sink"].read_window("churn", start=T0, end=T0 + HOUR)
    labelled = [r for r in window.to_pylist() if r["label"] is not None]
    y = [str(r["label"]) for r in labelled]
    pred = [str(r["prediction"]) for r in labelled]
    import json

    p1 = np.array([json.loads(r["scores"])["1"] for r in labelled])
    got = {
        r.check: r.value
        for r in world["store"].results("churn", check="performance.", subject="model")
        if r.window_start.hour == 0
    }
    expected = {
        "performance.accuracy": skm.accuracy_score(y, pred),
        "performance.precision": skm.precision_score(y, pred, pos_label="1"),
        "performance.recall": skm.recall_score(y, pred, pos_label="1"),
        "performance.f1": skm.f1_score(y, pred, pos_label="1"),
        "performance.roc_auc": skm.roc_auc_score(np.array(y) == "1", p1),
        "performance.log_loss": skm.log_loss(y, np.c_[1 - p1, p1], labels=["0", "1"]),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    # the registered holdout accuracy is the reference of the drop rule
    acc = world["store"].results("churn", check="performance.accuracy")[0]
    assert acc.details["reference"] == 0.7
    assert acc.lower is not None
    assert acc.lower < acc.value < acc.upper


def test_late_labels_recompute_performance_without_duplicates(world: dict[str, Any]) -> None:
    _run(world)
    before = world["store"].results("churn")
    drift_before = {
        (r.window_start, r.check, r.subject): r.computed_at
        for r in before
        if r.check.startswith("drift.")
    }
    late = [
        FeedbackRecord(rid, T0 + 6 * HOUR, label=y)
        for rid, y in world["truth"].items()
        if rid.startswith("w2")
    ]
    world["sink"].write_feedback(late)
    summary = _run(world)
    assert [w.window_start.hour for w in summary.windows] == [2]  # only window 3 changed
    after = world["store"].results("churn")
    keys = [(r.window_start, r.check, r.subject) for r in after]
    assert len(keys) == len(set(keys))  # replaced, not duplicated
    w3 = [r for r in after if r.window_start.hour == 2]
    assert {r.n_labels for r in w3} == {N}
    acc = next(r for r in w3 if r.check == "performance.accuracy")
    assert acc.status is not Status.INSUFFICIENT_DATA
    # drift rows of the window were left alone
    for r in after:
        if r.check.startswith("drift."):
            assert drift_before[(r.window_start, r.check, r.subject)] == r.computed_at
    # a third run has nothing to do
    assert _run(world).windows == ()


def test_interrupted_run_resumes_to_the_same_rows(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: MonitorStore = world["store"]
    real = store.write_window
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed midway")
        real(*args, **kwargs)

    monkeypatch.setattr(store, "write_window", failing)
    with pytest.raises(RuntimeError, match="killed midway"):
        _run(world)
    monkeypatch.setattr(store, "write_window", real)
    assert len(store.windows("churn")) == 1
    assert store.runs()[0]["status"] == "failed"
    resumed = _run(world)
    assert len(resumed.windows) == 2
    assert resumed.skipped == 1
    # the same rows as a clean run into a fresh store
    with MonitorStore(f"sqlite:///{tmp_path / 'clean.db'}") as clean:
        Monitor(MonitorConfig(every="1h", baseline_rows=300)).run(
            world["sink"], world["registry"], clean, now=T0 + 5 * HOUR
        )
        resumed_rows, clean_rows = _keyed(store), _keyed(clean)
    assert resumed_rows.keys() == clean_rows.keys()
    for key, value in clean_rows.items():
        if key[1].startswith("concept."):
            continue  # fed once: the interrupted run had fed nothing yet either way
        assert resumed_rows[key] == value, key


def test_detectors_feed_each_labelled_row_once(world: dict[str, Any]) -> None:
    config = MonitorConfig(every="1h", baseline_rows=300, detectors=("adwin", "ddm"))
    _run(world, config)
    states = world["store"].detector_states("churn", 1, "champion")
    first = {name: s.n_fed for name, s in states.items()}
    assert first == {"adwin": 600, "ddm": 600}
    _run(world, config)  # nothing new: nothing fed
    states = world["store"].detector_states("churn", 1, "champion")
    assert {name: s.n_fed for name, s in states.items()} == first
    late = [
        FeedbackRecord(rid, T0 + 6 * HOUR, label=y)
        for rid, y in world["truth"].items()
        if rid.startswith("w2")
    ]
    world["sink"].write_feedback(late)
    _run(world, config)
    states = world["store"].detector_states("churn", 1, "champion")
    assert {name: s.n_fed for name, s in states.items()} == {"adwin": 1000, "ddm": 1000}
    concept = world["store"].results("churn", check="concept.")
    assert {(r.window_start.hour, r.check) for r in concept} == {
        (h, f"concept.{d}") for h in range(3) for d in ("adwin", "ddm")
    }


def test_count_windows_follow_each_arm(world: dict[str, Any]) -> None:
    config = MonitorConfig(every=500, baseline_rows=300)
    summary = _run(world, config)
    assert [w.n_rows for w in summary.windows] == [500, 500]  # 200 rows wait for more
    assert all(w.window_kind == "count" for w in summary.windows)
    assert summary.windows[0].window_end == summary.windows[1].window_start
    assert _run(world, config).skipped == 2


def test_serving_health(world: dict[str, Any]) -> None:
    _run(world)
    got = {
        r.check: r
        for r in world["store"].results("churn", check="serving.")
        if r.window_start.hour == 0
    }
    latency = np.array([2.0 + (i % 7) for i in range(N)])
    assert got["serving.latency_p50"].value == pytest.approx(np.percentile(latency, 50))
    assert got["serving.latency_p99"].value == pytest.approx(np.percentile(latency, 99))
    assert got["serving.error_rate"].value == 0.0
    assert got["serving.throughput"].value == pytest.approx(N / HOUR)


@pytest.fixture
def postgres_schema_url(monitor_postgres: Any) -> str:
    return str(monitor_postgres.create_schema())


@pytest.mark.service
def test_store_on_postgresql(postgres_schema_url: str) -> None:
    from datetime import UTC, datetime

    from watchkeeper.checks import CheckResult

    start, end = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 1, 1, tzinfo=UTC)
    with MonitorStore(postgres_schema_url) as store:
        found = [
            CheckResult(
                "performance.accuracy",
                "model",
                Status.WARN,
                "dropped",
                value=0.8,
                lower=0.7,
                upper=0.9,
                details={"n_labels": 40},
            ),
            CheckResult("drift.ks", "x", Status.OK, "no drift", value=0.01, p_value=0.5),
        ]
        for _ in range(2):  # idempotent
            store.write_window("m", 1, "champion", start, end, "time", 100, 40, found, run_id="r")
        rows = store.results("m")
        assert [(r.check, r.status, r.value) for r in rows] == [
            ("drift.ks", Status.OK, 0.01),
            ("performance.accuracy", Status.WARN, 0.8),
        ]
        assert rows[0].window_start == start
        assert store.windows("m")[0].status is Status.WARN
        assert store.latest("m")[1].details == {"n_labels": 40}
