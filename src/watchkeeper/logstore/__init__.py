"""The prediction log: durable, group-committed, bounded, readable in windows.

The gateway writes one :class:`PredictionRecord` per prediction and one
:class:`FeedbackRecord` per label or flag through a :class:`GroupCommitWriter`, whose futures
resolve only once the records are committed; monitoring reads windows back with
:meth:`SQLiteLogSink.read_window` (labels joined by id). :func:`export_parquet` compacts old
days into Parquet partitioned by model and date, and :func:`read_parquet` reads them back in
the same shape.

:func:`open_sink` picks the store from a URL, as the registry does: a path or
``sqlite:///path`` (:class:`SQLiteLogSink`, one host), ``postgresql://...``
(:class:`PostgresLogSink`, many gateway workers and replicas) or an fsspec URL such as
``s3://bucket/prefix`` (:class:`ParquetLogSink`, Parquet on object storage).

Examples
--------
>>> import tempfile, os
>>> from watchkeeper.logstore import GroupCommitWriter, PredictionRecord, SQLiteLogSink
>>> with tempfile.TemporaryDirectory() as d:
...     sink = SQLiteLogSink(os.path.join(d, "log.db"))
...     with GroupCommitWriter(sink) as writer:
...         writer.submit([PredictionRecord("r1", 1.7e9, "churn", 3, "champion",
...                                         {"age": 41, "plan": "pro"}, 1)]).result(timeout=10)
...     window = sink.read_window("churn", last=10)
...     sink.close()
<LogOutcome.COMMITTED: 'committed'>
>>> window.select(["id", "version", "age", "plan", "prediction"]).to_pylist()
[{'id': 'r1', 'version': 3, 'age': 41, 'plan': 'pro', 'prediction': 1}]
"""

from __future__ import annotations

from watchkeeper.logstore._arrow import LOG_COLUMNS
from watchkeeper.logstore._errors import (
    IdConflictError,
    LogClosedError,
    LogFullError,
    LogStoreError,
)
from watchkeeper.logstore._histogram import Histogram
from watchkeeper.logstore._open import open_sink
from watchkeeper.logstore._parquet import ExportResult, export_parquet, read_parquet
from watchkeeper.logstore._parquet_log import CompactResult, ParquetLogSink, join_labels
from watchkeeper.logstore._partials import PartialProfiler, PartialRow, reference_key
from watchkeeper.logstore._postgres import PostgresLogSink
from watchkeeper.logstore._records import (
    FeedbackRecord,
    FeedbackResult,
    FeedbackStats,
    LogSink,
    PredictionRecord,
    WriteResult,
)
from watchkeeper.logstore._sqlite import SQLiteLogSink
from watchkeeper.logstore._summary import (
    LogSummary,
    PredictionBaseline,
    label_key,
    prediction_columns,
)
from watchkeeper.logstore._writer import GroupCommitWriter, LogOutcome

__all__ = [
    "LOG_COLUMNS",
    "CompactResult",
    "ExportResult",
    "FeedbackRecord",
    "FeedbackResult",
    "FeedbackStats",
    "GroupCommitWriter",
    "Histogram",
    "IdConflictError",
    "LogClosedError",
    "LogFullError",
    "LogOutcome",
    "LogSink",
    "LogStoreError",
    "LogSummary",
    "ParquetLogSink",
    "PartialProfiler",
    "PartialRow",
    "PostgresLogSink",
    "PredictionBaseline",
    "PredictionRecord",
    "SQLiteLogSink",
    "WriteResult",
    "export_parquet",
    "join_labels",
    "label_key",
    "open_sink",
    "prediction_columns",
    "read_parquet",
    "reference_key",
]
