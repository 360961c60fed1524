"""Monitoring windows profiled by an engine: one profile per UTC-aligned time window.

A window is the half-open interval ``[start, start + every)`` of the time column in whole
microseconds, aligned to the UTC epoch as the monitor's time windows are
(:func:`watchkeeper.monitor.parse_every`), so a row belongs to exactly one window whichever
engine profiles it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from watchkeeper.data import Profile, Schema, read_table
from watchkeeper.exceptions import InputError

__all__ = ["profile_windows", "window_reports", "window_size_us", "window_starts_us"]


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def window_size_us(every: str) -> int:
    """Length of a time window in microseconds (``"1h"``, ``"1d"``, ``"1w"``...), spelled as
    the monitor's ``every``.

    Examples
    --------
    >>> window_size_us("1h")
    3600000000
    """
    match = _PATTERN.match(str(every))
    if match is None or int(match.group(1)) < 1:
        raise InputError(
            f"every={every!r} is not a time window; use a duration such as '15m', '1h' or "
            "'1d' (engines profile time windows; count windows follow the log's order, which "
            "only the monitor reads)"
        )
    return int(match.group(1)) * _UNITS[match.group(2)] * 1_000_000


def window_starts_us(column: pa.ChunkedArray | pa.Array, size_us: int) -> NDArray[np.int64]:
    """Start (UTC microseconds) of the window of each value; null times get ``INT64_MIN``."""
    if not pa.types.is_timestamp(column.type):
        raise InputError(
            f"the time column has type {column.type}, not a timestamp; convert it (for example "
            "pandas.to_datetime(..., utc=True)) before profiling windows"
        )
    # A naive timestamp is taken as UTC, as the prediction log stores times.
    us = pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    values = np.asarray(us.fill_null(np.iinfo(np.int64).min).to_numpy(), dtype=np.int64)
    valid = values != np.iinfo(np.int64).min
    out = np.full(values.shape, np.iinfo(np.int64).min, dtype=np.int64)
    out[valid] = values[valid] - np.mod(values[valid], size_us)
    return out


def profile_window_batches(
    batches: Iterable[pa.Table],
    reference: Profile,
    schema: Schema,
    *,
    time_column: str,
    size_us: int,
    sample_size: int,
    random_state: int,
    row_order: bool = True,
) -> dict[int, Profile]:
    """Profiles per window start of a stream of batches (shared by the local and Spark
    engines: a Spark partition runs exactly this, with ``row_order=False`` since its rows
    come in no meaningful order, so the contract's ``monotone`` rules are not counted)."""
    out: dict[int, Profile] = {}
    for batch in batches:
        if batch.num_rows == 0:
            continue
        starts = window_starts_us(batch.column(time_column), size_us)
        for start in np.unique(starts):
            if start == np.iinfo(np.int64).min:
                continue  # no time, no window
            rows = batch.filter(pa.array(starts == start))
            p = Profile.from_data(
                rows,
                schema,
                reference=reference,
                sample_size=sample_size,
                random_state=random_state,
                row_order=row_order,
            )
            key = int(start)
            out[key] = p if key not in out else out[key].merge(p)
    return out


def _as_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def _batches(data: Any, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
    if isinstance(data, str | Path) and str(data).lower().endswith((".parquet", ".pq")):
        from watchkeeper.data.streaming import iter_parquet

        yield from iter_parquet(data, columns, batch_rows)
        return
    if isinstance(data, str | Path) and Path(data).is_dir():
        import pyarrow.dataset as ds

        try:
            dataset = ds.dataset(data, format="parquet", partitioning="hive")
            for batch in dataset.to_batches(columns=columns, batch_size=batch_rows):
                yield pa.Table.from_batches([batch])
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"cannot read the Parquet dataset {str(data)!r}: {exc}") from exc
        return
    table = read_table(data, allow_empty=True)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(f"the data lacks columns {missing}; pass data with them")
    yield from (
        table.select(columns).slice(i, batch_rows) for i in range(0, table.num_rows, batch_rows)
    )


def profile_windows(
    data: Any,
    reference: Profile,
    *,
    time_column: str,
    every: str = "1d",
    schema: Schema | None = None,
    sample_size: int = 10_000,
    random_state: int = 0,
    batch_rows: int = 1_000_000,
) -> dict[datetime, Profile]:
    """Profile data per time window against a reference, on this machine.

    Parameters
    ----------
    data
        A table (anything :func:`~watchkeeper.data.read_table` accepts), a Parquet file or a
        directory of Parquet files (hive partitions allowed), read in batches.
    reference
        The reference profile: windows use its bins and categories, so they can be checked
        against it and merged.
    time_column
        The timestamp column that assigns rows to windows (naive times are taken as UTC).
    every
        Window length: ``"1h"``, ``"1d"``, ``"7d"``... (aligned to the UTC epoch).
    schema
        Columns to profile; default: the reference's.
    sample_size, random_state
        Row sample kept per window (for exact tests on the window).
    batch_rows
        Rows read at a time from files.

    Returns
    -------
    dict
        Window start (UTC ``datetime``) to profile, in time order; windows without rows are
        absent.
    """
    if not isinstance(reference, Profile):
        raise InputError(f"reference must be a Profile, got {type(reference).__name__}")
    schema = schema or reference.schema
    size_us = window_size_us(every)
    columns = list(dict.fromkeys([*(s.name for s in schema), time_column]))
    found = profile_window_batches(
        _batches(data, columns, batch_rows),
        reference,
        schema,
        time_column=time_column,
        size_us=size_us,
        sample_size=sample_size,
        random_state=random_state,
    )
    return {_as_datetime(k): found[k] for k in sorted(found)}


def window_reports(
    reference: Profile, windows: Mapping[datetime, Profile], **options: Any
) -> dict[datetime, Any]:
    """Compare every window profile with the reference (the same checks as ``compare``).

    ``options`` are passed to :func:`watchkeeper.compare` (``methods``, ``rule``,
    ``multivariate``...). Exact tests use the windows' row samples.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> ref = Profile.from_data(pd.DataFrame({"x": rng.normal(size=2000)}))
    >>> ts = pd.date_range("2024-01-01", periods=2000, freq="min", tz="UTC")
    >>> x = np.r_[rng.normal(size=1440), rng.normal(1.0, 1.0, size=560)]
    >>> log = pd.DataFrame({"ts": ts, "x": x})
    >>> reports = window_reports(ref, profile_windows(log, ref, time_column="ts"))
    >>> [r.drifted for r in reports.values()]
    [False, True]
    """
    from watchkeeper.report import compare

    options.setdefault("multivariate", None)
    return {start: compare(reference, p, **options) for start, p in windows.items()}


# -- the prediction log (Parquet on any fsspec URL), window by window ----------------------


def open_parquet_log(log: Any, storage_options: dict[str, Any] | None) -> Any:
    """A :class:`~watchkeeper.logstore.ParquetLogSink` from a sink or its URL."""
    from watchkeeper.logstore import ParquetLogSink

    if isinstance(log, ParquetLogSink):
        return log
    if not isinstance(log, str | Path) or not str(log):
        raise InputError(
            f"log must be a ParquetLogSink or the URL of a Parquet prediction log, got {log!r}"
        )
    return ParquetLogSink(str(log), storage_options=storage_options)


def log_windows(
    days: Iterable[str],
    size_us: int,
    start: datetime | float | None = None,
    end: datetime | float | None = None,
) -> list[tuple[int, float, float]]:
    """``(window start in µs, read from, read to in UTC seconds)`` of every window that
    rows of these days (``YYYY-MM-DD``, UTC) can fall in, clipped to ``[start, end)``.

    Examples
    --------
    >>> log_windows(["2024-01-01"], window_size_us("12h"))
    [(1704067200000000, 1704067200.0, 1704110400.0), (1704110400000000, 1704110400.0, 1704153600.0)]
    """
    lo, hi = _seconds(start, "start"), _seconds(end, "end")
    day_us = 86_400 * 1_000_000
    keys: set[int] = set()
    for day in days:
        first = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) * 1_000_000
        key = first - first % size_us
        while key < first + day_us:
            keys.add(key)
            key += size_us
    out = []
    for key in sorted(keys):
        a, b = key / 1e6, (key + size_us) / 1e6
        a, b = max(a, lo) if lo is not None else a, min(b, hi) if hi is not None else b
        if a < b:
            out.append((key, a, b))
    return out


def _seconds(value: datetime | float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InputError(f"{name} must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a datetime or UTC seconds, got {value!r}")
    return float(value)


def log_window_rows(table: pa.Table, columns: list[str]) -> pa.Table:
    """The profiled columns of a window of the log (``read_window``'s table)."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(
            f"the prediction log lacks columns {missing} of the reference; profile only the "
            "logged columns (schema=reference.schema.select([...]))"
        )
    return table.select(columns)


def profile_log_windows(
    log: Any,
    model: str,
    reference: Profile,
    *,
    every: str = "1d",
    start: datetime | float | None = None,
    end: datetime | float | None = None,
    version: int | None = None,
    arm: str | None = None,
    include_shadow: bool = False,
    schema: Schema | None = None,
    sample_size: int = 10_000,
    random_state: int = 0,
    storage_options: dict[str, Any] | None = None,
) -> dict[datetime, Profile]:
    """Profile a Parquet prediction log per time window, on this machine, one window at a
    time.

    Each window is read as :meth:`ParquetLogSink.read_window
    <watchkeeper.logstore.ParquetLogSink.read_window>` reads it — its day partitions (and
    one day either side), de-duplicated, the latest label joined by id from the feedback
    table (the column ``label``) — and profiled against ``reference`` on the columns of its
    schema (features, ``prediction``, ``label``). :func:`watchkeeper.engines.spark.
    profile_log_windows` computes the same windows on Spark.

    Parameters
    ----------
    log
        A :class:`~watchkeeper.logstore.ParquetLogSink`, or its folder or fsspec URL
        (``s3://bucket/log``).
    model
        The model whose predictions are profiled.
    reference
        The reference profile (its bins, categories and schema).
    every
        Window length (``"1h"``, ``"1d"``, ``"7d"``...), aligned to the UTC epoch.
    start, end
        Profile only ``[start, end)`` (aware datetimes or UTC seconds).
    version, arm, include_shadow
        Which records, as in ``read_window`` (default: every live record).
    schema, sample_size, random_state
        As in :func:`profile_windows`.
    storage_options
        fsspec options for a URL (``{"endpoint_url": ..., "key": ..., "secret": ...}``);
        default: credentials from the environment.

    Returns
    -------
    dict
        Window start (UTC ``datetime``) to profile, in time order; windows without rows are
        absent.

    Examples
    --------
    >>> import tempfile
    >>> from watchkeeper.logstore import FeedbackRecord, ParquetLogSink, PredictionRecord
    >>> records = [PredictionRecord(f"r{i}", 1.7e9 + 3600 * i, "m", 1, "champion",
    ...                             {"x": float(i % 5)}, 0.5) for i in range(48)]
    >>> reference = Profile.from_data(pa.table({"x": [0.0, 1, 2, 3, 4], "prediction": [0.5] * 5,
    ...                                         "label": [1.0, 0, 1, 0, 1]}))
    >>> with tempfile.TemporaryDirectory() as d, ParquetLogSink(d) as sink:
    ...     sink.write_predictions(records)
    ...     _ = sink.write_feedback([FeedbackRecord("r3", 1.7e9 + 9e4, label=1.0)])
    ...     windows = profile_log_windows(d, "m", reference, every="1d")
    >>> [(str(w.date()), p.n_rows, p.columns["label"].count) for w, p in windows.items()]
    [('2023-11-14', 2, 0), ('2023-11-15', 24, 1), ('2023-11-16', 22, 0)]
    """
    if not isinstance(reference, Profile):
        raise InputError(f"reference must be a Profile, got {type(reference).__name__}")
    from watchkeeper.logstore import join_labels

    schema = schema or reference.schema
    size_us = window_size_us(every)
    columns = list(dict.fromkeys([*(s.name for s in schema), "ts"]))
    sink = open_parquet_log(log, storage_options)
    files = sink.prediction_files(model)
    feedback: pa.Table | None = None
    out: dict[int, Profile] = {}
    for _key, lo, hi in log_windows(files, size_us, start, end):
        table = sink.read_predictions(
            model, start=lo, end=hi, version=version, arm=arm, include_shadow=include_shadow,
            files=files,
        )  # fmt: skip
        if table is None or table.num_rows == 0:
            continue
        if feedback is None:  # read once, joined per window
            feedback = sink.read_feedback(sink.feedback_files())
        rows = log_window_rows(join_labels(table, feedback, model), columns)
        found = profile_window_batches(
            [rows], reference, schema, time_column="ts", size_us=size_us,
            sample_size=sample_size, random_state=random_state,
        )  # fmt: skip
        out.update(found)
    return {_as_datetime(k): out[k] for k in sorted(out)}
