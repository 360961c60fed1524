"""``compare(reference, current)``: the drift and data-quality comparison users call first.

The numbers come from the engine in :mod:`watchkeeper.checks`
(:func:`~watchkeeper.checks.run_comparison`); this function only wraps its result in a
renderable :class:`~watchkeeper.report.Report`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from watchkeeper.checks import ComparisonConfig, DecisionRule, QualityConfig, run_comparison
from watchkeeper.report._report import Report

__all__ = ["compare"]

Progress = Callable[[str, int, int], None]

#: Parquet files with more rows than this are streamed by ``compare(stream=None)``.
STREAM_ROWS = 5_000_000


def _parquet_rows(data: Any) -> int | None:
    """Rows of a Parquet file from its footer, or None when ``data`` is not a Parquet path."""
    if not isinstance(data, str | Path) or not str(data).lower().endswith((".parquet", ".pq")):
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(Path(data)).metadata.num_rows)
    except (pa.ArrowException, OSError):
        return None  # the comparison's reader gives the clear error


def _streamed(
    reference: Any, current: Any, schema: Any, batch_rows: int, sample_size: int
) -> tuple[Any, Any]:
    """The reference as a profile and the current Parquet file profiled against it, batch by
    batch (the engine then compares two profiles)."""
    from watchkeeper.data import Profile, Schema, is_profile_path
    from watchkeeper.data.streaming import parquet_schema_table

    if isinstance(schema, str | Path):
        schema = Schema.load(schema)
    if is_profile_path(reference):
        reference = Profile.load(reference)
    elif _parquet_rows(reference) is not None:
        reference = Profile.from_parquet(
            reference, schema, batch_rows=batch_rows, sample_size=sample_size
        )
    elif not isinstance(reference, Profile):
        reference = Profile.from_data(reference, schema, sample_size=sample_size)
    names = parquet_schema_table(current).column_names
    present = [c for c in reference.schema.names if c in names]
    if not present:
        return reference, current  # the engine says which columns it expected
    profile = Profile.from_parquet(
        current,
        reference.schema.select(present),
        reference=reference,
        batch_rows=batch_rows,
        sample_size=sample_size,
    )
    return reference, profile


def compare(
    reference: Any,
    current: Any,
    *,
    schema: Any = None,
    columns: Sequence[str] | None = None,
    methods: Mapping[str, str] | Sequence[str] | None = None,
    rule: DecisionRule | str | None = None,
    multivariate: str | Sequence[str] | None = "pca_reconstruction",
    quality: bool | QualityConfig = True,
    random_state: int = 0,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    stream: bool | None = None,
    batch_rows: int = 1_000_000,
    sample_size: int = 100_000,
) -> Report:
    """Compare current data with a reference: drift per column and overall, and data quality.

    Parameters
    ----------
    reference
        Reference data (pandas or polars DataFrame, Arrow table, CSV or Parquet path) or a saved
        :class:`~watchkeeper.data.Profile` (object or ``.json`` path). A profile computes the
        reference statistics once; exact tests then use its row sample and binned methods its
        full counts (the report says which, per column).
    current
        Current data, in any of the data forms above, or a profile made against the
        reference (``Profile.from_data(data, reference.schema, reference=reference)``;
        shard or window profiles merged with :meth:`~watchkeeper.data.Profile.merge`).
    schema
        A :class:`~watchkeeper.data.Schema` (or JSON path); inferred from the reference if
        omitted (a profile brings its own).
    columns
        Columns to compare; by default every numeric, categorical and boolean column whose
        role is feature, target, prediction, score or sensitive.
    methods
        Method per column kind, ``{"numeric": "ks", "categorical": "chi2"}`` (the defaults) or
        ``["numeric=wasserstein"]``; see :func:`watchkeeper.stats.available_methods`.
    rule
        Decision rule: a :class:`~watchkeeper.checks.StatisticalRule` (default: Benjamini–
        Hochberg at 0.05 plus per-method effect floors), :class:`~watchkeeper.checks.ThresholdRule`,
        :class:`~watchkeeper.checks.ReferenceChunksRule`, or their names ``"fdr"``,
        ``"threshold"``, ``"chunks"``.
    multivariate
        Multivariate method name(s) run on all compared columns together, or ``None`` (or
        ``"none"``, as on the command line). Their
        p-values join the same multiple-testing family as the columns.
    quality
        Run the data-quality checks (``True``), skip them (``False``), or run them with custom
        :class:`~watchkeeper.checks.QualityConfig`.
    random_state
        Seed of every random choice (subsamples, permutations, chunks).
    n_jobs
        Threads for the per-column tests (default: the number of CPUs, at most 8).
    progress
        Called as ``progress(stage, done, total)`` while columns are tested.
    stream
        Read a current Parquet file in batches of ``batch_rows`` rows into a profile against
        the reference instead of loading it (memory bounded by one batch): ``None`` streams
        files of more than 5,000,000 rows, ``True`` every Parquet file, ``False`` none.
        Streamed, exact tests (KS...) use a uniform row sample of ``sample_size`` current
        rows (valid, a little less power); counts, binned methods and quality checks use every
        row. A Parquet reference is then streamed too.

    Returns
    -------
    Report

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=2000), "y": rng.normal(size=2000)})
    >>> cur = pd.DataFrame({"x": rng.normal(0.5, 1, 2000), "y": rng.normal(size=2000)})
    >>> report = compare(ref, cur, multivariate=None)
    >>> report.drifted, report.drifted_columns
    (True, ['x'])
    """
    config = ComparisonConfig(
        columns=columns,
        methods=methods,
        rule=rule,
        multivariate=multivariate,
        quality=quality,
        random_state=random_state,
        n_jobs=n_jobs,
    )
    n_parquet = _parquet_rows(current)
    if n_parquet is not None and (stream is True or (stream is None and n_parquet > STREAM_ROWS)):
        reference, current = _streamed(reference, current, schema, batch_rows, sample_size)
    result = run_comparison(reference, current, config, schema=schema, progress=progress)
    return Report.from_comparison(result)
