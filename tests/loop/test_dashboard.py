"""What the loop shows: the dashboard page (stage, confidence-sequence chart, guardrails,
steps), the Prometheus series of stages and decisions, served by the gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.gateway._apps import gateway
from tests.loop._traffic import DAY, GATE, MODEL, T0, Traffic, register_champion

from watchkeeper.gateway._loop_metrics import render_loop_metrics
from watchkeeper.logstore import SQLiteLogSink
from watchkeeper.loop import LoopConfig, LoopRunner
from watchkeeper.registry import Registry
from watchkeeper.report import loop_view, render_loop_dashboard


@pytest.fixture
def rolled_back(tmp_path: Path) -> Path:
    """A canary of a biased challenger, rolled back on its labels."""
    registry = Registry(root=tmp_path)
    register_champion(registry)
    sink = SQLiteLogSink(tmp_path / "loop-log.db")
    traffic = Traffic(registry, sink, challenger_bias=2.0, label_lag_days=0.5)
    traffic.serve(T0, T0 + 10 * DAY)
    policy = LoopConfig.from_dict(
        {"model": MODEL, "training": {"holdout_days": 2}, "gate": {"config": GATE},
         "rollout": {"mode": "canary", "steps": [25, 50], "t_opt": 300}}
    )  # fmt: skip
    runner = LoopRunner(policy, registry=registry, sink=sink)
    runner.step(T0 + 10 * DAY, manual="test")
    for d in range(10, 30):
        traffic.serve(T0 + d * DAY, T0 + (d + 1) * DAY)
        runner.step(T0 + (d + 1) * DAY)
        if runner.store.active(MODEL) is None:
            break
    sink.close()
    registry.close()
    return tmp_path


def test_metrics_and_page(rolled_back: Path) -> None:
    with Registry(root=rolled_back) as registry:
        text = render_loop_metrics(registry)
        view = loop_view(registry)
    assert f'watchkeeper_loop_stage{{model="{MODEL}",stage="rolled_back"}} 1' in text
    assert f'watchkeeper_loop_stage{{model="{MODEL}",stage="canary"}} 0' in text
    assert f'watchkeeper_loop_decisions_total{{model="{MODEL}",decision="rollback"}} 1' in text
    html = render_loop_dashboard(view, refresh=0)
    assert f"{MODEL}: rolled_back" in html
    assert "<svg" in html
    assert "<polygon" in html
    assert f"{MODEL}-1/rollback" in html
    assert "worse" in html
    assert "error_rate" in html  # the guardrails table


@pytest.mark.anyio
async def test_the_gateway_serves_them(rolled_back: Path) -> None:
    async with gateway(rolled_back) as client:
        metrics = (await client.get("/metrics")).text
        page = await client.get("/dashboard/loop?refresh=0")
    assert f'watchkeeper_loop_decisions_total{{model="{MODEL}",decision="rollback"}} 1' in metrics
    assert page.status_code == 200
    assert "<svg" in page.text
