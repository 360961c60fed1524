"""The prediction log in PostgreSQL, shared by many gateway workers and replicas.

Durability. ``write_predictions`` and ``write_feedback`` run one transaction each and return
after ``COMMIT``; with the server's default ``synchronous_commit = on`` the commit is flushed
to the server's write-ahead log first, so a returned write survives the gateway process being
killed and the database server crashing. Group commit
(:class:`~watchkeeper.logstore.GroupCommitWriter`) runs in every worker; the server then also
groups the WAL flushes of concurrent commits from all workers.

Writing. The writer connection runs in autocommit mode, so the common write is one statement
that is its own transaction, committed (and, with ``synchronous_commit = on``, flushed) before
the server answers: a single record is one ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (one
round trip), a batch is one binary ``COPY`` (two round trips, and about a tenth of the client
CPU of binding every value as a query parameter). When that fast statement meets a stored key
(a retry: ``COPY`` fails as a whole, ``INSERT`` skips), nothing of it was kept, and the batch is
written again inside one transaction by ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO
NOTHING RETURNING``, which skips the records already stored by the same unique keys as in
SQLite (``(model, id, arm)``, and one live record per ``(model, id)``). Records are stored as
the JSON texts the caller's ``Checked`` list already holds (never encoded a second time).

Identity. As in SQLite, ids are scoped per model. A record the ``INSERT`` skipped is looked up,
in the same transaction and only when the ``INSERT`` skipped any: with the stored features it is
an idempotent retry (``duplicates_total``); with other features it is a conflict, reported in
the returned :class:`~watchkeeper.logstore.WriteResult`. Feedback has a ``model`` column and
attaches only to its own model's prediction. Tables from before ids were scoped per model are
migrated when the sink opens (the primary key is rebuilt; no row changes).

Concurrency. One writer connection per sink, used under a lock (by the writer thread), and one
reader connection whose reads each see one consistent snapshot (``REPEATABLE READ``). Any
number of processes and hosts can write at once: PostgreSQL's row locks on the unique indexes
serialise only writes of the same id. A broken connection (server restart, network) fails the
write that noticed it, which its callers see as an error; the next write reconnects.

Tables: ``log_predictions`` and ``log_feedback`` (so the log can share a database, or a
schema chosen with ``?options=-csearch_path%3Dname`` in the URL, with the registry).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from watchkeeper._extras import require
from watchkeeper.exceptions import InputError
from watchkeeper.logstore._errors import LogClosedError, LogStoreError
from watchkeeper.logstore._normalize import Checked
from watchkeeper.logstore._records import (
    FeedbackRecord,
    FeedbackResult,
    PredictionRecord,
    WriteResult,
)
from watchkeeper.logstore._sql import SQLLogReads, prediction_rows, same_content

if TYPE_CHECKING:
    pass

__all__ = ["PostgresLogSink"]

_MIGRATION_LOCK = 0x776B_6C6F  # one constant shared by every watchkeeper process ("wklo")

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS log_predictions (
        id TEXT NOT NULL,
        arm TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        model TEXT NOT NULL,
        version BIGINT NOT NULL,
        shadow SMALLINT NOT NULL,
        features TEXT NOT NULL,
        prediction TEXT,
        scores TEXT,
        latency_ms DOUBLE PRECISION NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        PRIMARY KEY (model, id, arm)
    )""",
    "CREATE INDEX IF NOT EXISTS log_predictions_model_ts ON log_predictions(model, ts)",
    """
    CREATE TABLE IF NOT EXISTS log_feedback (
        seq BIGSERIAL PRIMARY KEY,
        prediction_id TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        label TEXT,
        flag BOOLEAN,
        note TEXT,
        model TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS log_feedback_id_ts ON log_feedback(prediction_id, ts)",
)
# After the tables exist (and on tables from before ids were scoped per model): the
# (model, id, arm) key, one live record per (model, id), and feedback's model column.
_PRIMARY_KEY = (
    "SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index AS i "
    "CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute AS a "
    "ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
    "WHERE i.indrelid = 'log_predictions'::regclass AND i.indisprimary"
)
_MIGRATE = (
    "ALTER TABLE log_predictions DROP CONSTRAINT log_predictions_pkey, "
    "ADD PRIMARY KEY (model, id, arm)",
    "DROP INDEX IF EXISTS log_predictions_live_id",
)
_INDEXES = (
    "CREATE UNIQUE INDEX IF NOT EXISTS log_predictions_live_model_id "
    "ON log_predictions(model, id) WHERE shadow = 0",
    "ALTER TABLE log_feedback ADD COLUMN IF NOT EXISTS model TEXT",
    "CREATE UNIQUE INDEX IF NOT EXISTS log_feedback_exact_model ON log_feedback(prediction_id, "
    "ts, coalesce(label, ''), coalesce(flag::int, -1), coalesce(note, ''), coalesce(model, ''))",
    "DROP INDEX IF EXISTS log_feedback_exact",
)
_COLUMNS = (
    "id, arm, ts, model, version, shadow, features, prediction, scores, latency_ms, status, error"
)
_COPY = f"COPY log_predictions ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = ("text", "text", "float8", "text", "int8", "int2", "text", "text", "text", "float8",
               "text", "text")  # fmt: skip
# one statement for any number of rows; WITH ORDINALITY keeps the first of repeated keys
_INSERT_MANY = (
    f"INSERT INTO log_predictions ({_COLUMNS}) SELECT {_COLUMNS} FROM unnest("
    "%s::text[], %s::text[], %s::float8[], %s::text[], %s::int8[], %s::int2[], %s::text[], "
    "%s::text[], %s::text[], %s::float8[], %s::text[], %s::text[]) WITH ORDINALITY "
    f"AS u({_COLUMNS}, ord) ORDER BY ord ON CONFLICT DO NOTHING RETURNING model, id, arm"
)
_INSERT_ONE = (
    f"INSERT INTO log_predictions ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s) ON CONFLICT DO NOTHING RETURNING model, id, arm"
)
# The stored features of the keys an INSERT skipped (a live record: of its (model, id)).
_STORED_FEATURES = (
    "SELECT k.ord, p.features FROM unnest(%s::text[], %s::text[], %s::text[], %s::bool[]) "
    "WITH ORDINALITY AS k(model, id, arm, live, ord) JOIN log_predictions AS p "
    "ON p.model = k.model AND p.id = k.id "
    "AND CASE WHEN k.live THEN p.shadow = 0 ELSE p.arm = k.arm END"
)
_INSERT_FEEDBACK = (
    "INSERT INTO log_feedback (prediction_id, ts, label, flag, note, model) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)

_SELECT_WINDOW = """
SELECT p.id, p.ts, p.version, p.arm, p.shadow, p.status, p.error, p.latency_ms, p.prediction,
       p.scores, p.features, fl.label, ff.flag, fl.ts
FROM log_predictions AS p
LEFT JOIN LATERAL (
    SELECT label, ts FROM log_feedback AS f WHERE f.prediction_id = p.id AND f.label IS NOT NULL
    AND (f.model IS NULL OR f.model = p.model) ORDER BY ts DESC, seq DESC LIMIT 1) AS fl ON true
LEFT JOIN LATERAL (
    SELECT flag FROM log_feedback AS f WHERE f.prediction_id = p.id AND f.flag IS NOT NULL
    AND (f.model IS NULL OR f.model = p.model) ORDER BY ts DESC, seq DESC LIMIT 1) AS ff ON true
"""
_DAY_OF = "floor(p.ts / 86400.0)::bigint"  # UTC day number of a prediction


def _connect_kwargs(url: str) -> tuple[dict[str, Any], str]:
    """psycopg keyword arguments for a ``postgresql://`` URL, and the URL with the password
    masked (for messages)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InputError(
            f"cannot parse the prediction log URL {url!r}: use "
            "postgresql://user:password@host:5432/dbname"
        ) from exc
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise InputError(
            f"PostgresLogSink needs a postgresql:// URL, got {parsed.drivername}://...; use "
            "postgresql://user:password@host:5432/dbname"
        )
    if parsed.drivername.partition("+")[2] not in ("", "psycopg"):
        raise InputError(
            f"the prediction log talks to PostgreSQL through psycopg 3, not "
            f"{parsed.drivername!r}: write postgresql://... or postgresql+psycopg://..."
        )
    kwargs: dict[str, Any] = {
        key: value
        for key, value in (
            ("host", parsed.host),
            ("port", parsed.port),
            ("user", parsed.username),
            ("password", parsed.password),
            ("dbname", parsed.database),
        )
        if value is not None
    }
    for key, value in parsed.query.items():
        kwargs[key] = " ".join(value) if isinstance(value, tuple) else value
    return kwargs, parsed.render_as_string(hide_password=True)


class PostgresLogSink(SQLLogReads):
    """Prediction and feedback log in a PostgreSQL database, safe for many writers.

    Parameters
    ----------
    url
        ``postgresql://user:password@host:5432/dbname`` (``postgresql+psycopg://`` too); query
        parameters are passed to the connection (``?sslmode=require``,
        ``?options=-csearch_path%3Dlog``). The tables are created when missing.
    connect_timeout
        Seconds to wait for the server when connecting.

    Notes
    -----
    Needs the ``postgres`` extra (``pip install "watchkeeper[postgres]"``). Same reading
    methods, same window table and the same idempotence rules as
    :class:`~watchkeeper.logstore.SQLiteLogSink`.

    Examples
    --------
    >>> sink = PostgresLogSink("postgresql://log@127.0.0.1:1/log",
    ...                        connect_timeout=1)  # doctest: +SKIP
    >>> PostgresLogSink("mysql://h/db")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: PostgresLogSink needs a postgresql:// URL, ...
    """

    _PREDICTIONS, _FEEDBACK = "log_predictions", "log_feedback"
    _SELECT_WINDOW = _SELECT_WINDOW
    _DAY_OF = _DAY_OF
    _PLACEHOLDER = "%s"

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self._kwargs, self.url = _connect_kwargs(url)
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, int | float):
            raise InputError(f"connect_timeout must be seconds > 0, got {connect_timeout!r}")
        if connect_timeout <= 0:
            raise InputError(f"connect_timeout must be seconds > 0, got {connect_timeout!r}")
        self._psycopg = require("psycopg", extra="postgres", purpose="A PostgreSQL prediction log")
        self._kwargs["connect_timeout"] = max(1, round(connect_timeout))
        #: Non-finite feature/prediction/score/label values stored as null by this sink.
        self.nonfinite_total = 0
        #: Re-inserted predictions (same key) that were ignored.
        self.duplicates_total = 0
        self._closed = False
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._conn: Any = None
        self._reader: Any = None
        with self._write_lock:
            conn = self._writer()
            with self._errors("create the log tables"), conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                for statement in _SCHEMA:
                    conn.execute(statement)
                if conn.execute(_PRIMARY_KEY).fetchone()[0] != ["model", "id", "arm"]:
                    for statement in _MIGRATE:
                        conn.execute(statement)
                for statement in _INDEXES:
                    conn.execute(statement)

    # -- connections ---------------------------------------------------------------------

    def _open(self, *, reader: bool) -> Any:
        with self._errors("connect"):
            conn = self._psycopg.connect(**self._kwargs)
        if reader:
            conn.isolation_level = self._psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
        return conn

    def _writer(self) -> Any:
        if self._closed:
            raise LogClosedError(f"the prediction log {self.url} is closed")
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            conn = self._open(reader=False)
            conn.autocommit = True  # one statement, one transaction; BEGIN only when needed
            self._conn = conn
        return self._conn

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Driver errors as :class:`LogStoreError` saying what failed and what to check."""
        try:
            yield
        except self._psycopg.Error as exc:
            if isinstance(exc, self._psycopg.DataError | self._psycopg.ProgrammingError):
                message = f"the prediction log {self.url} refused a write: {exc}"
                raise LogStoreError(message) from exc
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LogStoreError(
                f"cannot {doing} on the prediction log {self.url}: {detail}. Check that the "
                "server is running and reachable and the credentials"
            ) from exc

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """The writer connection inside one transaction, committed on exit."""
        with self._write_lock:
            conn = self._writer()
            with self._errors("write"), conn.transaction():
                yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[Any]:
        """The reader connection inside one read-only ``REPEATABLE READ`` transaction."""
        with self._read_lock:
            if self._closed:
                raise LogClosedError(f"the prediction log {self.url} is closed")
            if self._reader is None or self._reader.closed or self._reader.broken:
                if self._reader is not None:
                    self._reader.close()
                self._reader = None
                self._reader = self._open(reader=True)
            with self._errors("read"), self._reader.transaction():
                yield self._reader

    # -- writing ---------------------------------------------------------------------------

    def write_predictions(self, records: Sequence[PredictionRecord]) -> WriteResult | None:
        """Store ``records`` in one transaction; returning means committed.

        The same identity rules as :meth:`SQLiteLogSink.write_predictions
        <watchkeeper.logstore.SQLiteLogSink.write_predictions>`: a retry is counted in
        ``duplicates_total``, a reused id with other features is listed in the returned
        :class:`WriteResult`, and ``None`` means every record was stored.
        """
        clean = Checked.of(records, feedback=False)
        rows = prediction_rows(clean)
        if not rows:
            return None
        conflicts: tuple[int, ...] = ()
        n_skipped = 0
        if not self._write_fast(rows):
            # some key is stored already (or repeated in the batch): nothing of the fast
            # write was kept; skip the stored keys and tell retries from conflicts
            with self._transaction() as conn:
                if len(rows) == 1:
                    stored = conn.execute(_INSERT_ONE, rows[0]).fetchall()
                else:
                    columns = [list(c) for c in zip(*rows, strict=True)]
                    stored = conn.execute(_INSERT_MANY, columns).fetchall()
                if len(stored) < len(rows):  # some keys were there already
                    conflicts = self._conflicts(conn, clean, stored)
                n_skipped = len(rows) - len(stored)
        self.nonfinite_total += clean.nonfinite
        duplicates = n_skipped - len(conflicts)
        self.duplicates_total += duplicates
        return WriteResult(duplicates, conflicts) if duplicates or conflicts else None

    def _write_fast(self, rows: list[tuple[Any, ...]]) -> bool:
        """Store ``rows`` in one autocommitted statement; ``False`` (nothing stored) if one
        of their keys is stored already or repeated among them."""
        with self._write_lock:
            conn = self._writer()
            with self._errors("write"):
                if len(rows) == 1:
                    # ON CONFLICT DO NOTHING: nothing returned means the key was there
                    return bool(conn.execute(_INSERT_ONE, rows[0]).fetchall())
                try:
                    with conn.cursor() as cur, cur.copy(_COPY) as copy:
                        copy.set_types(_COPY_TYPES)
                        for row in rows:
                            copy.write_row(row)
                except self._psycopg.errors.UniqueViolation:
                    return False  # the statement, its own transaction, was rolled back
                return True

    @staticmethod
    def _conflicts(conn: Any, records: Checked, stored: list[Any]) -> tuple[int, ...]:
        """Indices of ``records`` the ``INSERT`` skipped whose key holds other features."""
        inserted = {tuple(row) for row in stored}
        skipped = []
        for i, r in enumerate(records):
            key = (r.model, r.id, r.arm)
            if key in inserted:
                inserted.discard(key)  # this record was stored; a repeat of it was not
            else:
                skipped.append(i)
        rows = conn.execute(
            _STORED_FEATURES,
            (
                [records[i].model for i in skipped],
                [records[i].id for i in skipped],
                [records[i].arm for i in skipped],
                [not records[i].shadow for i in skipped],
            ),
        ).fetchall()
        out = {
            skipped[ord_ - 1]
            for ord_, features in rows
            if not same_content(features, records.encoded[skipped[ord_ - 1]][0])
        }
        return tuple(sorted(out))

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> FeedbackResult:
        """Store feedback in one transaction; ids matching no prediction are kept and counted.

        An exact repeat of a stored feedback record (same id, ts, label, flag, note and model)
        is ignored, so retrying a batch is safe. Feedback with a ``model`` matches only that
        model's predictions.
        """
        clean = Checked.of(records, feedback=True)
        if not clean:
            return FeedbackResult(0, 0, ())
        rows = [
            (r.id, r.ts, label, r.flag, r.note, r.model)
            for r, label in zip(clean, clean.encoded, strict=True)
        ]
        ids = list(dict.fromkeys(r.id for r in clean))
        with self._transaction() as conn:
            logged = conn.execute(
                "SELECT DISTINCT model, id FROM log_predictions WHERE id = ANY(%s)", (ids,)
            ).fetchall()
            with conn.cursor() as cur:
                cur.executemany(_INSERT_FEEDBACK, rows)
        self.nonfinite_total += clean.nonfinite
        known = {(m, i) for m, i in logged} | {(None, i) for _, i in logged}
        unknown = tuple(dict.fromkeys(r.id for r in clean if (r.model, r.id) not in known))
        n_unknown = sum(1 for r in clean if (r.model, r.id) not in known)
        return FeedbackResult(len(clean) - n_unknown, n_unknown, unknown)

    # -- export support (used by watchkeeper.logstore._parquet) -----------------------------

    def _delete_exported(
        self, keys: Sequence[tuple[str, str]], max_seq: int, model: str | None = None
    ) -> int:
        """Delete exported predictions (of ``model``) by ``(id, arm)``, and the feedback on
        them that was exported."""
        ids = list(dict.fromkeys(k[0] for k in keys))
        scope = "" if model is None else " AND p.model = %s"
        extra = () if model is None else (model,)
        with self._transaction() as conn:
            deleted = conn.execute(
                "DELETE FROM log_predictions AS p USING unnest(%s::text[], %s::text[]) "
                f"AS k(id, arm) WHERE p.id = k.id AND p.arm = k.arm{scope}",
                ([k[0] for k in keys], [k[1] for k in keys], *extra),
            ).rowcount
            conn.execute(
                "DELETE FROM log_feedback AS f WHERE f.prediction_id = ANY(%s) AND f.seq <= %s "
                "AND NOT EXISTS (SELECT 1 FROM log_predictions AS p WHERE p.id = f.prediction_id)",
                (ids, max_seq),
            )
        return int(deleted)

    def close(self) -> None:
        """Close the connections (idempotent)."""
        with self._write_lock, self._read_lock:
            self._closed = True
            for conn in (self._conn, self._reader):
                if conn is not None:
                    conn.close()
            self._conn = self._reader = None

    def __enter__(self) -> PostgresLogSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresLogSink({self.url!r})"
