"""The monitor's defaults on generated logs with known truth: DLE for a regressor and CBPE
for a classifier (estimates close to the realised metric when there is no concept drift),
ADWIN and Page-Hinkley on the error stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from watchkeeper.checks import Status
from watchkeeper.logstore import FeedbackRecord, PredictionRecord, SQLiteLogSink
from watchkeeper.monitor import Monitor, MonitorConfig, MonitorStore
from watchkeeper.registry import Registry

T0 = 1_700_006_400.0  # on the hour
HOUR = 3600.0
N = 500  # rows per hourly window


def _log(
    tmp: Path,
    name: str,
    model: Any,
    windows: list[pd.DataFrame],
    truth: list[np.ndarray],
    half_labelled: frozenset[int] = frozenset(),
) -> tuple[Registry, SQLiteLogSink, MonitorStore]:
    """Log every window's predictions and labels (only the even rows' in ``half_labelled``
    windows)."""
    registry = Registry(root=tmp)
    registry.register(name, model, reference=windows[0], actor="test")
    sink = SQLiteLogSink(tmp / "predictions.db", synchronous="normal")
    records, labels = [], []
    for w, (frame, y) in enumerate(zip(windows, truth, strict=True)):
        if hasattr(model, "predict_proba"):
            p1 = model.predict_proba(frame)[:, 1]
            preds = (p1 > 0.5).astype(int)
        else:
            p1, preds = None, model.predict(frame)
        for i, row in enumerate(frame.to_dict("records")):
            rid = f"{w}-{i}"
            scores = None if p1 is None else {"0": 1 - float(p1[i]), "1": float(p1[i])}
            pred = int(preds[i]) if p1 is not None else float(preds[i])
            ts = T0 + w * HOUR + i * HOUR / len(frame)
            records.append(PredictionRecord(rid, ts, name, 1, "champion", row, pred, scores=scores))
            if w not in half_labelled or i % 2 == 0:
                labels.append(FeedbackRecord(rid, ts + 1, label=y[i].item()))
    sink.write_predictions(records)
    sink.write_feedback(labels)
    return registry, sink, MonitorStore(root=tmp)


@pytest.fixture
def regressor_log(tmp_path: Path) -> Iterator[tuple[Any, ...]]:
    """y = 2x with noise growing in x; window 3 moves x to the noisy half of the reference
    range (covariate shift, same concept), window 4 beyond it."""
    rng = np.random.default_rng(11)
    frames, truth = [], []
    for w in range(5):
        x = rng.uniform(*{3: (0.5, 1.0), 4: (1.0, 1.6)}.get(w, (0.0, 1.0)), N)
        frames.append(pd.DataFrame({"x": x, "z": rng.normal(size=N)}))
        truth.append(2 * x + rng.normal(0, 0.1 + x, N))
    model = LinearRegression().fit(frames[0].assign(x=frames[0]["x"]), 2 * frames[0]["x"])
    opened = _log(tmp_path, "price", model, frames, truth)
    yield opened
    for thing in opened:
        thing.close()


def _by_window(store: MonitorStore, model: str, check: str) -> dict[int, Any]:
    return {r.window_start.hour: r for r in store.results(model, check=check)}


def test_dle_and_detectors_by_default(regressor_log: tuple[Any, ...]) -> None:
    registry, sink, store = regressor_log
    config = MonitorConfig(every="1h")
    assert config.estimators == "auto"
    Monitor(config).run(sink, registry, store, now=T0 + 6 * HOUR)
    estimated = store.results("price", check="estimated.mae")
    realised = store.results("price", check="performance.mae")
    assert len(estimated) == len(realised) == 5
    for est, truth in zip(estimated[:4], realised[:4], strict=True):
        assert est.details["method"] == "dle"
        # the estimate follows the realised MAE, the shifted window included
        assert est.value == pytest.approx(truth.value, rel=0.12), est.window_start
    assert [e.status for e in estimated[:3]] == [Status.OK] * 3
    # the noisier half: the estimate sees the loss rise before any label, as labels confirm
    assert estimated[3].value > 1.3 * np.mean([e.value for e in estimated[:3]])
    assert estimated[3].status is Status.ALERT
    # beyond the reference range the loss model cannot know: the estimate is flagged
    assert estimated[4].status.severity >= Status.WARN.severity
    assert "outside the reference's support" in estimated[4].details["assumption_warning"]
    assert estimated[0].details["unsupported_share"] == 0.0
    concept = store.results("price", check="concept.")
    assert {r.check for r in concept} == {"concept.adwin"}


def test_cbpe_by_default_for_a_classifier_with_scores(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    frames, truth = [], []
    for w in range(3):
        x = rng.normal(0.8 if w == 2 else 0.0, 1.0, N)
        frames.append(pd.DataFrame({"x": x}))
        truth.append((rng.random(N) < 1 / (1 + np.exp(-2 * x))).astype(int))
    model = LogisticRegression().fit(frames[0], truth[0])
    registry, sink, store = _log(tmp_path, "churn", model, frames, truth)
    try:
        Monitor(MonitorConfig(every="1h", baseline_rows=600)).run(
            sink, registry, store, now=T0 + 4 * HOUR
        )
        estimated = _by_window(store, "churn", "estimated.accuracy")
        realised = _by_window(store, "churn", "performance.accuracy")
        assert len(estimated) == 3
        for hour, est in estimated.items():
            assert est.details["method"] == "cbpe"
            assert est.value == pytest.approx(realised[hour].value, abs=0.05), hour
        assert {r.check for r in store.results("churn", check="concept.")} == {"concept.adwin"}
    finally:
        for thing in (registry, sink, store):
            thing.close()


def test_estimators_wait_for_labelled_baseline_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.uniform(0, 1, N)})
    model = LinearRegression().fit(frame, 2 * frame["x"])
    registry = Registry(root=tmp_path)
    registry.register("late", model, reference=frame, actor="test")
    sink = SQLiteLogSink(tmp_path / "predictions.db", synchronous="normal")
    sink.write_predictions(
        [
            PredictionRecord(f"r{i}", T0 + i, "late", 1, "champion", {"x": float(v)}, 2 * float(v))
            for i, v in enumerate(frame["x"])
        ]
    )
    store = MonitorStore(root=tmp_path)
    try:
        Monitor(MonitorConfig(every=250)).run(sink, registry, store, now=T0 + HOUR)
        [row, _] = store.results("late", check="estimated.")
        assert row.check == "estimated.performance"
        assert row.status is Status.INSUFFICIENT_DATA
        assert "0 labelled rows" in row.reason
    finally:
        for thing in (registry, sink, store):
            thing.close()


def test_estimates_held_against_the_labels_that_arrive(tmp_path: Path) -> None:
    """A window whose labels contradict its estimate (concept shift: the outcome's relation
    to x turns around) says so in the estimate's details; windows where the concept holds do
    not, whether all or half of their rows are labelled."""
    rng = np.random.default_rng(5)
    frames, truth = [], []
    for w in range(4):
        x = rng.normal(0.0, 1.0, N)
        frames.append(pd.DataFrame({"x": x}))
        slope = -2.0 if w == 3 else 2.0
        truth.append((rng.random(N) < 1 / (1 + np.exp(-slope * x))).astype(int))
    model = LogisticRegression().fit(frames[0], truth[0])
    registry, sink, store = _log(tmp_path, "churn", model, frames, truth, frozenset({2}))
    try:
        Monitor(MonitorConfig(every="1h", baseline_rows=500)).run(
            sink, registry, store, now=T0 + 5 * HOUR
        )
        found = [r for r in store.results("churn", check="estimated.") if r.window_start.hour]
        by_hour: dict[int, list[Any]] = {}
        for r in found:
            by_hour.setdefault(r.window_start.hour, []).append(r)
        assert sorted(by_hour) == [1, 2, 3]
        for hour, results in by_hour.items():
            held = [r.details["consistency"] for r in results]
            assert {h["n_labels"] for h in held} == {N // 2 if hour == 2 else N}, hour
            assert {h["tests"] for h in held} == {len(results)}
            if hour < 3:
                assert {h["status"] for h in held} == {"ok"}, hour
                assert not any("assumption_warning" in r.details for r in results)
            else:
                acc = next(r for r in results if r.check == "estimated.accuracy")
                assert acc.details["consistency"]["status"] == "warn"
                assert acc.details["consistency"]["realised"] < acc.details["consistency"]["lower"]
                assert "no-concept-drift assumption failed" in acc.details["assumption_warning"]
    finally:
        for thing in (registry, sink, store):
            thing.close()
