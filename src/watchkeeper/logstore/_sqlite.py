"""The embedded prediction log: one SQLite file in WAL mode.

Durability. ``write_predictions`` and ``write_feedback`` run one transaction each and return
after ``COMMIT``. With ``synchronous="full"`` (the default) SQLite fsyncs the write-ahead log
at every commit, so a returned write survives a power loss or OS crash. With
``synchronous="normal"`` the commit reaches the OS page cache but is not fsynced, so it
survives the process being killed (``kill -9``, OOM killer) but not a power loss; it is much
faster per commit. Group commit (:class:`~watchkeeper.logstore.GroupCommitWriter`) makes the
fsync of ``"full"`` affordable by sharing it among many records.

Concurrency. One writer connection, used under a lock (in practice by the writer thread);
every read opens its own connection and reads one consistent snapshot, so reads never block
writes (WAL). Several processes (gateway workers) can share one file: SQLite serialises
their write transactions and ``busy_timeout_ms`` is how long a writer waits for another.

Identity. Prediction ids are scoped per model: a prediction is keyed by ``(model, id, arm)``;
a request has one live record and may have shadow records of the same id on other arms, which
must receive the same labels. A record whose key is already logged (a live record: whose
``(model, id)`` is already logged live) is not inserted again (``INSERT OR IGNORE``): when its
features are the stored ones it is an idempotent retry, counted in ``duplicates_total``; when
they differ, the write reports it as a conflict (:class:`WriteResult`) and the gateway answers
409 to that request alone. Both are decided inside the write's own transaction, only for the
rare batch where a key was already there, so the common write costs nothing more. Feedback rows
are all kept (an exact repeat of one is ignored) with the model they were sent for; reads join,
per prediction, the latest label and the latest flag by feedback time.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from watchkeeper.exceptions import InputError
from watchkeeper.logstore._errors import LogClosedError, LogStoreError
from watchkeeper.logstore._normalize import Checked, validate_model_name
from watchkeeper.logstore._partials import PartialRow
from watchkeeper.logstore._records import (
    FeedbackRecord,
    FeedbackResult,
    PredictionRecord,
    WriteResult,
)
from watchkeeper.logstore._sql import SQLLogReads, prediction_rows, same_content
from watchkeeper.logstore._summary import PredictionBaseline

if TYPE_CHECKING:
    pass

__all__ = ["SQLiteLogSink"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id TEXT NOT NULL,
    arm TEXT NOT NULL,
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    shadow INTEGER NOT NULL,
    features TEXT NOT NULL,
    prediction TEXT,
    scores TEXT,
    latency_ms REAL NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (model, id, arm)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS predictions_live_model_id
    ON predictions(model, id) WHERE shadow = 0;
CREATE INDEX IF NOT EXISTS predictions_model_ts_version ON predictions(model, ts, version);
DROP INDEX IF EXISTS predictions_model_ts;
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prediction_id TEXT NOT NULL,
    ts REAL NOT NULL,
    label TEXT,
    flag INTEGER,
    note TEXT,
    model TEXT
);
CREATE INDEX IF NOT EXISTS feedback_id_ts ON feedback(prediction_id, ts);
CREATE TABLE IF NOT EXISTS profile_partials (
    writer TEXT NOT NULL,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    arm TEXT NOT NULL,
    bucket_start REAL NOT NULL,
    bucket_end REAL NOT NULL,
    part INTEGER NOT NULL,
    n_rows INTEGER NOT NULL,
    reference TEXT NOT NULL,
    columns TEXT NOT NULL,
    profile BLOB NOT NULL,
    updated REAL NOT NULL,
    summary BLOB,
    PRIMARY KEY (model, version, arm, bucket_start, writer, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS prediction_baselines (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    task TEXT NOT NULL,
    classes TEXT,
    key TEXT NOT NULL,
    profile BLOB NOT NULL,
    PRIMARY KEY (model, version)
) WITHOUT ROWID;
"""
# Files written before ids were scoped per model: rebuild the predictions table with the
# (model, id, arm) key, and give feedback its model column (null: any model's prediction).
_MIGRATE_PREDICTIONS = """
CREATE TABLE predictions_scoped (
    id TEXT NOT NULL, arm TEXT NOT NULL, ts REAL NOT NULL, model TEXT NOT NULL,
    version INTEGER NOT NULL, shadow INTEGER NOT NULL, features TEXT NOT NULL,
    prediction TEXT, scores TEXT, latency_ms REAL NOT NULL, status TEXT NOT NULL, error TEXT,
    PRIMARY KEY (model, id, arm)
) WITHOUT ROWID;
INSERT INTO predictions_scoped SELECT id, arm, ts, model, version, shadow, features,
    prediction, scores, latency_ms, status, error FROM predictions;
DROP TABLE predictions;
ALTER TABLE predictions_scoped RENAME TO predictions;
"""
_FEEDBACK_UNIQUE = """
CREATE UNIQUE INDEX IF NOT EXISTS feedback_exact_model ON feedback(
    prediction_id, ts, ifnull(label, ''), ifnull(flag, -1), ifnull(note, ''), ifnull(model, '')
);
DROP INDEX IF EXISTS feedback_exact;
"""

_INSERT_PREDICTION = (
    "INSERT OR IGNORE INTO predictions (id, arm, ts, model, version, shadow, features, "
    "prediction, scores, latency_ms, status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_PARTIAL = (
    "INSERT OR REPLACE INTO profile_partials (writer, model, version, arm, bucket_start, "
    "bucket_end, part, n_rows, reference, columns, profile, updated, summary) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_FEEDBACK = (
    "INSERT OR IGNORE INTO feedback (prediction_id, ts, label, flag, note, model) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
#: Rows decoded at a time when reading a window.
_READ_CHUNK = 100_000

# Latest label and latest flag per prediction, each an index lookup on feedback_id_ts.
_SELECT_WINDOW = """
SELECT p.id, p.ts, p.version, p.arm, p.shadow, p.status, p.error, p.latency_ms, p.prediction,
       p.scores, p.features, fl.label, ff.flag, fl.ts
FROM predictions AS p
LEFT JOIN feedback AS fl ON fl.seq = (
    SELECT seq FROM feedback AS f WHERE f.prediction_id = p.id AND f.label IS NOT NULL
    AND (f.model IS NULL OR f.model = p.model) ORDER BY f.ts DESC, f.seq DESC LIMIT 1)
LEFT JOIN feedback AS ff ON ff.seq = (
    SELECT seq FROM feedback AS f WHERE f.prediction_id = p.id AND f.flag IS NOT NULL
    AND (f.model IS NULL OR f.model = p.model) ORDER BY f.ts DESC, f.seq DESC LIMIT 1)
"""
_DAY_OF = "CAST(p.ts / 86400.0 AS INTEGER)"  # UTC day number of a prediction (ts >= 0)
_CHUNK = 500  # ids per IN (...) list, well below SQLite's variable limit


def _open_turn_file(db: Path) -> int | None:
    """A descriptor of ``<db>-writer.lock`` for :meth:`SQLiteLogSink._write_turn`, or None
    where ``flock`` is not available or the file cannot be created."""
    try:
        import fcntl  # noqa: F401 (POSIX only)
    except ImportError:  # pragma: no cover - Windows
        return None
    try:
        return os.open(f"{db}-writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None


class SQLiteLogSink(SQLLogReads):
    """Prediction and feedback log in one SQLite file (WAL mode).

    Parameters
    ----------
    path
        The database file; created with its tables when missing. Not ``":memory:"``: readers
        open their own connections to the file.
    synchronous
        ``"full"`` (default): every commit is fsynced and survives power loss. ``"normal"``:
        commits survive the process being killed but not a power loss; faster.
    busy_timeout_ms
        How long a write waits for another process's write transaction on the same file.

    Examples
    --------
    >>> import tempfile, os
    >>> from watchkeeper.logstore import FeedbackRecord, PredictionRecord
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sink = SQLiteLogSink(os.path.join(d, "log.db"))
    ...     sink.write_predictions([
    ...         PredictionRecord("r1", 1.7e9, "churn", 1, "champion", {"age": 41}, 0),
    ...         PredictionRecord("r2", 1.7e9 + 1, "churn", 1, "champion", {"age": 29}, 1),
    ...     ])
    ...     result = sink.write_feedback([FeedbackRecord("r2", 1.7e9 + 60, label=1)])
    ...     table = sink.read_window("churn")
    ...     sink.close()
    >>> result.n_matched, table.column("age").to_pylist(), table.column("label").to_pylist()
    (1, [41, 29], [None, 1])
    """

    _PREDICTIONS, _FEEDBACK = "predictions", "feedback"
    _SELECT_WINDOW = _SELECT_WINDOW
    _DAY_OF = _DAY_OF

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["full", "normal"] = "full",
        busy_timeout_ms: int = 5_000,
    ) -> None:
        if str(path) in ("", ":memory:") or str(path).startswith("file:"):
            raise InputError(
                f"SQLiteLogSink needs a database file path, got {str(path)!r}: readers open "
                "their own connections, which an in-memory database cannot share"
            )
        if synchronous not in ("full", "normal"):
            raise InputError(
                f"synchronous must be 'full' (survives power loss) or 'normal' (survives a "
                f"killed process, faster), got {synchronous!r}"
            )
        if isinstance(busy_timeout_ms, bool) or not isinstance(busy_timeout_ms, int):
            raise InputError(f"busy_timeout_ms must be an integer, got {busy_timeout_ms!r}")
        if busy_timeout_ms < 0:
            raise InputError(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        #: Non-finite feature/prediction/score/label values stored as null by this sink.
        self.nonfinite_total = 0
        #: Re-inserted predictions (same key) that were ignored.
        self.duplicates_total = 0
        self._lock = threading.Lock()
        self._closed = False
        #: Why the log could not be opened yet (a read-only disk), else ``None``.
        self.unavailable: str | None = None
        self._conn: sqlite3.Connection | None = None
        self._turn_fd: int | None = None
        try:
            self._open()
        except LogStoreError as exc:
            if not (self.path.exists() and not os.access(self.path.parent, os.W_OK)):
                raise
            # An existing log on a read-only disk: open it when the disk is writable again,
            # meanwhile every write fails (503) and the readiness probe says why.
            self.unavailable = str(exc)

    def _open(self) -> None:
        conn = None
        try:
            conn = self._connect(writer=True)
            self._create_schema(conn)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise LogStoreError(
                f"cannot open the prediction log {str(self.path)!r}: {exc}; check that the "
                "disk and folder are writable"
            ) from exc
        self._conn = conn
        if self._turn_fd is None:
            self._turn_fd = _open_turn_file(self.path)
        self.unavailable = None

    # -- connections ---------------------------------------------------------------------

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise LogStoreError(
                f"cannot open the prediction log {str(self.path)!r}: {exc}; check that the "
                "folder exists and is writable"
            ) from exc
        conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        if writer:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.close()
                raise LogStoreError(
                    f"{str(self.path)!r} cannot use SQLite's WAL mode (got {mode!r}); put the "
                    "log on a local file system (WAL does not work over network file systems)"
                )
        conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        if not writer:
            conn.execute("PRAGMA query_only = ON")
        return conn

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.executescript(_SCHEMA)
        pk = [r[1] for r in sorted(conn.execute("PRAGMA table_info(predictions)"),
                                   key=lambda r: r[5]) if r[5]]  # fmt: skip
        if pk != ["model", "id", "arm"]:
            conn.executescript(f"BEGIN IMMEDIATE;{_MIGRATE_PREDICTIONS}COMMIT;")
            conn.executescript(_SCHEMA)  # the indexes of the new table
        if "model" not in [r[1] for r in conn.execute("PRAGMA table_info(feedback)")]:
            conn.execute("ALTER TABLE feedback ADD COLUMN model TEXT")
        if "summary" not in [r[1] for r in conn.execute("PRAGMA table_info(profile_partials)")]:
            conn.execute("ALTER TABLE profile_partials ADD COLUMN summary BLOB")
        conn.executescript(_FEEDBACK_UNIQUE)

    def _writer(self) -> sqlite3.Connection:
        if self._conn is None and not self._closed:
            self._open()  # opening was deferred: the disk was read-only
        if self._conn is None:
            raise LogClosedError(f"the prediction log {str(self.path)!r} is closed")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer connection inside ``BEGIN IMMEDIATE ... COMMIT`` (rolled back on error)."""
        with self._lock, self._write_turn():
            conn = self._writer()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        """Wait for this process's turn to write, when several processes share the file.

        SQLite lets one write transaction run at a time and makes the others poll with
        growing sleeps (up to 100 ms each), so gateway workers sharing one log file waited
        seconds at the tail under load. An exclusive ``flock`` on a sidecar file queues them
        instead and wakes the next writer as soon as the lock is released; the kernel
        releases it when a process dies, even by ``kill -9``. Where ``flock`` does not exist
        (Windows), SQLite's own locking is all there is.
        """
        if self._turn_fd is None:
            yield
            return
        import fcntl

        fcntl.flock(self._turn_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._turn_fd, fcntl.LOCK_UN)

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A fresh read-only connection holding one consistent snapshot."""
        if self._closed:  # refuse reads after close, like writes
            raise LogClosedError(f"the prediction log {str(self.path)!r} is closed")
        conn = self._connect(writer=False)
        try:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
        finally:
            conn.close()

    # -- writing ---------------------------------------------------------------------------

    def write_predictions(self, records: Sequence[PredictionRecord]) -> WriteResult | None:
        """Store ``records`` in one transaction; returning means committed (see ``synchronous``).

        Idempotent: a record whose ``(model, id, arm)`` is already stored, or a live record
        whose ``(model, id)`` is already stored live, is not stored again. With the stored
        features it is a retry (counted in ``duplicates_total``); with other features it is
        a conflict, listed by index in the returned :class:`WriteResult`. Returns ``None``
        when every record was stored.
        """
        clean = Checked.of(records, feedback=False)
        rows = prediction_rows(clean)
        if not rows:
            return None
        conflicts: tuple[int, ...] = ()
        with self._transaction() as conn:
            inserted = conn.executemany(_INSERT_PREDICTION, rows).rowcount
            if inserted < len(rows):  # some keys were there already: retries or conflicts
                conflicts = _conflicts(conn, clean)
        self.nonfinite_total += clean.nonfinite
        duplicates = len(rows) - inserted - len(conflicts)
        self.duplicates_total += duplicates
        return WriteResult(duplicates, conflicts) if duplicates or conflicts else None

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> FeedbackResult:
        """Store feedback in one transaction; ids matching no prediction are kept and counted.

        An exact repeat of a stored feedback record (same id, ts, label, flag, note and
        model) is ignored, so retrying a batch is safe. Feedback with a ``model`` matches only
        that model's predictions.
        """
        clean = Checked.of(records, feedback=True)
        if not clean:
            return FeedbackResult(0, 0, ())
        rows = [
            (r.id, r.ts, label, None if r.flag is None else int(r.flag), r.note, r.model)
            for r, label in zip(clean, clean.encoded, strict=True)
        ]
        keys = list(dict.fromkeys((r.model, r.id) for r in clean))
        with self._transaction() as conn:
            known = _existing_keys(conn, keys)
            conn.executemany(_INSERT_FEEDBACK, rows)
        self.nonfinite_total += clean.nonfinite
        unknown = tuple(dict.fromkeys(i for m, i in keys if (m, i) not in known))
        n_unknown = sum(1 for r in clean if (r.model, r.id) not in known)
        return FeedbackResult(len(clean) - n_unknown, n_unknown, unknown)

    # -- partial profiles (built as records are logged) ---------------------------------

    def write_profile_partials(self, partials: Sequence[PartialRow]) -> None:
        """Store (replace) partial profiles in one transaction (see
        :class:`~watchkeeper.logstore.PartialProfiler`)."""
        if not partials:
            return
        rows = [
            (p.writer, p.model, p.version, p.arm, p.bucket_start, p.bucket_end, p.part,
             p.n_rows, p.reference, json.dumps(list(p.columns)), p.profile, p.updated,
             p.summary)
            for p in partials
        ]  # fmt: skip
        with self._transaction() as conn:
            conn.executemany(_UPSERT_PARTIAL, rows)

    def profile_partials(
        self, model: str, *, start: float, end: float, version: int | None = None,
        arm: str | None = None, profiles: bool = True,
    ) -> list[PartialRow]:  # fmt: skip
        """Partial profiles of ``model`` whose hour (bucket) lies in ``[start, end)`` (UTC
        seconds), optionally of one version and arm (``profiles=False``: without their
        profile texts, see :meth:`partial_profile_texts`)."""
        sql, params = self._partials_query(model, start, end, version, arm, profiles, False)
        with self._snapshot() as conn:
            found = conn.execute(sql, params).fetchall()
        return [
            PartialRow(r[0], r[1], int(r[2]), r[3], float(r[4]), float(r[5]), int(r[6]),
                       int(r[7]), r[8], tuple(json.loads(r[9])), r[10] or b"", float(r[11]),
                       r[12])
            for r in found
        ]  # fmt: skip

    def partial_summaries(
        self, model: str, *, start: float, end: float, version: int | None = None,
        arm: str | None = None,
    ) -> Iterator[bytes | None]:  # fmt: skip
        """The log summaries (binary, :class:`~watchkeeper.logstore.LogSummary`) of
        :meth:`profile_partials`, one at a time; ``None`` for partials stored without one."""
        sql, params = self._partials_query(model, start, end, version, arm, False, True)
        with self._snapshot() as conn:
            for row in conn.execute(sql, params):
                yield row[12]

    def write_prediction_baseline(
        self, model: str, version: int, baseline: PredictionBaseline
    ) -> None:
        """Store (replace) the prediction baseline of ``model`` ``version``: partial profilers
        then summarise the predictions of its later records binned on it."""
        validate_model_name(model)
        classes = None if baseline.classes is None else json.dumps(list(baseline.classes))
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO prediction_baselines (model, version, task, classes, "
                "key, profile) VALUES (?, ?, ?, ?, ?, ?)",
                (model, int(version), baseline.task, classes, baseline.key, baseline.profile),
            )

    def prediction_baseline(self, model: str, version: int) -> PredictionBaseline | None:
        """The stored prediction baseline of ``model`` ``version``, or ``None``."""
        validate_model_name(model)
        with self._snapshot() as conn:
            row = conn.execute(
                "SELECT task, classes, key, profile FROM prediction_baselines "
                "WHERE model = ? AND version = ?",
                (model, int(version)),
            ).fetchone()
        if row is None:
            return None
        classes = None if row[1] is None else tuple(json.loads(row[1]))
        return PredictionBaseline(row[0], classes, bytes(row[3]), row[2])

    def partial_profile_texts(
        self, model: str, *, start: float, end: float, version: int | None = None,
        arm: str | None = None,
    ) -> Iterator[bytes]:  # fmt: skip
        """The profiles (binary) of :meth:`profile_partials`, one at a time (a reader merging
        them holds one partial at a time, not all of them)."""
        sql, params = self._partials_query(model, start, end, version, arm, True, False)
        with self._snapshot() as conn:
            for row in conn.execute(sql, params):
                yield row[10]

    @staticmethod
    def _partials_query(
        model: str, start: float, end: float, version: int | None, arm: str | None,
        profiles: bool, summaries: bool,
    ) -> tuple[str, list[Any]]:  # fmt: skip
        validate_model_name(model)
        # the summary column, only when asked, else whether there is one (1 or NULL)
        summary = "summary" if summaries else "CASE WHEN summary IS NULL THEN NULL ELSE 1 END"
        sql = (
            "SELECT writer, model, version, arm, bucket_start, bucket_end, part, n_rows, "
            f"reference, columns, {'profile' if profiles else 'NULL'}, updated, {summary} "
            "FROM profile_partials WHERE model = ? AND bucket_start >= ? AND bucket_end <= ?"
        )
        params: list[Any] = [model, float(start), float(end)]
        if version is not None:
            sql += " AND version = ?"
            params.append(int(version))
        if arm is not None:
            sql += " AND arm = ?"
            params.append(arm)
        return sql + " ORDER BY bucket_start, writer, part", params

    def check_writable(self) -> None:
        """Raise :class:`LogStoreError` saying why when a write cannot be committed now.

        Writes and commits one tiny row (what a prediction's commit needs: the file, its
        folder and free space all writable); used by the gateway's readiness probe. A
        connection opened while the file was read-only is reopened, so the log recovers
        when the disk does.
        """
        try:
            with self._transaction() as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS probe (k INTEGER PRIMARY KEY, ts REAL)")
                conn.execute("INSERT OR REPLACE INTO probe VALUES (1, julianday('now'))")
        except sqlite3.Error as exc:
            with self._lock:
                if self._conn is not None and "readonly" in str(exc).replace("-", ""):
                    # SQLite keeps a connection opened on a read-only file read-only: open
                    # a new one on the next write
                    self._conn.close()
                    self._conn = None
            raise LogStoreError(
                f"the prediction log {str(self.path)!r} cannot be written: {exc}"
            ) from exc

    # -- export support (used by watchkeeper.logstore._parquet) -----------------------------

    def _delete_exported(
        self, keys: Sequence[tuple[str, str]], max_seq: int, model: str | None = None
    ) -> int:
        """Delete exported predictions (of ``model``) by ``(id, arm)``, and the feedback on
        them that was exported."""
        ids = list(dict.fromkeys(k[0] for k in keys))
        scope = "" if model is None else " AND model = ?"
        extra = () if model is None else (model,)
        with self._transaction() as conn:
            deleted = conn.executemany(
                f"DELETE FROM predictions WHERE id = ? AND arm = ?{scope}",
                [(*k, *extra) for k in keys],
            ).rowcount
            still_known = {i for _, i in _existing_keys(conn, [(None, i) for i in ids])}
            gone = [(i, max_seq) for i in ids if i not in still_known]
            conn.executemany("DELETE FROM feedback WHERE prediction_id = ? AND seq <= ?", gone)
        return int(deleted)

    def close(self) -> None:
        """Close the writer connection (idempotent); the file stays consistent."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._turn_fd is not None:
                os.close(self._turn_fd)
                self._turn_fd = None

    def __enter__(self) -> SQLiteLogSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteLogSink({str(self.path)!r}, synchronous={self.synchronous!r})"


def _logged_models(conn: sqlite3.Connection) -> list[str]:
    """Models with predictions, one index seek each (no scan of the table)."""
    models: list[str] = []
    row = conn.execute("SELECT min(model) FROM predictions").fetchone()
    while row is not None and row[0] is not None:
        models.append(row[0])
        row = conn.execute("SELECT min(model) FROM predictions WHERE model > ?", row).fetchone()
    return models


def _existing_keys(
    conn: sqlite3.Connection, keys: Sequence[tuple[str | None, str]]
) -> set[tuple[str | None, str]]:
    """Which ``(model, id)`` have a logged prediction (``model`` None: of any model).

    Every lookup is a seek on the ``(model, id, arm)`` key.
    """
    wanted: dict[str, list[str]] = {}
    every: list[str] | None = None
    for model, i in keys:
        if model is None and every is None:
            every = _logged_models(conn)
        for m in [model] if model is not None else every or []:
            wanted.setdefault(m, []).append(i)
    found: set[tuple[str, str]] = set()
    for model, ids in wanted.items():
        ids = list(dict.fromkeys(ids))
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT DISTINCT id FROM predictions WHERE model = ? AND id IN ({marks})",
                [model, *chunk],
            )
            found.update((model, r[0]) for r in rows)
    any_model = {i for _, i in found}
    return {(m, i) for m, i in keys if ((m, i) in found if m is not None else i in any_model)}


def _conflicts(conn: sqlite3.Connection, records: Checked) -> tuple[int, ...]:
    """Indices of ``records`` not stored because their key holds other features.

    Runs in the writing transaction after ``INSERT OR IGNORE``: every key of the batch is
    stored now, by this batch or before it, so a record whose stored features differ from
    its own was refused (a record identical to the stored one is a retry, or was stored).
    """
    out = []
    for i, (r, texts) in enumerate(zip(records, records.encoded, strict=True)):
        if r.shadow:
            sql = "SELECT features FROM predictions WHERE model = ? AND id = ? AND arm = ?"
            params: tuple[Any, ...] = (r.model, r.id, r.arm)
        else:
            sql = "SELECT features FROM predictions WHERE model = ? AND id = ? AND shadow = 0"
            params = (r.model, r.id)
        row = conn.execute(sql, params).fetchone()
        if row is not None and not same_content(row[0], texts[0]):
            out.append(i)
    return tuple(out)
