"""User flags count: the monitor compares each window's flag rate with the reference period."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from watchkeeper.monitor import AlertConfig


def test_flag_rate_alerts_when_users_flag_more_and_late_flags_update_the_window(
    tmp_path: Path,
) -> None:
    from sklearn.dummy import DummyRegressor

    from watchkeeper.logstore import FeedbackRecord, PredictionRecord, SQLiteLogSink
    from watchkeeper.monitor import AlertEvaluator, Monitor, MonitorConfig, MonitorStore, run_cycle
    from watchkeeper.registry import Registry

    rng = np.random.default_rng(0)
    registry = Registry(root=tmp_path)
    registry.register(
        "m", DummyRegressor().fit([[0.0]], [1.0]), actor="a",
        reference=pd.DataFrame({"x": rng.normal(size=500)}),
    )  # fmt: skip
    sink = SQLiteLogSink(str(tmp_path / "predictions.db"))
    t0 = 1_700_000_000 // 3600 * 3600
    n = 4 * 1000
    sink.write_predictions(
        [
            PredictionRecord(f"r{i}", t0 + i * 3.6, "m", 1, "champion", {"x": x}, 1.0)
            for i, x in enumerate(rng.normal(size=n).tolist())
        ]
    )  # fmt: skip
    # hours 0 (the reference period) and 1: 1% flagged; hour 2: 5%; hour 3: 1% for now
    share = {0: 0.01, 1: 0.01, 2: 0.05, 3: 0.01}
    flagged = [i for i in range(n) if rng.random() < share[i // 1000]]
    sink.write_feedback([FeedbackRecord(f"r{i}", t0 + 5 * 3600, flag=True) for i in flagged])
    store = MonitorStore(root=tmp_path)
    alerts = AlertEvaluator(root=tmp_path)
    config = MonitorConfig(every="1h", detectors=(), estimators=(), baseline_rows=1000)
    monitor = Monitor(config)
    cycle = run_cycle(monitor, sink, registry, store, alerts, now=t0 + 4 * 3600)
    found = {r.window_start: r for r in store.results("m", check="feedback.flag_rate")}
    hours = sorted(found)
    statuses = [found[h].status.value for h in hours]
    assert statuses == ["ok", "ok", "alert", "ok"]
    hot = found[hours[2]]
    assert hot.details["flags"] == sum(1 for i in flagged if i // 1000 == 2)
    assert hot.threshold == sum(1 for i in flagged if i < 1000) / 1000  # reference rate
    assert hot.p_value < 0.01
    assert [e.rule for e in cycle.alerts.events if e.kind == "firing"].count("flag-rate") == 1
    # late flags on hour 3: the window is re-evaluated and its flag rate rises
    late = [i for i in range(3000, 4000) if i not in flagged][:60]
    sink.write_feedback([FeedbackRecord(f"r{i}", t0 + 6 * 3600, flag=True) for i in late])
    run_cycle(monitor, sink, registry, store, alerts, now=t0 + 4 * 3600)
    again = {r.window_start: r for r in store.results("m", check="feedback.flag_rate")}
    assert again[hours[3]].status.value == "alert"
    assert again[hours[3]].details["flags"] == found[hours[3]].details["flags"] + 60
    # the monitoring report (and the dashboard, which renders the same view) shows it
    from watchkeeper.report._monitoring import monitor_view
    from watchkeeper.report._monitoring_html import render_monitoring

    view = monitor_view(store, "m")
    series = [
        s for st in view["streams"] for s in st["series"] if s["check"] == "feedback.flag_rate"
    ]
    assert len(series) == 1
    assert series[0]["values"][-1] == again[hours[3]].value
    assert "User flags" in render_monitoring(view)
    sink.close()
    registry.close()
    store.close()
    alerts.close()


def test_the_default_rules_alert_on_the_flag_rate() -> None:
    rules = {r.name: r for r in AlertConfig.default().rules}
    assert rules["flag-rate"].check == "feedback.flag_rate"
