"""The prediction log as Parquet files on any fsspec URL (object storage, a shared folder).

Layout (Hive partitioning, readable by ``pyarrow.dataset``, DuckDB, Spark)::

    root/predictions/model=<name>/date=<YYYY-MM-DD>/part-<written>-<uuid>.parquet
    root/feedback/date=<YYYY-MM-DD>/part-<written>-<uuid>.parquet

A prediction file has the log columns of a window (``id``, ``ts``, ``version``, ``arm``,
``shadow``, ``status``, ``error``, ``latency_ms``, ``prediction``, ``scores``) and one column
per feature, plus ``_written`` (when the file was written, in nanoseconds). Labels and flags
arrive late, so they never rewrite a prediction file: they land in the ``feedback`` table,
partitioned by the date of the feedback, and are joined by id at read time (the latest label
and the latest flag by feedback time, as in SQLite).

Writes are at least once. Every ``write_predictions`` call writes one new file per model and
day it touches, each uploaded (object stores) or fsynced and renamed (local folders) before
the call returns, so a returned write is durable; a call that fails part-way may have stored
some of its files, and the retry stores them again. Readers therefore de-duplicate: per
``(id, arm)`` and per live id the first written record wins (the rule of the SQL sinks'
unique keys), among the records of the days read (the window's days and one day either side).
Nothing is ever rewritten in place, so any number of writers (gateway workers, replicas) can
share one root without coordinating.

Many small files are slow to read: :meth:`ParquetLogSink.compact` merges each partition's
files into one, de-duplicated, written in row groups of ``row_group_size`` rows, and deletes
the inputs only after the merged file is stored. A crash in between leaves duplicates, which
readers drop; two compactions at once are just as harmless.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from watchkeeper._extras import require
from watchkeeper.exceptions import InputError, MissingExtraError
from watchkeeper.logstore._arrow import (
    LOG_COLUMNS,
    _field,
    _is_json_fallback,
    concat_windows,
    filter_window,
    json_column,
    window_table,
)
from watchkeeper.logstore._errors import LogClosedError, LogStoreError
from watchkeeper.logstore._normalize import (
    Checked,
    validate_model_name,
)
from watchkeeper.logstore._records import (
    FeedbackRecord,
    FeedbackResult,
    FeedbackStats,
    PredictionRecord,
    WriteResult,
)
from watchkeeper.logstore._sql import same_content
from watchkeeper.logstore._window import check_last, to_seconds

__all__ = ["CompactResult", "ParquetLogSink", "join_labels"]

_DAY = 86_400.0
_TS = pa.timestamp("us", tz="UTC")
_LABEL_COLUMNS = ("label", "flag", "label_ts")
_WINDOW_ORDER = [("ts", "ascending"), ("id", "ascending"), ("arm", "ascending")]
_FEEDBACK_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("ts", _TS),
        ("label", pa.string()),  # JSON text
        ("flag", pa.bool_()),
        ("note", pa.string()),
        ("_written", pa.int64()),
        ("model", pa.string()),  # the model it is for; null: any model (and older files)
    ]
)


@dataclass(frozen=True, slots=True)
class CompactResult:
    """What :meth:`ParquetLogSink.compact` did.

    Examples
    --------
    >>> CompactResult(n_partitions=1, n_files_read=3, n_rows=10, n_duplicates=2)
    CompactResult(n_partitions=1, n_files_read=3, n_rows=10, n_duplicates=2, n_conflicts=0)
    """

    n_partitions: int
    n_files_read: int
    n_rows: int
    n_duplicates: int
    """Records dropped as repeats of an earlier record with the same features (retries)."""
    n_conflicts: int = 0
    """Records dropped because an earlier record holds their ``(model, id)`` with other
    features (the first written is kept); not part of ``n_duplicates``."""


def _day_of(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def _row(r: PredictionRecord, texts: Sequence[str | None]) -> tuple[Any, ...]:
    """A record as the SQL sinks' window row (feedback columns empty), from its encoded
    ``(features, prediction, scores)`` texts."""
    return (
        r.id, r.ts, r.version, r.arm, r.shadow, r.status, r.error, r.latency_ms,
        texts[1], texts[2], texts[0], None, None, None,
    )  # fmt: skip


def _with_row_numbers(table: pa.Table) -> pa.Table:
    return table.append_column("_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))


def _sorted(values: pa.Array) -> pa.Array:
    return pc.take(values, pc.sort_indices(values))


def _first_per_key(table: pa.Table, keys: list[str]) -> pa.Array:
    """Row numbers (``_row``) of the first row of each key."""
    grouped = table.group_by(keys, use_threads=False).aggregate([("_row", "min")])
    return grouped.column("_row_min")


def dedupe_predictions(table: pa.Table) -> tuple[pa.Table, int]:
    """Keep the first written record per ``(id, arm)`` and per live id; count the others.

    ``table`` holds one model's records (ids are scoped per model).

    Examples
    --------
    >>> t = pa.table({"id": ["a", "a", "a"], "arm": ["c", "c", "d"],
    ...               "shadow": [False, False, False], "_written": [2, 1, 3], "x": [1, 2, 3]})
    >>> kept, n = dedupe_predictions(t)
    >>> kept.column("x").to_pylist(), n
    ([2], 2)
    """
    if table.num_rows == 0:
        return table, 0
    n = table.num_rows
    table = _with_row_numbers(table.sort_by([("_written", "ascending")]))
    table = table.take(_sorted(_first_per_key(table, ["id", "arm"])))
    table = _with_row_numbers(table.drop_columns(["_row"]))
    live = table.filter(pc.invert(table["shadow"]))
    keep = pc.or_(pc.is_in(table["_row"], _first_per_key(live, ["id"])), table["shadow"])
    kept = table.filter(keep).drop_columns(["_row"])
    return kept, n - kept.num_rows


def count_conflicts(table: pa.Table, kept: pa.Table) -> int:
    """How many records of ``table`` that :func:`dedupe_predictions` dropped (into ``kept``)
    hold other features than the kept record of their key: conflicts, not retries.

    Only the rows of repeated ids are compared, so a table without repeats costs nothing.

    Examples
    --------
    >>> t = pa.table({"id": ["a", "a", "b", "b"], "arm": ["c"] * 4, "shadow": [False] * 4,
    ...               "_written": [1, 2, 1, 2], "x": [1, 2, 5, 5]})
    >>> kept, n = dedupe_predictions(t)
    >>> n, count_conflicts(t, kept)
    (2, 1)
    """
    if table.num_rows == kept.num_rows:
        return 0
    counts = pc.value_counts(table["id"])
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    base = set(LOG_COLUMNS) | {"_written"}
    names = [c for c in table.column_names if c not in base]

    def rows(t: pa.Table) -> list[dict[str, Any]]:
        t = t.filter(pc.is_in(t["id"], repeated))
        found: list[dict[str, Any]] = t.select(["id", "arm", "shadow", *names]).to_pylist()
        return found

    first: dict[tuple[str, str | None], dict[str, Any]] = {}
    for row in rows(kept):
        first[(row["id"], row["arm"])] = row
        if not row["shadow"]:
            first[(row["id"], None)] = row
    n = 0
    for row in rows(table):
        mine = first.get((row["id"], row["arm"] if row["shadow"] else None))
        if mine is None:
            mine = first.get((row["id"], row["arm"]))
        if mine is not None and any(row[c] != mine[c] for c in names):
            n += 1
    return n


class _Files:
    """The few file operations the sink needs, on a local folder or any fsspec URL."""

    def __init__(self, root: str, options: dict[str, Any] | None = None) -> None:
        purpose = f"A Parquet prediction log at {root!r}"
        fsspec = require("fsspec", extra="storage", purpose=purpose)
        if "://" not in root:
            root = "file://" + os.path.abspath(root)
        try:
            self.fs, path = fsspec.core.url_to_fs(root, **(options or {}))
        except ImportError as exc:  # the file system's own package (s3fs, gcsfs) is missing
            module = str(getattr(exc, "name", None) or "s3fs")
            extra = "s3" if root.startswith(("s3://", "s3a://")) else "storage"
            raise MissingExtraError(module, extra, purpose) from exc
        except ValueError as exc:
            raise InputError(f"cannot use {root!r} as a Parquet log location: {exc}") from exc
        self.local = "file" in self.fs.protocol
        self.root = str(path).rstrip("/") or "/"

    def join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def listdir(self, path: str, prefix: str) -> list[str]:
        """Names under ``path`` that start with ``prefix`` (e.g. ``date=``), sorted."""
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        names = (str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)
        return sorted(n for n in names if n.startswith(prefix))

    def find(self, path: str) -> list[str]:
        """Every part file under ``path`` at any depth, sorted (one listing on object
        stores, rather than one per folder)."""
        self.fs.invalidate_cache(path)
        try:
            found = self.fs.find(path)
        except FileNotFoundError:
            return []
        paths = [str(p) for p in found]
        return sorted(
            p for p in paths if p.rsplit("/", 1)[-1].startswith("part-") and p.endswith(".parquet")
        )

    def read(self, path: str) -> pa.Table:
        with self.fs.open(path, "rb") as f:
            return pq.read_table(f)

    def write(self, table: pa.Table, path: str, row_group_size: int) -> None:
        folder = path.rsplit("/", 1)[0]
        if not self.local:  # an object store replaces an object atomically on upload
            with self.fs.open(path, "wb") as f:
                pq.write_table(table, f, row_group_size=row_group_size)
            return
        os.makedirs(folder, exist_ok=True)
        # dot-prefixed: never listed as a part file if a crash leaves it behind
        tmp = f"{folder}/.{path.rsplit('/', 1)[1]}.tmp"
        try:
            pq.write_table(table, tmp, row_group_size=row_group_size)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def delete(self, paths: Sequence[str]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):  # another compaction was first
                self.fs.rm_file(path)


class ParquetLogSink:
    """Prediction and feedback log as Parquet files under a local folder or fsspec URL.

    Parameters
    ----------
    url
        A folder, ``file:///path``, or any fsspec URL such as ``s3://bucket/prefix`` (needs
        the ``storage`` extra and the file system's package, e.g. ``s3fs``).
    storage_options
        Passed to the fsspec file system (e.g. ``{"endpoint_url": ...}`` for an
        S3-compatible server); credentials usually come from the environment instead.
    row_group_size
        Rows per Parquet row group in files written by :meth:`compact`.
    feedback_horizon_days
        How many days before a label :meth:`write_feedback` looks for its prediction when it
        counts unknown ids (the label is stored and joined whatever its age; only the count
        of unknown ids is limited to this horizon).
    recent_keys
        How many prediction keys this sink remembers to refuse, at write time, a reused id
        that it wrote itself (see :meth:`write_predictions`); the oldest are forgotten first.

    Examples
    --------
    >>> import tempfile
    >>> from watchkeeper.logstore import FeedbackRecord, PredictionRecord
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sink = ParquetLogSink(d)
    ...     sink.write_predictions([
    ...         PredictionRecord("r1", 1.7e9, "churn", 1, "champion", {"age": 41}, 0),
    ...         PredictionRecord("r2", 1.7e9 + 1, "churn", 1, "champion", {"age": 29}, 1)])
    ...     retry = sink.write_predictions([  # a retry this sink wrote: not stored again
    ...         PredictionRecord("r2", 1.7e9 + 1, "churn", 1, "champion", {"age": 29}, 1)])
    ...     other = ParquetLogSink(d)  # another writer's retry: stored again, read once
    ...     other.write_predictions([
    ...         PredictionRecord("r2", 1.7e9 + 1, "churn", 1, "champion", {"age": 29}, 1)])
    ...     result = sink.write_feedback([FeedbackRecord("r2", 1.7e9 + 60, label=1)])
    ...     compacted = sink.compact()
    ...     table = sink.read_window("churn")
    ...     sink.close()
    >>> result.n_matched, table.column("age").to_pylist(), table.column("label").to_pylist()
    (1, [41, 29], [None, 1])
    >>> retry
    WriteResult(duplicates=1, conflicts=())
    >>> compacted.n_files_read, compacted.n_duplicates  # two prediction files merged
    (2, 1)
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        *,
        storage_options: dict[str, Any] | None = None,
        row_group_size: int = 65_536,
        feedback_horizon_days: int = 90,
        recent_keys: int = 100_000,
    ) -> None:
        text = os.fspath(url)
        if not text:
            raise InputError("ParquetLogSink needs a folder or URL, e.g. s3://bucket/log")
        for name, value in (
            ("row_group_size", row_group_size),
            ("feedback_horizon_days", feedback_horizon_days),
            ("recent_keys", recent_keys),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        self.url = text
        self.row_group_size = row_group_size
        self.feedback_horizon_days = feedback_horizon_days
        self._files = _Files(text, storage_options)
        #: Non-finite feature/prediction/score/label values stored as null by this sink.
        self.nonfinite_total = 0
        #: Repeated predictions dropped by :meth:`compact` (writes are at least once).
        self.duplicates_total = 0
        #: Conflicting records (an id logged with other features) dropped by :meth:`compact`.
        self.conflicts_total = 0
        #: How many keys this process remembers to refuse a reused id at write time.
        self.recent_keys = recent_keys
        self._recent: OrderedDict[tuple[str, str, str | None], str] = OrderedDict()
        self._closed = False
        self._lock = threading.Lock()

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"the prediction log {self.url!r} is closed")

    def _store(self, what: str, work: Callable[[], Any]) -> Any:
        try:
            return work()
        except (OSError, pa.ArrowException) as exc:
            raise LogStoreError(
                f"cannot {what} the Parquet prediction log {self.url!r}: {exc}. Check the URL, "
                "the credentials and that the storage is reachable"
            ) from exc

    # -- writing ---------------------------------------------------------------------------

    def _write(self, table: pa.Table, path: str, row_group_size: int) -> None:
        self._store("write to", lambda: self._files.write(table, path, row_group_size))

    def _new_name(self, written: int) -> str:
        return f"part-{written:020d}-{uuid.uuid4().hex[:12]}.parquet"

    def write_predictions(self, records: Sequence[PredictionRecord]) -> WriteResult | None:
        """Store ``records``: one new file per model and day; returning means stored.

        At least once across processes: a record written twice by two processes is stored
        twice and read once (the first written). Within this process, the keys written
        recently (the last ``recent_keys``) are remembered: a record whose ``(model, id,
        arm)``, or for a live record ``(model, id)``, this process already wrote is not
        written again. With the same features it is a retry (``duplicates_total``); with
        other features it is a conflict, listed by index in the returned
        :class:`WriteResult`, as in the SQL stores. Returns ``None`` when every record was
        stored.
        """
        self._check_open()
        clean = Checked.of(records, feedback=False)
        if not clean:
            return None
        groups: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        keys: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        conflicts: list[int] = []
        duplicates = 0
        with self._lock:
            batch: dict[tuple[str, str, str | None], str] = {}
            for i, (r, texts) in enumerate(zip(clean, clean.encoded, strict=True)):
                own = (r.model, r.id, r.arm)
                live = None if r.shadow else (r.model, r.id, None)
                seen = batch.get(own) or (batch.get(live) if live else None)
                if seen is None:
                    seen = self._recent.get(own) or (self._recent.get(live) if live else None)
                if seen is not None:
                    if same_content(seen, texts[0]):
                        duplicates += 1
                    else:
                        conflicts.append(i)
                    continue
                batch[own] = texts[0]
                if live:
                    batch[live] = texts[0]
                group = (r.model, _day_of(r.ts))
                groups.setdefault(group, []).append(_row(r, texts))
                keys.setdefault(group, []).extend([own, live] if live else [own])
        written = time.time_ns()
        for (model, day), rows in groups.items():
            table = window_table(rows).drop_columns(list(_LABEL_COLUMNS))
            table = table.append_column("_written", pa.array([written] * len(rows), pa.int64()))
            path = self._files.join("predictions", f"model={model}", f"date={day}",
                                    self._new_name(written))  # fmt: skip
            self._write(table, path, len(rows))
            with self._lock:  # remembered once stored: a failed write may be retried
                for key in keys[(model, day)]:
                    self._recent[key] = batch[key]
                    self._recent.move_to_end(key)
                while len(self._recent) > self.recent_keys:
                    self._recent.popitem(last=False)
        with self._lock:
            self.nonfinite_total += clean.nonfinite
            self.duplicates_total += duplicates
        if duplicates or conflicts:
            return WriteResult(duplicates, tuple(conflicts))
        return None

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> FeedbackResult:
        """Store feedback in new files (one per day); unknown ids are stored and counted.

        An id counts as unknown when no prediction of any model within
        ``feedback_horizon_days`` before the feedback has it.
        """
        self._check_open()
        clean = Checked.of(records, feedback=True)
        if not clean:
            return FeedbackResult(0, 0, ())
        ids = list(dict.fromkeys(r.id for r in clean))
        first = min(r.ts for r in clean) - self.feedback_horizon_days * _DAY
        known = self._known_ids(ids, _day_of(first), _day_of(max(r.ts for r in clean) + _DAY))
        written = time.time_ns()
        groups: dict[str, list[tuple[FeedbackRecord, str | None]]] = {}
        for r, label in zip(clean, clean.encoded, strict=True):
            groups.setdefault(_day_of(r.ts), []).append((r, label))
        for day, group in groups.items():
            table = pa.table(
                {
                    "id": [r.id for r, _ in group],
                    "ts": pa.array([round(r.ts * 1e6) for r, _ in group], pa.int64()).cast(_TS),
                    "label": pa.array([label for _, label in group], pa.string()),
                    "flag": pa.array([r.flag for r, _ in group], pa.bool_()),
                    "note": pa.array([r.note for r, _ in group], pa.string()),
                    "_written": pa.array([written] * len(group), pa.int64()),
                    "model": pa.array([r.model for r, _ in group], pa.string()),
                },
                schema=_FEEDBACK_SCHEMA,
            )
            path = self._files.join("feedback", f"date={day}", self._new_name(written))
            self._write(table, path, len(group))
        self.nonfinite_total += clean.nonfinite
        unknown = tuple(dict.fromkeys(r.id for r in clean if (r.model, r.id) not in known))
        n_unknown = sum(1 for r in clean if (r.model, r.id) not in known)
        return FeedbackResult(len(clean) - n_unknown, n_unknown, unknown)

    # -- reading files -------------------------------------------------------------------

    def _read_all(self, paths: Sequence[str], columns: list[str] | None = None) -> list[pa.Table]:
        def one(path: str) -> pa.Table:
            with self._files.fs.open(path, "rb") as f:
                if columns is None:
                    return pq.read_table(f)
                names = pq.read_schema(f).names
                return pq.read_table(f, columns=[c for c in columns if c in names])

        def read(path: str) -> pa.Table:
            table: pa.Table = self._store("read", lambda: one(path))
            return table

        if len(paths) <= 1 or self._files.local:
            return [read(p) for p in paths]
        with ThreadPoolExecutor(max_workers=8) as pool:  # object stores: hide the latency
            return list(pool.map(read, paths))

    def _prediction_days(self, model: str) -> list[str]:
        folder = self._files.join("predictions", f"model={model}")
        return [n.removeprefix("date=") for n in self._files.listdir(folder, "date=")]

    def _prediction_files(self, model: str, days: Sequence[str]) -> list[str]:
        paths: list[str] = []
        for day in days:
            folder = self._files.join("predictions", f"model={model}", f"date={day}")
            paths += [f"{folder}/{n}" for n in self._files.listdir(folder, "part-")
                      if n.endswith(".parquet")]  # fmt: skip
        return paths

    def _feedback_files(self) -> list[str]:
        paths: list[str] = []
        root = self._files.join("feedback")
        for name in self._files.listdir(root, "date="):
            folder = f"{root}/{name}"
            paths += [f"{folder}/{n}" for n in self._files.listdir(folder, "part-")
                      if n.endswith(".parquet")]  # fmt: skip
        return paths

    def _known_ids(
        self, ids: Sequence[str], first_day: str, last_day: str
    ) -> set[tuple[str | None, str]]:
        """``(model, id)`` and ``(None, id)`` of the predictions of ``ids`` in those days."""
        wanted = pa.array(ids, pa.string())
        known: set[tuple[str | None, str]] = set()
        for model in self.models():
            days = [d for d in self._prediction_days(model) if first_day <= d <= last_day]
            for table in self._read_all(self._prediction_files(model, days), ["id"]):
                for i in table.filter(pc.is_in(table["id"], wanted))["id"].to_pylist():
                    known.update(((model, i), (None, i)))
        return known

    def _predictions(self, model: str, days: Sequence[str]) -> pa.Table | None:
        tables = self._read_all(self._prediction_files(model, days))
        return concat_windows(t.drop_columns([c for c in _LABEL_COLUMNS if c in t.column_names])
                              for t in tables)  # fmt: skip

    def _feedback(self, ids: pa.Array | None = None) -> pa.Table:
        tables = [_with_model(t) for t in self._read_all(self._feedback_files())]
        if not tables:
            return _FEEDBACK_SCHEMA.empty_table()
        table = pa.concat_tables(tables)
        return table if ids is None else table.filter(pc.is_in(table["id"], ids))

    # -- reading windows -------------------------------------------------------------------

    def read_window(
        self,
        model: str,
        *,
        start: datetime | float | None = None,
        end: datetime | float | None = None,
        last: int | None = None,
        version: int | None = None,
        arm: str | None = None,
        include_shadow: bool = False,
    ) -> pa.Table:
        """Predictions of ``model`` with ``start <= ts < end`` (or the ``last`` N of them).

        The table of :meth:`SQLiteLogSink.read_window
        <watchkeeper.logstore.SQLiteLogSink.read_window>`: log columns, the latest label and
        flag joined by id, then the features. Only the day partitions the window needs (and
        one either side, for de-duplication) are read. Column types are inferred per written
        file, so a feature can come back typed more widely (``double``) than SQLite would
        type it for the same window.
        """
        self._check_open()
        validate_model_name(model)
        check_last(last)
        lo, hi = to_seconds(start, "start"), to_seconds(end, "end")
        days = self._prediction_days(model)
        if lo is not None:
            days = [d for d in days if d >= _day_of(lo - _DAY)]
        if hi is not None:
            days = [d for d in days if d <= _day_of(hi + _DAY)]
        if last is not None and lo is None:
            table = self._newest(model, days, last, hi, version, arm, include_shadow)
        else:
            table = self._window(model, days, lo, hi, version, arm, include_shadow)
        if table is None:
            return window_table([])
        return self._with_labels(table, last, model)

    def _window(
        self,
        model: str,
        days: Sequence[str],
        lo: float | None,
        hi: float | None,
        version: int | None,
        arm: str | None,
        include_shadow: bool,
    ) -> pa.Table | None:
        table = self._predictions(model, days)
        if table is None:
            return None
        table, _ = dedupe_predictions(table)
        return filter_window(table, lo, hi, version, arm, include_shadow)

    def _newest(
        self,
        model: str,
        days: Sequence[str],
        last: int,
        hi: float | None,
        version: int | None,
        arm: str | None,
        include_shadow: bool,
    ) -> pa.Table | None:
        """The window of the newest days holding at least ``last`` rows (plus one day, so
        that duplicates across midnight are seen)."""
        table = None
        for n in range(1, len(days) + 1):
            table = self._window(model, days[-n:], None, hi, version, arm, include_shadow)
            if table is not None and table.num_rows >= last:
                return self._window(model, days[-n - 1 :], None, hi, version, arm, include_shadow)
        return table

    def _with_labels(self, table: pa.Table, last: int | None, model: str) -> pa.Table:
        table = table.sort_by(_WINDOW_ORDER)
        if last is not None and table.num_rows > last:
            table = table.slice(table.num_rows - last)
        return join_labels(table, self._feedback(pc.unique(table["id"])), model)

    # -- reading for engines: predictions and feedback apart, joined by the caller ----------

    def read_predictions(
        self,
        model: str,
        *,
        start: float,
        end: float,
        version: int | None = None,
        arm: str | None = None,
        include_shadow: bool = False,
        files: dict[str, list[str]] | None = None,
    ) -> pa.Table | None:
        """The de-duplicated predictions of :meth:`read_window` for ``[start, end)`` (UTC
        seconds), without labels, in :meth:`read_window`'s order; ``None`` without any.

        Only the window's day partitions and one day either side are read, as
        :meth:`read_window` reads them (``files``: the listing of
        :meth:`prediction_files`, to list once for many windows). An engine that profiles
        the log window by window (``watchkeeper.engines``) calls this per window and joins
        the labels with :func:`join_labels`, so that a window needs its own days only.
        """
        self._check_open()
        validate_model_name(model)
        first, last = _day_of(start - _DAY), _day_of(end + _DAY)
        if files is None:
            days = [d for d in self._prediction_days(model) if first <= d <= last]
            paths = self._prediction_files(model, days)
        else:
            paths = [p for d, found in sorted(files.items()) if first <= d <= last for p in found]
        tables = self._read_all(paths)
        table = concat_windows(t.drop_columns([c for c in _LABEL_COLUMNS if c in t.column_names])
                               for t in tables)  # fmt: skip
        if table is None:
            return None
        table, _ = dedupe_predictions(table)
        table = filter_window(table, start, end, version, arm, include_shadow)
        return table.sort_by(_WINDOW_ORDER)

    def prediction_files(self, model: str) -> dict[str, list[str]]:
        """Day (``YYYY-MM-DD``, UTC) to the paths of its prediction files of ``model``, in
        :meth:`read_window`'s order (one recursive listing)."""
        self._check_open()
        folder = self._files.join("predictions", f"model={validate_model_name(model)}")
        out: dict[str, list[str]] = {}
        for path in self._files.find(folder):
            parent = path.rsplit("/", 2)[-2]
            if parent.startswith("date="):
                out.setdefault(parent.removeprefix("date="), []).append(path)
        return out

    def feedback_files(self) -> list[str]:
        """Paths of every feedback file, in the order :meth:`read_window` reads them (one
        recursive listing)."""
        self._check_open()
        root = self._files.join("feedback")
        return [p for p in self._files.find(root) if p.rsplit("/", 2)[-2].startswith("date=")]

    def read_feedback(self, paths: Sequence[str]) -> pa.Table:
        """Feedback files (paths of :meth:`feedback_files`), in that order, as
        :func:`join_labels` takes them: ``id``, ``ts``, ``label``, ``flag``, ``note``,
        ``_written``, ``model``."""
        self._check_open()
        tables = [_with_model(t) for t in self._read_all(paths)]
        return pa.concat_tables(tables) if tables else _FEEDBACK_SCHEMA.empty_table()

    def count(self, model: str | None = None) -> int:
        """Number of stored predictions (of ``model``, or of all models), duplicates dropped,
        shadow included. Reads the id columns of every file of the model(s)."""
        self._check_open()
        models = self.models() if model is None else [validate_model_name(model)]
        total = 0
        for name in models:
            total += self._ids(name).num_rows
        return total

    def _ids(self, model: str) -> pa.Table:
        files = self._prediction_files(model, self._prediction_days(model))
        tables = self._read_all(files, ["id", "arm", "shadow", "_written"])
        if not tables:
            return pa.table({"id": pa.array([], pa.string())})
        return dedupe_predictions(pa.concat_tables(tables))[0]

    def models(self) -> list[str]:
        """Names of the models that have predictions in the log, sorted."""
        self._check_open()
        names = self._files.listdir(self._files.join("predictions"), "model=")
        return [n.removeprefix("model=") for n in names]

    def feedback_stats(self, model: str | None = None) -> FeedbackStats:
        """How much feedback arrived, matched a prediction (of ``model``) or matched none.

        Reads the id columns of every prediction file and all feedback; exact repeats of a
        feedback record count once, as in the SQL sinks.
        """
        self._check_open()
        if model is not None:
            validate_model_name(model)
        feedback = self._feedback()
        feedback = feedback.group_by(["id", "ts", "label", "flag", "note", "model"],
                                     use_threads=False).aggregate([])  # fmt: skip
        ids = {name: self._ids(name) for name in self.models()}
        every = pa.concat_tables([t.select(["id"]) for t in ids.values()]) if ids else None
        all_ids = pa.array([], pa.string()) if every is None else pc.unique(every["id"])
        mine = ids.get(model) if model is not None else every
        own_ids = pa.array([], pa.string()) if mine is None else pc.unique(mine["id"])
        received = feedback.num_rows
        # feedback for a model matches only that model's predictions; without one, any model's
        keys = {(name, i) for name, t in ids.items() for i in pc.unique(t["id"]).to_pylist()}
        fb_model, fb_id = feedback["model"].to_pylist(), feedback["id"].to_pylist()
        any_ids = set(all_ids.to_pylist())
        found = [
            i in any_ids if m is None else (m, i) in keys
            for m, i in zip(fb_model, fb_id, strict=True)
        ]
        own = set(own_ids.to_pylist())
        mine_found = [
            ok and i in own and (m is None or model is None or m == model)
            for ok, m, i in zip(found, fb_model, fb_id, strict=True)
        ]
        matched = sum(mine_found)
        unknown_rows = feedback.filter(pa.array([not ok for ok in found], pa.bool_()))
        fb_mine = feedback.filter(
            pa.array([m is None or model is None or m == model for m in fb_model], pa.bool_())
        )
        labelled_ids = pc.unique(fb_mine.filter(pc.is_valid(fb_mine["label"]))["id"])
        labelled = 0
        if mine is not None:
            live = mine.filter(pc.invert(mine["shadow"]))
            labelled = int(pc.sum(pc.is_in(live["id"], labelled_ids)).as_py() or 0)
        return FeedbackStats(
            received, matched, unknown_rows.num_rows,
            len(pc.unique(unknown_rows["id"])), labelled,
        )  # fmt: skip

    # -- compaction ------------------------------------------------------------------------

    def compact(self, model: str | None = None) -> CompactResult:
        """Merge each partition's files into one de-duplicated file in row groups.

        Every partition with more than one file is rewritten (prediction partitions of
        ``model``, or of every model, and, without ``model``, the feedback partitions); the
        input files are deleted only after the merged file is stored. Safe while writers add
        files: only the files listed at the start are merged and deleted.

        Examples
        --------
        See :class:`ParquetLogSink`.
        """
        self._check_open()
        models = self.models() if model is None else [validate_model_name(model)]
        # (files read, rows kept, duplicates, conflicts)
        merged: list[tuple[int, int, int, int]] = []
        for name in models:
            for day in self._prediction_days(name):
                files = self._prediction_files(name, [day])
                if len(files) < 2:
                    continue
                table = self._predictions(name, [day])
                assert table is not None
                kept, n_repeated = dedupe_predictions(table)
                n_conflicts = count_conflicts(table, kept)
                kept = kept.sort_by([("ts", "ascending"), ("id", "ascending")])
                folder = self._files.join("predictions", f"model={name}", f"date={day}")
                self._replace(files, kept, folder)
                merged.append((len(files), kept.num_rows, n_repeated - n_conflicts, n_conflicts))
        if model is None:
            root = self._files.join("feedback")
            for name in self._files.listdir(root, "date="):
                folder = f"{root}/{name}"
                files = [f"{folder}/{n}" for n in self._files.listdir(folder, "part-")
                         if n.endswith(".parquet")]  # fmt: skip
                if len(files) < 2:
                    continue
                kept = _first_exact(pa.concat_tables(_with_model(t) for t in self._read_all(files)))
                self._replace(files, kept, folder)
                merged.append((len(files), kept.num_rows, 0, 0))
        n_duplicates = sum(m[2] for m in merged)
        n_conflicts = sum(m[3] for m in merged)
        with self._lock:
            self.duplicates_total += n_duplicates
            self.conflicts_total += n_conflicts
        return CompactResult(
            n_partitions=len(merged),
            n_files_read=sum(m[0] for m in merged),
            n_rows=sum(m[1] for m in merged),
            n_duplicates=n_duplicates,
            n_conflicts=n_conflicts,
        )

    def _replace(self, files: Sequence[str], table: pa.Table, folder: str) -> None:
        written = int(pc.min(table["_written"]).as_py()) if table.num_rows else time.time_ns()
        path = f"{folder}/{self._new_name(written)}"
        self._store("write to", lambda: self._files.write(table, path, self.row_group_size))
        self._store("delete from", lambda: self._files.delete([f for f in files if f != path]))

    def close(self) -> None:
        """Mark the sink closed (idempotent); every write was already stored."""
        self._closed = True

    def __enter__(self) -> ParquetLogSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ParquetLogSink({self.url!r})"


def join_labels(table: pa.Table, feedback: pa.Table, model: str) -> pa.Table:
    """Predictions of one model (a window, in its order) with their latest label and flag.

    ``feedback`` holds feedback rows as :meth:`ParquetLogSink.read_feedback_file` reads
    them, in the order of :meth:`ParquetLogSink.feedback_files` (of labels with the same
    time and write, the first wins); rows for other ids are ignored. The result is the
    table of :meth:`ParquetLogSink.read_window`: log columns, then the features.

    Examples
    --------
    >>> rows = [(i, 1.7e9, 1, "c", False, "ok", None, 1.0, "0", None, '{"x": 1}', None, None,
    ...          None) for i in ("a", "b")]
    >>> preds = window_table(rows).drop_columns(list(_LABEL_COLUMNS))
    >>> fb = pa.table({"id": ["b", "b"], "ts": pa.array([5, 9], _TS), "label": ["0", "1"],
    ...                "flag": pa.array([None, None], pa.bool_()), "note": [None, None],
    ...                "_written": [1, 2], "model": [None, "m"]})
    >>> join_labels(preds, fb, "m").column("label").to_pylist()
    [None, 1]
    """
    feedback = feedback.filter(pc.is_in(feedback["id"], pc.unique(table["id"])))
    feedback = feedback.filter(  # sent for this model, or for any model
        pc.or_kleene(pc.is_null(feedback["model"]), pc.equal(feedback["model"], model))
    ).sort_by([("ts", "descending"), ("_written", "descending")])
    labels = feedback.filter(pc.is_valid(feedback["label"]))
    labels = labels.group_by("id", use_threads=False).aggregate(
        [("label", "first"), ("ts", "first")]
    )
    flags = feedback.filter(pc.is_valid(feedback["flag"]))
    flags = flags.group_by("id", use_threads=False).aggregate([("flag", "first")])
    ids = table["id"]
    at = pc.index_in(ids, labels["id"])
    label_text = pc.take(labels["label_first"], at).to_pylist()
    label_values = [None if v is None else json.loads(v) for v in label_text]
    label = json_column(label_values)
    label_ts = pc.take(labels["ts_first"], at)
    flag = pc.take(flags["flag_first"], pc.index_in(ids, flags["id"]))
    features = [c for c in table.column_names if c not in LOG_COLUMNS and c != "_written"]
    columns = [c for c in LOG_COLUMNS if c not in _LABEL_COLUMNS]
    fields = [table.schema.field(c) for c in columns]
    arrays = [table[c] for c in columns]
    fields += [
        _field("label", label, _is_json_fallback(label_values, label)),
        pa.field("flag", pa.bool_()),
        pa.field("label_ts", _TS),
    ]
    arrays += [label, flag.cast(pa.bool_()), label_ts.cast(_TS)]
    fields += [table.schema.field(c) for c in features]
    arrays += [table[c] for c in features]
    order = [f.name for f in fields]
    wanted = [*LOG_COLUMNS, *features]
    result = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return result.select([c for c in wanted if c in order])


def _first_exact(table: pa.Table) -> pa.Table:
    """Feedback without exact repeats (same id, ts, label, flag, note), first written kept."""
    if table.num_rows == 0:
        return table
    table = _with_row_numbers(table.sort_by([("_written", "ascending")]))
    first = _first_per_key(table, ["id", "ts", "label", "flag", "note", "model"])
    return table.take(_sorted(first)).drop_columns(["_row"])


def _with_model(table: pa.Table) -> pa.Table:
    """A feedback table with its ``model`` column (null in files written before it existed)."""
    if "model" in table.column_names:
        return table.select(_FEEDBACK_SCHEMA.names)
    return table.append_column("model", pa.nulls(table.num_rows, pa.string()))
