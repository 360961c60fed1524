"""Where the closed loop (:mod:`watchkeeper.loop`) keeps its state: two tables in the
registry's database, next to the registry's own (as the gateway's routes are).

``wk_loop_rollouts`` holds one row per rollout (its stage and its working state);
``wk_loop_steps`` one row per transition, keyed by ``(rollout id, step)``. A transition is
written in the same transaction as the registry change it makes (alias moves, the route, an
audit event of kind ``loop``), through :meth:`watchkeeper.registry.SqlStore.transaction`:
a runner killed at any point either did the whole transition or none of it, and one that
repeats a transition finds its key taken and changes nothing. Times are event times (UTC
seconds of the data), never the wall clock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.exceptions import InputError
from watchkeeper.registry._records import Event
from watchkeeper.registry._sql import SqlStore
from watchkeeper.registry._transaction import StoreTransaction

if TYPE_CHECKING:
    from watchkeeper.registry._registry import Registry

__all__ = ["LoopState", "LoopStep", "LoopStore"]

_metadata = sa.MetaData()

rollouts = sa.Table(
    "wk_loop_rollouts",
    _metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.UniqueConstraint("model", "seq", name="uq_wk_loop_rollouts_model_seq"),
)

steps = sa.Table(
    "wk_loop_steps",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rollout_id", sa.String(200), nullable=False),
    sa.Column("step", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("stage", sa.String(32), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("event_id", sa.Integer, nullable=True),
    sa.Column("undone", sa.Boolean, nullable=False, default=False),
    # The idempotency key: a transition is done once, whoever repeats it.
    sa.UniqueConstraint("rollout_id", "step", name="uq_wk_loop_steps_rollout_step"),
)

#: Stages in which a rollout still has work to do.
ACTIVE_STAGES = ("training", "shadow", "canary")


@dataclass(frozen=True)
class LoopState:
    """One rollout as stored: its stage and working state (JSON)."""

    id: str
    model: str
    seq: int
    stage: str
    active: bool
    started_at: float
    updated_at: float
    state: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "id": self.id,
            "model": self.model,
            "seq": self.seq,
            "stage": self.stage,
            "active": self.active,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "state": dict(self.state),
        }


@dataclass(frozen=True)
class LoopStep:
    """One recorded transition and its evidence; ``replayed`` when it had been done before."""

    id: int
    rollout_id: str
    step: str
    model: str
    at: float
    stage: str
    summary: str
    evidence: Mapping[str, Any]
    event_id: int | None
    undone: bool = False
    replayed: bool = False

    @property
    def ref(self) -> str:
        """``rollout-id/step``: what ``watchkeeper loop undo`` takes."""
        return f"{self.rollout_id}/{self.step}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "id": self.id,
            "ref": self.ref,
            "rollout_id": self.rollout_id,
            "step": self.step,
            "model": self.model,
            "at": self.at,
            "stage": self.stage,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "event_id": self.event_id,
            "undone": self.undone,
        }


Ops = Callable[[StoreTransaction], list[Event | None]]


class LoopStore:
    """The loop's tables in a registry's SQL database (SQLite or PostgreSQL).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.dummy import DummyRegressor
    >>> from watchkeeper.registry import Registry
    >>> tmp = tempfile.TemporaryDirectory()
    >>> registry = Registry(root=tmp.name)
    >>> _ = registry.register("m", DummyRegressor().fit([[0]], [1.0]), actor="a")
    >>> store = LoopStore(registry)
    >>> r = store.open_rollout("m", at=100.0, state={"trigger": "manual"})
    >>> def promote(tx):
    ...     return [tx.set_alias("m", "champion", 1, actor="loop", reason="go")]
    >>> first = store.transition(r.id, "promote", at=200.0, stage="promoted", summary="go",
    ...                          evidence={"n": 1}, ops=promote, active=False)
    >>> again = store.transition(r.id, "promote", at=200.0, stage="promoted", summary="go",
    ...                          evidence={"n": 1}, ops=promote, active=False)
    >>> first.replayed, again.replayed, again.id == first.id
    (False, True, True)
    >>> [e.kind for e in registry.history("m")]
    ['register', 'alias', 'loop']
    >>> store.get(r.id).stage
    'promoted'
    >>> registry.close(); tmp.cleanup()
    """

    def __init__(self, registry: Registry) -> None:
        store = registry.store
        if not isinstance(store, SqlStore):
            raise InputError(
                "the loop keeps its state in the registry's SQL database; open the registry "
                "with a sqlite:// or postgresql:// URL"
            )
        self.registry = registry
        self._sql: SqlStore = store
        self._sql.transaction(lambda tx: _metadata.create_all(tx.connection, checkfirst=True))

    # -- writing ------------------------------------------------------------------------

    def open_rollout(
        self, model: str, *, at: float, state: Mapping[str, Any], stage: str = "training"
    ) -> LoopState:
        """Start a rollout of ``model`` at event time ``at`` (refused while one is active)."""

        def work(tx: StoreTransaction) -> LoopState:
            conn = tx.connection
            busy = conn.execute(
                sa.select(rollouts.c.id).where(rollouts.c.model == model, rollouts.c.active)
            ).first()
            if busy is not None:
                raise InputError(
                    f"model {model!r} already has an active rollout {busy[0]!r}; wait for it "
                    f"or end it (`watchkeeper loop abort {model}`)"
                )
            top = conn.execute(
                sa.select(sa.func.max(rollouts.c.seq)).where(rollouts.c.model == model)
            ).scalar()
            seq = int(top or 0) + 1
            rid = f"{model}-{seq}"
            conn.execute(
                sa.insert(rollouts).values(
                    id=rid,
                    model=model,
                    seq=seq,
                    stage=stage,
                    active=True,
                    started_at=at,
                    updated_at=at,
                    state=_dumps(state),
                )
            )
            return LoopState(rid, model, seq, stage, True, at, at, dict(state))

        return self._sql.transaction(work)

    def transition(
        self,
        rollout_id: str,
        step: str,
        *,
        at: float,
        stage: str,
        summary: str,
        evidence: Mapping[str, Any],
        ops: Ops | None = None,
        state: Mapping[str, Any] | None = None,
        active: bool | None = None,
        actor: str = "watchkeeper-loop",
    ) -> LoopStep:
        """Do transition ``step`` of a rollout once: its registry changes (``ops``), an audit
        event carrying the step's reference, the step row and the rollout's new stage and
        state, all in one transaction. Repeating a done step changes nothing and returns
        the stored one with ``replayed=True``."""

        def work(tx: StoreTransaction) -> LoopStep:
            conn = tx.connection
            done = _step_row(conn, rollout_id, step)
            if done is not None:
                return _to_step(done, replayed=True)
            row = conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id)).first()
            if row is None:
                raise InputError(f"no loop rollout {rollout_id!r}; see `watchkeeper loop status`")
            for op_event in ops(tx) if ops is not None else []:
                del op_event  # audited by the registry in this transaction
            event = tx.audit(
                row.model, "loop", actor=actor,
                reason=f"loop {rollout_id}/{step}: {summary}"[:2000],
            )  # fmt: skip
            payload = _dumps(evidence)
            new_id = conn.execute(
                sa.insert(steps).values(
                    rollout_id=rollout_id,
                    step=step,
                    model=row.model,
                    at=at,
                    stage=stage,
                    summary=summary,
                    evidence=payload,
                    event_id=event.id,
                    undone=False,
                )
            ).inserted_primary_key
            merged = {**json.loads(row.state), **dict(state or {})}
            values: dict[str, Any] = {"stage": stage, "updated_at": at, "state": _dumps(merged)}
            if active is not None:
                values["active"] = active
            conn.execute(sa.update(rollouts).where(rollouts.c.id == rollout_id).values(**values))
            assert new_id is not None
            return LoopStep(
                int(new_id[0]), rollout_id, step, row.model, at, stage, summary,
                json.loads(payload), event.id,
            )  # fmt: skip

        return self._sql.transaction(work)

    def note(self, rollout_id: str, state: Mapping[str, Any], *, at: float) -> None:
        """Merge ``state`` into a rollout's working state (no transition, no audit event):
        the latest look's evidence, for status pages."""

        def work(tx: StoreTransaction) -> None:
            conn = tx.connection
            row = conn.execute(
                sa.select(rollouts.c.state).where(rollouts.c.id == rollout_id)
            ).first()
            if row is None:
                return
            merged = {**json.loads(row.state), **dict(state)}
            conn.execute(
                sa.update(rollouts)
                .where(rollouts.c.id == rollout_id)
                .values(state=_dumps(merged), updated_at=at)
            )

        self._sql.transaction(work)

    def mark_undone(self, tx: StoreTransaction, step_id: int) -> None:
        """Mark a step undone inside the caller's transaction."""
        tx.connection.execute(sa.update(steps).where(steps.c.id == step_id).values(undone=True))

    def set_stage(
        self, tx: StoreTransaction, rollout_id: str, stage: str, *, active: bool, at: float
    ) -> None:
        """Change a rollout's stage inside the caller's transaction."""
        tx.connection.execute(
            sa.update(rollouts)
            .where(rollouts.c.id == rollout_id)
            .values(stage=stage, active=active, updated_at=at)
        )

    def transaction(self, work: Callable[[StoreTransaction], Any]) -> Any:
        """Run ``work`` in one registry transaction."""
        return self._sql.transaction(work)

    # -- reading ------------------------------------------------------------------------

    def get(self, rollout_id: str) -> LoopState:
        """A rollout by id."""
        with self._sql.reading() as conn:
            row = conn.execute(sa.select(rollouts).where(rollouts.c.id == rollout_id)).first()
        if row is None:
            raise InputError(f"no loop rollout {rollout_id!r}; see `watchkeeper loop status`")
        return _to_state(row)

    def active(self, model: str) -> LoopState | None:
        """The active rollout of ``model``, if any."""
        with self._sql.reading() as conn:
            row = conn.execute(
                sa.select(rollouts).where(rollouts.c.model == model, rollouts.c.active)
            ).first()
        return None if row is None else _to_state(row)

    def rollouts(self, model: str | None = None) -> list[LoopState]:
        """Every rollout (of ``model``), oldest first."""
        query = sa.select(rollouts).order_by(rollouts.c.model, rollouts.c.seq)
        if model is not None:
            query = query.where(rollouts.c.model == model)
        with self._sql.reading() as conn:
            return [_to_state(r) for r in conn.execute(query).all()]

    def steps(self, *, model: str | None = None, rollout_id: str | None = None) -> list[LoopStep]:
        """Recorded transitions, oldest first."""
        query = sa.select(steps).order_by(steps.c.id)
        if model is not None:
            query = query.where(steps.c.model == model)
        if rollout_id is not None:
            query = query.where(steps.c.rollout_id == rollout_id)
        with self._sql.reading() as conn:
            return [_to_step(r) for r in conn.execute(query).all()]

    def step(self, ref: str) -> LoopStep:
        """A step by its reference ``rollout-id/step``."""
        rollout_id, _, name = ref.rpartition("/")
        if not rollout_id:
            raise InputError(
                f"a step reference is ROLLOUT/STEP (e.g. churn-3/promote), got {ref!r}"
            )
        with self._sql.reading() as conn:
            row = _step_row(conn, rollout_id, name)
        if row is None:
            raise InputError(f"no loop step {ref!r}; see `watchkeeper loop status --steps`")
        return _to_step(row)


def _step_row(conn: sa.Connection, rollout_id: str, step: str) -> Any:
    return conn.execute(
        sa.select(steps).where(steps.c.rollout_id == rollout_id, steps.c.step == step)
    ).first()


def _to_state(row: Any) -> LoopState:
    return LoopState(
        row.id, row.model, int(row.seq), row.stage, bool(row.active), float(row.started_at),
        float(row.updated_at), json.loads(row.state),
    )  # fmt: skip


def _to_step(row: Any, *, replayed: bool = False) -> LoopStep:
    return LoopStep(
        int(row.id), row.rollout_id, row.step, row.model, float(row.at), row.stage, row.summary,
        json.loads(row.evidence), None if row.event_id is None else int(row.event_id),
        bool(row.undone), replayed,
    )  # fmt: skip


def _dumps(value: Any) -> str:
    return json.dumps(_clean(value), sort_keys=True, allow_nan=False)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _clean(value.item())
    return value
