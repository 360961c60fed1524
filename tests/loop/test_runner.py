"""The runner end to end on a synthetic service: train, gate, shadow or canary, promote or
roll back, undo, resume; decisions only from data at event time."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tests.loop._traffic import DAY, GATE, MODEL, T0, Traffic, register_champion

from watchkeeper.exceptions import InputError
from watchkeeper.logstore import SQLiteLogSink
from watchkeeper.loop import LoopConfig, LoopRunner
from watchkeeper.registry import Registry


@pytest.fixture
def world(tmp_path: Path):
    registry = Registry(root=tmp_path)
    register_champion(registry)
    sink = SQLiteLogSink(tmp_path / "predictions.db")
    yield registry, sink
    sink.close()
    registry.close()


def _policy(**rollout: object) -> LoopConfig:
    return LoopConfig.from_dict(
        {
            "model": MODEL,
            "training": {"holdout_days": 2},
            "gate": {"config": GATE},
            "rollout": {"t_opt": 300, "min_exposure": 300, **rollout},
        }
    )


def _run(runner: LoopRunner, traffic: Traffic, days: int, start_day: int = 10) -> list:
    made = []
    for d in range(start_day, start_day + days):
        traffic.serve(T0 + d * DAY, T0 + (d + 1) * DAY)
        made += runner.step(T0 + (d + 1) * DAY)
        if runner.store.active(MODEL) is None:
            break
    return made


def test_shadow_promotes_a_better_retrained_model_and_undo_restores(world) -> None:
    registry, sink = world
    traffic = Traffic(registry, sink)
    traffic.serve(T0, T0 + 10 * DAY)
    runner = LoopRunner(_policy(), registry=registry, sink=sink, reference=None)
    made = runner.step(T0 + 10 * DAY, manual="concept changed")
    assert [s.step for s in made] == ["trigger", "gate"]
    assert runner.store.active(MODEL).stage == "shadow"
    assert registry.get_version(MODEL, "challenger").version == 2
    assert runner.step(T0 + 10 * DAY) == []  # nothing new at the same event time
    made = _run(runner, traffic, 10)
    assert made[-1].step == "promote"
    assert registry.get_version(MODEL, "champion").version == 2
    ev = made[-1].evidence
    assert ev["test"]["verdict"] == "better"
    assert ev["test"]["lower"] > 0
    assert ev["alpha"]["family"] == pytest.approx(0.06)
    assert ev["sequence"]["n"] == ev["labelled"]
    kinds = [(e.kind, e.reason.split(":")[0]) for e in registry.history(MODEL)]
    loop_events = [r for k, r in kinds if k == "loop"]
    assert loop_events == ["loop demand-1/trigger", "loop demand-1/gate", "loop demand-1/promote"]
    undo = runner.undo("demand-1/promote", T0 + 30 * DAY)
    assert undo.step == "undo-promote"
    assert registry.get_version(MODEL, "champion").version == 1
    with pytest.raises(Exception, match="challenger"):
        registry.get_version(MODEL, "challenger")
    assert runner.store.get("demand-1").stage == "undone"
    assert runner.store.active(MODEL) is None
    assert runner._routes().get(MODEL).describe() == "single: champion"
    with pytest.raises(InputError, match="already undone"):
        runner.undo("demand-1/promote", T0 + 30 * DAY)
    assert runner.step(T0 + 31 * DAY) == []  # the undone decision is not taken again


def test_canary_rolls_back_a_worse_challenger_and_alerts(world, caplog) -> None:
    registry, sink = world
    traffic = Traffic(registry, sink, challenger_bias=2.0, label_lag_days=0.5)
    traffic.serve(T0, T0 + 10 * DAY)
    runner = LoopRunner(
        _policy(mode="canary", steps=[10, 50], step_labels=50), registry=registry, sink=sink
    )
    runner.step(T0 + 10 * DAY, manual="try")
    with caplog.at_level(logging.ERROR, logger="watchkeeper.alerts"):
        made = _run(runner, traffic, 20)
    assert made[-1].step == "rollback"
    assert made[-1].evidence["test"]["verdict"] == "worse"
    assert registry.get_version(MODEL, "champion").version == 1
    assert "loop-rollback" in caplog.text
    assert runner.store.get("demand-1").state["alert_sent"] is True
    route = runner._routes().get(MODEL)
    assert route.mode == "single"


def test_guardrail_rolls_back_before_any_label_arrives(world) -> None:
    registry, sink = world
    Traffic(registry, sink).serve(T0, T0 + 10 * DAY)
    late = Traffic(registry, sink, seed=2, label_lag_days=60, challenger_error_rate=0.3)
    runner = LoopRunner(_policy(mode="canary", steps=[25]), registry=registry, sink=sink)
    runner.step(T0 + 10 * DAY, manual="try")
    made = _run(runner, late, 5)
    assert made[-1].step == "rollback"
    ev = made[-1].evidence
    assert ev["labelled"] == 0
    breached = [g["name"] for g in ev["guardrails"] if g["breached"]]
    assert breached == ["error_rate"]


def test_dry_run_plans_without_acting(world) -> None:
    registry, sink = world
    Traffic(registry, sink).serve(T0, T0 + 3 * DAY)
    runner = LoopRunner(
        LoopConfig.from_dict({"model": MODEL, "triggers": {"every_days": 2}}),
        registry=registry,
        sink=sink,
    )
    plan = runner.plan(T0 + 3 * DAY)
    assert plan.stage == "idle"
    assert [t.name for t in plan.triggers if t.fired] == ["schedule"]
    assert "start a rollout" in plan.next_action
    assert "trigger schedule: FIRES" in plan.text()
    assert runner.store.rollouts(MODEL) == []
    blocked = LoopRunner(
        LoopConfig.from_dict(
            {"model": MODEL, "triggers": {"every_days": 2, "min_days_in_service": 5}}
        ),
        registry=registry,
        sink=sink,
    ).plan(T0 + 3 * DAY)
    assert blocked.blocked is not None
    assert "must serve first" in blocked.blocked
