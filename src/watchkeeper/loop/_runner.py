"""The loop's runner: triggers, training, gate, shadow or canary, promote or roll back.

:meth:`LoopRunner.step` takes the event time ``now`` (the time of the data, never the wall
clock) and advances the model's rollout as far as the data allows at that time. Every
transition is a registry event written in one transaction with its alias and route changes
and the loop's own row keyed by ``(rollout id, step)`` (see :class:`LoopStore`), so a runner
killed anywhere resumes at the same stage, never does a step twice and never loses its
audit event. Two runs over the same data take the same decisions.

Stages: ``training`` (triggered) → ``shadow`` or ``canary`` (gated challenger live) →
``promoted`` | ``rolled_back`` | ``kept`` (equivalent, inconclusive or gate failed) |
``aborted``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchkeeper.exceptions import InputError
from watchkeeper.loop._evidence import Evidence, gather_evidence
from watchkeeper.loop._policy import LoopConfig
from watchkeeper.registry import LoopState, LoopStep, LoopStore, Registry, StoreTransaction

__all__ = ["LoopPlan", "LoopRunner", "TriggerCheck"]

_DAY = 86_400.0
#: Steps that end a rollout.
_DECISIONS = ("promote", "rollback", "inconclusive", "equivalent", "abort")


@dataclass(frozen=True)
class TriggerCheck:
    """Whether one trigger fires now, and why."""

    name: str
    fired: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {"name": self.name, "fired": self.fired, "reason": self.reason}


@dataclass(frozen=True)
class LoopPlan:
    """A dry run: the policy, the stage, what would trigger now and what would happen next."""

    model: str
    now: float
    stage: str
    rollout: str | None
    triggers: tuple[TriggerCheck, ...]
    blocked: str | None
    next_action: str
    policy: Mapping[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """Lines for a terminal."""
        lines = [
            f"loop plan for {self.model} at {_iso(self.now)}",
            f"  stage: {self.stage}" + (f" (rollout {self.rollout})" if self.rollout else ""),
        ]
        r = self.policy.get("rollout", {})
        if r:
            how = (
                f"canary {' -> '.join(f'{s:g}%' for s in r.get('steps', ()))}"
                if r.get("mode") == "canary"
                else "shadow"
            )
            lines.append(
                f"  rollout: {how}; budget {r.get('budget_labels')} labels or "
                f"{r.get('budget_days')} days; margin {r.get('margin')}; alpha "
                f"{r.get('alpha')} (quality) + {self.policy.get('guardrails', {}).get('alpha')} "
                "(guardrails)"
            )
        for t in self.triggers:
            lines.append(f"  trigger {t.name}: {'FIRES' if t.fired else 'quiet'} ({t.reason})")
        if self.blocked:
            lines.append(f"  blocked: {self.blocked}")
        lines.append(f"  next: {self.next_action}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "model": self.model,
            "now": self.now,
            "stage": self.stage,
            "rollout": self.rollout,
            "triggers": [t.to_dict() for t in self.triggers],
            "blocked": self.blocked,
            "next_action": self.next_action,
            "policy": dict(self.policy),
        }


class LoopRunner:
    """Run a model's :class:`LoopConfig` against its registry, prediction log and alerts.

    Parameters
    ----------
    policy
        The model's policy.
    registry
        The registry (SQLite or PostgreSQL) holding the model, its routes and the loop state.
    sink
        The prediction log (:class:`watchkeeper.logstore.SQLiteLogSink` or compatible).
    alerts
        The monitor's :class:`~watchkeeper.monitor.AlertEvaluator` (alert triggers).
    reference
        The champion's training rows (features and target), added to the training data.
    reports
        Folder for the gate reports of every candidate.
    channels
        Alert channels for the rollback alert (default: the ``watchkeeper.alerts`` log).
    say
        Called with one line per thing that happens (progress output).
    """

    def __init__(
        self,
        policy: LoopConfig,
        *,
        registry: Registry,
        sink: Any,
        alerts: Any = None,
        reference: Any = None,
        reports: str | Path | None = None,
        channels: Mapping[str, Any] | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.policy = policy
        self.registry = registry
        self.sink = sink
        self.alerts = alerts
        self.reference = reference
        self.reports = None if reports is None else Path(reports)
        self.channels = channels
        self.say = say or (lambda _m: None)
        self.store = LoopStore(registry)

    # -- the loop -----------------------------------------------------------------------

    def step(
        self, now: float | datetime, *, manual: str | None = None, version: int | None = None
    ) -> list[LoopStep]:
        """Advance as far as the data at event time ``now`` allows; return the transitions
        made (a repeated call at the same ``now`` makes none, nor does a ``now`` earlier
        than the loop's latest recorded time).

        ``manual`` starts a rollout now with that reason (the manual trigger), subject to
        no other rollout being active. With ``version`` as well, that registered version is
        rolled out as the challenger instead of a newly trained one: an operator's choice,
        recorded as such, that skips training and the gate.
        """
        if version is not None and manual is None:
            raise InputError("a version is rolled out by hand only: give manual=REASON too")
        at = _seconds(now)
        done: list[LoopStep] = []
        self._deliver_pending_alerts()
        rollouts = self.store.rollouts(self.policy.model)
        if rollouts and at < max(r.updated_at for r in rollouts):
            # Event time never runs backwards: a restarted runner replaying earlier times
            # finds them decided already (the decisions depend on the data up to ``now``).
            return done
        active = next((r for r in rollouts if r.active), None)
        if active is None:
            checks = self.check_triggers(at)
            fired = [c for c in checks if c.fired]
            if manual is not None:
                fired = [TriggerCheck("manual", True, manual)]
                if version is not None:
                    self.registry.get_version(self.policy.model, version)  # it must exist
            elif fired and self._blocked(at) is not None:
                fired = []
            if not fired:
                return done
            active = self._open(at, fired, version)
            done.append(self._trigger_step(active, fired))
        for _ in range(len(self.policy.rollout.steps) + 4):
            state = self.store.get(active.id)
            if not state.active:
                break
            made = self._advance(state, at)
            if made is None or made.replayed:
                break  # nothing new (a replayed step was undone: it is not taken again)
            done.append(made)
        self._deliver_pending_alerts()
        return done

    def plan(self, now: float | datetime) -> LoopPlan:
        """What the loop would do at ``now``, without doing it (dry run)."""
        at = _seconds(now)
        active = self.store.active(self.policy.model)
        checks = tuple(self.check_triggers(at))
        blocked = None
        if active is not None:
            stage, rid = active.stage, active.id
            if active.stage == "training":
                nxt = "train the challenger, gate it and start the rollout"
            else:
                ev = self._evidence(active, at)
                nxt = f"look at the evidence: {self._describe(ev)}"
        else:
            stage, rid = "idle", None
            blocked = self._blocked(at)
            fired = [c.name for c in checks if c.fired]
            if fired and blocked is None:
                nxt = f"start a rollout (triggered by {', '.join(fired)}): train, gate, roll out"
            else:
                nxt = "wait: nothing triggers" if not fired else "wait: " + str(blocked)
        return LoopPlan(
            self.policy.model, at, stage, rid, checks, blocked, nxt, self.policy.to_dict()
        )

    def abort(self, now: float | datetime, *, reason: str = "aborted by an operator") -> LoopStep:
        """End the active rollout: the champion alone answers again, the challenger alias
        is removed."""
        at = _seconds(now)
        active = self.store.active(self.policy.model)
        if active is None:
            raise InputError(f"model {self.policy.model!r} has no active rollout to abort")
        return self._transition(
            active, "abort", at, "aborted", reason, {"reason": reason}, self._end_ops(), False
        )

    def undo(self, ref: str, now: float | datetime, *, reason: str = "") -> LoopStep:
        """Undo one recorded step (audited as ``undo-STEP``).

        A decision (``promote``, ``rollback``, ``inconclusive``, ``equivalent``, ``abort``)
        is undone by putting the champion back where it was before it and ending the
        rollout as ``undone``: the champion alone answers and the loop does not decide that
        rollout again. A step within a rollout (``gate``, ``canary-N``) is undone by putting
        aliases, route and stage back as they were; the rollout goes on from there and does
        not take the undone step again.
        """
        at = _seconds(now)
        step = self.store.step(ref)
        if step.model != self.policy.model:
            raise InputError(f"step {ref!r} belongs to model {step.model!r}")
        if step.undone or step.step.startswith("undo-"):
            raise InputError(f"step {ref!r} was already undone (or is an undo)")
        before = step.evidence.get("before")
        if not isinstance(before, Mapping):
            raise InputError(f"step {ref!r} records no earlier state to go back to")
        state = self.store.get(step.rollout_id)
        terminal = step.step in _DECISIONS
        if not terminal and not state.active:
            raise InputError(
                f"rollout {state.id!r} has ended ({state.stage}); undo its decision instead"
            )
        routes = self._routes()
        policy = self.policy
        why = reason or f"undo of {ref}"

        def ops(tx: StoreTransaction) -> list[Any]:
            out: list[Any] = []
            champ = before.get("champion")
            if champ is not None:
                out.append(tx.set_alias(policy.model, policy.champion, int(champ),
                                        actor=policy.actor, reason=why))  # fmt: skip
            chall = None if terminal else before.get("challenger")
            if chall is None:
                out.append(tx.remove_alias(policy.model, policy.challenger, actor=policy.actor,
                                           reason=why))  # fmt: skip
            else:
                out.append(tx.set_alias(policy.model, policy.challenger, int(chall),
                                        actor=policy.actor, reason=why))  # fmt: skip
            route = None if terminal else before.get("route")
            out.append(self._route_in(tx, routes, route, why))
            self.store.mark_undone(tx, step.id)
            return out

        stage = "undone" if terminal else str(before.get("stage", state.stage))
        return self._transition(
            state, f"undo-{step.step}", at, stage, why, {"undid": ref, "reason": why}, ops,
            False if terminal else state.active,
        )  # fmt: skip

    def status(self) -> dict[str, Any]:
        """The model's rollouts and their steps (for ``watchkeeper loop status``)."""
        rollouts = self.store.rollouts(self.policy.model)
        return {
            "model": self.policy.model,
            "active": next((r.id for r in rollouts if r.active), None),
            "rollouts": [r.to_dict() for r in rollouts],
            "steps": [s.to_dict() for s in self.store.steps(model=self.policy.model)],
        }

    # -- triggers -----------------------------------------------------------------------

    def check_triggers(self, now: float) -> list[TriggerCheck]:
        """Every configured trigger, evaluated at event time ``now``."""
        t = self.policy.triggers
        out: list[TriggerCheck] = []
        firing = self._firing()
        if t.performance:
            out.append(_alert_check("performance", firing, ("performance",)))
        if t.estimated_performance:
            out.append(_alert_check("estimated-performance", firing, ("estimated-performance",)))
        if t.concept_drift:
            out.append(_alert_check("concept-drift", firing, ("concept-drift",)))
        drifted = sorted({e.subject for e in firing if e.rule == "drift"})
        if t.drift_features:
            hit = sorted(set(drifted) & set(t.drift_features))
            out.append(
                TriggerCheck(
                    "drift",
                    bool(hit),
                    f"drifting: {', '.join(hit)}" if hit else "no named feature drifts",
                )
            )
        if t.drift_importance is not None:
            total = sum(max(v, 0.0) for v in t.importances.values()) or 1.0
            share = sum(max(t.importances.get(f, 0.0), 0.0) for f in drifted) / total
            out.append(
                TriggerCheck(
                    "drift-importance",
                    share >= t.drift_importance,
                    f"drifting features carry {share:.0%} of the importance "
                    f"(trigger at {t.drift_importance:.0%})",
                )
            )
        last = self._last_start()
        if t.every_days is not None:
            since = self._champion_since(now) if last is None else last
            due = since is not None and now - since >= t.every_days * _DAY
            age = "never" if since is None else f"{(now - since) / _DAY:.1f} days ago"
            out.append(TriggerCheck("schedule", due, f"every {t.every_days:g} days; last {age}"))
        if t.new_labels is not None:
            n = self._labels_since(last, now)
            out.append(
                TriggerCheck(
                    "new-labels", n >= t.new_labels, f"{n} new labels (trigger at {t.new_labels})"
                )
            )
        return out

    def _blocked(self, now: float) -> str | None:
        t = self.policy.triggers
        last = self.store.rollouts(self.policy.model)
        if last and t.cooldown_days and now - last[-1].updated_at < t.cooldown_days * _DAY:
            left = t.cooldown_days - (now - last[-1].updated_at) / _DAY
            return f"cooldown: {left:.1f} more days after rollout {last[-1].id}"
        if t.min_days_in_service:
            since = self._champion_since(now)
            if since is None or now - since < t.min_days_in_service * _DAY:
                served = 0.0 if since is None else (now - since) / _DAY
                return (
                    f"the champion has served {served:.1f} of the "
                    f"{t.min_days_in_service:g} days it must serve first"
                )
        return None

    def _firing(self) -> list[Any]:
        if self.alerts is None:
            return []
        try:
            champion = self.registry.get_version(self.policy.model, self.policy.champion)
        except Exception:
            return []
        return [
            e for e in self.alerts.firing(self.policy.model)
            if str(e.version) == str(champion.version) and e.arm == self.policy.champion
        ]  # fmt: skip

    def _last_start(self) -> float | None:
        rollouts = self.store.rollouts(self.policy.model)
        return rollouts[-1].started_at if rollouts else None

    def _champion_since(self, now: float) -> float | None:
        """Event time from which the current champion served: its promotion by the loop,
        else its first logged prediction."""
        champion = self.registry.get_version(self.policy.model, self.policy.champion).version
        for r in reversed(self.store.rollouts(self.policy.model)):
            if r.stage == "promoted" and r.state.get("challenger_version") == champion:
                return r.updated_at
        window = self.sink.read_window(
            self.policy.model, end=now + 1e-6, version=champion
        ).to_pandas()
        if window.empty:
            return None
        return float(window["ts"].min().timestamp())

    def _labels_since(self, since: float | None, now: float) -> int:
        window = self.sink.read_window(self.policy.model, end=now + 1e-6).to_pandas()
        if window.empty:
            return 0
        label_ts = window["label_ts"]
        mask = window["label"].notna() & (label_ts <= _stamp(now))
        if since is not None:
            mask &= label_ts > _stamp(since)
        return int(mask.sum())

    # -- transitions --------------------------------------------------------------------

    def _open(
        self, at: float, fired: Sequence[TriggerCheck], version: int | None = None
    ) -> LoopState:
        champion = self.registry.get_version(self.policy.model, self.policy.champion).version
        state: dict[str, Any] = {
            "champion_version": champion,
            "trigger": [c.to_dict() for c in fired],
            "mode": self.policy.rollout.mode,
        }
        if version is not None:
            state["given_version"] = int(version)
        return self.store.open_rollout(self.policy.model, at=at, state=state)

    def _trigger_step(self, state: LoopState, fired: Sequence[TriggerCheck]) -> LoopStep:
        why = "; ".join(f"{c.name}: {c.reason}" for c in fired)
        self.say(f"[{state.id}] triggered at {_iso(state.started_at)}: {why}")
        return self._transition(
            state, "trigger", state.started_at, "training", why,
            {"triggers": [c.to_dict() for c in fired]}, None, None,
        )  # fmt: skip

    def _advance(self, state: LoopState, at: float) -> LoopStep | None:
        if state.stage == "training":
            if not any(s.step == "trigger" for s in self.store.steps(rollout_id=state.id)):
                fired = [TriggerCheck(**c) for c in state.state.get("trigger", [])]
                return self._trigger_step(state, fired)
            return self._train(state, at)
        evidence = self._evidence(state, at)
        return self._decide(state, evidence, at)

    def _train(self, state: LoopState, at: float) -> LoopStep:
        from watchkeeper.loop._training import train_and_gate

        policy = self.policy
        given = state.state.get("given_version")
        if given is not None:
            version = int(given)
            evidence: dict[str, Any] = {
                "training": None,
                "gate": "skipped: version chosen by an operator",
                "challenger_version": version,
            }
            text = f"challenger v{version} chosen by an operator (no training, no gate)"
            return self._start(state, at, version, evidence, text, None)
        self.say(f"[{state.id}] training (data up to {_iso(state.started_at)})")
        outcome = train_and_gate(
            registry=self.registry, sink=self.sink, policy=policy, reference=self.reference,
            now=state.started_at, rollout_id=state.id, reports=self.reports, say=self.say,
        )  # fmt: skip
        evidence = {"training": outcome.to_dict()}
        if outcome.chosen is None:
            return self._transition(
                state, "gate", at, "kept", "no candidate passed the gate; champion kept",
                evidence, None, False,
            )  # fmt: skip
        version = self._register(state, outcome)
        evidence["challenger_version"] = version
        chosen = outcome.chosen
        text = f"challenger v{version} ({chosen.name}) passed the gate" + (
            f", improvement lower bound {chosen.lower:+.4g}" if chosen.lower is not None else ""
        )
        return self._start(state, at, version, evidence, text, outcome.to_dict())

    def _start(
        self,
        state: LoopState,
        at: float,
        version: int,
        evidence: dict[str, Any],
        text: str,
        gate: Mapping[str, Any] | None,
    ) -> LoopStep:
        """Put the challenger live: its alias and the shadow or first canary route."""
        policy = self.policy
        mode = policy.rollout.mode
        routes = self._routes()
        first = policy.rollout.steps[0] if mode == "canary" else None

        def ops(tx: StoreTransaction) -> list[Any]:
            reason = f"loop {state.id}: challenger v{version}"
            out = [tx.set_alias(policy.model, policy.challenger, version, actor=policy.actor,
                                reason=reason)]  # fmt: skip
            out.append(self._route_in(tx, routes, self._route_doc(first), reason))
            return out

        summary = text + (
            f"; canary at {first:g}%" if first is not None else "; shadowing the champion"
        )
        self.say(f"[{state.id}] {summary}")
        schedule = [[at, first]] if first is not None else []
        return self._transition(
            state, "gate", at, mode, summary, evidence, ops, None,
            extra_state={"challenger_version": version, "route_start": at, "schedule": schedule,
                         "gate": gate},
        )  # fmt: skip

    def _register(self, state: LoopState, outcome: Any) -> int:
        """Register the chosen candidate once: a version tagged with this rollout is reused
        (a runner killed after registering but before recording the gate step)."""
        policy = self.policy
        for v in self.registry.list_versions(policy.model):
            if v.tags.get("loop_rollout") == state.id:
                return int(v.version)
        chosen = outcome.chosen
        target = policy.training.target
        train = outcome.train
        features = [c for c in train.columns if c not in ("timestamp", target)]
        metrics = {} if chosen.lower is None else {"gate.comparison.lower": chosen.lower}
        from watchkeeper.data import Schema

        reference = train[[*features, target]]
        version = self.registry.register(
            policy.model,
            chosen.estimator,
            reference=reference,
            schema=Schema.infer(reference).with_roles({target: "target"}),
            metrics=metrics,
            tags={"loop_rollout": state.id, "candidate": chosen.name,
                  "parent_version": str(state.state.get("champion_version"))},
            description=f"Trained by the loop (rollout {state.id}).",
            training_data=train[[*features, target]],
            actor=policy.actor,
        )  # fmt: skip
        return int(version.version)

    def _evidence(self, state: LoopState, at: float) -> Evidence:
        start = float(state.state.get("route_start", state.started_at))
        frame = self.sink.read_window(
            self.policy.model, start=start, end=at + 1e-6, include_shadow=True
        ).to_pandas()
        schedule = [(float(s), float(p)) for s, p in state.state.get("schedule", [])]
        return gather_evidence(frame, self.policy, now=at, loss=self._loss(), schedule=schedule)

    def _loss(self) -> str:
        loss = self.policy.rollout.loss
        if loss != "auto":
            return loss
        kind = self.registry.get_version(self.policy.model, self.policy.champion).output_kind
        return "zero_one" if kind == "classification" else "absolute"

    def _decide(self, state: LoopState, ev: Evidence, at: float) -> LoopStep | None:
        _policy, rollout = self.policy, self.policy.rollout
        start = float(state.state.get("route_start", state.started_at))
        record = ev.to_dict()
        v = ev.verdict
        if ev.breached:
            why = "; ".join(f"{g.name}: {g.reason}" for g in ev.breached)
            return self._end(state, "rollback", "rolled_back", f"guardrail: {why}", record, at)
        if v.verdict == "worse":
            why = (
                f"worse: loss difference {v.estimate:+.4g} (CS {v.lower:+.4g} to {v.upper:+.4g}) "
                f"after {ev.labelled} labels, below -{rollout.margin:g}"
            )
            return self._end(state, "rollback", "rolled_back", why, record, at)
        if v.verdict == "better" or (
            v.verdict == "equivalent" and rollout.on_equivalent == "promote"
        ):
            why = (
                f"{v.verdict}: loss difference {v.estimate:+.4g} (CS {v.lower:+.4g} to "
                f"{v.upper:+.4g}) after {ev.labelled} labels"
            )
            return self._end(state, "promote", "promoted", why, record, at)
        if v.verdict == "equivalent":
            why = f"equivalent within ±{rollout.margin:g} after {ev.labelled} labels; champion kept"
            return self._end(state, "equivalent", "kept", why, record, at)
        if ev.labelled >= rollout.budget_labels or at - start >= rollout.budget_days * _DAY:
            why = (
                f"inconclusive after {ev.labelled} labels and {(at - start) / _DAY:.1f} days "
                "(budget reached); champion kept"
            )
            return self._end(state, "inconclusive", "kept", why, record, at)
        if rollout.mode == "canary":
            made = self._maybe_ramp(state, ev, at, record)
            if made is not None:
                return made
        self.store.note(state.id, {"last": record}, at=at)
        return None

    def _maybe_ramp(
        self, state: LoopState, ev: Evidence, at: float, record: dict[str, Any]
    ) -> LoopStep | None:
        rollout = self.policy.rollout
        schedule = [list(s) for s in state.state.get("schedule", [])]
        current = float(schedule[-1][1])
        idx = rollout.steps.index(current)
        nxt = rollout.steps[idx + 1] if idx + 1 < len(rollout.steps) else None
        if nxt is None or nxt >= 100.0:
            return None  # the last step before 100 % waits for a verdict
        labelled_here = int(state.state.get("labelled_at_step_start", 0))
        if ev.labelled_challenger - labelled_here < rollout.step_labels:
            return None
        routes = self._routes()
        reason = f"loop {state.id}: canary {current:g}% -> {nxt:g}%"

        def ops(tx: StoreTransaction) -> list[Any]:
            return [self._route_in(tx, routes, self._route_doc(nxt), reason)]

        schedule.append([at, nxt])
        why = (
            f"canary {current:g}% -> {nxt:g}%: {ev.labelled_challenger - labelled_here} labelled "
            "challenger requests at this step, no verdict against it, guardrails clear"
        )
        self.say(f"[{state.id}] {why}")
        return self._transition(
            state, f"canary-{nxt:g}", at, "canary", why, record, ops, None,
            extra_state={"schedule": schedule, "labelled_at_step_start": ev.labelled_challenger},
        )  # fmt: skip

    def _end(
        self, state: LoopState, step: str, stage: str, why: str, record: dict[str, Any], at: float
    ) -> LoopStep:
        policy = self.policy
        version = int(state.state["challenger_version"])
        ops: Callable[[StoreTransaction], list[Any]]
        if step == "promote":
            routes = self._routes()

            def promote(tx: StoreTransaction) -> list[Any]:
                reason = f"loop {state.id}: {why}"[:500]
                out = [tx.set_alias(policy.model, policy.champion, version,
                                    actor=policy.actor, reason=reason)]  # fmt: skip
                out.append(self._route_in(tx, routes, None, reason))
                out.append(tx.remove_alias(policy.model, policy.challenger, actor=policy.actor,
                                           reason=reason))  # fmt: skip
                return out

            ops = promote
        else:
            ops = self._end_ops(why)
        self.say(f"[{state.id}] {step.upper()}: {why}")
        made = self._transition(state, step, at, stage, why, record, ops, False)
        if step == "rollback" and not made.replayed:
            self.store.note(state.id, {"alert_pending": True}, at=at)
        return made

    def _end_ops(self, why: str = "") -> Callable[[StoreTransaction], list[Any]]:
        policy = self.policy
        routes = self._routes()

        def ops(tx: StoreTransaction) -> list[Any]:
            reason = f"loop: {why}"[:500]
            return [
                self._route_in(tx, routes, None, reason),
                tx.remove_alias(policy.model, policy.challenger, actor=policy.actor, reason=reason),
            ]

        return ops

    def _transition(
        self,
        state: LoopState,
        step: str,
        at: float,
        stage: str,
        summary: str,
        evidence: Mapping[str, Any],
        ops: Callable[[StoreTransaction], list[Any]] | None,
        active: bool | None,
        *,
        extra_state: Mapping[str, Any] | None = None,
    ) -> LoopStep:
        before = {
            "stage": state.stage,
            "active": state.active,
            "champion": self._alias(self.policy.champion),
            "challenger": self._alias(self.policy.challenger),
            "route": self._current_route(),
        }
        return self.store.transition(
            state.id, step, at=at, stage=stage, summary=summary,
            evidence={**dict(evidence), "before": before}, ops=ops, state=extra_state,
            active=active, actor=self.policy.actor,
        )  # fmt: skip

    # -- routes and aliases -------------------------------------------------------------

    def _routes(self) -> Any:
        from watchkeeper.gateway import RouteStore

        return RouteStore(self.registry)

    def _route_doc(self, percent: float | None) -> dict[str, Any] | None:
        from watchkeeper.gateway import Route

        p = self.policy
        if p.rollout.mode == "shadow":
            return Route.shadow_of(p.champion, p.challenger).to_dict()
        assert percent is not None
        return Route.canary(percent, champion=p.champion, challenger=p.challenger).to_dict()

    def _route_in(
        self, tx: StoreTransaction, routes: Any, doc: Mapping[str, Any] | None, reason: str
    ) -> Any:
        from watchkeeper.gateway import Route

        route = Route.single(self.policy.champion) if doc is None else Route.from_dict(dict(doc))
        return routes.set_in(tx, self.policy.model, route, actor=self.policy.actor, reason=reason)

    def _current_route(self) -> dict[str, Any] | None:
        route = self._routes().get(self.policy.model)
        return None if route is None else route.to_dict()

    def _alias(self, alias: str) -> int | None:
        try:
            return int(self.registry.get_version(self.policy.model, alias).version)
        except Exception:
            return None

    # -- alerts -------------------------------------------------------------------------

    def _deliver_pending_alerts(self) -> None:
        """Send the alert of every automatic rollback not yet sent (also after a restart)."""
        for r in self.store.rollouts(self.policy.model):
            if r.stage == "rolled_back" and r.state.get("alert_pending"):
                self._send_rollback_alert(r)
                self.store.note(r.id, {"alert_pending": False, "alert_sent": True},
                                at=r.updated_at)  # fmt: skip

    def _send_rollback_alert(self, r: LoopState) -> None:
        from watchkeeper.monitor import AlertEvent, LogChannel, deliver

        step = next((s for s in self.store.steps(rollout_id=r.id) if s.step == "rollback"), None)
        reason = step.summary if step is not None else "automatic rollback"
        when = datetime.fromtimestamp(r.updated_at, tz=UTC)
        event = AlertEvent(
            kind="firing", rule="loop-rollback", severity="critical", model=r.model,
            version=str(r.state.get("challenger_version")), arm=self.policy.challenger,
            subject=r.id, check="loop.rollback", status="alert", value=None, threshold=None,
            reason=reason, window_start=datetime.fromtimestamp(r.started_at, tz=UTC),
            window_end=when, started_at=when, condition="automatic rollback", windows=1,
            summary=f"the loop rolled back challenger v{r.state.get('challenger_version')}",
        )  # fmt: skip
        channels = dict(self.channels) if self.channels else {"log": LogChannel()}
        for name, channel in channels.items():
            deliver(name, channel, event, attempts=2, backoff=0.0)

    def _describe(self, ev: Evidence) -> str:
        v = ev.verdict
        return (
            f"{ev.labelled} labelled, loss difference {v.estimate:+.4g} "
            f"(CS {v.lower:+.4g} to {v.upper:+.4g}) -> {v.verdict}"
            + "".join(f"; guardrail {g.name} breached" for g in ev.breached)
        )


def _alert_check(name: str, firing: Sequence[Any], rules: Sequence[str]) -> TriggerCheck:
    hits = [e for e in firing if e.rule in rules]
    if not hits:
        return TriggerCheck(name, False, "not firing")
    first = hits[0]
    return TriggerCheck(name, True, f"{first.rule} firing on v{first.version}: {first.reason}")


def _seconds(now: float | datetime) -> float:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise InputError("event times must be timezone-aware (e.g. 2024-05-01T00:00Z)")
        return now.timestamp()
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise InputError(f"event time must be UTC seconds or an aware datetime, got {now!r}")
    return float(now)


def _stamp(seconds: float) -> Any:
    import pandas as pd

    return pd.Timestamp(seconds, unit="s", tz="UTC")


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M")
