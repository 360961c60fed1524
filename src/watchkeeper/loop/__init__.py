"""The closed loop: policies that retrain, gate, shadow or canary, then promote or roll back
by themselves, on always-valid evidence.

A :class:`Policy` (Python or TOML) says when to retrain, how, how to gate and how to roll
out; a :class:`LoopRunner` applies it at a given event time against the registry, the
prediction log and the monitor's alerts, keeping its state in the registry's database so a
killed runner resumes where it was. See ``docs/loop.md``.

Examples
--------
>>> from watchkeeper.loop import Policy
>>> Policy(model="churn").rollout.mode
'shadow'
"""

from __future__ import annotations

from watchkeeper.loop._evidence import Evidence, GuardrailResult, gather_evidence, request_losses
from watchkeeper.loop._policy import (
    Candidate,
    GatePolicy,
    Guardrails,
    Policy,
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
    "GatePolicy",
    "GuardrailResult",
    "Guardrails",
    "LoopPlan",
    "LoopRunner",
    "LoopState",
    "LoopStep",
    "LoopStore",
    "Policy",
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
