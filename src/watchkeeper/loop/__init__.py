"""The closed loop: policies that retrain, gate, shadow or canary, then promote or roll back
by themselves, on always-valid evidence.

A :class:`LoopConfig` (Python or TOML) says when to retrain, how, how to gate and how to roll
out; a :class:`LoopRunner` applies it at a given event time against the registry, the
prediction log and the monitor's alerts, keeping its state in the registry's database so a
killed runner resumes where it was. See ``docs/loop.md``.

Examples
--------
>>> from watchkeeper.loop import LoopConfig
>>> LoopConfig(model="churn").rollout.mode
'shadow'
"""

from __future__ import annotations

from typing import Any

from watchkeeper.loop._evidence import Evidence, GuardrailResult, gather_evidence, request_losses
from watchkeeper.loop._policy import (
    Candidate,
    Guardrails,
    LoopConfig,
    LoopGateConfig,
    Rollout,
    Training,
    Triggers,
)
from watchkeeper.loop._runner import LoopPlan, LoopRunner, TriggerCheck
from watchkeeper.loop._simulate import SimulationSummary, simulate_rollouts
from watchkeeper.loop._training import TrainingContext, TrainingOutcome, load_entry_point
from watchkeeper.registry import LoopState, LoopStep, LoopStore

__all__ = [
    "Candidate",
    "Evidence",
    "GuardrailResult",
    "Guardrails",
    "LoopConfig",
    "LoopGateConfig",
    "LoopPlan",
    "LoopRunner",
    "LoopState",
    "LoopStep",
    "LoopStore",
    "Rollout",
    "SimulationSummary",
    "Training",
    "TrainingContext",
    "TrainingOutcome",
    "TriggerCheck",
    "Triggers",
    "gather_evidence",
    "load_entry_point",
    "request_losses",
    "simulate_rollouts",
]

_RENAMED = {"Policy": "LoopConfig", "GatePolicy": "LoopGateConfig"}


def __getattr__(name: str) -> Any:
    new = _RENAMED.get(name)
    if new is None:
        raise AttributeError(f"module 'watchkeeper.loop' has no attribute {name!r}")
    from watchkeeper._extras import renamed

    return renamed(__name__, name, new, globals()[new])
