"""Spark engine: profiles computed where the data lives, then checked like local ones.

Every partition of a Spark DataFrame reaches Python as Arrow record batches
(``DataFrame.mapInArrow``); the partition runs the same profiling code as the local engine
(:meth:`Profile.from_data` against a reference, or the two passes of
:mod:`watchkeeper.data.streaming` without one), serialises its profile to JSON, and the driver
merges the partition profiles. So the counts, histograms, category counts, per-group counts
and row samples equal the local engine's on the same data, the moments agree to float
rounding, and quantile sketches within their rank bound; the checks then run on the driver
with the same code as locally (:func:`watchkeeper.compare`, :func:`window_reports`).

Install with ``pip install "watchkeeper[spark]"``; ``pyspark`` is imported only when a function
here runs.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from watchkeeper._extras import require
from watchkeeper.data import Profile, Schema
from watchkeeper.data.streaming import Pilot, finish_profile, pilot_size, skeleton_reference
from watchkeeper.engines._windows import (
    _as_datetime,
    log_window_rows,
    log_windows,
    open_parquet_log,
    profile_window_batches,
    window_size_us,
)
from watchkeeper.exceptions import InputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "local_session",
    "profile_dataframe",
    "profile_log_windows",
    "profile_parquet",
    "profile_windows",
]

_WINDOW = "__watchkeeper_window_us"


def _pyspark() -> Any:
    return require("pyspark.sql", extra="spark", purpose="the Spark engine")


@contextmanager
def _quiet() -> Iterator[None]:
    # PySpark warns at every Arrow UDF that it does not fully support pandas 3, although
    # mapInArrow never converts to pandas.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*PySpark does not yet fully support pandas", category=FutureWarning
        )
        yield


def local_session(cores: int = 2, app_name: str = "watchkeeper", memory: str = "4g") -> Any:
    """A local SparkSession set up for this engine (or the active one, if any).

    Workers use this Python interpreter, the UI is off, the driver binds 127.0.0.1 and the
    session time zone is UTC (naive timestamps are then read as UTC, as the log stores
    them). ``memory`` is the JVM's heap, where local mode runs its tasks: Spark's default
    (1 GB) runs out reading Parquet files with large row groups (10 million rows x 20 columns
    in row groups of a million rows failed with it); it only applies when this call starts
    the JVM. On a cluster, build your own session; the functions here take it as ``spark=``.
    """
    sql = _pyspark()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return (
        sql.SparkSession.builder.master(f"local[{int(cores)}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(max(2, int(cores))))
        .config("spark.driver.memory", memory)
        .getOrCreate()
    )


#: URL schemes read by the engine's own tasks through fsspec (Spark without Hadoop's
#: connectors cannot read them); ``s3a://``, ``hdfs://``, ``file:`` and paths go to Spark.
_FSSPEC_SCHEMES = ("s3://", "gs://", "gcs://", "az://", "abfs://", "abfss://", "memory://",
                   "http://", "https://")  # fmt: skip


class _Files:
    """Parquet files on any fsspec URL, read by Spark tasks with pyarrow: a small DataFrame
    of file paths is spread over the tasks, and each task opens its files itself.

    Stands in for a DataFrame where the engine needs one (``columns``, ``select``,
    ``limit``... and ``mapInArrow``), so the profiling code is the same.
    """

    def __init__(
        self,
        url: str,
        options: dict[str, Any],
        session: Any,
        columns: list[str] | None = None,
        n_rows: int | None = None,
    ) -> None:
        import pyarrow as pa
        import pyarrow.dataset as ds

        fsspec = require("fsspec", extra="storage", purpose=f"Reading {url!r} on Spark")
        self.url, self.options, self.session = url, options, session
        try:
            fs, root = fsspec.core.url_to_fs(url, **options)
            dataset = ds.dataset(root, filesystem=fs, format="parquet", partitioning="hive")
        except ImportError as exc:
            raise InputError(
                f"reading {url!r} needs the file system's package ({exc.name or exc}): "
                'pip install s3fs (or gcsfs, adlfs), or "watchkeeper[s3]"'
            ) from None
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"cannot read {url!r} as Parquet: {first}") from None
        self.root = root
        self.files: list[str] = sorted(dataset.files)
        if not self.files:
            raise InputError(f"cannot read {url!r} as Parquet: no Parquet files there")
        self.schema = dataset.schema
        found = dataset.partitioning
        self.partition_schema = found.schema if found is not None else pa.schema([])
        self.columns: list[str] = columns or list(self.schema.names)
        self.n_rows = n_rows

    def select(self, *names: str) -> _Files:
        return _Files._copy(self, list(names), self.n_rows)

    def limit(self, n: int) -> _Files:
        return _Files._copy(self, self.columns, n)

    @staticmethod
    def _copy(other: _Files, columns: list[str], n_rows: int | None) -> _Files:
        new = object.__new__(_Files)
        new.__dict__.update(other.__dict__)
        new.columns, new.n_rows = columns, n_rows
        return new

    def batches(self, paths: list[str]) -> Iterator[pa.RecordBatch]:
        """The rows of these files (hive partition columns included), in batches."""
        import fsspec
        import pyarrow.dataset as ds

        fs, _ = fsspec.core.url_to_fs(self.url, **self.options)
        keys = self.partition_schema
        dataset = ds.dataset(
            paths,
            filesystem=fs,
            format="parquet",
            partitioning=ds.partitioning(keys, flavor="hive") if len(keys) else None,
            partition_base_dir=self.root,
        )
        left = self.n_rows
        for batch in dataset.to_batches(columns=self.columns, use_threads=False):
            if left is not None:
                batch = batch.slice(0, left)
                left -= batch.num_rows
            if batch.num_rows:
                yield batch
            if left is not None and left <= 0:
                return

    def toArrow(self) -> pa.Table:  # DataFrame's name
        import pyarrow as pa

        out: list[pa.RecordBatch] = []
        left = self.n_rows
        for path in self.files:
            for batch in self.batches([path]):
                out.append(batch)
                if left is not None:
                    left -= batch.num_rows
            if left is not None and left <= 0:
                break
        if not out:
            return self.schema.empty_table().select(self.columns)
        return pa.Table.from_batches(out).slice(0, self.n_rows)

    def mapInArrow(self, fn: Any, out_schema: str) -> Any:  # DataFrame's name
        source = self
        n = max(1, min(len(self.files), int(self.session.sparkContext.defaultParallelism) * 2))
        paths = self.session.createDataFrame([(f,) for f in self.files], "path string")

        def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            mine = [p for b in batches for p in b["path"].to_pylist()]
            yield from fn(source.batches(mine)) if mine else iter(())

        return paths.repartition(n).mapInArrow(run, out_schema)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "session"}


def _is_fsspec(data: Any, storage_options: dict[str, Any] | None) -> bool:
    text = os.fspath(data) if isinstance(data, str | os.PathLike) else ""
    return bool(text) and (storage_options is not None or text.startswith(_FSSPEC_SCHEMES))


def _frame(data: Any, spark: Any, storage_options: dict[str, Any] | None = None) -> Any:
    sql = _pyspark()
    if isinstance(data, sql.DataFrame | _Files):
        return data
    if _is_fsspec(data, storage_options):
        session = spark or sql.SparkSession.getActiveSession() or local_session()
        text = os.fspath(data)
        if "://" not in text:
            text = os.path.abspath(text)
        return _Files(text, dict(storage_options or {}), session)
    if isinstance(data, str | os.PathLike):
        session = spark or sql.SparkSession.getActiveSession() or local_session()
        # The JVM resolves relative paths against its own working directory, not Python's.
        where = str(data) if "://" in str(data) else os.path.abspath(data)
        try:
            return session.read.parquet(where)
        except Exception as exc:  # AnalysisException and friends: say what to do
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"Spark cannot read {str(data)!r} as Parquet: {first}") from None
    raise InputError(
        f"data must be a Spark DataFrame or the path of Parquet data, got {type(data).__name__}"
    )


def _infer_schema(df: Any, max_categories: int) -> Schema:
    import pyarrow as pa

    head = df.limit(100_000)
    with _quiet():
        if hasattr(head, "toArrow"):  # pyspark >= 4
            table = head.toArrow()
        else:  # pragma: no cover - pyspark 3.5
            table = pa.Table.from_pandas(head.toPandas(), preserve_index=False)
    if table.num_rows == 0:
        raise InputError("the data has no rows; pass a schema to profile it")
    return Schema.infer(table, max_categories=max_categories)


def _check_columns(df: Any, names: list[str]) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise InputError(
            f"the data lacks columns {missing} of the schema; pass schema.select([...]) to "
            "profile only the columns present"
        )


def _without_sample(profile: Profile) -> str:
    """A reference as shipped to the workers: bins and categories, not its row sample."""
    return json.dumps(
        Profile(
            profile.schema,
            profile.n_rows,
            profile.columns,
            None,
            {**profile.meta, "sample_size": 0},
            None,
            profile.group_counts,
        ).to_dict()
    )


def _collect(df: Any, fn: Any, out_schema: str) -> list[Any]:
    with _quiet():
        return list(df.mapInArrow(fn, out_schema).collect())


def _table(batch: pa.RecordBatch) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_batches([batch])


#: Most partial profiles one task merges. ``collect`` ships every task's result to the driver
#: at once, bounded by ``spark.driver.maxResultSize`` (1 GB by default), and each partition's
#: profile carries its row sample (100,000 rows x 20 columns is about 16 MB): 100,000,000 rows
#: in 64 partitions went over. Merging in rounds on the workers keeps at most this many.
_FAN_IN = 8


_PAYLOADS = "part long, profile string"


def _merge_groups(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """One merged profile per group (``part``) of the partial profiles in this partition."""
    import pyarrow as pa

    groups: dict[int, list[str]] = {}
    for batch in batches:
        parts, texts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        for part, text in zip(parts, texts, strict=True):
            groups.setdefault(part, []).append(text)
    for part in sorted(groups):
        merged = Profile.merge_all([Profile.from_dict(json.loads(t)) for t in sorted(groups[part])])
        yield pa.RecordBatch.from_pydict(
            {"part": [part], "profile": [json.dumps(merged.to_dict())]}, schema=_payload_schema()
        )


def _payload_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("part", pa.int64()), ("profile", pa.string())])


def _partition_id() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    return 0 if context is None else int(context.partitionId())


def _merged_on_workers(payloads: Any) -> list[str]:
    """The partial profiles of ``payloads`` (columns ``part``: the input partition's index,
    ``profile``), merged on the workers in rounds of :data:`_FAN_IN` until at most that many
    remain, then collected. Each round groups by index (``part // _FAN_IN``), so the grouping,
    hence every float, does not depend on task timing; the profiling stage before it keeps
    one task per input partition."""
    from pyspark.sql import functions as F

    n_parts = payloads.rdd.getNumPartitions()
    while n_parts > _FAN_IN:
        n_parts = -(-n_parts // _FAN_IN)
        grouped = payloads.withColumn("part", F.floor(F.col("part") / _FAN_IN).cast("long"))
        payloads = grouped.repartition(n_parts, "part").mapInArrow(_merge_groups, _PAYLOADS)
    return [r["profile"] for r in payloads.collect()]


def _merge_payloads(payloads: list[str]) -> Profile | None:
    # Sorted so that the merge order, hence every float, does not depend on task timing.
    merged: Profile | None = None
    for text in sorted(payloads):
        p = Profile.from_dict(json.loads(text))
        merged = p if merged is None else merged.merge(p)
    return merged


def profile_dataframe(
    data: Any,
    schema: Schema | None = None,
    *,
    reference: Profile | None = None,
    n_bins: int = 10,
    max_categories: int = 50,
    sample_size: int = 100_000,
    random_state: int = 0,
    sketch: bool = True,
    spark: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> Profile:
    """Profile a Spark DataFrame (or Parquet path) on Spark; the same profile as locally.

    Parameters
    ----------
    data
        A ``pyspark.sql.DataFrame``, or the path (or URL Spark reads) of Parquet data.
    schema
        Columns to profile; default: the reference's, else inferred from the first 100,000
        rows.
    reference, n_bins, max_categories, sample_size, random_state, sketch
        As in :meth:`Profile.from_data`. Without a reference Spark reads the data twice
        (see :mod:`watchkeeper.data.streaming`): cache the DataFrame if it is expensive.
    spark
        The session to read a path with (default: the active one, else a local one).
    storage_options
        fsspec options for a URL (``{"endpoint_url": ..., "key": ..., "secret": ...}``).
        With them, or for an ``s3://``, ``gs://``, ``az://``... URL, Spark does not read
        the files: its tasks open them with pyarrow and fsspec (no Hadoop connector needed),
        the options travelling with the tasks. Without options, every process takes
        credentials from its environment.

    Returns
    -------
    Profile
    """
    for name, value, low in (
        ("n_bins", n_bins, 2),
        ("max_categories", max_categories, 1),
        ("sample_size", sample_size, 0),
        ("random_state", random_state, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    df = _frame(data, spark, storage_options)
    if reference is not None and not isinstance(reference, Profile):
        raise InputError(f"reference must be a Profile, got {type(reference).__name__}")
    if schema is None:
        schema = reference.schema if reference is not None else _infer_schema(df, max_categories)
    from watchkeeper.data import Role

    names = [s.name for s in schema if s.role is not Role.IGNORED]
    _check_columns(df, names)
    df = df.select(*names)
    schema_json = json.dumps(schema.to_dict())
    options: dict[str, Any] = {
        "n_bins": n_bins,
        "max_categories": max_categories,
        "random_state": random_state,
        "sketch": sketch,
        "row_order": False,  # partitions have no row order: monotone rules are not counted
    }

    def second_pass(ref_json: str, size: int) -> list[str]:
        def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            import pyarrow as pa

            sch = Schema.from_dict(json.loads(schema_json))
            ref = Profile.from_dict(json.loads(ref_json))
            merged: Profile | None = None
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                p = Profile.from_data(
                    _table(batch), sch, reference=ref, sample_size=size, **options
                )
                merged = p if merged is None else merged.merge(p)
            if merged is not None:
                yield pa.RecordBatch.from_pydict(
                    {"part": [_partition_id()], "profile": [json.dumps(merged.to_dict())]},
                    schema=_payload_schema(),
                )

        with _quiet():
            payloads = df.mapInArrow(partition, _PAYLOADS)
            return _merged_on_workers(payloads)

    if reference is not None:
        merged = _merge_payloads(second_pass(_without_sample(reference), sample_size))
        if merged is None:
            raise InputError("the data has no rows; nothing to profile")
        return merged

    def first_pass(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        sch = Schema.from_dict(json.loads(schema_json))
        pilot: Pilot | None = None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            p = Pilot.from_table(
                _table(batch), sch, sample_size=pilot_size(sample_size), random_state=random_state
            )
            pilot = p if pilot is None else pilot.merge(p)
        if pilot is not None:
            yield pa.RecordBatch.from_pydict({"pilot": [json.dumps(pilot.to_dict())]})

    pilots = sorted(r["pilot"] for r in _collect(df, first_pass, "pilot string"))
    if not pilots:
        raise InputError("the data has no rows; nothing to profile")
    pilot = Pilot.from_dict(json.loads(pilots[0]))
    for text in pilots[1:]:
        pilot = pilot.merge(Pilot.from_dict(json.loads(text)))
    skeleton = skeleton_reference(pilot, schema, n_bins=n_bins, max_categories=max_categories)
    merged = _merge_payloads(second_pass(json.dumps(skeleton.to_dict()), 0))
    assert merged is not None  # the first pass saw rows
    return finish_profile(merged, pilot, skeleton, sample_size)


def profile_parquet(
    path: str | os.PathLike[str],
    schema: Schema | None = None,
    *,
    spark: Any = None,
    storage_options: dict[str, Any] | None = None,
    **options: Any,
) -> Profile:
    """Profile Parquet data (a file, a directory, any fsspec URL) on Spark.

    The options are those of :func:`profile_dataframe`.
    """
    return profile_dataframe(_frame(path, spark, storage_options), schema, **options)


def profile_windows(
    data: Any,
    reference: Profile,
    *,
    time_column: str,
    every: str = "1d",
    schema: Schema | None = None,
    sample_size: int = 10_000,
    random_state: int = 0,
    spark: Any = None,
    storage_options: dict[str, Any] | None = None,
) -> dict[datetime, Profile]:
    """Profile a log (Spark DataFrame, Parquet path or fsspec URL) per time window on Spark.

    The same windows and profiles as :func:`watchkeeper.engines.profile_windows`: each
    partition profiles the windows its rows fall in, the driver merges per window. Check
    them with :func:`watchkeeper.engines.window_reports`.

    Returns
    -------
    dict
        Window start (UTC ``datetime``) to profile, in time order.
    """
    if not isinstance(reference, Profile):
        raise InputError(f"reference must be a Profile, got {type(reference).__name__}")
    sql = _pyspark()
    functions = sql.functions
    schema = schema or reference.schema
    size_us = window_size_us(every)
    df = _frame(data, spark, storage_options)
    names = list(dict.fromkeys([*(s.name for s in schema), time_column]))
    _check_columns(df, names)
    df = df.select(*names)
    schema_json = json.dumps(schema.to_dict())
    ref_json = _without_sample(reference)

    def partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        found = profile_window_batches(
            (_table(b) for b in batches),
            Profile.from_dict(json.loads(ref_json)),
            Schema.from_dict(json.loads(schema_json)),
            time_column=time_column,
            size_us=size_us,
            sample_size=sample_size,
            random_state=random_state,
            row_order=False,
        )
        if found:
            yield pa.RecordBatch.from_pydict(
                {
                    "window": list(found),
                    "profile": [json.dumps(p.to_dict()) for p in found.values()],
                },
                schema=pa.schema([("window", pa.int64()), ("profile", pa.string())]),
            )

    # Rows of one window are brought together first so that each window is profiled by one
    # task (fewer, larger profiles to merge); the merge would give the same answer anyway.
    keyed = df
    if not isinstance(df, _Files):  # a file's rows stay in the file's task
        micros = functions.unix_micros(functions.col(time_column).cast("timestamp"))
        keyed = df.repartition(functions.floor(micros / functions.lit(size_us)))
    rows = _collect(keyed, partition, "window long, profile string")
    by_window: dict[int, list[str]] = {}
    for r in rows:
        by_window.setdefault(int(r["window"]), []).append(r["profile"])
    out: dict[datetime, Profile] = {}
    for key in sorted(by_window):
        merged = _merge_payloads(by_window[key])
        assert merged is not None
        out[_as_datetime(key)] = merged
    return out


# -- the Parquet prediction log on any fsspec URL ---------------------------------------------

_FEEDBACK_ROWS = (
    "id string, ts long, label string, flag boolean, note string, _written long, "
    "model string, file int, row long"
)


def _parallelism(session: Any, n: int) -> int:
    return max(1, min(n, int(session.sparkContext.defaultParallelism)))


def profile_log_windows(
    log: str | os.PathLike[str],
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
    spark: Any = None,
) -> dict[datetime, Profile]:
    """Profile a Parquet prediction log (any fsspec URL) per time window on Spark.

    The same windows and profiles as :func:`watchkeeper.engines.profile_log_windows`, which
    reads the log window by window as :meth:`ParquetLogSink.read_window
    <watchkeeper.logstore.ParquetLogSink.read_window>` does. Spark never reads the files
    itself (no Hadoop file system is needed for ``s3://``, ``gs://``...): its tasks open
    them with pyarrow and fsspec.

    1. The feedback files are spread over tasks, which send their rows to Spark;
    2. the windows are spread over tasks, which read each window's predictions (its day
       partitions and one day either side, de-duplicated) and send their ids; Spark joins
       feedback to windows by id (a shuffle: no task holds all the labels);
    3. each window's task reads its predictions again, joins the labels it received exactly
       as ``read_window`` does (latest label and flag per id) and profiles the window with
       the local engine's code; the driver collects one profile per window.

    Parameters
    ----------
    log
        The folder or fsspec URL of the log (``s3://bucket/log``). The executors need the
        file system's package (``s3fs``, ``gcsfs``) and access to the storage.
    storage_options
        fsspec options (``{"endpoint_url": ..., "key": ..., "secret": ...}``), shipped to
        the tasks with them; default: every process takes credentials from its own
        environment (on a cluster, the executors' environment, e.g. ``spark.executorEnv.*``).
    model, reference, every, start, end, version, arm, include_shadow, schema, sample_size, \
random_state
        As in :func:`watchkeeper.engines.profile_log_windows`.
    spark
        The session (default: the active one, else a local one).

    Returns
    -------
    dict
        Window start (UTC ``datetime``) to profile, in time order.
    """
    if not isinstance(reference, Profile):
        raise InputError(f"reference must be a Profile, got {type(reference).__name__}")
    sql = _pyspark()
    functions = sql.functions
    schema = schema or reference.schema
    size_us = window_size_us(every)
    url = os.fspath(log) if isinstance(log, str | os.PathLike) else log
    if not isinstance(url, str) or not url:
        raise InputError(f"log must be the folder or URL of a Parquet prediction log, got {log!r}")
    if "://" not in url:  # the tasks may run in another working directory
        url = os.path.abspath(url)
    from watchkeeper.logstore import join_labels

    sink = open_parquet_log(url, storage_options)
    files = sink.prediction_files(model)  # listed once, here
    windows = log_windows(files, size_us, start, end)
    if not windows:
        return {}
    select = {"version": version, "arm": arm, "include_shadow": include_shadow}
    columns = list(dict.fromkeys([*(s.name for s in schema), "ts"]))
    for _key, lo, hi in windows:  # say here, not from a task, when a column is missing
        first = sink.read_predictions(model, start=lo, end=hi, files=files, **select)
        if first is not None and first.num_rows:
            log_window_rows(join_labels(first.slice(0, 1), sink.read_feedback([]), model), columns)
            break
    feedback_files = sink.feedback_files()
    session = spark or sql.SparkSession.getActiveSession() or local_session()
    schema_json = json.dumps(schema.to_dict())
    ref_json = _without_sample(reference)
    options = dict(storage_options or {})

    def open_log() -> Any:
        return open_parquet_log(url, options or None)

    def feedback_rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        log = open_log()
        for batch in batches:
            pairs = zip(batch["file"].to_pylist(), batch["path"].to_pylist(), strict=True)
            for number, path in pairs:
                table = log.read_feedback([path])
                n = table.num_rows
                table = table.set_column(1, "ts", table["ts"].cast(pa.int64()))
                table = table.append_column("file", pa.array([number] * n, pa.int32()))
                table = table.append_column("row", pa.array(range(n), pa.int64()))
                yield from table.to_batches()

    def read_windows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Each window's predictions, read once: its ids (to meet their feedback) and its
        rows as Arrow IPC chunks (to meet them again in the window's task)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        log = open_log()
        out = pa.schema([("window", pa.int64()), ("id", pa.string()), ("chunk", pa.int32()),
                         ("rows", pa.binary())])  # fmt: skip
        for batch in batches:
            keys, los, his = (batch[c].to_pylist() for c in ("window", "lo", "hi"))
            for key, lo, hi, paths in zip(keys, los, his, batch["files"].to_pylist(), strict=True):
                found = json.loads(paths)
                table = log.read_predictions(model, start=lo, end=hi, files=found, **select)
                if table is None or table.num_rows == 0:
                    continue
                ids = pc.unique(table["id"])
                n = len(ids)
                yield pa.RecordBatch.from_arrays(
                    [pa.array([key] * n, pa.int64()), ids, pa.nulls(n, pa.int32()),
                     pa.nulls(n, pa.binary())], schema=out,
                )  # fmt: skip
                for i, part in enumerate(table.to_batches(max_chunksize=65_536)):
                    sink_ = pa.BufferOutputStream()
                    with pa.ipc.new_stream(sink_, part.schema) as writer:
                        writer.write_batch(part)
                    yield pa.RecordBatch.from_arrays(
                        [pa.array([key], pa.int64()), pa.nulls(1, pa.string()),
                         pa.array([i], pa.int32()), pa.array([sink_.getvalue().to_pybytes()])],
                        schema=out,
                    )  # fmt: skip

    def profiles(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa
        import pyarrow.compute as pc

        from watchkeeper.logstore import join_labels

        rows = pa.Table.from_batches(list(batches), schema=work_schema)
        if rows.num_rows == 0:
            return
        ref = Profile.from_dict(json.loads(ref_json))
        sch = Schema.from_dict(json.loads(schema_json))
        feedback_names = ["id", "ts", "label", "flag", "note", "_written", "model"]
        for key in sorted(set(rows["window"].to_pylist())):
            mine = rows.filter(pc.equal(rows["window"], key))
            chunks = mine.filter(pc.is_valid(mine["rows"])).sort_by("chunk")
            if chunks.num_rows == 0:
                continue
            table = pa.concat_tables(
                pa.ipc.open_stream(b).read_all() for b in chunks["rows"].to_pylist()
            )
            # the feedback in the files' order, as read_window reads it
            fb = mine.filter(pc.is_valid(mine["file"]))
            fb = fb.sort_by([("file", "ascending"), ("row", "ascending")])
            fb = fb.set_column(
                fb.schema.get_field_index("ts"), "ts", fb["ts"].cast(pa.timestamp("us", tz="UTC"))
            ).select(feedback_names)
            found = profile_window_batches(
                [log_window_rows(join_labels(table, fb, model), columns)],
                ref, sch, time_column="ts", size_us=size_us,
                sample_size=sample_size, random_state=random_state, row_order=False,
            )  # fmt: skip
            for start_us, p in found.items():
                yield pa.RecordBatch.from_pydict(
                    {"window": [start_us], "profile": [json.dumps(p.to_dict())]},
                    schema=pa.schema([("window", pa.int64()), ("profile", pa.string())]),
                )

    import pyarrow as pa

    work_schema = pa.schema(
        [("window", pa.int64()), ("chunk", pa.int32()), ("rows", pa.binary()),
         ("id", pa.string()), ("ts", pa.int64()), ("label", pa.string()),
         ("flag", pa.bool_()), ("note", pa.string()), ("_written", pa.int64()),
         ("model", pa.string()), ("file", pa.int32()), ("row", pa.int64())]
    )  # fmt: skip
    names = work_schema.names
    bounds = [
        (key, lo, hi, json.dumps({d: f for d, f in files.items()
                                  if _day(lo - 86_400) <= d <= _day(hi + 86_400)}))
        for key, lo, hi in windows
    ]  # fmt: skip
    window_frame = session.createDataFrame(
        bounds, "window long, lo double, hi double, files string"
    ).repartition(_parallelism(session, len(windows)))
    functions_ = functions
    with _quiet():
        read = window_frame.mapInArrow(
            read_windows, "window long, id string, chunk int, rows binary"
        ).persist()
        try:
            null = {
                f.name: functions_.lit(None).cast(_spark_type(f.type)).alias(f.name)
                for f in work_schema
            }
            chunks = read.where(functions_.col("rows").isNotNull()).select(
                *[functions_.col(n) if n in ("window", "chunk", "rows") else null[n] for n in names]
            )
            work = chunks
            if feedback_files:
                files_frame = session.createDataFrame(
                    list(enumerate(feedback_files)), "file int, path string"
                ).repartition(_parallelism(session, len(feedback_files)))
                model_ok = functions_.col("model").isNull() | (
                    functions_.col("model") == functions_.lit(model)
                )
                feedback = files_frame.mapInArrow(feedback_rows, _FEEDBACK_ROWS).where(model_ok)
                ids = read.where(functions_.col("id").isNotNull()).select("window", "id")
                joined = ids.join(feedback, on="id", how="inner")
                work = work.unionByName(
                    joined.select(
                        *[null[n] if n in ("chunk", "rows") else functions_.col(n) for n in names]
                    )
                )
            work = work.repartition(_parallelism(session, len(windows)), "window")
            rows = list(work.mapInArrow(profiles, "window long, profile string").collect())
        finally:
            read.unpersist()
    by_window: dict[int, list[str]] = {}
    for r in rows:
        by_window.setdefault(int(r["window"]), []).append(r["profile"])
    out: dict[datetime, Profile] = {}
    for key in sorted(by_window):
        merged = _merge_payloads(by_window[key])
        assert merged is not None
        out[_as_datetime(key)] = merged
    return out


def _day(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def _spark_type(arrow_type: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_int64(arrow_type):
        return "long"
    if pa.types.is_int32(arrow_type):
        return "int"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_binary(arrow_type):
        return "binary"
    return "string"
