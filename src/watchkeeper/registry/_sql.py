"""The SQL registry store: SQLite and PostgreSQL through SQLAlchemy Core, same queries."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa

from watchkeeper.exceptions import InputError
from watchkeeper.registry import _tables as t
from watchkeeper.registry._errors import (
    AliasInUseError,
    RollbackError,
    VersionNotFoundError,
)
from watchkeeper.registry._names import parse_ref, validate_alias, validate_name
from watchkeeper.registry._records import Event, ModelSummary, ModelVersion
from watchkeeper.registry._sql_base import (
    SqlBase,
    as_utc,
    dumps_json,
    now_utc,
    row_to_event,
    row_to_version,
    version_from,
)
from watchkeeper.registry._store import NewVersion

if TYPE_CHECKING:
    from watchkeeper.registry._transaction import StoreTransaction

__all__ = ["SqlStore"]

T = TypeVar("T")

_ALIAS_KINDS = ("alias", "unalias", "rollback")


class SqlStore(SqlBase):
    """:class:`RegistryStore` on SQLite or PostgreSQL through SQLAlchemy Core.

    Parameters
    ----------
    url
        ``sqlite:///path/registry.db`` or ``postgresql://user@host:5432/db``.
    timeout
        Seconds to wait for a lock or a connection before raising
        :class:`~watchkeeper.registry.RegistryLockedError` /
        :class:`~watchkeeper.registry.RegistryUnavailableError`.

    Examples
    --------
    >>> store = SqlStore("sqlite://")
    >>> v = store.add_version(NewVersion(name="m", actor="ana", format="onnx",
    ...                                  artifact_sha256="0" * 64, artifact_size=3,
    ...                                  output_kind="regression"))
    >>> v.version, store.get_version("m", "latest").version
    (1, 1)
    >>> store.close()
    """

    # -- transactions -------------------------------------------------------------------

    def transaction(self, work: Callable[[StoreTransaction], T]) -> T:
        """Run ``work`` in one write transaction: its alias moves, routes, audit events and
        rows of the caller's own tables (``tx.connection``) commit together or not at all.

        ``work`` may run again when a concurrent writer wins a unique-constraint race, so it
        must read what it needs through ``tx`` instead of relying on earlier reads.
        """
        from watchkeeper.registry._transaction import StoreTransaction

        return self._write(lambda conn: work(StoreTransaction(self, conn)))

    def reading(self) -> AbstractContextManager[sa.Connection]:
        """A read-only transaction on the registry database, for tables kept beside the
        registry's own (the loop's state)."""
        return self._read()

    # -- versions -----------------------------------------------------------------------

    def add_version(self, new: NewVersion) -> ModelVersion:
        """Register ``new`` under the next free version number and audit it."""
        validate_name(new.name)

        def work(conn: sa.Connection) -> ModelVersion:
            top = conn.execute(
                sa.select(sa.func.max(t.versions.c.version)).where(t.versions.c.name == new.name)
            ).scalar()
            version = int(top or 0) + 1
            at = now_utc()
            conn.execute(
                sa.insert(t.versions).values(
                    name=new.name,
                    version=version,
                    created_at=at,
                    actor=new.actor,
                    format=new.format,
                    artifact_sha256=new.artifact_sha256,
                    artifact_size=new.artifact_size,
                    output_kind=new.output_kind,
                    flavor=dumps_json(dict(new.flavor)),
                    input_schema=None if new.schema is None else dumps_json(dict(new.schema)),
                    profile_sha256=new.profile_sha256,
                    metrics=dumps_json(dict(new.metrics)),
                    params=dumps_json(dict(new.params)),
                    tags=dumps_json(dict(new.tags)),
                    description=new.description,
                    data_fingerprint=new.data_fingerprint,
                    code_version=new.code_version,
                    trusted=new.trusted,
                )
            )
            self._audit(conn, new.name, "register", new.actor, at, version=version)
            return version_from(new, version, at)

        return self._write(work)

    def get_version(self, name: str, ref: int | str) -> ModelVersion:
        """The live version ``ref`` (a number, an alias or ``"latest"``) of model ``name``."""
        with self._read() as conn:
            version = self._resolve(conn, validate_name(name), parse_ref(ref))
            row = conn.execute(
                sa.select(t.versions).where(
                    t.versions.c.name == name, t.versions.c.version == version
                )
            ).one()
            return row_to_version(row, self._aliases(conn, name).get(version, ()))

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Live versions of ``name``, oldest first."""
        with self._read() as conn:
            self._require_model(conn, validate_name(name))
            rows = conn.execute(
                sa.select(t.versions)
                .where(t.versions.c.name == name, t.versions.c.deleted_at.is_(None))
                .order_by(t.versions.c.version)
            ).all()
            held = self._aliases(conn, name)
            return [row_to_version(row, held.get(row.version, ())) for row in rows]

    def list_models(self) -> list[ModelSummary]:
        """Every model ever registered, by name."""
        v = t.versions.c
        live = v.deleted_at.is_(None)
        with self._read() as conn:
            counts = conn.execute(
                sa.select(
                    v.name,
                    sa.func.sum(sa.case((live, 1), else_=0)),
                    sa.func.max(sa.case((live, v.version), else_=None)),
                )
                .group_by(v.name)
                .order_by(v.name)
            ).all()
            updated = dict(
                conn.execute(
                    sa.select(t.events.c.name, sa.func.max(t.events.c.at)).group_by(t.events.c.name)
                ).all()
            )
            alias_rows = conn.execute(
                sa.select(t.aliases.c.name, t.aliases.c.alias, t.aliases.c.version)
            ).all()
        by_model: dict[str, dict[str, int]] = {}
        for model, alias, version in alias_rows:
            by_model.setdefault(model, {})[alias] = version
        return [
            ModelSummary(
                name=model,
                n_versions=int(n or 0),
                latest_version=None if latest is None else int(latest),
                aliases=dict(sorted(by_model.get(model, {}).items())),
                updated_at=as_utc(updated[model]),
            )
            for model, n, latest in counts
        ]

    def delete_version(
        self, name: str, version: int, *, force: bool, actor: str, reason: str
    ) -> list[Event]:
        """Mark ``version`` deleted; refuse when an alias points at it unless ``force``."""
        validate_name(name)

        def work(conn: sa.Connection) -> list[Event]:
            self._resolve(conn, name, parse_ref(version))
            held = self._aliases(conn, name).get(version, ())
            if held and not force:
                raise AliasInUseError(
                    f"version {version} of model {name!r} is pointed at by alias(es) "
                    f"{', '.join(held)}; move them first (`watchkeeper models alias`) or pass "
                    "force=True (--force) to delete it and remove the aliases"
                )
            at = now_utc()
            done = []
            for alias in held:
                conn.execute(
                    sa.delete(t.aliases).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
                )
                done.append(
                    self._audit(
                        conn,
                        name,
                        "unalias",
                        actor,
                        at,
                        alias=alias,
                        from_version=version,
                        reason=f"version {version} deleted" + (f": {reason}" if reason else ""),
                    )
                )
            conn.execute(
                sa.update(t.versions)
                .where(t.versions.c.name == name, t.versions.c.version == version)
                .values(deleted_at=at)
            )
            done.append(
                self._audit(conn, name, "delete", actor, at, version=version, reason=reason)
            )
            return done

        return self._write(work)

    # -- aliases ------------------------------------------------------------------------

    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str, reason: str
    ) -> Event | None:
        """Point ``alias`` at ``version``; ``None`` when it already pointed there."""
        validate_name(name)
        validate_alias(alias)

        def work(conn: sa.Connection) -> Event | None:
            target = self._resolve(conn, name, parse_ref(version))
            current = self._holder(conn, name, alias)
            if current == target:
                return None
            at = now_utc()
            self._point(conn, name, alias, current, target, at)
            return self._audit(
                conn,
                name,
                "alias",
                actor,
                at,
                alias=alias,
                from_version=current,
                to_version=target,
                reason=reason,
            )

        return self._write(work)

    def remove_alias(self, name: str, alias: str, *, actor: str, reason: str) -> Event:
        """Remove ``alias`` from model ``name``."""
        validate_name(name)
        validate_alias(alias)

        def work(conn: sa.Connection) -> Event:
            self._require_model(conn, name)
            current = self._holder(conn, name, alias)
            if current is None:
                raise VersionNotFoundError(f"alias {alias!r} of model {name!r} is not set")
            conn.execute(
                sa.delete(t.aliases).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
            )
            return self._audit(
                conn,
                name,
                "unalias",
                actor,
                now_utc(),
                alias=alias,
                from_version=current,
                reason=reason,
            )

        return self._write(work)

    def rollback(self, name: str, alias: str, *, actor: str, reason: str) -> Event:
        """Point ``alias`` back at the live version that held it before its current holder.

        The alias history is replayed as a stack: every assignment pushes, every rollback
        pops, so repeated rollbacks walk further back instead of toggling between two
        versions. Deleted versions are skipped.
        """
        validate_name(name)
        validate_alias(alias)

        def work(conn: sa.Connection) -> Event:
            self._require_model(conn, name)
            rows = conn.execute(
                sa.select(t.events.c.kind, t.events.c.to_version)
                .where(
                    t.events.c.name == name,
                    t.events.c.alias == alias,
                    t.events.c.kind.in_(("alias", "rollback")),
                )
                .order_by(t.events.c.id)
            ).all()
            stack: list[int] = []
            for kind, to_version in rows:
                if kind == "alias":
                    stack.append(to_version)
                else:
                    while stack and stack[-1] != to_version:
                        stack.pop()
            current = self._holder(conn, name, alias)
            live = set(
                conn.execute(
                    sa.select(t.versions.c.version).where(
                        t.versions.c.name == name, t.versions.c.deleted_at.is_(None)
                    )
                ).scalars()
            )
            while stack and (stack[-1] == current or stack[-1] not in live):
                stack.pop()
            if not stack:
                raise RollbackError(
                    f"alias {alias!r} of model {name!r} has no earlier live holder to roll back "
                    "to; point it at a version explicitly (`watchkeeper models alias`)"
                )
            at = now_utc()
            self._point(conn, name, alias, current, stack[-1], at)
            return self._audit(
                conn,
                name,
                "rollback",
                actor,
                at,
                alias=alias,
                from_version=current,
                to_version=stack[-1],
                reason=reason,
            )

        return self._write(work)

    def alias_at(self, name: str, alias: str, when: datetime) -> int | None:
        """The version ``alias`` pointed at, at time ``when`` (``None`` if unset then)."""
        validate_name(name)
        validate_alias(alias)
        if when.tzinfo is None:
            raise InputError(
                f"alias_at needs a timezone-aware time, got naive {when.isoformat()}; "
                "e.g. datetime(2024, 5, 1, 12, tzinfo=UTC)"
            )
        e = t.events.c
        with self._read() as conn:
            self._require_model(conn, name)
            row = conn.execute(
                sa.select(e.to_version)
                .where(
                    e.name == name,
                    e.alias == alias,
                    e.kind.in_(_ALIAS_KINDS),
                    e.at <= when.astimezone(UTC),
                )
                .order_by(e.at.desc(), e.id.desc())
                .limit(1)
            ).first()
        return None if row is None else row[0]

    def history(self, name: str) -> list[Event]:
        """Every audit event of model ``name``, oldest first."""
        with self._read() as conn:
            self._require_model(conn, validate_name(name))
            rows = conn.execute(
                sa.select(t.events).where(t.events.c.name == name).order_by(t.events.c.id)
            ).all()
        return [row_to_event(row) for row in rows]
