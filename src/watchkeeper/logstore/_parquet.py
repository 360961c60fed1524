"""Compaction of the SQLite log into Parquet partitioned by model and day, and reading it back.

Layout (Hive partitioning, readable by ``pyarrow.dataset``, DuckDB, Spark, pandas)::

    root/model=<name>/date=<YYYY-MM-DD>/part-0.parquet

Each file holds the window table of one model and one UTC day (every arm, shadow included;
the columns of :meth:`SQLiteLogSink.read_window`, labels joined as of the export). Export is
idempotent: a partition's file is rewritten as the union of what it held and what SQLite holds
now for that day, keyed by ``(id, arm)`` with SQLite winning (it has the newest labels), and
replaced atomically. Running it again duplicates nothing; rows deleted from SQLite by an
earlier export stay in the file.

With ``delete=True`` the exported rows and the feedback joined into them are removed from
SQLite, which keeps the embedded file small. Feedback arriving later for a deleted
prediction is kept in SQLite and counted as an unknown id by
:meth:`SQLiteLogSink.feedback_stats`; export only days older than your labelling delay when
labels matter (``until``).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from watchkeeper._extras import require
from watchkeeper.exceptions import InputError
from watchkeeper.logstore._arrow import LOG_COLUMNS, concat_windows, filter_window, window_table
from watchkeeper.logstore._normalize import validate_model_name
from watchkeeper.logstore._postgres import PostgresLogSink
from watchkeeper.logstore._sqlite import SQLiteLogSink
from watchkeeper.logstore._window import check_last, to_seconds

__all__ = ["ExportResult", "export_parquet", "read_parquet"]

_DAY = 86_400.0
_FILE = "part-0.parquet"
_SORT = [("ts", "ascending"), ("id", "ascending"), ("arm", "ascending")]


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What :func:`export_parquet` did: rows read from SQLite, rows deleted, files written.

    Examples
    --------
    >>> ExportResult(n_rows=3, n_deleted=0, paths=("log/model=m/date=2024-05-01/part-0.parquet",))
    ExportResult(n_rows=3, n_deleted=0, paths=('log/model=m/date=2024-05-01/part-0.parquet',))
    """

    n_rows: int
    n_deleted: int
    paths: tuple[str, ...]


class _Store:
    """A local folder or an fsspec URL, with the few operations the export needs."""

    def __init__(self, root: str | os.PathLike[str], purpose: str) -> None:
        text = os.fspath(root)
        self.fs: Any = None
        if "://" in text and not text.startswith("file://"):
            fsspec = require("fsspec", extra="storage", purpose=purpose)
            self.fs, self.root = fsspec.core.url_to_fs(text)
        else:
            self.root = text.removeprefix("file://")
        self.root = self.root.rstrip("/") or "/"

    def join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path)) if self.fs is not None else os.path.exists(path)

    def read(self, path: str) -> pa.Table:
        if self.fs is None:
            return pq.read_table(path)
        with self.fs.open(path, "rb") as f:
            return pq.read_table(f)

    def write(self, table: pa.Table, path: str) -> None:
        if self.fs is not None:
            # object stores replace an object atomically on upload
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            with self.fs.open(path, "wb") as f:
                pq.write_table(table, f)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # dot-prefixed: pyarrow.dataset ignores it if a crash leaves it behind
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _ordered(table: pa.Table) -> pa.Table:
    """Log columns first (in their order), then the features as they come; sorted by time."""
    names = [c for c in LOG_COLUMNS if c in table.column_names]
    names += [c for c in table.column_names if c not in LOG_COLUMNS]
    return table.select(names).sort_by(_SORT)


def _start_of_today() -> float:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp()


def export_parquet(
    sink: SQLiteLogSink | PostgresLogSink,
    root: str | os.PathLike[str],
    *,
    until: datetime | float | None = None,
    delete: bool = False,
    model: str | None = None,
) -> ExportResult:
    """Export predictions with ``ts < until`` to Parquet under ``root``, one file per model-day.

    Parameters
    ----------
    sink
        The SQLite or PostgreSQL log to export from.
    root
        A local folder or any fsspec URL (``s3://bucket/log``; needs the ``storage`` extra).
    until
        Export predictions before this time (aware datetime or UTC seconds). Default: the
        start of the current UTC day, so only complete days are exported.
    delete
        Remove the exported predictions (and the feedback joined into them) from SQLite.
    model
        Export this model only (default: all).

    Examples
    --------
    >>> import tempfile, os
    >>> from watchkeeper.logstore import PredictionRecord, SQLiteLogSink
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sink = SQLiteLogSink(os.path.join(d, "log.db"))
    ...     sink.write_predictions([PredictionRecord(f"r{i}", 1.7e9 + 40_000 * i, "churn", 1,
    ...                                              "champion", {"x": i}, 0) for i in range(4)])
    ...     result = export_parquet(sink, os.path.join(d, "parquet"), delete=True)
    ...     back = read_parquet(os.path.join(d, "parquet"), "churn")
    ...     left = sink.count()
    ...     sink.close()
    >>> [p.split("/")[-2] for p in result.paths]
    ['date=2023-11-14', 'date=2023-11-15', 'date=2023-11-16']
    >>> result.n_rows, result.n_deleted, left, back.column("x").to_pylist()
    (4, 4, 0, [0, 1, 2, 3])
    """
    if not isinstance(sink, SQLiteLogSink | PostgresLogSink):
        raise InputError(
            f"export_parquet reads a SQLiteLogSink or a PostgresLogSink, got {type(sink).__name__}"
        )
    limit = _start_of_today() if until is None else to_seconds(until, "until")
    assert limit is not None
    if model is not None:
        validate_model_name(model)
    store = _Store(root, purpose=f"Exporting the prediction log to {os.fspath(root)!r}")
    n_rows = n_deleted = 0
    paths: list[str] = []
    for name, day_number in sink._partitions(limit):
        if model is not None and name != model:
            continue
        day = datetime.fromtimestamp(day_number * _DAY, UTC).date().isoformat()
        table, max_seq = sink._export_snapshot(name, day_number, limit)
        if table.num_rows == 0:
            continue
        path = store.join(f"model={name}", f"date={day}", _FILE)
        keys = list(zip(table.column("id").to_pylist(), table.column("arm").to_pylist(),
                        strict=True))  # fmt: skip
        merged = table
        if store.exists(path):
            old = store.read(path)
            fresh = set(keys)
            old_keys = zip(old.column("id").to_pylist(), old.column("arm").to_pylist(), strict=True)
            kept = old.filter(pa.array([k not in fresh for k in old_keys], pa.bool_()))
            merged = concat_windows([kept, table]) or table
        store.write(_ordered(merged), path)
        paths.append(path)
        n_rows += table.num_rows
        if delete:
            n_deleted += sink._delete_exported(keys, max_seq, name)
    return ExportResult(n_rows=n_rows, n_deleted=n_deleted, paths=tuple(paths))


def read_parquet(
    root: str | os.PathLike[str],
    model: str,
    *,
    start: datetime | float | None = None,
    end: datetime | float | None = None,
    last: int | None = None,
    version: int | None = None,
    arm: str | None = None,
    include_shadow: bool = False,
) -> pa.Table:
    """Read a window of one model back from a Parquet export, shaped like ``read_window``.

    Only the day partitions overlapping ``[start, end)`` are opened. Column types are
    inferred per exported day, so a window narrower than the exported days can have a
    column typed more widely (``double`` rather than ``int64``) than ``read_window`` would.

    Examples
    --------
    See :func:`export_parquet`.
    """
    validate_model_name(model)
    check_last(last)
    lo, hi = to_seconds(start, "start"), to_seconds(end, "end")
    store = _Store(root, purpose=f"Reading the prediction log from {os.fspath(root)!r}")
    if not store.exists(store.root):
        raise InputError(f"no Parquet export at {os.fspath(root)!r}; run export_parquet first")
    folder = store.join(f"model={model}")
    if not store.exists(folder):
        return window_table([])
    dataset = ds.dataset(
        folder,
        filesystem=store.fs,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive"),
    )
    day_filter = None
    if lo is not None:
        day_filter = ds.field("date") >= datetime.fromtimestamp(lo, UTC).date().isoformat()
    if hi is not None:
        upper = ds.field("date") <= datetime.fromtimestamp(hi, UTC).date().isoformat()
        day_filter = upper if day_filter is None else day_filter & upper
    tables = []
    for fragment in dataset.get_fragments(filter=day_filter):
        table = fragment.to_table()
        tables.append(table.drop_columns([c for c in ("date", "model") if c in table.schema.names]))
    merged = concat_windows(tables)
    if merged is None:
        return window_table([])
    merged = filter_window(merged, lo, hi, version, arm, include_shadow)
    result = _ordered(merged)
    if last is not None and result.num_rows > last:
        result = result.slice(result.num_rows - last)
    return result
