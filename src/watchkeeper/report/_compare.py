"""``compare(reference, current)``: the drift and data-quality comparison users call first."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper._version import __version__
from watchkeeper.checks._drift import ColumnDrift, decide_drift, drift_tests, resolve_methods
from watchkeeper.checks._quality import (
    QualityThresholds,
    duplicate_check,
    quality_checks,
    schema_checks,
)
from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.checks._rules import ColumnTest, DecisionRule, resolve_rule
from watchkeeper.checks._sides import CurrentSide, ReferenceSide
from watchkeeper.exceptions import InputError
from watchkeeper.report._report import DatasetVerdict, MultivariateDrift, Report

__all__ = ["compare"]

#: Roles whose columns are compared by default (ids, timestamps and ignored columns are not).
_COMPARED_ROLES = {"feature", "target", "prediction", "score", "sensitive"}
_TESTED_KINDS = {"numeric", "categorical", "boolean"}
#: Rows per side given to multivariate methods (they subsample further if they need to).
_MULTIVARIATE_ROWS = 10_000

Progress = Callable[[str, int, int], None]


def _load_reference(reference: Any, schema: Any) -> tuple[ReferenceSide, Any]:
    from watchkeeper.data import Profile, Schema

    if isinstance(schema, str | Path):
        schema = Schema.load(schema)
    if isinstance(reference, str | Path) and str(reference).endswith(".json"):
        reference = Profile.load(reference)
    if isinstance(reference, Profile):
        side = ReferenceSide.from_profile(reference)
        return side, schema or reference.schema
    from watchkeeper.data import read_table

    table = read_table(reference)
    if schema is None:
        schema = Schema.infer(table)
    return ReferenceSide.from_data(table, schema), schema


def _compared_columns(
    schema: Any, columns: Sequence[str] | None
) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    chosen: list[tuple[str, str]] = []
    skipped: list[dict[str, str]] = []
    names = list(columns) if columns is not None else list(schema.names)
    for name in names:
        if name not in schema:
            raise InputError(
                f"column {name!r} is not in the reference schema; known columns: "
                f"{', '.join(schema.names)}"
            )
        spec = schema[name]
        kind, role = str(spec.kind), str(spec.role)
        if kind not in _TESTED_KINDS:
            skipped.append({"name": name, "reason": f"{kind} columns are not tested for drift"})
        elif columns is None and role not in _COMPARED_ROLES:
            skipped.append({"name": name, "reason": f"role {role} is not compared by default"})
        else:
            chosen.append((name, kind))
    return chosen, skipped


def _duplicate_rows(table: Any) -> int:
    """Number of rows identical to an earlier row (a 64-bit hash of all columns; the chance
    that two different rows collide among n rows is about n^2 / 2^65)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    if n < 2 or table.num_columns == 0:
        return 0
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for col in table.columns:
            arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
                # +0.0 folds -0.0 into 0.0; NaN stands for null (all NaNs hash alike).
                v = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64) + 0.0
                bits = v.view(np.uint64)
            else:
                codes = pc.dictionary_encode(arr.cast(pa.string())).indices
                bits = np.asarray(codes.fill_null(-1).to_numpy(zero_copy_only=False))
                bits = bits.astype(np.int64).view(np.uint64)
            # One multiply-xor step per column (a 64-bit polynomial hash); mixed at the end.
            h = (h * np.uint64(0x100000001B3)) ^ bits
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
    h.sort()
    return int(np.count_nonzero(h[1:] == h[:-1]))


def _encode_rows(
    rows: Any, columns: Sequence[tuple[str, str]], ref: ReferenceSide, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Numeric matrix for multivariate methods: numeric columns imputed with the reference
    median, categorical columns one-hot over the reference's categories (+ other)."""
    from watchkeeper.data import column_to_numpy

    n = rows.num_rows
    take = (
        np.sort(rng.choice(n, size=_MULTIVARIATE_ROWS, replace=False))
        if n > _MULTIVARIATE_ROWS
        else None
    )
    sub = rows.take(take) if take is not None else rows
    parts: list[NDArray[np.float64]] = []
    for name, kind in columns:
        if kind == "numeric":
            col = ref.profile.numeric(name)
            v = np.asarray(column_to_numpy(sub, name, "numeric"), dtype=np.float64).copy()
            med = float(col.quantile(0.5)) if int(col.count) else 0.0
            v[~np.isfinite(v)] = med
            parts.append(v[:, None])
        else:
            values = np.asarray(column_to_numpy(sub, name, "categorical"), dtype=object)
            cats = list(ref.profile.categorical(name).categories)[:20]
            onehot = np.zeros((sub.num_rows, len(cats) + 1), dtype=np.float64)
            index = {c: i for i, c in enumerate(cats)}
            for r, val in enumerate(values):
                onehot[r, len(cats) if val is None else index.get(str(val), len(cats))] = 1.0
            parts.append(onehot)
    return np.hstack(parts) if parts else np.empty((sub.num_rows, 0))


def _multivariate_tests(
    names: Sequence[str],
    ref: ReferenceSide,
    cur: CurrentSide,
    columns: Sequence[tuple[str, str]],
    random_state: int,
) -> list[tuple[ColumnTest, Any]]:
    from watchkeeper.stats import get_multivariate_method

    rows = ref.rows_for_values
    usable = [(n, k) for n, k in columns if k in _TESTED_KINDS]
    out: list[tuple[ColumnTest, Any]] = []
    for name in names:
        method = get_multivariate_method(name)
        floor = float(getattr(method, "effect_floor", 0.0))
        if rows is None or len(usable) < 2:
            why = (
                "the reference profile keeps no row sample (sample_size=0)"
                if rows is None
                else "multivariate checks need at least two compared columns"
            )
            out.append(
                (ColumnTest("dataset", name, "multivariate", floor, None, insufficient=why), method)
            )
            continue
        rng = np.random.default_rng(random_state)
        x_ref = _encode_rows(rows, usable, ref, rng)
        x_cur = _encode_rows(cur.table, usable, ref, rng)
        try:
            result = method(x_ref, x_cur, random_state=random_state)
        except InputError as exc:
            out.append(
                (
                    ColumnTest("dataset", name, "multivariate", floor, None, insufficient=str(exc)),
                    method,
                )
            )
            continue
        out.append((ColumnTest("dataset", name, "multivariate", floor, result), method))
    return out


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
        Current data, in any of the data forms above.
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
        Multivariate method name(s) run on all compared columns together, or ``None``. Their
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
    started = time.perf_counter()
    timings: dict[str, float] = {}
    rule_obj = resolve_rule(rule)
    chosen_methods = resolve_methods(methods)
    if isinstance(multivariate, str):
        mv_names: list[str] = [multivariate]
    else:
        mv_names = list(multivariate or [])

    ref, schema = _load_reference(reference, schema)
    timings["reference"] = time.perf_counter() - started

    t0 = time.perf_counter()
    from watchkeeper.data import read_table

    cur_table = read_table(current)
    if cur_table.num_rows == 0:
        raise InputError("the current data has no rows; nothing to compare")
    check = schema.validate(cur_table)
    all_columns, skipped = _compared_columns(schema, columns)
    # A column whose every value has the wrong type cannot be tested; one with a few bad
    # values is tested on the rest, and the bad values are reported as a quality finding.
    mismatched = {
        m.column
        for m in check.type_mismatches
        if m.n_bad >= cur_table.num_rows - cur_table.column(m.column).null_count
    }
    present = [
        (n, k) for n, k in all_columns if n in cur_table.column_names and n not in mismatched
    ]
    cur = CurrentSide.from_data(cur_table, ref)
    timings["current_profile"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_jobs = n_jobs or min(8, os.cpu_count() or 1)
    total = len(present)

    from watchkeeper.report._plots import plot_data

    def one(item: tuple[str, str]) -> tuple[Any, dict[str, Any]]:
        test = drift_tests(
            ref, cur, [item], chosen_methods, rule=rule_obj, random_state=random_state
        )[0]
        plot = plot_data(item[0], item[1], ref, cur)
        # The column's sorted copy is done with: dropping it keeps memory to a few columns
        # at a time instead of a second copy of the whole current frame.
        cur.release(item[0])
        return test, plot

    tests: list[Any] = []
    plots: dict[str, Any] = {}

    def collect(i: int, item: tuple[str, str], res: tuple[Any, dict[str, Any]]) -> None:
        tests.append(res[0])
        plots[item[0]] = res[1]
        if progress:
            progress("columns", i + 1, total)

    if n_jobs > 1 and total > 1:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            for i, (item, res) in enumerate(zip(present, pool.map(one, present), strict=True)):
                collect(i, item, res)
    else:
        for i, item in enumerate(present):
            collect(i, item, one(item))
    timings["univariate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    mv = _multivariate_tests(mv_names, ref, cur, present, random_state) if mv_names else []
    timings["multivariate"] = time.perf_counter() - t0

    column_results, mv_decisions = decide_drift(tests, rule_obj, [t for t, _ in mv])
    multivariate_results = tuple(
        MultivariateDrift(
            method=t.method,
            statistic=None if t.result is None else t.result.statistic,
            p_value=None if t.result is None else t.result.p_value,
            adjusted_p_value=d.adjusted_p_value,
            effect_size=None if t.result is None else t.result.effect_size,
            threshold=d.threshold,
            status=d.status,
            drifted=d.drifted,
            reason=d.reason,
            n_reference=0 if t.result is None else t.result.n_reference,
            n_current=0 if t.result is None else t.result.n_current,
            columns=tuple(n for n, _ in present),
            details={} if t.result is None else dict(t.result.details),
        )
        for (t, _), d in zip(mv, mv_decisions, strict=True)
    )

    t0 = time.perf_counter()
    findings: list[CheckResult] = []
    if quality is not False:
        thresholds = quality if isinstance(quality, QualityThresholds) else QualityThresholds()
        findings += schema_checks(check.missing_columns, check.extra_columns, check.type_mismatches)
        typed = {m.column for m in check.type_mismatches}
        findings += [
            q
            for q in quality_checks(ref.profile, cur.profile, present, thresholds)
            if not (q.check == "quality.type_errors" and q.subject in typed)  # said above
        ]
        cur_cols = [n for n in schema.names if n in cur_table.column_names]
        dup = duplicate_check(
            cur_table.num_rows, _duplicate_rows(cur_table.select(cur_cols)), None, thresholds
        )
        if dup is not None:
            findings.append(dup)
    findings.sort(key=lambda q: (-q.status.severity, q.check, q.subject))
    timings["quality"] = time.perf_counter() - t0

    ordered = tuple(sorted(column_results, key=_severity_key))
    tested = [c for c in ordered if c.status is not Status.INSUFFICIENT_DATA]
    n_drifted = sum(c.drifted for c in ordered)
    mv_drifted = any(m.drifted for m in multivariate_results)
    verdict = DatasetVerdict(
        drifted=n_drifted > 0 or mv_drifted,
        n_columns=len(ordered),
        n_tested=len(tested),
        n_drifted=n_drifted,
        n_insufficient=len(ordered) - len(tested),
        share_drifted=(n_drifted / len(tested)) if tested else 0.0,
        multivariate_drifted=mv_drifted,
        rule=rule_obj.name,
        rule_description=rule_obj.describe(),
    )
    plots = {c.name: plots[c.name] for c in ordered}
    timings["total"] = time.perf_counter() - started
    meta = {
        "watchkeeper_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "n_reference_rows": ref.n_rows,
        "n_current_rows": cur_table.num_rows,
        "reference": "profile" if ref.table is None else "data",
        "methods": dict(chosen_methods),
        "multivariate_methods": mv_names,
        "random_state": random_state,
        "skipped_columns": skipped,
        "timings_seconds": {k: round(v, 4) for k, v in timings.items()},
    }
    return Report(
        columns=ordered,
        dataset=verdict,
        multivariate=multivariate_results,
        quality=tuple(findings),
        plots=plots,
        meta=meta,
    )


def _severity_key(c: ColumnDrift) -> tuple[int, float, str]:
    return (-c.status.severity, -(c.effect_size or 0.0), c.name)
