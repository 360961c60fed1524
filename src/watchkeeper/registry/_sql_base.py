"""Plumbing of the SQL store: engine, transactions with retry, lookups, rows to records."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from watchkeeper.exceptions import InputError
from watchkeeper.registry import _tables as t
from watchkeeper.registry._errors import (
    ModelNotFoundError,
    RegistryLockedError,
    VersionNotFoundError,
)
from watchkeeper.registry._names import LATEST
from watchkeeper.registry._records import Event, ModelVersion
from watchkeeper.registry._store import NewVersion
from watchkeeper.storage import READ_ONLY, as_utc, create_engine, db_errors, now_utc

__all__ = [
    "SqlBase",
    "as_utc",
    "dumps_json",
    "now_utc",
    "row_to_event",
    "row_to_version",
    "version_from",
]

T = TypeVar("T")

_MAX_ATTEMPTS = 50
_PG_MIGRATION_LOCK = 0x7761_7463  # any constant shared by all watchkeeper processes


def dumps_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=True)


class SqlBase:
    """Connection handling and in-transaction helpers shared by the store's operations."""

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
                f"{as_utc(row.deleted_at).isoformat()}; see `watchkeeper models history {name}`"
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


def version_from(new: NewVersion, version: int, at: datetime) -> ModelVersion:
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


def row_to_version(row: sa.Row[Any], held: tuple[str, ...]) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        version=int(row.version),
        created_at=as_utc(row.created_at),
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


def row_to_event(row: sa.Row[Any]) -> Event:
    return Event(
        id=int(row.id),
        name=row.name,
        kind=row.kind,
        at=as_utc(row.at),
        actor=row.actor,
        version=row.version,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        reason=row.reason,
    )
