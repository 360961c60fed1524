"""Several registry changes, and the caller's own rows, committed as one transaction.

A policy that promotes a model must record that it did so in the same commit as the alias
move: killed between the two, it would either promote twice or forget that it promoted.
:meth:`SqlStore.transaction` hands ``work`` a :class:`StoreTransaction` whose changes are
audited exactly as the store's own methods audit them, plus the open connection for rows the
caller keeps in its own tables of the same database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from watchkeeper.exceptions import InputError
from watchkeeper.registry import _tables as t
from watchkeeper.registry._names import parse_ref, validate_alias, validate_name
from watchkeeper.registry._records import Event
from watchkeeper.registry._sql_base import now_utc

if TYPE_CHECKING:
    from watchkeeper.registry._routes import RouteTable
    from watchkeeper.registry._sql import SqlStore

__all__ = ["StoreTransaction"]


class StoreTransaction:
    """Registry changes inside one open write transaction (see :meth:`SqlStore.transaction`).

    Examples
    --------
    >>> from watchkeeper.registry import NewVersion, SqlStore
    >>> store = SqlStore("sqlite://")
    >>> for _ in range(2):
    ...     _ = store.add_version(NewVersion(name="m", actor="a", format="onnx",
    ...                                      artifact_sha256="0" * 64, artifact_size=1,
    ...                                      output_kind="regression"))
    >>> def promote(tx):
    ...     tx.set_alias("m", "champion", 1, actor="loop", reason="first")
    ...     return tx.audit("m", "loop", actor="loop", reason="step 1 done").kind
    >>> store.transaction(promote)
    'loop'
    >>> [e.kind for e in store.history("m")]
    ['register', 'register', 'alias', 'loop']
    >>> store.close()
    """

    def __init__(self, store: SqlStore, conn: sa.Connection) -> None:
        self._store = store
        self.connection = conn

    def version_of(self, name: str, ref: int | str) -> int:
        """The live version number ``ref`` (number, alias or ``"latest"``) resolves to."""
        return self._store._resolve(self.connection, validate_name(name), parse_ref(ref))

    def alias(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at now, or ``None``."""
        return self._store._holder(self.connection, validate_name(name), validate_alias(alias))

    def set_alias(
        self, name: str, alias: str, version: int | str, *, actor: str, reason: str = ""
    ) -> Event | None:
        """Point ``alias`` at ``version`` (audited); ``None`` if it already pointed there."""
        validate_name(name)
        validate_alias(alias)
        conn = self.connection
        target = self._store._resolve(conn, name, parse_ref(version))
        current = self._store._holder(conn, name, alias)
        if current == target:
            return None
        at = now_utc()
        self._store._point(conn, name, alias, current, target, at)
        return self._store._audit(
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

    def remove_alias(self, name: str, alias: str, *, actor: str, reason: str = "") -> Event | None:
        """Remove ``alias`` (audited); ``None`` if it was not set."""
        validate_name(name)
        validate_alias(alias)
        conn = self.connection
        current = self._store._holder(conn, name, alias)
        if current is None:
            return None
        conn.execute(
            sa.delete(t.aliases).where(t.aliases.c.name == name, t.aliases.c.alias == alias)
        )
        return self._store._audit(
            conn, name, "unalias", actor, now_utc(), alias=alias, from_version=current,
            reason=reason,
        )  # fmt: skip

    def put_route(
        self,
        routes: RouteTable,
        name: str,
        document: str,
        *,
        aliases: Sequence[str],
        actor: str,
        summary: str,
        reason: str = "",
    ) -> Event:
        """Store a gateway route document for ``name`` (see :class:`RouteTable`)."""
        return routes.put_in(
            self.connection, name, document, aliases=aliases, actor=actor, summary=summary,
            reason=reason,
        )  # fmt: skip

    def audit(
        self, name: str, kind: str, *, actor: str, reason: str = "", version: int | None = None
    ) -> Event:
        """Record an audit event of ``kind`` (at most 16 characters) for model ``name``."""
        validate_name(name)
        if not (isinstance(kind, str) and 0 < len(kind) <= 16):
            raise InputError(f"an event kind is 1-16 characters, got {kind!r}")
        self._store._require_model(self.connection, name)
        return self._store._audit(
            self.connection, name, kind, actor, now_utc(), version=version, reason=reason
        )
