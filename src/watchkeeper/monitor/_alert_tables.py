"""Tables of alert state, events and deliveries, next to the monitor history.

They live in the monitor database (same URL as ``MonitorStore``) under names of their own,
with the same SQLAlchemy Core definitions on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from watchkeeper.exceptions import WatchkeeperError
from watchkeeper.monitor._alert_event import AlertEvent
from watchkeeper.storage import as_utc

__all__ = ["deliveries", "events", "metadata", "migrate", "row_to_event", "state"]

SCHEMA_VERSION = 2

metadata = sa.MetaData()

meta = sa.Table(
    "wk_alert_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

#: One row per alert key: where its rule stands after the last window evaluated.
state = sa.Table(
    "wk_alert_state",
    metadata,
    sa.Column("key", sa.String(16), primary_key=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), nullable=False, index=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("arm", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("streak", sa.Integer, nullable=False),
    sa.Column("firing", sa.Boolean, nullable=False),
    sa.Column("last_window_end", sa.DateTime(timezone=True), nullable=True),
    # True / False / NULL (could not be judged) for the last window evaluated.
    sa.Column("last_met", sa.Boolean, nullable=True),
    sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("fired_event", sa.Integer, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

#: Every firing and resolution, in order.
events = sa.Table(
    "wk_alert_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(16), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("model", sa.String(128), nullable=False, index=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("arm", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("check", sa.String(128), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("condition", sa.String(128), nullable=False),
    sa.Column("windows", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

#: A transition of an alert (its key: rule, model, version, arm, subject) at a window is
#: stored once, however many monitors evaluate that window (schema version 2).
events_transition = sa.Index(
    "uq_wk_alert_events_transition", events.c.key, events.c.kind, events.c.window_end, unique=True
)

#: One row per event and channel: pending until tried, then delivered or failed.
deliveries = sa.Table(
    "wk_alert_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Integer, nullable=False, index=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def migrate(conn: sa.Connection) -> None:
    """Create the alert tables if missing; refuse a database from a newer watchkeeper.

    Examples
    --------
    >>> engine = sa.create_engine("sqlite://")
    >>> with engine.begin() as conn:
    ...     migrate(conn)
    >>> sorted(sa.inspect(engine).get_table_names())[:2]
    ['wk_alert_deliveries', 'wk_alert_events']
    """
    meta.create(conn, checkfirst=True)
    row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
    if row is None:
        metadata.create_all(conn, checkfirst=True)
        conn.execute(sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
    elif int(row[0]) < 2:
        _dedupe_transitions(conn)
        events_transition.create(conn, checkfirst=True)
        conn.execute(sa.update(meta).where(meta.c.key == "schema_version").values(value="2"))
    elif int(row[0]) > SCHEMA_VERSION:
        raise WatchkeeperError(
            f"the alert tables have schema version {row[0]} but this watchkeeper only knows "
            f"up to {SCHEMA_VERSION}; upgrade watchkeeper to use them"
        )


def _dedupe_transitions(conn: sa.Connection) -> None:
    """Schema 1 had no unique transition: keep the first copy of each (and its deliveries)."""
    c = events.c
    first = sa.select(sa.func.min(c.id)).group_by(c.key, c.kind, c.window_end).scalar_subquery()
    extra = [r[0] for r in conn.execute(sa.select(c.id).where(c.id.not_in(first))).all()]
    for start in range(0, len(extra), 500):
        chunk = extra[start : start + 500]
        conn.execute(sa.delete(deliveries).where(deliveries.c.event_id.in_(chunk)))
        conn.execute(sa.delete(events).where(c.id.in_(chunk)))


def event_values(event: AlertEvent, created_at: datetime) -> dict[str, Any]:
    """Column values of ``event``."""
    values = event.to_dict()
    values.pop("id")
    for name in ("window_start", "window_end", "started_at"):
        values[name] = getattr(event, name)
    values["labels"] = json.dumps(dict(event.labels), sort_keys=True)
    values["created_at"] = created_at
    return values


def row_to_event(row: sa.Row[Any]) -> AlertEvent:
    """The event stored in ``row``."""
    return AlertEvent(
        kind=row.kind,
        rule=row.rule,
        severity=row.severity,
        model=row.model,
        version=row.version,
        arm=row.arm,
        subject=row.subject,
        check=row.check,
        status=row.status,
        value=row.value,
        threshold=row.threshold,
        reason=row.reason,
        window_start=as_utc(row.window_start),
        window_end=as_utc(row.window_end),
        started_at=as_utc(row.started_at),
        condition=row.condition,
        windows=int(row.windows),
        summary=row.summary,
        labels=json.loads(row.labels),
        id=int(row.id),
    )
