"""Training data, candidates and triggers of the loop, on a synthetic service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.loop._traffic import DAY, GATE, MODEL, STEP, T0, Traffic, register_champion

from watchkeeper.checks import Status
from watchkeeper.logstore import FeedbackRecord, SQLiteLogSink
from watchkeeper.loop import LoopConfig, LoopRunner
from watchkeeper.loop._training import logged_frame, train_and_gate
from watchkeeper.monitor import AlertEvaluator
from watchkeeper.registry import Registry

SEEN: dict[str, Any] = {}


def fit_recorder(frame: Any, previous: Any, context: Any) -> Any:
    """A training entry point that records what it was given."""
    from sklearn.linear_model import LinearRegression

    SEEN.update(rows=len(frame), weight=context.sample_weight, holdout=len(context.holdout),
                features=context.features, previous=type(previous).__name__)  # fmt: skip
    return LinearRegression().fit(frame[list(context.features)], frame[context.target])


@pytest.fixture
def world(tmp_path: Path):
    registry = Registry(root=tmp_path)
    register_champion(registry)
    sink = SQLiteLogSink(tmp_path / "log.db")
    Traffic(registry, sink).serve(T0, T0 + 10 * DAY)
    # users flagged the first 20 requests of day 2 (say, known-bad inputs)
    flagged = [FeedbackRecord(f"r{int(T0 + 2 * DAY + i * STEP)}", T0 + 3 * DAY, flag=True)
               for i in range(20)]  # fmt: skip
    sink.write_feedback(flagged)
    yield registry, sink
    sink.close()
    registry.close()


def _policy(**training: Any) -> LoopConfig:
    return LoopConfig.from_dict(
        {"model": MODEL, "gate": {"config": GATE},
         "training": {"holdout_days": 2, **training}}
    )  # fmt: skip


def test_candidates_and_grids_are_gated_and_the_best_lower_bound_wins(world) -> None:
    registry, sink = world
    policy = _policy(candidates=[{"name": "ridge", "estimator": "sklearn.linear_model:Ridge",
                                  "grid": {"alpha": [0.1, 1000.0]}}])  # fmt: skip
    out = train_and_gate(registry=registry, sink=sink, policy=policy, reference=None,
                         now=T0 + 10 * DAY, rollout_id="demand-9")  # fmt: skip
    names = [c.name for c in out.candidates]
    assert names == ["refit", "ridge[alpha=0.1]", "ridge[alpha=1000.0]"]
    eligible = [c for c in out.candidates if c.passed and c.blessed]
    assert out.chosen is not None
    assert out.chosen.lower == max(c.lower for c in eligible)
    heavy = out.candidates[2]  # shrunk to almost nothing: worse than the others
    assert heavy.lower is not None
    assert heavy.lower < out.chosen.lower


def test_flagged_rows_and_window_rules(world) -> None:
    registry, sink = world
    everything = logged_frame(sink, _policy(), start=None, now=T0 + 10 * DAY)
    assert int(everything["flag"].sum()) == 20
    # labels arrive a day late: only requests up to a day before the trigger time count
    assert len(everything) == 9 * 144 + 1
    assert everything["timestamp"].max() == datetime.fromtimestamp(T0 + 9 * DAY)
    held = int((everything["timestamp"] > everything["timestamp"].max() - timedelta(days=2)).sum())
    SEEN.clear()
    train_and_gate(registry=registry, sink=sink, reference=None, now=T0 + 10 * DAY,
                   rollout_id="demand-9",
                   policy=_policy(entry_point="tests.loop.test_training:fit_recorder"))  # fmt: skip
    excluded = SEEN["rows"]
    assert SEEN["weight"] is None
    assert SEEN["previous"] == "LinearRegression"
    assert SEEN["holdout"] == held == 2 * 144  # the last two labelled days (time order)
    assert excluded == len(everything) - held - 20
    SEEN.clear()
    train_and_gate(registry=registry, sink=sink, reference=None, now=T0 + 10 * DAY,
                   rollout_id="demand-9",
                   policy=_policy(entry_point="tests.loop.test_training:fit_recorder",
                                  flagged="downweight", flagged_weight=0.25))  # fmt: skip
    assert SEEN["rows"] == excluded + 20
    assert sorted(set(SEEN["weight"])) == [0.25, 1.0]
    assert int((SEEN["weight"] == 0.25).sum()) == 20
    SEEN.clear()
    train_and_gate(registry=registry, sink=sink, reference=None, now=T0 + 10 * DAY,
                   rollout_id="demand-9",
                   policy=_policy(entry_point="tests.loop.test_training:fit_recorder",
                                  window="sliding", window_days=5))  # fmt: skip
    assert SEEN["rows"] == 4 * 144 + 1 - held  # labelled rows of the last 5 days, 2 held out


@dataclass(frozen=True)
class Result:
    """One stored check result of a window, as the monitor writes them."""

    check: str
    subject: str
    window_end: datetime
    model: str = MODEL
    version: int = 1
    arm: str = "champion"
    status: Status = Status.ALERT
    value: float | None = 1.0
    lower: float | None = None
    upper: float | None = None
    threshold: float | None = 0.5
    reason: str = "synthetic"

    @property
    def window_start(self) -> datetime:
        return self.window_end - timedelta(days=1)


def test_alert_triggers(world, tmp_path: Path) -> None:
    registry, sink = world
    alerts = AlertEvaluator(root=tmp_path / "mon")
    end = datetime.fromtimestamp(T0 + 5 * DAY, tz=UTC)
    # two drifting windows of x2 (the drift rule needs 2), one of concept drift
    alerts.evaluate([Result("drift.ks", "x2", end - timedelta(days=1)),
                     Result("drift.ks", "x2", end),
                     Result("concept.adwin", "model", end)])  # fmt: skip
    policy = LoopConfig.from_dict({
        "model": MODEL, "triggers": {
            "performance": True, "concept_drift": True, "drift_features": ["x1"],
            "drift_importance": 0.5, "importances": {"x1": 1.0, "x2": 3.0}, "new_labels": 1000,
        },
    })  # fmt: skip
    checks = {
        c.name: c
        for c in LoopRunner(policy, registry=registry, sink=sink, alerts=alerts).check_triggers(
            T0 + 10 * DAY
        )
    }
    assert not checks["performance"].fired
    assert checks["concept-drift"].fired
    assert not checks["drift"].fired  # x1 is not drifting
    assert checks["drift-importance"].fired
    assert "75%" in checks["drift-importance"].reason
    assert checks["new-labels"].fired
    assert checks["new-labels"].reason.startswith("1297 new")
    alerts.close()


def test_the_fairness_gate_runs_on_the_policys_sensitive_column(tmp_path: Path) -> None:
    from watchkeeper.loop._training import _gate_config

    assert "fairness" not in _gate_config(None).extra_checks
    cfg = _gate_config({"metrics": ["r2"]}, sensitive="region")
    assert dict(cfg.extra_checks["fairness"]) == {"attributes": ["region"]}
    assert list(cfg.metrics) == ["r2"]
    # a configuration that already sets the fairness check keeps it as written
    own = {"extra_checks": {"fairness": {"attributes": ["age_band"], "max_disparity": 0.2}}}
    kept = _gate_config(own, sensitive="region")
    assert dict(kept.extra_checks["fairness"])["attributes"] == ["age_band"]
    file = tmp_path / "gate.toml"
    file.write_text("holdout_fraction = 0.3\n", encoding="utf-8")
    from_file = _gate_config(str(file), sensitive="region")
    assert from_file.holdout_fraction == 0.3
    assert dict(from_file.extra_checks["fairness"]) == {"attributes": ["region"]}
