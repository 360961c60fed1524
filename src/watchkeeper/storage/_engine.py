"""Database engines for the registry: SQLite (embedded default) and PostgreSQL.

Everything dialect-specific lives here; the tables and queries are the same for both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from watchkeeper._extras import require
from watchkeeper.exceptions import InputError

__all__ = ["READ_ONLY", "create_engine", "db_errors", "safe_url"]

#: Execution option marking a read-only transaction (SQLite then skips the write lock).
READ_ONLY = "watchkeeper_read_only"

_LOCKED_MARKERS = ("database is locked", "database table is locked", "lock timeout")


def safe_url(url: str | sa.URL) -> str:
    """The URL with any password masked, for messages.

    Examples
    --------
    >>> safe_url("postgresql+psycopg://ana:secret@db:5432/reg")
    'postgresql+psycopg://ana:***@db:5432/reg'
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable URL>"


def create_engine(url: str, *, timeout: float) -> sa.Engine:
    """Engine for a SQLite or PostgreSQL URL, configured for safe concurrent writers.

    SQLite gets WAL mode (readers never block the writer), a busy timeout of ``timeout``
    seconds, and ``BEGIN IMMEDIATE`` for write transactions so that two writers queue instead
    of deadlocking on a lock upgrade. PostgreSQL gets connect and lock timeouts.

    Examples
    --------
    >>> engine = create_engine("sqlite://", timeout=1.0)
    >>> engine.dialect.name
    'sqlite'
    >>> create_engine("mysql://h/db", timeout=1.0)
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: unsupported registry database URL ...
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InputError(
            f"cannot parse registry database URL {url!r}: use sqlite:///path/registry.db or "
            "postgresql://user@host:5432/dbname"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, timeout)
    if backend in ("postgresql", "postgres"):
        return _postgres_engine(parsed, timeout)
    raise InputError(
        f"unsupported registry database URL {safe_url(parsed)!r}: use sqlite:///path/registry.db "
        "or postgresql://user@host:5432/dbname"
    )


def _sqlite_engine(url: sa.URL, timeout: float) -> sa.Engine:
    from watchkeeper.registry import RegistryUnavailableError  # same layer; public name

    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryUnavailableError(
                f"cannot create the folder of the registry database {database!r}: {exc}"
            ) from exc
    engine = sa.create_engine(url, connect_args={"timeout": timeout})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that "begin" below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: sa.URL, timeout: float) -> sa.Engine:
    require("psycopg", extra="postgres", purpose="A PostgreSQL registry")
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    # Server options given in the URL (e.g. ``?options=-csearch_path%3Dregistry`` to keep the
    # registry in its own schema) are kept next to the lock timeout instead of replaced by it.
    given = url.query.get("options", "")
    given = " ".join(given) if isinstance(given, tuple) else given
    options = f"{given} -c lock_timeout={int(timeout * 1000)}".strip()
    return sa.create_engine(
        url.difference_update_query(["options"]),
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(1, round(timeout)), "options": options},
    )


@contextmanager
def db_errors(url: sa.URL, timeout: float) -> Iterator[None]:
    """Turn driver errors about locks and connectivity into registry errors.

    Examples
    --------
    >>> import sqlalchemy as sa
    >>> engine = sa.create_engine("sqlite:////nonexistent-dir/x.db")
    >>> with db_errors(engine.url, 1.0):
    ...     engine.connect()
    Traceback (most recent call last):
    ...
    watchkeeper.registry._errors.RegistryUnavailableError: cannot use the registry database ...
    """
    # The errors are the registry's (same layer, public names), resolved when one is raised.
    from watchkeeper.registry import RegistryLockedError, RegistryUnavailableError

    try:
        yield
    except sa.exc.IntegrityError:
        raise
    except sa.exc.DBAPIError as exc:
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        where = safe_url(url)
        if any(marker in detail.lower() for marker in _LOCKED_MARKERS):
            raise RegistryLockedError(
                f"the registry database {where} stayed locked by another process for more than "
                f"{timeout:g} s ({detail}); retry later or raise the timeout"
            ) from exc
        raise RegistryUnavailableError(
            f"cannot use the registry database {where}: {detail}. Check the URL, that the "
            "server is running and reachable, and the credentials and file permissions"
        ) from exc
