"""The SQL registry store: SQLite and PostgreSQL through SQLAlchemy Core, same queries."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from watchkeeper.exceptions import InputError
from watchkeeper.registry import _tables as t
from watchkeeper.registry._engine import READ_ONLY, create_engine, db_errors
from watchkeeper.registry._errors import (
    AliasInUseError,
    ModelNotFoundError,
    RegistryLockedError,
    RollbackError,
    VersionNotFoundError,
)
from watchkeeper.registry._names import LATEST, parse_ref, validate_alias, validate_name
from watchkeeper.registry._records import Event, ModelSummary, ModelVersion
from watchkeeper.registry._store import NewVersion

__all__ = ["SqlStore"]

T = TypeVar("T")

_ALIAS_KINDS = ("alias", "unalias", "rollback")
_MAX_ATTEMPTS = 50
_PG_MIGRATION_LOCK = 0x7761_7463  # any constant shared by all watchkeeper processes


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything the store writes is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


class SqlStore:
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

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        if timeout <= 0:
            raise InputError(f"timeout must be positive seconds, got {timeout!r}")
        self.timeout = timeout
        self._engine = create_engine(url, timeout=timeout)
        self.url = self._engine.url
        try:
            self._write(self._migrate)
        except BaseException:
            self._engine.dispose()  # no pooled connection may outlive a failed open
            raise

    # -- transactions -------------------------------------------------------------------

    def _migrate(self, conn: sa.Connection) -> None:
        if conn.dialect.name == "postgresql":
            # Two processes opening a fresh database must not both create the tables.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        t.migrate(conn)

    def _write(self, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work`` in a write transaction, retrying when a unique constraint fires.

        A conflict means another process committed the same version number or alias row
        first; re-reading and trying again is the whole concurrency protocol.
        """
        for attempt in range(_MAX_ATTEMPTS):
            try:
                with db_errors(self.url, self.timeout), self._engine.begin() as conn:
                    return work(conn)
            except sa.exc.IntegrityError:
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise RegistryLockedError(
            f"gave up after {_MAX_ATTEMPTS} conflicting concurrent writes to the registry; "
            "retry when fewer processes are registering at once"
        )

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with db_errors(self.url, self.timeout), self._engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                yield conn

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    # -- versions -----------------------------------------------------------------------

    def add_version(self, new: NewVersion) -> ModelVersion:
        """Register ``new`` under the next free version number and audit it."""
        validate_name(new.name)

        def work(conn: sa.Connection) -> ModelVersion:
            top = conn.execute(
                sa.select(sa.func.max(t.versions.c.version)).where(t.versions.c.name == new.name)
            ).scalar()
            version = int(top or 0) + 1
            at = _now()
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
                    flavor=_dumps(dict(new.flavor)),
                    input_schema=None if new.schema is None else _dumps(dict(new.schema)),
                    profile_sha256=new.profile_sha256,
                    metrics=_dumps(dict(new.metrics)),
                    params=_dumps(dict(new.params)),
                    tags=_dumps(dict(new.tags)),
                    description=new.description,
                    data_fingerprint=new.data_fingerprint,
                    code_version=new.code_version,
                    trusted=new.trusted,
                )
            )
            self._audit(conn, new.name, "register", new.actor, at, version=version)
            return _version_from(new, version, at)

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
            return _row_to_version(row, self._aliases(conn, name).get(version, ()))

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
            return [_row_to_version(row, held.get(row.version, ())) for row in rows]

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
                updated_at=_utc(updated[model]),
            )
            for model, n, latest in counts
        ]

    def is_referenced(self, sha256: str) -> bool:
        """Whether a live version still uses the artifact ``sha256`` (model or profile)."""
        v = t.versions.c
        with self._read() as conn:
            hit = conn.execute(
                sa.select(v.id)
                .where(
                    v.deleted_at.is_(None),
                    sa.or_(v.artifact_sha256 == sha256, v.profile_sha256 == sha256),
                )
                .limit(1)
            ).first()
        return hit is not None

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
            at = _now()
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
            at = _now()
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
                _now(),
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
            at = _now()
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
        return [_row_to_event(row) for row in rows]

    # -- helpers (inside a transaction) -------------------------------------------------

    def _require_model(self, conn: sa.Connection, name: str) -> None:
        found = conn.execute(
            sa.select(t.versions.c.id).where(t.versions.c.name == name).limit(1)
        ).first()
        if found is None:
            known = conn.execute(
                sa.select(t.versions.c.name).distinct().order_by(t.versions.c.name).limit(11)
            ).scalars()
            names = list(known)
            hint = (
                f"known models: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}"
                if names
                else "the registry is empty"
            )
            raise ModelNotFoundError(f"no model named {name!r} in the registry ({hint})")

    def _resolve(self, conn: sa.Connection, name: str, ref: int | str) -> int:
        v = t.versions.c
        self._require_model(conn, name)
        if ref == LATEST:
            top = conn.execute(
                sa.select(sa.func.max(v.version)).where(v.name == name, v.deleted_at.is_(None))
            ).scalar()
            if top is None:
                raise VersionNotFoundError(f"every version of model {name!r} was deleted")
            return int(top)
        if isinstance(ref, str):
            holder = self._holder(conn, name, ref)
            if holder is None:
                raise VersionNotFoundError(
                    f"alias {ref!r} of model {name!r} is not set; set it with "
                    f"`watchkeeper models alias {name} {ref} VERSION`"
                )
            return holder
        row = conn.execute(
            sa.select(v.deleted_at, v.actor).where(v.name == name, v.version == ref)
        ).first()
        if row is None:
            live = conn.execute(
                sa.select(v.version)
                .where(v.name == name, v.deleted_at.is_(None))
                .order_by(v.version)
            ).scalars()
            raise VersionNotFoundError(
                f"model {name!r} has no version {ref} (live versions: "
                f"{', '.join(map(str, live)) or 'none'})"
            )
        if row.deleted_at is not None:
            raise VersionNotFoundError(
                f"version {ref} of model {name!r} was deleted at "
                f"{_utc(row.deleted_at).isoformat()}; see `watchkeeper models history {name}`"
            )
        return ref

    def _holder(self, conn: sa.Connection, name: str, alias: str) -> int | None:
        row = conn.execute(
            sa.select(t.aliases.c.version).where(
                t.aliases.c.name == name, t.aliases.c.alias == alias
            )
        ).first()
        return None if row is None else int(row[0])

    def _aliases(self, conn: sa.Connection, name: str) -> dict[int, tuple[str, ...]]:
        rows = conn.execute(
            sa.select(t.aliases.c.version, t.aliases.c.alias)
            .where(t.aliases.c.name == name)
            .order_by(t.aliases.c.alias)
        ).all()
        held: dict[int, tuple[str, ...]] = {}
        for version, alias in rows:
            held[version] = (*held.get(version, ()), alias)
        return held

    def _point(
        self,
        conn: sa.Connection,
        name: str,
        alias: str,
        current: int | None,
        target: int,
        at: datetime,
    ) -> None:
        if current is None:
            conn.execute(
                sa.insert(t.aliases).values(name=name, alias=alias, version=target, updated_at=at)
            )
        else:
            conn.execute(
                sa.update(t.aliases)
                .where(t.aliases.c.name == name, t.aliases.c.alias == alias)
                .values(version=target, updated_at=at)
            )

    def _audit(
        self,
        conn: sa.Connection,
        name: str,
        kind: str,
        actor: str,
        at: datetime,
        *,
        version: int | None = None,
        alias: str | None = None,
        from_version: int | None = None,
        to_version: int | None = None,
        reason: str = "",
    ) -> Event:
        values = {
            "name": name,
            "kind": kind,
            "at": at,
            "actor": actor,
            "version": version,
            "alias": alias,
            "from_version": from_version,
            "to_version": to_version,
            "reason": reason,
        }
        new_id = conn.execute(sa.insert(t.events).values(**values)).inserted_primary_key
        assert new_id is not None
        return Event(id=int(new_id[0]), **values)  # type: ignore[arg-type]


def _version_from(new: NewVersion, version: int, at: datetime) -> ModelVersion:
    return ModelVersion(
        name=new.name,
        version=version,
        created_at=at,
        actor=new.actor,
        format=new.format,
        artifact_sha256=new.artifact_sha256,
        artifact_size=new.artifact_size,
        output_kind=new.output_kind,
        flavor=dict(new.flavor),
        schema=None if new.schema is None else dict(new.schema),
        profile_sha256=new.profile_sha256,
        metrics=dict(new.metrics),
        params=dict(new.params),
        tags=dict(new.tags),
        description=new.description,
        data_fingerprint=new.data_fingerprint,
        code_version=new.code_version,
        trusted=new.trusted,
    )


def _row_to_version(row: sa.Row[Any], held: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        version=int(row.version),
        created_at=_utc(row.created_at),
        actor=row.actor,
        format=row.format,
        artifact_sha256=row.artifact_sha256,
        artifact_size=int(row.artifact_size),
        output_kind=row.output_kind,
        flavor=json.loads(row.flavor),
        schema=None if row.input_schema is None else json.loads(row.input_schema),
        profile_sha256=row.profile_sha256,
        metrics=json.loads(row.metrics),
        params=json.loads(row.params),
        tags=json.loads(row.tags),
        description=row.description,
        data_fingerprint=row.data_fingerprint,
        code_version=row.code_version,
        trusted=bool(row.trusted),
        aliases=held,
    )


def _row_to_event(row: sa.Row[Any]) -> Event:
    return Event(
        id=int(row.id),
        name=row.name,
        kind=row.kind,
        at=_utc(row.at),
        actor=row.actor,
        version=row.version,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        reason=row.reason,
    )
