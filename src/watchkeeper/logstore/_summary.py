"""What a monitor needs of a window's own columns, summarised as its records are logged.

A :class:`LogSummary` holds, for the records of one partial profile (one writer, one hour of
one version and arm): their number, their count per status, a histogram of their latency with
logarithmic buckets (every latency quantile read from it is within 0.5 % of a value between
the two order statistics that ``numpy.percentile`` interpolates between), and the profile of
their predictions and scores binned on the version's *prediction baseline* (the profile of its
first logged predictions, which the monitor stores in the log once it has computed it; see
:meth:`~watchkeeper.logstore.SQLiteLogSink.write_prediction_baseline`). Summaries merge
exactly (counts add; prediction profiles merge as profiles do), so a window's summary is the
merge of its hours' summaries and a monitor never re-reads the window's rows.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from watchkeeper.exceptions import InputError

__all__ = ["LogSummary", "PredictionBaseline", "label_key", "prediction_columns"]

#: Relative width of a latency bucket: bucket ``k`` holds ``(G**(k-1), G**k]`` ms.
_GROWTH = 1.01
_LOG_GROWTH = math.log(_GROWTH)
#: The bucket of latencies of 0 ms and below (which cannot be logged).
_ZERO_BUCKET = -(2**31)
_MAGIC = b"WKLS"
_FORMAT = 1


def label_key(value: Any) -> str:
    """A class label as text, so that ``1``, ``1.0`` and ``"1"`` are the same class.

    Examples
    --------
    >>> label_key(1.0), label_key(True), label_key("a")
    ('1', 'true', 'a')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def prediction_columns(
    predictions: Sequence[Any],
    scores: Sequence[Any] | None,
    task: str,
    classes: Sequence[str] | None,
    numeric: Any = None,
) -> Any:
    """The ``prediction`` and ``score.<class>`` columns the monitor profiles for prediction
    drift, as an Arrow table: class labels as text (:func:`label_key`) for classifiers, the
    first item of a ranked list for rankers, floats for regressors (``numeric``: the
    predictions already as an Arrow number column); one score column per class (all but the
    first of two classes), from the logged ``scores`` mappings.

    Examples
    --------
    >>> t = prediction_columns([1, 0], [{"0": 0.2, "1": 0.8}, None], "classification",
    ...                        ["0", "1"])
    >>> t.to_pydict()
    {'prediction': ['1', '0'], 'score.1': [0.8, None]}
    """
    import pyarrow as pa

    data: dict[str, Any] = {}
    if task == "classification":
        data["prediction"] = pa.array(
            [None if p is None else label_key(p) for p in predictions], pa.string()
        )
    elif task == "ranking":
        # a ranked list drifts through the item it puts first (categorical)
        data["prediction"] = pa.array(
            [label_key(p[0]) if isinstance(p, list) and p else None for p in predictions],
            pa.string(),
        )
    elif numeric is not None:
        data["prediction"] = numeric.cast(pa.float64())
    else:
        data["prediction"] = pa.array(
            [None if p is None else float(p) for p in predictions], pa.float64()
        )
    if classes:
        keys = classes[1:] if len(classes) == 2 else classes
        n = len(predictions) if numeric is None else len(numeric)
        given = [None] * n if scores is None else scores
        for c in keys:
            data[f"score.{c}"] = pa.array(
                [None if s is None else s.get(c) for s in given], pa.float64()
            )
    return pa.table(data)


@dataclass(frozen=True)
class PredictionBaseline:
    """A version's prediction baseline as stored in the log: the profile of its first logged
    predictions (``profile``, binary form), the task and classes the prediction columns were
    made for, and ``key``, a digest of the profile (what summaries were binned on)."""

    task: str
    classes: tuple[str, ...] | None
    profile: bytes
    key: str


@dataclass
class LogSummary:
    """Counts, latency histogram and prediction profile of some logged records (mergeable).

    Examples
    --------
    >>> a = LogSummary.of([2.0, 4.0], ["ok", "error"])
    >>> b = LogSummary.of([3.0], ["ok"])
    >>> m = a.merge(b)
    >>> m.n_rows, m.status, m.errors
    (3, {'error': 1, 'ok': 2}, 1)
    >>> abs(m.latency_quantiles([50])[0] - 3.0) < 0.03
    True
    >>> LogSummary.from_bytes(m.to_bytes()) == m
    True
    """

    n_rows: int = 0
    status: dict[str, int] = field(default_factory=dict)
    latency: dict[int, int] = field(default_factory=dict)
    latency_min: float = math.inf
    latency_max: float = -math.inf
    #: the latest record time (UTC seconds)
    ts_max: float = -math.inf
    #: profile of ``prediction`` and ``score.<class>`` binned on the prediction baseline
    #: whose key is ``predictions_key`` (``None``: the records were logged before the
    #: version had a stored baseline, and a monitor reads their predictions instead)
    predictions: Any = None
    predictions_key: str | None = None

    @classmethod
    def of(
        cls,
        latency_ms: Sequence[float],
        status: Sequence[str],
        ts: Sequence[float] = (),
        predictions: Any = None,
        predictions_key: str | None = None,
    ) -> LogSummary:
        """The summary of records with these latencies, statuses and times (and the profile
        of their predictions, binned on the baseline ``predictions_key``)."""
        if len(latency_ms) != len(status) or (len(ts) and len(ts) != len(status)):
            raise InputError("latency_ms, status and ts must have one value per record")
        values = np.asarray(latency_ms, dtype=np.float64)
        buckets: dict[int, int] = {}
        if values.size:
            positive = values[values > 0]
            keys = np.ceil(np.log(positive) / _LOG_GROWTH - 1e-12).astype(np.int64)
            found, counts = np.unique(keys, return_counts=True)
            buckets = {int(k): int(n) for k, n in zip(found, counts, strict=True)}
            zero = int(values.size - positive.size)
            if zero:
                buckets[_ZERO_BUCKET] = zero
        return cls(
            n_rows=len(status),
            status=dict(sorted(Counter(status).items())),
            latency=buckets,
            latency_min=float(values.min()) if values.size else math.inf,
            latency_max=float(values.max()) if values.size else -math.inf,
            ts_max=float(max(ts)) if len(ts) else -math.inf,
            predictions=predictions,
            predictions_key=predictions_key if predictions is not None else None,
        )

    @property
    def errors(self) -> int:
        """Records whose status is not ``ok``."""
        return self.n_rows - self.status.get("ok", 0)

    def merge(self, other: LogSummary) -> LogSummary:
        """The summary of both sets of records. Prediction profiles binned on different
        baselines do not merge: the result then has none (its windows' predictions are read)."""
        return LogSummary.merge_all([self, other])

    @classmethod
    def merge_all(cls, parts: Iterable[LogSummary]) -> LogSummary:
        """The summary of every part's records."""
        parts = list(parts)
        if not parts:
            return cls()
        status: Counter[str] = Counter()
        latency: Counter[int] = Counter()
        for p in parts:
            status.update(p.status)
            latency.update(p.latency)
        predictions, key = None, None
        keys = {p.predictions_key for p in parts}
        if len(keys) == 1 and None not in keys and all(p.predictions is not None for p in parts):
            from watchkeeper.data import Profile

            predictions = Profile.merge_all([p.predictions for p in parts])
            key = parts[0].predictions_key
        return cls(
            n_rows=sum(p.n_rows for p in parts),
            status=dict(sorted(status.items())),
            latency=dict(sorted(latency.items())),
            latency_min=min(p.latency_min for p in parts),
            latency_max=max(p.latency_max for p in parts),
            ts_max=max(p.ts_max for p in parts),
            predictions=predictions,
            predictions_key=key,
        )

    def latency_quantiles(self, percents: Sequence[float]) -> list[float]:
        """Latency percentiles (``numpy.percentile``'s linear rule on the bucket holding each
        rank; every value is within 0.5 % of a latency between the two order statistics that
        rule interpolates between), ``nan`` without records."""
        if not self.latency:
            return [math.nan for _ in percents]
        keys = sorted(self.latency)
        cumulative = np.cumsum([self.latency[k] for k in keys])
        total = int(cumulative[-1])
        out = []
        for q in percents:
            rank = q / 100.0 * (total - 1)  # 0-based rank, as numpy's linear rule
            i = int(np.searchsorted(cumulative, math.floor(rank) + 1, side="left"))
            k = keys[min(i, len(keys) - 1)]
            value = 0.0 if k == _ZERO_BUCKET else _GROWTH ** (k - 0.5)
            out.append(float(min(max(value, self.latency_min), self.latency_max)))
        return out

    # -- binary form -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Binary form: a small JSON header, then the prediction profile's binary form."""
        header = {
            "format": _FORMAT,
            "n_rows": self.n_rows,
            "status": self.status,
            "latency": [[k, n] for k, n in self.latency.items()],
            "latency_min": self.latency_min if math.isfinite(self.latency_min) else None,
            "latency_max": self.latency_max if math.isfinite(self.latency_max) else None,
            "ts_max": self.ts_max if math.isfinite(self.ts_max) else None,
            "predictions_key": self.predictions_key,
        }
        text = json.dumps(header, separators=(",", ":")).encode()
        body = b"" if self.predictions is None else self.predictions.to_bytes()
        return _MAGIC + struct.pack("<I", len(text)) + text + body

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> LogSummary:
        """Read :meth:`to_bytes`' form; anything else raises :class:`InputError`."""
        data = bytes(data)
        if data[:4] != _MAGIC or len(data) < 8:
            raise InputError("not a watchkeeper log summary (bad magic bytes)")
        (size,) = struct.unpack("<I", data[4:8])
        try:
            header = json.loads(data[8 : 8 + size])
        except ValueError as exc:
            raise InputError(f"log summary header is not valid JSON: {exc}") from None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise InputError(
                f"log summary format {header.get('format') if isinstance(header, dict) else '?'}"
                f" is not readable by this version (reads format {_FORMAT})"
            )
        body = data[8 + size :]
        predictions = None
        if body:
            from watchkeeper.data import Profile

            predictions = Profile.from_bytes(body)
        lo, hi = header.get("latency_min"), header.get("latency_max")
        try:
            return cls(
                n_rows=int(header["n_rows"]),
                status={str(k): int(v) for k, v in header["status"].items()},
                latency={int(k): int(n) for k, n in header["latency"]},
                latency_min=math.inf if lo is None else float(lo),
                latency_max=-math.inf if hi is None else float(hi),
                ts_max=-math.inf if header.get("ts_max") is None else float(header["ts_max"]),
                predictions=predictions,
                predictions_key=header.get("predictions_key") if predictions is not None else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"log summary header is malformed: {exc}") from None
