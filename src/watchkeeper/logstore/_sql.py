"""What the SQL log stores (SQLite and PostgreSQL) share: rows, content checks and the
feedback statistics queries.

Both stores keep one row per ``(model, id, arm)`` with the record's JSON texts as they were
encoded once, before the record joined a commit (:class:`~watchkeeper.logstore._normalize.Checked`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from watchkeeper.exceptions import InputError
from watchkeeper.logstore._normalize import Checked, validate_model_name
from watchkeeper.logstore._records import FeedbackStats
from watchkeeper.logstore._window import check_last, window_filters

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["FEEDBACK_STATS", "SAME_MODEL", "SQLLogReads", "prediction_rows", "same_content"]

#: Rows decoded at a time when reading a window.
_READ_CHUNK = 100_000

#: Feedback sent for a model (or, from older logs, for any model) of the prediction ``p``.
SAME_MODEL = "(f.model IS NULL OR f.model = p.model)"

#: The queries of ``feedback_stats`` for tables ``{p}`` and ``{f}``, ``{scope}`` restricting
#: the predictions to one model (or empty); placeholders are ``?``.
FEEDBACK_STATS = (
    "SELECT count(*) FROM {f}",
    "SELECT count(*) FROM {f} AS f WHERE EXISTS (SELECT 1 FROM {p} AS p "
    "WHERE p.id = f.prediction_id AND " + SAME_MODEL + "{scope})",
    "SELECT count(*), count(DISTINCT prediction_id) FROM {f} AS f WHERE NOT EXISTS "
    "(SELECT 1 FROM {p} AS p WHERE p.id = f.prediction_id AND " + SAME_MODEL + ")",
    "SELECT count(*) FROM {p} AS p WHERE p.shadow = 0{scope} AND EXISTS (SELECT 1 FROM {f} "
    "AS f WHERE f.prediction_id = p.id AND " + SAME_MODEL + " AND f.label IS NOT NULL)",
)
#: Labelled predictions of one model, looked up by id from the labels (the query above
#: walks every prediction of the model): parameters ``model, model``.
LABELLED_OF_MODEL = (
    "SELECT count(*) FROM {p} AS p WHERE p.model = ? AND p.shadow = 0 AND p.id IN (SELECT "
    "f.prediction_id FROM {f} AS f WHERE f.label IS NOT NULL AND (f.model IS NULL OR "
    "f.model = ?))"
)


def prediction_rows(records: Checked) -> list[tuple[Any, ...]]:
    """The rows of ``records`` in the column order ``id, arm, ts, model, version, shadow,
    features, prediction, scores, latency_ms, status, error``, with their encoded texts.

    Examples
    --------
    >>> from watchkeeper.logstore import PredictionRecord
    >>> done = Checked.of([PredictionRecord("r1", 1.7e9, "churn", 1, "c", {"x": 1}, 0)],
    ...                   feedback=False)
    >>> prediction_rows(done)[0][:7]
    ('r1', 'c', 1700000000.0, 'churn', 1, 0, '{"x":1}')
    """
    return [
        (r.id, r.arm, r.ts, r.model, r.version, int(r.shadow), texts[0], texts[1], texts[2],
         r.latency_ms, r.status, r.error)
        for r, texts in zip(records, records.encoded, strict=True)
    ]  # fmt: skip


def same_content(stored: str, ours: str) -> bool:
    """Whether two features texts hold the same values (key order aside).

    Examples
    --------
    >>> same_content('{"a":1,"b":2}', '{"b":2,"a":1}'), same_content('{"a":1}', '{"a":2}')
    (True, False)
    """
    if stored == ours:
        return True
    try:
        return bool(json.loads(stored) == json.loads(ours))
    except ValueError:  # pragma: no cover - the log holds only JSON it wrote
        return False


class SQLLogReads(ABC):
    """The reading side of the SQL log stores (windows, counts, feedback statistics and the
    export's snapshots), written once for SQLite and PostgreSQL.

    A store sets its table names, its ``_SELECT_WINDOW`` query (latest label and flag joined
    per prediction), its ``_DAY_OF`` expression, its placeholder style (``_PLACEHOLDER``), and
    provides ``_snapshot()``, a context manager yielding a connection inside one consistent
    read transaction. SQL here is written with ``?`` placeholders.
    """

    _PREDICTIONS = "predictions"
    _FEEDBACK = "feedback"
    _SELECT_WINDOW = ""
    _DAY_OF = ""
    _PLACEHOLDER = "?"

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[Any]:
        """A connection inside one consistent read transaction."""

    def _q(self, sql: str) -> str:
        """``sql`` with this store's placeholders."""
        return sql if self._PLACEHOLDER == "?" else sql.replace("?", self._PLACEHOLDER)

    # -- reading ---------------------------------------------------------------------------

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
        features: bool = True,
        first: int | None = None,
        feedback_only: bool = False,
    ) -> pa.Table:
        """Predictions of ``model`` with ``start <= ts < end`` (or the ``last`` or ``first``
        N of them).

        Returns a ``pyarrow.Table`` sorted by time: ``id``, ``ts`` (``timestamp[us, UTC]``),
        ``version``, ``arm``, ``shadow``, ``status``, ``error``, ``latency_ms``,
        ``prediction``, ``scores`` (JSON text), the latest ``label``, the latest ``flag`` and
        ``label_ts`` joined by id (null without feedback), then one column per feature. Shadow
        records are left out unless ``include_shadow``. ``start``/``end`` are aware datetimes
        or UTC seconds. See :mod:`watchkeeper.logstore._arrow` for the column types.
        ``features=False`` leaves the feature columns out (they are neither read nor
        decoded): what a monitor needs when the window's feature profile was built as the
        records were logged. ``feedback_only=True`` (with ``features=False``) keeps only the
        predictions that have feedback (a label or a flag): what a monitor reads of a window
        whose own columns were summarised as its records were logged.

        Examples
        --------
        >>> import tempfile, os
        >>> from datetime import datetime, timezone
        >>> from watchkeeper.logstore import PredictionRecord
        >>> tmp = tempfile.TemporaryDirectory()
        >>> from watchkeeper.logstore import SQLiteLogSink
        >>> sink = SQLiteLogSink(os.path.join(tmp.name, "log.db"))
        >>> t0 = datetime(2024, 5, 1, tzinfo=timezone.utc).timestamp()
        >>> sink.write_predictions([
        ...     PredictionRecord(f"r{i}", t0 + 3600 * i, "churn", 1 + i % 2, "champion",
        ...                      {"x": i}, 0) for i in range(6)])
        >>> sink.read_window("churn", last=2).column("x").to_pylist()
        [4, 5]
        >>> window = sink.read_window("churn", start=t0 + 3600, end=t0 + 4 * 3600, version=2)
        >>> window.column("id").to_pylist(), str(window.column("ts")[0])
        (['r1', 'r3'], '2024-05-01 01:00:00+00:00')
        >>> sink.close(); tmp.cleanup()
        """
        from watchkeeper.logstore._arrow import window_table

        where, params = window_filters(model, start, end, last, version, arm, include_shadow)
        order = "p.ts, p.id, p.arm"
        if feedback_only and (features or last is not None or first is not None):
            raise InputError("feedback_only=True reads a window without features, last or first")
        if first is not None:
            check_last(first, "first")
            if last is not None:
                raise InputError("give last or first, not both")
            order += " LIMIT ?"
            params.append(first)
        if last is not None:
            # the newest N, read backwards along the (model, ts) index and reversed below
            order = "p.ts DESC, p.id DESC, p.arm DESC LIMIT ?"
            params.append(last)
        if feedback_only:
            by_id, _ = window_filters(
                model, start, end, None, version, arm, include_shadow, time_index=False
            )
            return self._read_feedback_rows(where, by_id, params, order)
        if not features and last is None and first is None:
            return self._read_lean(where, params, order)
        select = self._SELECT_WINDOW
        if not features:
            select = select.replace("p.features", "NULL", 1)
        sql = self._q(f"{select} WHERE {where} ORDER BY {order}")
        if last is not None:
            with self._snapshot() as conn:
                rows = conn.execute(sql, params).fetchall()
            rows.reverse()
            return window_table(rows, features=features)
        from watchkeeper.logstore._arrow import concat_windows

        # In chunks: the Python rows of one chunk at a time, not of the whole window (the
        # chunks' tables unify as one window table would: see concat_windows).
        tables = []
        with self._snapshot() as conn:
            cursor = conn.execute(sql, params)
            while chunk := cursor.fetchmany(_READ_CHUNK):
                tables.append(window_table(chunk, features=features))
        return tables[0] if len(tables) == 1 else concat_windows(tables) or window_table([])

    def _with_feedback(self, where: str, order: str) -> str:
        """The window's predictions that have feedback, with their latest label and flag."""
        return (
            self._SELECT_WINDOW.replace("p.features", "NULL", 1)
            + f" WHERE {where} AND p.id IN (SELECT prediction_id FROM {self._FEEDBACK})"
            + f" ORDER BY {order}"
        )

    def _read_feedback_rows(
        self, where: str, by_id: str, params: list[Any], order: str
    ) -> pa.Table:
        """A window's predictions that have feedback, without features: looked up from the
        feedback's ids (``by_id``, the same filter off the time index) when the log holds
        fewer feedback records than the window holds predictions, else along the time index."""
        from watchkeeper.logstore._arrow import window_table

        with self._snapshot() as conn:
            counted = f"SELECT count(*) FROM {self._PREDICTIONS} AS p WHERE {where}"
            n_window = conn.execute(self._q(counted), params).fetchone()[0]
            sql = f"SELECT coalesce(max(seq), 0) FROM {self._FEEDBACK}"
            if conn.execute(sql).fetchone()[0] < n_window:
                where = by_id
            fed = conn.execute(self._q(self._with_feedback(where, order)), params).fetchall()
        return window_table(fed, features=False)

    def _read_lean(self, where: str, params: list[Any], order: str) -> pa.Table:
        """A window without its features: the predictions' own columns in one plain scan,
        then the latest label and flag of the predictions that have feedback (one lookup per
        feedback id instead of two per prediction), joined by ``(id, arm)``."""
        import pyarrow.compute as pc

        from watchkeeper.logstore._arrow import concat_windows, window_table

        plain = (
            "SELECT p.id, p.ts, p.version, p.arm, p.shadow, p.status, p.error, p.latency_ms, "
            "p.prediction, p.scores, NULL, NULL, NULL, NULL "
            f"FROM {self._PREDICTIONS} AS p WHERE {where} ORDER BY {order}"
        )
        with_feedback = self._with_feedback(where, order)
        tables = []
        with self._snapshot() as conn:
            cursor = conn.execute(self._q(plain), params)
            while chunk := cursor.fetchmany(_READ_CHUNK):
                tables.append(window_table(chunk, features=False))
            fed = conn.execute(self._q(with_feedback), params).fetchall()
        table = tables[0] if len(tables) == 1 else concat_windows(tables) or window_table([])
        if not fed or table.num_rows == 0:
            return table
        fed_table = window_table(fed, features=False)

        def keys(t: pa.Table) -> Any:
            return pc.binary_join_element_wise(t.column("id"), t.column("arm"), "\x00")

        at = pc.index_in(keys(table), value_set=keys(fed_table))
        for name in ("label", "flag", "label_ts"):
            column = fed_table.column(name).combine_chunks().take(at)
            table = table.set_column(table.column_names.index(name), fed_table.field(name), column)
        return table

    def count_window(
        self,
        model: str,
        *,
        start: datetime | float | None = None,
        end: datetime | float | None = None,
        version: int | None = None,
        arm: str | None = None,
    ) -> int:
        """Number of predictions of ``model`` (shadow included) with ``start <= ts < end``,
        optionally of one version and arm: an index-only count, no row is read.

        Examples
        --------
        >>> import tempfile, os
        >>> from watchkeeper.logstore import PredictionRecord, SQLiteLogSink
        >>> tmp = tempfile.TemporaryDirectory()
        >>> sink = SQLiteLogSink(os.path.join(tmp.name, "log.db"))
        >>> sink.write_predictions([PredictionRecord(f"r{i}", 100.0 + i, "m", 1 + i % 2, "c",
        ...                                          {}, 0) for i in range(5)])
        >>> sink.count_window("m", start=101, end=104), sink.count_window("m", version=2)
        (3, 2)
        >>> sink.close(); tmp.cleanup()
        """
        where, params = window_filters(model, start, end, None, version, arm, True)
        with self._snapshot() as conn:
            sql = self._q(f"SELECT count(*) FROM {self._PREDICTIONS} AS p WHERE {where}")
            return int(conn.execute(sql, params).fetchone()[0])

    def time_span(self, model: str) -> tuple[float, float] | None:
        """``(first, last)`` prediction time of ``model`` (UTC seconds), ``None`` when it
        has none."""
        validate_model_name(model)
        sql = f"SELECT min(p.ts), max(p.ts) FROM {self._PREDICTIONS} AS p WHERE p.model = ?"
        with self._snapshot() as conn:
            lo, hi = conn.execute(self._q(sql), (model,)).fetchone()
        return None if lo is None else (float(lo), float(hi))

    def count(self, model: str | None = None) -> int:
        """Number of stored predictions (of ``model``, or of all models), shadow included."""
        with self._snapshot() as conn:
            if model is None:
                sql = f"SELECT count(*) FROM {self._PREDICTIONS}"
                return int(conn.execute(sql).fetchone()[0])
            validate_model_name(model)
            sql = self._q(f"SELECT count(*) FROM {self._PREDICTIONS} WHERE model = ?")
            return int(conn.execute(sql, (model,)).fetchone()[0])

    def models(self) -> list[str]:
        """Names of the models that have predictions in the log, sorted."""
        with self._snapshot() as conn:
            rows = conn.execute(f"SELECT DISTINCT model FROM {self._PREDICTIONS} ORDER BY model")
            return [r[0] for r in rows]

    def feedback_stats(self, model: str | None = None) -> FeedbackStats:
        """How much feedback arrived, matched a prediction (of ``model``) or matched none.

        Examples
        --------
        >>> import tempfile, os
        >>> from watchkeeper.logstore import FeedbackRecord, PredictionRecord
        >>> tmp = tempfile.TemporaryDirectory()
        >>> from watchkeeper.logstore import SQLiteLogSink
        >>> sink = SQLiteLogSink(os.path.join(tmp.name, "log.db"))
        >>> sink.write_predictions([PredictionRecord("a", 1.7e9, "churn", 1, "c", {}, 0)])
        >>> sink.write_feedback([FeedbackRecord("a", 1.7e9 + 9, label=1),
        ...                      FeedbackRecord("typo", 1.7e9 + 9, label=0)])
        FeedbackResult(n_matched=1, n_unknown=1, unknown_ids=('typo',))
        >>> sink.feedback_stats("churn")
        FeedbackStats(n_received=2, n_matched=1, n_unknown=1, n_unknown_ids=1, n_labelled=1)
        >>> sink.count("churn"), sink.models()
        (1, ['churn'])
        >>> sink.close(); tmp.cleanup()
        """
        if model is not None:
            validate_model_name(model)
        scope = "" if model is None else " AND p.model = ?"
        params = () if model is None else (model,)
        sql = [
            self._q(q.format(p=self._PREDICTIONS, f=self._FEEDBACK, scope=scope))
            for q in FEEDBACK_STATS
        ]
        with self._snapshot() as conn:
            received = conn.execute(sql[0]).fetchone()[0]
            matched = conn.execute(sql[1], params).fetchone()[0]
            unknown, unknown_ids = conn.execute(sql[2]).fetchone()
            if model is None:
                labelled = conn.execute(sql[3], params).fetchone()[0]
            else:
                labelled_sql = self._q(
                    LABELLED_OF_MODEL.format(p=self._PREDICTIONS, f=self._FEEDBACK)
                )
                labelled = conn.execute(labelled_sql, (model, model)).fetchone()[0]
        return FeedbackStats(int(received), int(matched), int(unknown), int(unknown_ids),
                             int(labelled))  # fmt: skip

    # -- export support (used by watchkeeper.logstore._parquet) -----------------------------

    def _partitions(self, until: float) -> list[tuple[str, int]]:
        """Distinct ``(model, UTC day number)`` of predictions with ``ts < until``.

        The day is ``CAST(ts / 86400 AS INTEGER)``, the same expression
        :meth:`_export_snapshot` selects by, so a row a rounding error away from midnight
        belongs to exactly one day.
        """
        with self._snapshot() as conn:
            rows = conn.execute(
                self._q(f"SELECT DISTINCT model, {self._DAY_OF} FROM {self._PREDICTIONS} AS p "
                        "WHERE p.ts < ? ORDER BY 1, 2"),
                (until,),
            )  # fmt: skip
            return [(r[0], int(r[1])) for r in rows]

    def _export_snapshot(self, model: str, day: int, until: float) -> tuple[pa.Table, int]:
        """Every arm (shadow included) of one UTC day before ``until``, and the last feedback
        seq seen in the same snapshot."""
        from watchkeeper.logstore._arrow import window_table

        # the ts range lets the (model, ts) index do the work; the day expression decides
        lo, hi = day * 86_400.0 - 1, (day + 1) * 86_400.0 + 1
        where, params = window_filters(model, lo, hi, None, None, None, True)
        where += f" AND {self._DAY_OF} = ? AND p.ts < ?"
        params += [day, until]
        with self._snapshot() as conn:
            rows = conn.execute(
                self._q(f"{self._SELECT_WINDOW} WHERE {where} ORDER BY p.ts, p.id, p.arm"), params
            ).fetchall()
            sql = f"SELECT coalesce(max(seq), 0) FROM {self._FEEDBACK}"
            max_seq = conn.execute(sql).fetchone()[0]
        return window_table(rows), int(max_seq)
