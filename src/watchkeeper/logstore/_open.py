"""Choosing the prediction log's store by URL, as the registry chooses its database."""

from __future__ import annotations

import os
from typing import Any, Literal

from watchkeeper.exceptions import InputError
from watchkeeper.logstore._records import LogSink

__all__ = ["is_log_file", "open_sink"]

_POSTGRES = ("postgresql", "postgres")


def _scheme(url: str) -> str:
    head, sep, _ = url.partition("://")
    return head.lower() if sep and head.replace("+", "").isalnum() else ""


def is_log_file(url: str | os.PathLike[str]) -> bool:
    """Whether ``url`` names a SQLite log file (a path or ``sqlite:///path``), the only kind
    of log that lives in a local file.

    Examples
    --------
    >>> is_log_file("logs/predictions.db"), is_log_file("sqlite:///logs/predictions.db")
    (True, True)
    >>> is_log_file("postgresql://db/log"), is_log_file("s3://bucket/log")
    (False, False)
    """
    scheme = _scheme(os.fspath(url))
    return scheme in ("", "sqlite")


def sqlite_path(url: str | os.PathLike[str]) -> str:
    """The file of a SQLite log URL (``sqlite:///relative.db``, ``sqlite:////abs.db``) or path.

    Examples
    --------
    >>> sqlite_path("sqlite:///logs/predictions.db"), sqlite_path("/srv/predictions.db")
    ('logs/predictions.db', '/srv/predictions.db')
    """
    text = os.fspath(url)
    if _scheme(text) == "sqlite":
        text = text.split("://", 1)[1]
        text = text[1:] if text.startswith("/") else text
        if not text:
            raise InputError("sqlite:/// needs a file, e.g. sqlite:///.watchkeeper/predictions.db")
    return text


def open_sink(
    url: str | os.PathLike[str],
    *,
    synchronous: Literal["full", "normal"] = "full",
    storage_options: dict[str, Any] | None = None,
    create: bool = True,
) -> LogSink:
    """The prediction log store named by ``url``.

    - a path or ``sqlite:///path``: :class:`~watchkeeper.logstore.SQLiteLogSink` (one host);
    - ``postgresql://user:password@host:5432/db``:
      :class:`~watchkeeper.logstore.PostgresLogSink` (many workers and replicas);
    - any other fsspec URL (``s3://bucket/prefix``, ``gs://...``, ``file:///path``):
      :class:`~watchkeeper.logstore.ParquetLogSink` (Parquet on object storage).

    ``synchronous`` applies to SQLite, ``storage_options`` to Parquet. A SQLite log's folder
    is created when missing; with ``create=False`` (readers: the monitor, reports) a missing
    SQLite file is an error instead of a new empty log.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sqlite = open_sink(os.path.join(d, "predictions.db"))
    ...     parquet = open_sink(f"file://{d}/log")
    ...     kinds = type(sqlite).__name__, type(parquet).__name__
    ...     sqlite.close(); parquet.close()
    >>> kinds
    ('SQLiteLogSink', 'ParquetLogSink')
    >>> open_sink("mysql://db/log")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: a mysql:// prediction log is not supported: ...
    """
    text = os.fspath(url)
    if not text:
        raise InputError("the prediction log URL is empty; pass a path, postgresql:// or s3:// URL")
    scheme = _scheme(text)
    if scheme in ("", "sqlite"):
        from pathlib import Path

        from watchkeeper.logstore._sqlite import SQLiteLogSink

        path = Path(sqlite_path(text))
        if not create and not path.is_file():
            raise InputError(f"no prediction log at {path}; pass --log or --root")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"cannot create the log folder {str(path.parent)!r}: {exc.strerror}"
            ) from exc
        return SQLiteLogSink(path, synchronous=synchronous)
    if scheme.partition("+")[0] in _POSTGRES:
        from watchkeeper.logstore._postgres import PostgresLogSink

        return PostgresLogSink(text)
    if scheme in ("mysql", "mariadb", "mssql", "oracle") or "+" in scheme:
        raise InputError(
            f"a {scheme}:// prediction log is not supported: use a file path or sqlite:///path "
            "(one host), postgresql://user@host/db (many replicas), or an fsspec URL such as "
            "s3://bucket/prefix (Parquet)"
        )
    from watchkeeper.logstore._parquet_log import ParquetLogSink

    return ParquetLogSink(text, storage_options=storage_options)
