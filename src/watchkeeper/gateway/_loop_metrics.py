"""Prometheus text for the loop: each model's stage and its decisions so far."""

from __future__ import annotations

from typing import Any

from watchkeeper.registry import LoopStore

__all__ = ["STAGES", "render_loop_metrics"]

#: Every stage a rollout can be in; ``idle`` when a model has no active rollout.
STAGES = ("idle", "training", "shadow", "canary", "promoted", "rolled_back", "kept", "aborted")
#: Steps that are decisions, as counted in ``watchkeeper_loop_decisions_total``.
DECISIONS = ("promote", "rollback", "inconclusive", "equivalent", "abort", "gate")


def render_loop_metrics(registry: Any) -> str:
    """``watchkeeper_loop_stage{model,stage}`` (1 for the current stage) and
    ``watchkeeper_loop_decisions_total{model,decision}``, in Prometheus text format.

    Examples
    --------
    >>> import tempfile
    >>> from watchkeeper.registry import Registry
    >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as registry:
    ...     render_loop_metrics(registry).splitlines()[1]
    '# TYPE watchkeeper_loop_stage gauge'
    """
    store = LoopStore(registry)
    rollouts = store.rollouts()
    latest: dict[str, str] = {}
    for r in rollouts:  # oldest first: the last one wins
        latest[r.model] = r.stage if r.active else ("idle" if r.stage == "training" else r.stage)
    counts: dict[tuple[str, str], int] = {}
    for s in store.steps():
        if s.undone:
            continue
        decision = "kept_by_gate" if s.step == "gate" and s.stage == "kept" else s.step
        if decision in DECISIONS or decision == "kept_by_gate":
            if decision == "gate":
                continue
            counts[(s.model, decision)] = counts.get((s.model, decision), 0) + 1
    lines = [
        "# HELP watchkeeper_loop_stage Stage of the model's latest loop rollout (1 = current).",
        "# TYPE watchkeeper_loop_stage gauge",
    ]
    for model in sorted(latest):
        for stage in STAGES:
            value = 1 if latest[model] == stage else 0
            lines.append(f'watchkeeper_loop_stage{{model="{model}",stage="{stage}"}} {value}')
    lines += [
        "# HELP watchkeeper_loop_decisions_total Decisions the loop took, by kind.",
        "# TYPE watchkeeper_loop_decisions_total counter",
    ]
    for (model, decision), n in sorted(counts.items()):
        lines.append(
            f'watchkeeper_loop_decisions_total{{model="{model}",decision="{decision}"}} {n}'
        )
    return "\n".join(lines) + "\n"
