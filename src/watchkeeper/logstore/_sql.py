"""What the SQL log stores (SQLite and PostgreSQL) share: rows, content checks and the
feedback statistics queries.

Both stores keep one row per ``(model, id, arm)`` with the record's JSON texts as they were
encoded once, before the record joined a commit (:class:`~watchkeeper.logstore._normalize.Checked`).
"""

from __future__ import annotations

import json
from typing import Any

from watchkeeper.logstore._normalize import Checked

__all__ = ["FEEDBACK_STATS", "SAME_MODEL", "prediction_rows", "same_content"]

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
