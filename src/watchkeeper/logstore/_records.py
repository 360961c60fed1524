"""What the prediction log stores, and the protocol every sink implements.

The gateway writes one :class:`PredictionRecord` per answered (or shadowed) record and one
:class:`FeedbackRecord` per label or flag; monitoring reads windows back with labels joined by
prediction id. Sinks (SQLite by default; PostgreSQL and Parquet on object storage later)
implement :class:`LogSink`; :meth:`LogSink.write_predictions` returning means the records are
durable (committed and synced), which is what lets the gateway promise that a prediction
whose response was sent is in the log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "FeedbackRecord",
    "FeedbackResult",
    "FeedbackStats",
    "LogSink",
    "PredictionRecord",
    "WriteResult",
]


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One prediction for one input record.

    ``ts`` is UTC seconds since the epoch; ``features`` maps feature names to JSON values;
    ``prediction`` is the model's output for the record; ``scores`` holds class probabilities
    (``{"class": p}``) or ``None``; ``arm`` is the route arm that answered (``"champion"``,
    ``"challenger"``, ...); ``shadow`` marks outputs computed off the response path and never
    returned; ``status`` is ``"ok"`` or ``"error"`` (then ``error`` says why).
    """

    id: str
    ts: float
    model: str
    version: int
    arm: str
    features: Mapping[str, Any]
    prediction: Any
    scores: Mapping[str, float] | None = None
    latency_ms: float = 0.0
    shadow: bool = False
    status: str = "ok"
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """Ground truth or a flag for an earlier prediction (arriving any time later)."""

    id: str
    ts: float
    label: Any = None
    flag: bool | None = None
    note: str | None = None
    model: str | None = None
    """The model the feedback is for (prediction ids are scoped per model); ``None``
    matches a prediction of that id of any model."""


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """How many feedback records matched a logged prediction; unknown ids are kept too."""

    n_matched: int
    n_unknown: int
    unknown_ids: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class FeedbackStats:
    """Feedback received so far, and how much of it matched logged predictions.

    ``n_matched`` counts feedback records whose id matches a prediction (of the model asked
    about); ``n_unknown`` counts records whose id matches no prediction of any model (they
    cannot be attributed to a model, so they are the same for every model) and
    ``n_unknown_ids`` how many distinct ids those are; ``n_labelled`` is how many live
    predictions (of the model) have a label.

    Examples
    --------
    >>> stats = FeedbackStats(n_received=10, n_matched=8, n_unknown=2, n_unknown_ids=1,
    ...                       n_labelled=8)
    >>> stats.n_unknown / stats.n_received
    0.2
    """

    n_received: int
    n_matched: int
    n_unknown: int
    n_unknown_ids: int
    n_labelled: int


class LogSink(Protocol):
    """Storage of the prediction log."""

    def write_predictions(self, records: Sequence[PredictionRecord]) -> WriteResult | None:
        """Store records durably; returning means committed and synced. Idempotent by
        ``(model, id, arm)``; a :class:`WriteResult` (``None`` means nothing to report)
        lists the records refused because their id was logged with other features.

        ``records`` may be a ``Checked`` list from the group-commit writer: every record
        already normalised, with its JSON texts in ``records.encoded`` to store as they are."""
        ...

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> FeedbackResult:
        """Store feedback durably; feedback for unknown ids is stored and counted, not lost."""
        ...

    def read_window(
        self,
        model: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        last: int | None = None,
        version: int | None = None,
        arm: str | None = None,
        include_shadow: bool = False,
    ) -> Any:
        """Predictions of one model in ``[start, end)`` (or the ``last`` N), as a
        ``pyarrow.Table`` with one column per feature plus ``id``, ``ts``, ``version``, ``arm``,
        ``shadow``, ``prediction``, ``scores``, ``latency_ms``, ``status``, and the latest
        ``label``/``flag``/``label_ts`` joined by id (null where no feedback yet)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What became of predictions handed to :meth:`LogSink.write_predictions`.

    ``duplicates`` counts records not stored again because the same record (same model, id
    and features) was already logged: idempotent retries. ``conflicts`` lists the indices of
    records not stored because their id was already logged for the model with *other*
    features; a caller must not claim those are logged.

    Examples
    --------
    >>> WriteResult(duplicates=1, conflicts=(2,)).conflicts
    (2,)
    """

    duplicates: int = 0
    conflicts: tuple[int, ...] = ()
