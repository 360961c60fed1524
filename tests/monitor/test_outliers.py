"""The monitor counts each window's logged outlier flags against the version's detector: the
default rule fires on a window with many outliers and not on clean ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from watchkeeper.checks import OUTLIER_FLAG_KEY, OUTLIER_SCORE_KEY, OutlierDetector
from watchkeeper.monitor import AlertConfig


def _rows(rng: np.random.Generator, n: int) -> pd.DataFrame:
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": 0.7 * x + 0.7 * rng.normal(size=n)})


def _write(sink: Any, registry: Any, partials: bool, records: list[Any]) -> None:
    if not partials:
        sink.write_predictions(records)
        return
    from watchkeeper.logstore import GroupCommitWriter, PartialProfiler, SQLiteLogSink

    # a second connection writes, as a gateway would; its profiler stores hourly partials
    writer_sink = SQLiteLogSink(sink.path)
    profiler = PartialProfiler(writer_sink, registry.load_profile, flush_seconds=0.2)
    writer = GroupCommitWriter(writer_sink, on_commit=profiler.add)
    for at in range(0, len(records), 100):
        writer.submit(records[at : at + 100]).result(timeout=60)
    writer.close()
    profiler.close()
    n_partials = len(list(writer_sink.partial_profile_texts("m", start=0.0, end=2e9)))
    writer_sink.close()
    assert n_partials >= 4


@pytest.mark.parametrize("partials", [False, True], ids=["rows", "log-time-profiles"])
def test_outlier_share_alerts_on_a_window_with_injected_outliers(
    tmp_path: Path, partials: bool
) -> None:
    """With ``partials`` the records go through the group-commit writer with log-time
    profiles, so the monitor reads windows without their features unless a check needs
    them: the outlier flags are logged with the features, so it must read them."""
    from sklearn.dummy import DummyRegressor

    from watchkeeper.logstore import PredictionRecord, SQLiteLogSink
    from watchkeeper.monitor import AlertEvaluator, Monitor, MonitorConfig, MonitorStore, run_cycle
    from watchkeeper.registry import Registry

    rng = np.random.default_rng(0)
    reference = _rows(rng, 3000)
    registry = Registry(root=tmp_path)
    registry.register(
        "m",
        DummyRegressor().fit(reference, np.ones(len(reference))),
        reference=reference,
        outliers=OutlierDetector(rate=0.01),
        actor="a",
    )
    detector = registry.load_outliers("m", 1)
    # four hours of 1000 records; hour 2 has 8% injected far-out records
    frames = [_rows(rng, 1000) for _ in range(4)]
    frames[2].loc[:79, "x"] += 9.0
    window = pd.concat(frames, ignore_index=True)
    scores = detector.score(window)
    flags = scores > detector.threshold_
    sink = SQLiteLogSink(str(tmp_path / "predictions.db"))
    t0 = 1_700_000_000 // 3600 * 3600
    _write(
        sink,
        registry,
        partials,
        [
            PredictionRecord(
                f"r{i}",
                t0 + i * 3.6,
                "m",
                1,
                "champion",
                {
                    "x": float(row.x),
                    "y": float(row.y),
                    # what the gateway logs beside the features
                    OUTLIER_SCORE_KEY: float(scores[i]),
                    OUTLIER_FLAG_KEY: bool(flags[i]),
                },
                1.0,
            )
            for i, row in enumerate(window.itertuples())
        ],
    )
    store = MonitorStore(root=tmp_path)
    alerts = AlertEvaluator(root=tmp_path)
    config = MonitorConfig(every="1h", detectors=(), estimators=(), baseline_rows=1000)
    cycle = run_cycle(Monitor(config), sink, registry, store, alerts, now=t0 + 4 * 3600)
    found = {r.window_start: r for r in store.results("m", check="outliers.rate")}
    hours = sorted(found)
    assert [found[h].status.value for h in hours] == ["ok", "ok", "alert", "ok"]
    hot = found[hours[2]]
    assert hot.details["flagged"] == int(flags[2000:3000].sum()) >= 80
    assert hot.details["n_rows"] == 1000
    assert hot.value == flags[2000:3000].mean()
    assert hot.threshold == detector.false_positive_rate_
    assert hot.details["stated_rate"] == 0.01
    assert hot.p_value is not None
    assert hot.p_value < 1e-6
    assert hot.lower is not None
    assert hot.lower > 0.01
    for h in (hours[0], hours[1], hours[3]):
        assert found[h].details["flagged"] <= 30
    firing = [e.rule for e in cycle.alerts.events if e.kind == "firing"]
    assert firing.count("outliers") == 1
    # the monitoring report (and the dashboard, which renders the same view) draws the share
    from watchkeeper.report._monitoring import monitor_view
    from watchkeeper.report._monitoring_html import render_monitoring

    view = monitor_view(store, "m")
    (series,) = [s for st in view["streams"] for s in st["series"] if s["check"] == "outliers.rate"]
    assert series["values"] == [found[h].value for h in hours]
    assert series["statuses"][2] == "alert"
    assert "Outliers (share of records flagged" in render_monitoring(view)
    # the logged score and flag are not features: no drift or quality result about them
    subjects = {r.subject for r in store.results("m")}
    assert OUTLIER_SCORE_KEY not in subjects
    assert OUTLIER_FLAG_KEY not in subjects
    sink.close()
    registry.close()
    store.close()
    alerts.close()


def test_versions_without_a_detector_get_no_outlier_result(tmp_path: Path) -> None:
    from sklearn.dummy import DummyRegressor

    from watchkeeper.logstore import PredictionRecord, SQLiteLogSink
    from watchkeeper.monitor import Monitor, MonitorConfig, MonitorStore, run_cycle
    from watchkeeper.registry import Registry

    rng = np.random.default_rng(1)
    reference = _rows(rng, 500)
    registry = Registry(root=tmp_path)
    registry.register(
        "m", DummyRegressor().fit(reference, np.ones(500)), reference=reference, actor="a"
    )
    sink = SQLiteLogSink(str(tmp_path / "predictions.db"))
    sink.write_predictions(
        [
            PredictionRecord(
                f"r{i}", 1_700_000_000 + i, "m", 1, "champion", {"x": 0.1, "y": 0.2}, 1.0
            )
            for i in range(300)
        ]
    )
    store = MonitorStore(root=tmp_path)
    run_cycle(Monitor(MonitorConfig(every=150, detectors=(), estimators=())), sink, registry, store)
    assert store.results("m", check="outliers.rate") == []
    assert store.results("m")  # the other checks ran
    sink.close()
    registry.close()
    store.close()


def test_the_default_rules_alert_on_the_outlier_share() -> None:
    rules = {r.name: r for r in AlertConfig.default().rules}
    assert rules["outliers"].check == "outliers.rate"
