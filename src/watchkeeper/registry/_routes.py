"""Serving routes stored next to the registry, audited like alias moves.

The gateway keeps one JSON route document per model (which aliases answer, with what
weights) in ``wk_gateway_routes``. Every change gets the next revision and an audit event of
kind ``route`` in the same transaction, so the highest event id is a single number that
changes whenever anything a gateway serves changes (a route, an alias, a rollback, a
deletion): gateway workers poll that number and reload only when it moves.

The tables live in their own metadata and are created on first use, so registries created
before they existed keep their schema version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from watchkeeper.exceptions import InputError
from watchkeeper.registry import _tables as t
from watchkeeper.registry._errors import VersionNotFoundError
from watchkeeper.registry._names import validate_alias, validate_name
from watchkeeper.registry._records import Event
from watchkeeper.registry._sql import SqlStore
from watchkeeper.registry._sql_base import now_utc
from watchkeeper.registry._store import RegistryStore

__all__ = ["RouteTable", "RoutingState"]

_metadata = sa.MetaData()

routes = sa.Table(
    "wk_gateway_routes",
    _metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("route", sa.Text, nullable=False),
    # Unique: two writers racing for the same revision collide and the loser retries.
    sa.Column("revision", sa.Integer, nullable=False, unique=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
)

# One counter row. Route writers increment it first: the row lock it takes serializes them on
# PostgreSQL (under READ COMMITTED, two writers reading max(revision) could both write the
# same next revision), and SQLite's write lock already does.
counters = sa.Table(
    "wk_gateway_counters",
    _metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)
_REVISION = "route_revision"


@dataclass(frozen=True)
class RoutingState:
    """Everything a gateway needs to decide what to serve, read in one transaction.

    Parameters
    ----------
    token
        Id of the latest audit event; it moves whenever routes or aliases change.
    routes
        Stored route documents (JSON text) by model name.
    aliases
        Alias to version, by model name.
    models
        Names of the models with at least one live version.
    revision
        Revision of the latest route change (0 before any).
    """

    token: int
    routes: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    revision: int = 0


class RouteTable:
    """Route documents of the gateway, stored in the registry database.

    Parameters
    ----------
    store
        The registry's store; routes need its SQL database (SQLite or PostgreSQL).

    Examples
    --------
    >>> from watchkeeper.registry._store import NewVersion
    >>> store = SqlStore("sqlite://")
    >>> _ = store.add_version(NewVersion(name="m", actor="a", format="onnx",
    ...                                  artifact_sha256="0" * 64, artifact_size=1,
    ...                                  output_kind="regression"))
    >>> _ = store.set_alias("m", "champion", 1, actor="a", reason="")
    >>> table = RouteTable(store)
    >>> event = table.put("m", '{"mode": "single"}', aliases=["champion"], actor="ops",
    ...                   summary="single champion", reason="go live")
    >>> event.kind, event.reason
    ('route', 'single champion; go live')
    >>> state = table.state()
    >>> state.token == event.id, dict(state.routes), dict(state.aliases["m"])
    (True, {'m': '{"mode": "single"}'}, {'champion': 1})
    >>> store.close()
    """

    def __init__(self, store: RegistryStore) -> None:
        if not isinstance(store, SqlStore):
            raise InputError(
                "serving routes are stored in the registry's SQL database; open the registry "
                "with a sqlite:// or postgresql:// URL"
            )
        self._store: SqlStore = store

        def create(conn: sa.Connection) -> None:
            _metadata.create_all(conn, checkfirst=True)
            found = conn.execute(
                sa.select(counters.c.value).where(counters.c.key == _REVISION)
            ).first()
            if found is None:
                top = conn.execute(sa.select(sa.func.max(routes.c.revision))).scalar()
                conn.execute(sa.insert(counters).values(key=_REVISION, value=int(top or 0)))

        # Two processes creating the tables at once: the loser's insert conflicts and
        # _write retries, finding them made.
        store._write(create)

    def put(
        self,
        name: str,
        document: str,
        *,
        aliases: Sequence[str],
        actor: str,
        summary: str,
        reason: str = "",
    ) -> Event:
        """Store the route of ``name`` under the next revision and audit it.

        Every alias in ``aliases`` must be set on the model, checked in the same transaction.
        """
        return self._store._write(
            lambda conn: self.put_in(
                conn,
                name,
                document,
                aliases=aliases,
                actor=actor,
                summary=summary,
                reason=reason,
            )
        )

    def put_in(
        self,
        conn: sa.Connection,
        name: str,
        document: str,
        *,
        aliases: Sequence[str],
        actor: str,
        summary: str,
        reason: str = "",
    ) -> Event:
        """:meth:`put` inside the caller's open write transaction ``conn``."""
        validate_name(name)
        for alias in aliases:
            validate_alias(alias)
        store = self._store
        store._require_model(conn, name)
        for alias in aliases:
            if store._holder(conn, name, alias) is None:
                raise VersionNotFoundError(
                    f"alias {alias!r} of model {name!r} is not set; set it first "
                    f"(`watchkeeper models alias {name} {alias} VERSION`)"
                )
        conn.execute(
            sa.update(counters)
            .where(counters.c.key == _REVISION)
            .values(value=counters.c.value + 1)
        )
        revision = conn.execute(
            sa.select(counters.c.value).where(counters.c.key == _REVISION)
        ).scalar_one()
        at = now_utc()
        conn.execute(sa.delete(routes).where(routes.c.name == name))
        conn.execute(
            sa.insert(routes).values(
                name=name, route=document, revision=int(revision), updated_at=at, actor=actor
            )
        )
        text = summary + (f"; {reason}" if reason else "")
        return store._audit(conn, name, "route", actor, at, reason=text)

    def remove(self, name: str, *, actor: str, reason: str = "") -> Event | None:
        """Forget the stored route of ``name`` (the gateway default applies again)."""
        validate_name(name)
        store = self._store

        def work(conn: sa.Connection) -> Event | None:
            store._require_model(conn, name)
            gone = conn.execute(sa.delete(routes).where(routes.c.name == name)).rowcount
            if not gone:
                return None
            text = "route removed (default route)" + (f"; {reason}" if reason else "")
            return store._audit(conn, name, "route", actor, now_utc(), reason=text)

        return store._write(work)

    def token(self) -> int:
        """Id of the latest audit event (0 for an empty registry): cheap to poll."""
        with self._store._read() as conn:
            return int(conn.execute(sa.select(sa.func.max(t.events.c.id))).scalar() or 0)

    def state(self) -> RoutingState:
        """Routes, aliases and live models, consistent with each other."""
        with self._store._read() as conn:
            token = int(conn.execute(sa.select(sa.func.max(t.events.c.id))).scalar() or 0)
            rows = conn.execute(sa.select(routes)).all()
            stored = {row.name: row.route for row in rows}
            revision = max((int(row.revision) for row in rows), default=0)
            held: dict[str, dict[str, int]] = {}
            for name, alias, version in conn.execute(
                sa.select(t.aliases.c.name, t.aliases.c.alias, t.aliases.c.version)
            ).all():
                held.setdefault(name, {})[alias] = int(version)
            models = tuple(
                conn.execute(
                    sa.select(t.versions.c.name)
                    .where(t.versions.c.deleted_at.is_(None))
                    .distinct()
                    .order_by(t.versions.c.name)
                ).scalars()
            )
        return RoutingState(
            token=token, routes=stored, aliases=held, models=models, revision=revision
        )
