"""``compare(reference, current)``: the drift and data-quality comparison users call first.

The numbers come from the engine in :mod:`watchkeeper.checks`
(:func:`~watchkeeper.checks.run_comparison`); this function only wraps its result in a
renderable :class:`~watchkeeper.report.Report`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from watchkeeper.checks import ComparisonConfig, DecisionRule, QualityThresholds, run_comparison
from watchkeeper.report._report import Report

__all__ = ["compare"]

Progress = Callable[[str, int, int], None]


def compare(
    reference: Any,
    current: Any,
    *,
    schema: Any = None,
    columns: Sequence[str] | None = None,
    methods: Mapping[str, str] | Sequence[str] | None = None,
    rule: DecisionRule | str | None = None,
    multivariate: str | Sequence[str] | None = "pca_reconstruction",
    quality: bool | QualityThresholds = True,
    random_state: int = 0,
    n_jobs: int | None = None,
    progress: Progress | None = None,
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
        :class:`~watchkeeper.checks.QualityThresholds`.
    random_state
        Seed of every random choice (subsamples, permutations, chunks).
    n_jobs
        Threads for the per-column tests (default: the number of CPUs, at most 8).
    progress
        Called as ``progress(stage, done, total)`` while columns are tested.

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
    result = run_comparison(reference, current, config, schema=schema, progress=progress)
    return Report.from_comparison(result)
