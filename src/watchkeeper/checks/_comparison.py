"""The comparison engine: reference (profile or data) + current (profile or data) + settings
-> a :class:`~watchkeeper.checks.Comparison` of drift and data-quality results.

The engine is pure (no rendering, logging or alerting) and runs in named steps, each usable
on its own:

1. :func:`reference_side` — the reference as a profile plus, for raw data, its rows;
2. :func:`current_side` — the current data or profile, on the reference's bins and
   categories, and the columns that can be compared;
3. :func:`column_tests` — one drift test per column (threads when asked; results do not
   depend on them);
4. :func:`multivariate_tests` — methods over all compared columns together;
5. :func:`decide` — the decision rule over the whole family of tests (multiple-testing
   control), giving the column and multivariate verdicts;
6. :func:`quality_findings` — schema, per-column quality and duplicate-row findings;
7. :func:`run_comparison` — all of the above, plus the dataset verdict and plot numbers.

:func:`watchkeeper.compare` is this engine followed by :class:`watchkeeper.report.Report`
(rendering only). The monitor calls the engine on each window's stored profile.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper._extras import usable_cores
from watchkeeper._version import __version__
from watchkeeper.checks._comparison_result import Comparison, DatasetVerdict, MultivariateDrift
from watchkeeper.checks._drift import ColumnDrift, decide_drift, drift_tests, resolve_methods
from watchkeeper.checks._plot_data import plot_data
from watchkeeper.checks._quality import (
    QualityConfig,
    check_quality,
    duplicate_check,
    schema_checks,
)
from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.checks._rules import ColumnTest, DecisionRule, resolve_rule
from watchkeeper.checks._sides import CurrentSide, ReferenceSide
from watchkeeper.exceptions import InputError

__all__ = [
    "ComparisonConfig",
    "CurrentInput",
    "column_tests",
    "current_side",
    "decide",
    "multivariate_tests",
    "quality_findings",
    "reference_side",
    "run_comparison",
]

#: Roles whose columns are compared by default (ids, timestamps and ignored columns are not).
_COMPARED_ROLES = {"feature", "target", "prediction", "score", "sensitive"}
_TESTED_KINDS = {"numeric", "categorical", "boolean"}
#: Kinds tested one column at a time but left out of the dataset-level multivariate methods.
_UNSTRUCTURED_KINDS = {"text", "embedding"}
#: Rows per side given to multivariate methods (they subsample further if they need to).
_MULTIVARIATE_ROWS = 10_000
#: Words that mean "no multivariate method" (the command line's vocabulary too).
_NO_METHOD = {"", "none", "off", "false"}

Progress = Callable[[str, int, int], None]


def multivariate_names(multivariate: str | Sequence[str] | None) -> list[str]:
    """Multivariate method names from the user's value: a name, names, ``None`` or ``"none"``.

    Examples
    --------
    >>> multivariate_names("none"), multivariate_names(None), multivariate_names("mmd")
    ([], [], ['mmd'])
    """
    if multivariate is None:
        return []
    items = [multivariate] if isinstance(multivariate, str) else list(multivariate)
    return [str(m) for m in items if str(m).strip().lower() not in _NO_METHOD]


@dataclass(frozen=True)
class ComparisonConfig:
    """What a comparison computes (immutable; make a new one to change it).

    Parameters
    ----------
    columns
        Columns to compare; by default every numeric, categorical and boolean column whose
        role is feature, target, prediction, score or sensitive.
    methods
        Method per column kind, e.g. ``{"numeric": "ks", "categorical": "chi2"}``.
    rule
        Decision rule object or name (``"fdr"``, ``"threshold"``, ``"chunks"``).
    multivariate
        Multivariate method name(s), ``None`` or ``"none"``.
    quality
        Data-quality checks: ``True``, ``False`` or :class:`QualityConfig`.
    random_state
        Seed of every random choice.
    n_jobs
        Threads for the per-column tests (default: the cores this process may use, CPU
        affinity and container quota, at most 8). Results do not depend on it.
    plots
        Compute the numbers behind the report's per-column plots.
    contract
        Decide the rules of the schema's data contract on the current data (exactly on
        rows, as far as a profile allows on profiles) and list them with the quality
        findings; ``freshness`` rules need a time and are left to
        :func:`~watchkeeper.checks.check_contract` and the monitor.

    Examples
    --------
    >>> ComparisonConfig(multivariate="none").multivariate_methods
    []
    """

    columns: Sequence[str] | None = None
    methods: Mapping[str, str] | Sequence[str] | None = None
    rule: DecisionRule | str | None = None
    multivariate: str | Sequence[str] | None = "pca_reconstruction"
    quality: bool | QualityConfig = True
    random_state: int = 0
    n_jobs: int | None = None
    plots: bool = True
    contract: bool = True

    @property
    def multivariate_methods(self) -> list[str]:
        """The multivariate method names to run."""
        return multivariate_names(self.multivariate)


@dataclass
class CurrentInput:
    """The current side, ready for the tests: its profile (and rows), the columns that will
    be tested, the columns skipped (and why), and the schema validation found."""

    side: CurrentSide
    present: list[tuple[str, str]]
    skipped: list[dict[str, str]]
    missing_columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    type_mismatches: tuple[Any, ...]


# -- step 1: the reference -------------------------------------------------------------------


def reference_side(reference: Any, schema: Any = None) -> tuple[ReferenceSide, Any]:
    """The reference side and its schema from data, a :class:`~watchkeeper.data.Profile` or
    a saved profile's path (a given ``schema`` wins over the profile's own)."""
    from watchkeeper.data import Profile, Schema, is_profile_path

    if isinstance(schema, str | Path):
        schema = Schema.load(schema)
    if is_profile_path(reference):
        reference = Profile.load(reference)
    if isinstance(reference, Profile):
        return ReferenceSide.from_profile(reference), schema or reference.schema
    from watchkeeper.data import read_table

    table = read_table(reference)
    if schema is None:
        schema = Schema.infer(table)
    return ReferenceSide.from_data(table, schema), schema


# -- step 2: the current side ------------------------------------------------------------------


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
        if kind not in _TESTED_KINDS and kind not in _UNSTRUCTURED_KINDS:
            skipped.append({"name": name, "reason": f"{kind} columns are not tested for drift"})
        elif columns is None and role not in _COMPARED_ROLES:
            skipped.append({"name": name, "reason": f"role {role} is not compared by default"})
        else:
            chosen.append((name, kind))
    return chosen, skipped


def _profile_mismatches(profile: Any, schema: Any) -> tuple[Any, ...]:
    """Type mismatches as a profile counted them (values not readable as the column's kind)."""
    from watchkeeper.data import TypeMismatch

    out = []
    for spec in schema:
        col = profile.columns.get(spec.name)
        n_bad = int(getattr(col, "n_type_errors", 0) or 0)
        if col is not None and n_bad:
            examples = tuple(str(e) for e in getattr(col, "type_error_examples", ()))
            out.append(TypeMismatch(spec.name, str(spec.kind), "mixed", n_bad, examples))
    return tuple(out)


def current_side(
    current: Any, ref: ReferenceSide, schema: Any, columns: Sequence[str] | None = None
) -> CurrentInput:
    """Profile the current data on the reference's bins (or check that a current profile
    was made so) and choose the columns to test."""
    from watchkeeper.data import Profile, is_profile_path, read_table

    if is_profile_path(current):
        current = Profile.load(current)
    all_columns, skipped = _compared_columns(schema, columns)
    if isinstance(current, Profile):
        if current.n_rows == 0:
            raise InputError("the current profile has no rows; nothing to compare")
        side = CurrentSide.from_profile(current, ref)
        names = side.column_names
        missing = tuple(n for n in schema.names if n not in current.columns)
        extra = tuple(n for n in names if n not in schema)
        mismatches = _profile_mismatches(current, schema)
    else:
        table = read_table(current)
        if table.num_rows == 0:
            raise InputError("the current data has no rows; nothing to compare")
        check = schema.validate(table)
        side = CurrentSide.from_data(table, ref)
        names = side.column_names
        missing, extra, mismatches = (
            check.missing_columns,
            check.extra_columns,
            check.type_mismatches,
        )
    # A column whose every value has the wrong type cannot be tested; one with a few bad
    # values is tested on the rest, and the bad values are reported as a quality finding.
    n_values = {
        n: int(c.count + getattr(c, "n_type_errors", 0)) for n, c in side.profile.columns.items()
    }
    mismatched = {m.column for m in mismatches if m.n_bad >= n_values.get(m.column, 0)}
    present = [(n, k) for n, k in all_columns if n in names and n not in mismatched]
    return CurrentInput(side, present, skipped, missing, extra, mismatches)


# -- step 3: one test per column --------------------------------------------------------------


def column_tests(
    ref: ReferenceSide,
    cur: CurrentSide,
    present: Sequence[tuple[str, str]],
    methods: Mapping[str, str],
    rule: DecisionRule,
    *,
    random_state: int = 0,
    n_jobs: int = 1,
    plots: bool = True,
    progress: Progress | None = None,
) -> tuple[list[Any], dict[str, Any]]:
    """The drift test of every column (and its plot numbers), in column order."""
    total = len(present)

    def one(item: tuple[str, str]) -> tuple[Any, dict[str, Any] | None]:
        test = drift_tests(ref, cur, [item], methods, rule=rule, random_state=random_state)[0]
        plot = plot_data(item[0], item[1], ref, cur) if plots else None
        plot = plot or None  # no plot numbers for some kinds (embeddings)
        # The column's sorted copy is done with: dropping it keeps memory to a few columns
        # at a time instead of a second copy of the whole current frame.
        cur.release(item[0])
        return test, plot

    tests: list[Any] = []
    found_plots: dict[str, Any] = {}

    def collect(i: int, item: tuple[str, str], res: tuple[Any, dict[str, Any] | None]) -> None:
        tests.append(res[0])
        if res[1] is not None:
            found_plots[item[0]] = res[1]
        if progress:
            progress("columns", i + 1, total)

    if n_jobs > 1 and total > 1:
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            for i, (item, res) in enumerate(zip(present, pool.map(one, present), strict=True)):
                collect(i, item, res)
    else:
        for i, item in enumerate(present):
            collect(i, item, one(item))
    return tests, found_plots


# -- step 4: multivariate ----------------------------------------------------------------------


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


def multivariate_tests(
    names: Sequence[str],
    ref: ReferenceSide,
    cur: CurrentSide,
    columns: Sequence[tuple[str, str]],
    random_state: int,
) -> list[tuple[ColumnTest, Any]]:
    """One test per multivariate method over all compared columns together."""
    from watchkeeper.stats import get_multivariate_method

    rows = ref.rows_for_values
    cur_rows = cur.rows_for_values
    usable = [(n, k) for n, k in columns if k in _TESTED_KINDS]
    out: list[tuple[ColumnTest, Any]] = []
    for name in names:
        method = get_multivariate_method(name)
        floor = float(getattr(method, "effect_floor", 0.0))
        why = None
        if rows is None:
            why = "the reference profile keeps no row sample (sample_size=0)"
        elif cur_rows is None:
            why = "the current profile keeps no row sample (sample_size=0)"
        elif len(usable) < 2:
            why = "multivariate checks need at least two compared columns"
        if why is not None:
            out.append(
                (ColumnTest("dataset", name, "multivariate", floor, None, insufficient=why), method)
            )
            continue
        rng = np.random.default_rng(random_state)
        x_ref = _encode_rows(rows, usable, ref, rng)
        x_cur = _encode_rows(cur_rows, usable, ref, rng)
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


# -- step 5: decisions -------------------------------------------------------------------------


def decide(
    tests: Sequence[Any],
    mv: Sequence[tuple[ColumnTest, Any]],
    rule: DecisionRule,
    columns: Sequence[str],
) -> tuple[tuple[ColumnDrift, ...], tuple[MultivariateDrift, ...]]:
    """Decide the column and multivariate tests as one family (the rule's error control
    covers all of them); columns come back most severe first."""
    column_results, mv_decisions = decide_drift(tests, rule, [t for t, _ in mv])
    multivariate = tuple(
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
            columns=tuple(columns),
            details={} if t.result is None else dict(t.result.details),
        )
        for (t, _), d in zip(mv, mv_decisions, strict=True)
    )
    return tuple(sorted(column_results, key=_severity_key)), multivariate


def _severity_key(c: ColumnDrift) -> tuple[int, float, str]:
    return (-c.status.severity, -(c.effect_size or 0.0), c.name)


# -- step 6: quality ---------------------------------------------------------------------------


def duplicate_rows(table: Any) -> int:
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
                if pa.types.is_nested(arr.type):  # e.g. embedding vectors: their text form
                    arr = pa.array([None if v is None else repr(v) for v in arr.to_pylist()])
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


def _duplicates(cur: CurrentSide, schema: Any) -> tuple[int, int] | None:
    """``(rows, duplicated rows)`` of the current side: counted on every row, or estimated
    from a profile's row sample (identical rows enter the sample together, so the share in
    the sample estimates the share in the data; exact when the sample holds every row).
    ``None`` when a profile keeps no sample."""
    rows = cur.rows_for_values
    if rows is None:
        return None
    names = [n for n in schema.names if n in rows.column_names]
    dup = duplicate_rows(rows.select(names))
    if cur.table is not None or rows.num_rows >= cur.n_rows:
        return cur.n_rows, dup
    return cur.n_rows, round(dup * cur.n_rows / max(rows.num_rows, 1))


def contract_findings(contract: Any, current: Any) -> list[CheckResult]:
    """The contract's rules (but ``freshness``, which needs a time) on the current rows, or
    on its profile when there are no rows."""
    from watchkeeper.checks._contract import check_contract
    from watchkeeper.data import Contract

    rules = Contract(tuple(r for r in contract.rules if r.kind != "freshness"))
    if not rules.rules:
        return []
    data = current.table if current.table is not None else current.profile
    return check_contract(rules, data)


def quality_findings(
    ref: ReferenceSide,
    current: CurrentInput,
    schema: Any,
    thresholds: QualityConfig,
) -> list[CheckResult]:
    """Schema findings, per-column quality findings and duplicated rows, most severe first."""
    findings = schema_checks(
        current.missing_columns, current.extra_columns, current.type_mismatches
    )
    typed = {m.column for m in current.type_mismatches}
    findings += [
        q
        for q in check_quality(ref.profile, current.side.profile, current.present, thresholds)
        if not (q.check == "quality.type_errors" and q.subject in typed)  # said above
    ]
    counted = _duplicates(current.side, schema)
    if counted is not None:
        dup = duplicate_check(counted[0], counted[1], None, thresholds)
        if dup is not None:
            findings.append(dup)
    findings.sort(key=lambda q: (-q.status.severity, q.check, q.subject))
    return findings


# -- the whole comparison ----------------------------------------------------------------------


def run_comparison(
    reference: Any,
    current: Any,
    config: ComparisonConfig | None = None,
    *,
    schema: Any = None,
    progress: Progress | None = None,
) -> Comparison:
    """Compare current data (or its profile) with a reference (data or profile).

    Parameters
    ----------
    reference
        Reference data (any form :func:`~watchkeeper.data.read_table` reads) or a
        :class:`~watchkeeper.data.Profile` (object or ``.json`` path).
    current
        Current data, or a profile made against the reference (e.g. the merge of shard or
        window profiles: ``Profile.from_data(part, reference.schema, reference=reference)``).
        Binned and categorical tests and quality checks use its counts (exact for every
        row); exact tests such as KS use its row sample, which holds every row up to the
        profile's ``sample_size`` (the verdicts are then those of the raw rows).
    config
        What to compute (:class:`ComparisonConfig`; defaults as :func:`watchkeeper.compare`).
    schema
        A :class:`~watchkeeper.data.Schema` (or JSON path); inferred from reference data, or
        the reference profile's own.
    progress
        Called as ``progress(stage, done, total)`` while columns are tested.

    Returns
    -------
    Comparison

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from watchkeeper.data import Profile
    >>> rng = np.random.default_rng(0)
    >>> ref = Profile.from_data(pd.DataFrame({"x": rng.normal(size=2000)}))
    >>> parts = [Profile.from_data(pd.DataFrame({"x": rng.normal(0.5, 1, 1000)}),
    ...                            reference=ref) for _ in range(2)]
    >>> result = run_comparison(ref, parts[0].merge(parts[1]), ComparisonConfig(multivariate=None))
    >>> result.drifted_columns, result.column("x").n_current
    (['x'], 2000)
    """
    config = config or ComparisonConfig()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    rule = resolve_rule(config.rule)
    methods = resolve_methods(config.methods)
    mv_names = config.multivariate_methods

    ref, schema = reference_side(reference, schema)
    timings["reference"] = time.perf_counter() - started

    t0 = time.perf_counter()
    cur_in = current_side(current, ref, schema, config.columns)
    cur, present = cur_in.side, cur_in.present
    timings["current_profile"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_jobs = config.n_jobs or min(8, usable_cores())
    tests, plots = column_tests(
        ref,
        cur,
        present,
        methods,
        rule,
        random_state=config.random_state,
        n_jobs=n_jobs,
        plots=config.plots,
        progress=progress,
    )
    timings["univariate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    mv = multivariate_tests(mv_names, ref, cur, present, config.random_state) if mv_names else []
    timings["multivariate"] = time.perf_counter() - t0

    ordered, multivariate = decide(tests, mv, rule, [n for n, _ in present])

    t0 = time.perf_counter()
    findings: list[CheckResult] = []
    if config.quality is not False:
        thresholds = (
            config.quality if isinstance(config.quality, QualityConfig) else QualityConfig()
        )
        findings = quality_findings(ref, cur_in, schema, thresholds)
    if config.contract and schema.contract is not None:
        findings += contract_findings(schema.contract, cur)
    timings["quality"] = time.perf_counter() - t0

    tested = [c for c in ordered if c.status is not Status.INSUFFICIENT_DATA]
    n_drifted = sum(c.drifted for c in ordered)
    mv_drifted = any(m.drifted for m in multivariate)
    verdict = DatasetVerdict(
        drifted=n_drifted > 0 or mv_drifted,
        n_columns=len(ordered),
        n_tested=len(tested),
        n_drifted=n_drifted,
        n_insufficient=len(ordered) - len(tested),
        share_drifted=(n_drifted / len(tested)) if tested else 0.0,
        multivariate_drifted=mv_drifted,
        rule=rule.name,
        rule_description=rule.describe(),
    )
    plots = {c.name: plots[c.name] for c in ordered if c.name in plots}
    timings["total"] = time.perf_counter() - started
    meta = {
        "watchkeeper_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "n_reference_rows": ref.n_rows,
        "n_current_rows": cur.n_rows,
        "reference": "profile" if ref.table is None else "data",
        "current": "profile" if cur.table is None else "data",
        "methods": dict(methods),
        "multivariate_methods": mv_names,
        "random_state": config.random_state,
        "skipped_columns": cur_in.skipped,
        "timings_seconds": {k: round(v, 4) for k, v in timings.items()},
    }
    return Comparison(
        columns=ordered,
        dataset=verdict,
        multivariate=multivariate,
        quality=tuple(findings),
        plots=plots,
        meta=meta,
    )
