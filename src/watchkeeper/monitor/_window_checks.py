"""The checks of one window: drift and quality, contract rules, prediction and score drift,
realised performance, label-free estimates and serving health.

Drift and quality run the comparison engine of :mod:`watchkeeper.checks`
(:func:`~watchkeeper.checks.run_comparison`, the engine behind :func:`watchkeeper.compare`:
same methods, same decision rules) on the window's profile.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.checks import (
    CheckResult,
    ComparisonConfig,
    PerformanceRule,
    RankingConfig,
    Status,
    check_contract,
    check_estimate_consistency,
    check_ranking_performance,
    check_realised_performance,
    run_comparison,
)
from watchkeeper.exceptions import InputError
from watchkeeper.monitor._config import MonitorConfig
from watchkeeper.monitor._frames import Rows, label_key
from watchkeeper.stats import wilson_interval

logger = logging.getLogger("watchkeeper.monitor")

__all__ = [
    "Baseline",
    "drift_results",
    "flag_count",
    "flag_results",
    "outlier_counts",
    "outlier_results",
    "performance_results",
    "ranked_queries",
    "ranking_results",
    "serving_results",
    "window_profile",
]


@dataclass
class Baseline:
    """What a version's windows are compared with.

    ``profile`` is the registered reference profile (features, maybe target and
    predictions); ``predictions`` is a profile of ``prediction`` and ``score.<class>`` columns
    of the baseline rows (``None`` when the reference profile already has a prediction
    column, or there are too few baseline rows); ``baseline_ids`` are the ids of the baseline
    rows (windows made of them are compared with themselves, so they get no verdict).
    """

    task: str
    classes: list[str] | None
    profile: Any
    predictions: Any
    n_baseline: int
    baseline_end_us: int | None
    reference_frame: Any = None
    performance: Mapping[tuple[str, str], Any] | None = None
    estimators: Any = None  # FittedEstimators
    #: (flagged rows, rows) of the reference period (the baseline rows), for the flag rate
    flags: tuple[int, int] | None = None
    #: digest of ``profile`` (what partial profiles built at log time were binned on)
    reference_key: str | None = None
    #: the version's outlier detector (:class:`~watchkeeper.checks.OutlierDetector`), if any
    outliers: Any = None
    #: digest of ``predictions`` (what log summaries binned predictions on)
    predictions_key: str | None = None


def _report_results(report: Any, *, subject_prefix: str = "") -> list[CheckResult]:
    out = [
        CheckResult(
            check=f"drift.{c.method}",
            subject=subject_prefix + c.name,
            status=c.status,
            reason=c.reason,
            value=c.effect_size,
            threshold=c.threshold,
            p_value=c.adjusted_p_value if c.adjusted_p_value is not None else c.p_value,
            rule=c.rule,
            details={
                "statistic": c.statistic,
                "p_value": c.p_value,
                "adjusted_p_value": c.adjusted_p_value,
                "n_reference": c.n_reference,
                "n_current": c.n_current,
                "reference_source": c.reference_source,
            },
        )
        for c in report.columns
    ]
    out += [
        CheckResult(
            check=f"drift.{m.method}",
            subject="dataset",
            status=m.status,
            reason=m.reason,
            value=m.effect_size,
            threshold=m.threshold,
            p_value=m.adjusted_p_value if m.adjusted_p_value is not None else m.p_value,
            rule=report.dataset.rule,
            details={"columns": list(m.columns)},
        )
        for m in report.multivariate
    ]
    return out + list(report.quality)


def _compare(
    reference: Any, current: Any, config: MonitorConfig, *, schema: Any, **options: Any
) -> Any:
    from threadpoolctl import threadpool_limits

    settings = ComparisonConfig(
        rule=config.drift_rule,
        random_state=config.random_state,
        n_jobs=1,
        plots=False,
        contract=False,  # decided on the window profile with its end time (drift_results)
        **options,
    )
    with threadpool_limits(1):
        return run_comparison(reference, current, settings, schema=schema)


def _insufficient(check: str, subjects: Sequence[str], reason: str) -> list[CheckResult]:
    return [CheckResult(check, s, Status.INSUFFICIENT_DATA, reason) for s in subjects]


def window_profile(table: Any, reference: Any, config: MonitorConfig) -> Any:
    """The window's profile against ``reference`` (its bins and categories): counts,
    moments, sketches and a row sample of at most ``config.window_sample`` rows. Profiles of
    parts of a window (shards, workers, hours) merge into the window's profile."""
    from watchkeeper.data import Profile

    present = [n for n in reference.schema.names if n in table.column_names]
    return Profile.from_data(
        table.select(present),
        reference.schema.select(present),
        reference=reference,
        sample_size=config.window_sample,
        random_state=config.random_state,
        n_jobs=1,
    )


def drift_results(
    rows: Rows,
    base: Baseline,
    config: MonitorConfig,
    profiles: dict[str, Any] | None = None,
    features_profile: Any = None,
    as_of: Any = None,
) -> list[CheckResult]:
    """Feature drift and quality against the reference, prediction and score drift against
    the prediction baseline, each checked on the window's profile (stored in ``profiles``
    under ``"features"`` and ``"predictions"`` when given). ``features_profile`` is the
    window's feature profile when it exists already (merged from the partial profiles built
    as its records were logged): its rows' features are then not needed. The rules of the
    reference schema's contract on the window's columns are decided on the same profile
    (``freshness`` at ``as_of``, the window's end), whatever the number of rows."""
    out: list[CheckResult] = []
    profile = base.profile
    found: dict[str, Any] = {} if profiles is None else profiles
    if profile is not None:
        from watchkeeper.data import Role

        names = [s.name for s in profile.schema if s.role in (Role.FEATURE, Role.SENSITIVE)]
        if features_profile is not None:
            names = [n for n in names if n in features_profile.columns]
            features = features_profile
            found["features"] = features_profile
        else:
            features = rows.features(names)
            if features.num_columns:
                found["features"] = window_profile(features, profile, config)
        if rows.n_rows < config.min_rows:
            out += _insufficient(
                "drift.window",
                ["dataset"],
                f"only {rows.n_rows:,} rows in the window; at least {config.min_rows:,} are "
                "needed for drift and quality verdicts",
            )
        else:
            report = _compare(
                profile,
                found.get("features", features),
                config,
                schema=profile.schema.select(list(names)),
                multivariate=config.multivariate,
                quality=config.quality,
            )
            out += _report_results(report)
        out += contract_window_results(profile, found.get("features"), as_of)
    out += _prediction_drift(rows, base, config, found)
    return out


def contract_window_results(reference: Any, window: Any, as_of: Any = None) -> list[CheckResult]:
    """The rules of ``reference.schema``'s contract that read only the window profile's
    columns (and the dataset rules), decided on the window's profile."""
    contract = reference.schema.contract
    if contract is None or window is None or not contract.rules:
        return []
    return check_contract(contract.select(list(window.columns)), window, as_of=as_of)


def prediction_table(rows: Rows, base: Baseline) -> Any:
    """``prediction`` and ``score.<class>`` columns of ``rows`` as an Arrow table (the
    columns the log's partial profiler summarises, see
    :func:`~watchkeeper.logstore.prediction_columns`)."""
    import pyarrow as pa

    from watchkeeper.logstore import prediction_columns

    column = rows.table.column("prediction")
    numeric = None
    if base.task not in ("classification", "ranking") and (
        pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    ):
        numeric = column
    if base.task == "ranking":
        predictions = rows.values("prediction", np.arange(len(rows), dtype=np.intp))
    else:
        predictions = [] if numeric is not None else rows.prediction
    scores = rows.scores() if base.classes else None
    return prediction_columns(predictions, scores, base.task, base.classes, numeric)


def prediction_schema(table: Any, task: str) -> Any:
    """Schema of a prediction table: categorical predictions for classifiers."""
    from watchkeeper.data import Schema

    categorical = task in ("classification", "ranking")
    kinds = {"prediction": "categorical" if categorical else "numeric"}
    roles = {n: ("prediction" if n == "prediction" else "score") for n in table.column_names}
    return Schema.infer(table, roles=roles, kinds=kinds)


def last_ts_us(rows: Rows) -> int:
    """Time (µs) of the window's last row."""
    if rows.summary is not None:
        return round(float(rows.summary.ts_max) * 1e6)
    return int(rows.ts_us[-1])


def _prediction_drift(
    rows: Rows, base: Baseline, config: MonitorConfig, profiles: dict[str, Any]
) -> list[CheckResult]:
    if base.predictions is None:
        return _insufficient(
            "drift.prediction",
            ["prediction"],
            f"the prediction baseline has only {base.n_baseline:,} rows of the "
            f"{config.baseline_rows:,} needed",
        )
    if base.baseline_end_us is not None and last_ts_us(rows) < base.baseline_end_us:
        return _insufficient(
            "drift.prediction",
            ["prediction"],
            "this window is part of the prediction baseline; later windows are compared with it",
        )
    if rows.summary is not None:  # profiled as the records were logged
        profiles["predictions"] = rows.summary.predictions
        present = [n for n in base.predictions.schema.names if n in profiles["predictions"].columns]
    else:
        current = prediction_table(rows, base)
        present = [n for n in current.column_names if n in base.predictions.schema]
        profiles["predictions"] = window_profile(current.select(present), base.predictions, config)
    report = _compare(
        base.predictions,
        profiles["predictions"],
        config,
        schema=base.predictions.schema.select(present),
        multivariate=None,
        quality=False,
    )
    return _report_results(report)


def performance_results(
    rows: Rows, base: Baseline, rule: PerformanceRule, ranking: RankingConfig | None = None
) -> list[CheckResult]:
    """Realised performance on the window's labelled rows (ranking quality, with
    ``ranking`` or its defaults, when the model ranks)."""
    if base.task == "ranking":
        return ranking_results(rows, base, ranking or RankingConfig())
    keep = rows.has_label
    picked = np.flatnonzero(keep)
    y = rows.column("label", picked)
    pred = rows.column("prediction", picked)
    scores = None
    if base.task == "classification" and base.classes and y:
        scores = rows.score_matrix(base.classes, keep)
    return check_realised_performance(
        y,
        pred,
        task="classification" if base.task == "classification" else "regression",
        scores=scores,
        classes=base.classes if scores is not None else None,
        reference=base.performance,
        rule=rule,
    )


def _relevant(label: Any) -> Any:
    """A query's label as the ranking metrics take it: a list of item ids or a mapping item
    -> grade (a number >= 0); a single item id is a list of one. ``None`` for anything else
    (e.g. a label logged before the model was declared a ranking model)."""
    if isinstance(label, dict):
        grades_ok = all(
            isinstance(g, int | float) and not isinstance(g, bool) and 0 <= g < float("inf")
            for g in label.values()
        )
        return label if grades_ok else None
    if isinstance(label, list):
        return label if _distinct(label) else None
    if isinstance(label, str | int | float) and not isinstance(label, bool):
        return [label]
    return None


def _distinct(items: list[Any]) -> bool:
    keys = [label_key(i) for i in items]
    return len(set(keys)) == len(keys)


def ranked_queries(
    rows: Rows, picked: NDArray[np.intp]
) -> tuple[list[Any], list[Any], NDArray[np.intp]]:
    """The ranked lists and labels of the labelled rows ``picked`` that can be scored, and
    their positions in ``picked`` (left out: a prediction that is not a list of distinct
    items, or a label that is neither item ids nor item -> relevance)."""
    preds = rows.values("prediction", picked)
    labels = [_relevant(y) for y in rows.values("label", picked)]
    keep = [
        i for i, (p, y) in enumerate(zip(preds, labels, strict=True))
        if isinstance(p, list) and y is not None and _distinct(p)
    ]  # fmt: skip
    return [preds[i] for i in keep], [labels[i] for i in keep], np.asarray(keep, dtype=np.intp)


def ranking_results(rows: Rows, base: Baseline, config: RankingConfig) -> list[CheckResult]:
    """Realised ranking quality (nDCG@k, MAP@k, MRR, recall@k with intervals over queries)
    on the window's labelled queries: one logged record per query, its prediction the ranked
    list of item ids and its label the relevant items (a list, one item id, or a mapping
    item -> graded relevance). Records whose prediction is not a list or whose label is none
    of those are left out and counted (``details["n_unusable"]``, see
    :func:`ranked_queries`)."""
    picked = np.flatnonzero(rows.has_label)
    ranked, relevant, kept = ranked_queries(rows, picked)
    unusable = len(picked) - len(kept)
    try:
        found = check_ranking_performance(
            ranked, relevant, reference=base.performance, config=config
        )
    except InputError as exc:
        return [
            CheckResult(
                "performance.ranking",
                "model",
                Status.ERROR,
                f"the window's ranked lists or labels cannot be scored: {exc}",
                details={"n_labels": len(picked), "n_unusable": unusable},
                rule="performance",
            )
        ]
    if not unusable:
        return found
    return [dataclasses.replace(r, details={**r.details, "n_unusable": unusable}) for r in found]


def flag_count(rows: Rows) -> int:
    """Rows of the window that users flagged (their latest flag is true)."""
    import pyarrow.compute as pc

    flag = rows.table.column("flag")
    return int(pc.sum(pc.fill_null(flag.cast("bool"), False)).as_py() or 0)


def flag_results(rows: Rows, base: Baseline, config: MonitorConfig) -> list[CheckResult]:
    """The window's user-flag rate against the version's reference period (its baseline
    rows), decided by an exact test that carries the reference's own uncertainty."""
    from watchkeeper.checks import check_flag_rate

    flags = flag_count(rows)
    ref_flags, ref_rows = base.flags if base.flags is not None else (None, 0)
    return [
        check_flag_rate(
            flags,
            rows.n_rows,
            ref_flags,
            ref_rows,
            alpha=config.flag_alpha,
            min_rows=config.min_rows,
        )
    ]


def outlier_counts(rows: Rows) -> tuple[int, int]:
    """(flagged, scored) rows of the window: the outlier flags the gateway logged."""
    import pyarrow.compute as pc

    from watchkeeper.checks import OUTLIER_FLAG_KEY

    if OUTLIER_FLAG_KEY not in rows.table.column_names:
        return 0, 0
    flag = rows.table.column(OUTLIER_FLAG_KEY)
    if flag.type != "bool":  # a column whose values were kept as JSON text
        flag = pc.equal(pc.cast(flag, "string"), "true")
    scored = len(flag) - flag.null_count
    flagged = int(pc.sum(pc.fill_null(flag, False)).as_py() or 0)
    return flagged, scored


def outlier_results(rows: Rows, base: Baseline, config: MonitorConfig) -> list[CheckResult]:
    """The window's share of records flagged by its version's outlier detector against the
    detector's calibrated rate (none when the version has no detector)."""
    from watchkeeper.checks import check_outlier_rate

    detector = base.outliers
    if detector is None:
        return []
    flagged, scored = outlier_counts(rows)
    return [
        check_outlier_rate(
            flagged,
            scored,
            detector.n_above_,
            detector.n_calibration_,
            rate=float(detector.rate),
            alpha=config.outlier_alpha,
            min_rows=config.min_rows,
        )
    ]


def serving_results(rows: Rows, seconds: float, config: MonitorConfig) -> list[CheckResult]:
    """Latency p50/p99, error rate and throughput of the window (a summarised window's
    latency percentiles come from its log-bucket histogram: within 0.5 %)."""
    n = rows.n_rows
    if rows.summary is not None:
        errors = rows.summary.errors
        p50, p99 = rows.summary.latency_quantiles([50, 99])
    else:
        import pyarrow.compute as pc

        latency = np.asarray(rows.table.column("latency_ms").to_numpy(zero_copy_only=False), float)
        status = rows.table.column("status")
        errors = n - int(pc.sum(pc.equal(status, "ok")).as_py() or 0)
        p50, p99 = (float(v) for v in np.percentile(latency, [50, 99]))
    few = n < config.min_rows
    why_few = f"only {n:,} rows; at least {config.min_rows:,} are needed for a verdict"
    limit = config.max_latency_p99_ms
    if few:
        p99_status, p99_reason = Status.INSUFFICIENT_DATA, why_few
    elif limit is not None and p99 > limit:
        p99_status, p99_reason = Status.ALERT, f"p99 latency {p99:.4g} ms exceeds {limit:g} ms"
    else:
        p99_status = Status.OK
        p99_reason = f"p99 latency {p99:.4g} ms" + ("" if limit is None else f" (limit {limit:g})")
    lo, hi = wilson_interval(errors, n)
    rate = errors / n
    cap = config.max_error_rate
    if few:
        err_status, err_reason = Status.INSUFFICIENT_DATA, why_few
    elif lo > cap:
        err_status = Status.ALERT
        err_reason = f"error rate {rate:.2%} (95% CI {lo:.2%} to {hi:.2%}) is above {cap:.2%}"
    elif rate > cap:
        err_status = Status.WARN
        err_reason = f"error rate {rate:.2%} is above {cap:.2%}, not yet significantly"
    else:
        err_status, err_reason = Status.OK, f"error rate {rate:.2%} ({errors:,} of {n:,} rows)"
    return [
        CheckResult(
            "serving.latency_p50",
            "model",
            Status.OK if not few else Status.INSUFFICIENT_DATA,
            f"median latency {p50:.4g} ms" if not few else why_few,
            value=p50,
            details={"unit": "ms", "n_rows": n},
        ),
        CheckResult(
            "serving.latency_p99",
            "model",
            p99_status,
            p99_reason,
            value=p99,
            threshold=limit,
            details={"unit": "ms", "n_rows": n},
        ),
        CheckResult(
            "serving.error_rate",
            "model",
            err_status,
            err_reason,
            value=rate,
            lower=lo,
            upper=hi,
            threshold=cap,
            details={"errors": errors, "n_rows": n},
        ),
        CheckResult(
            "serving.throughput",
            "model",
            Status.OK,
            f"{n / seconds:.4g} predictions per second",
            value=n / seconds,
            details={"unit": "1/s", "n_rows": n, "seconds": seconds},
        ),
    ]


def estimated_results(rows: Rows, base: Baseline) -> list[CheckResult]:
    """Label-free performance estimates of the window (``insufficient_data`` while the
    version's estimators could not be fitted).

    Once some of the window's labels have arrived, each estimate is also held against them
    (:func:`~watchkeeper.checks.check_estimate_consistency`, see :func:`_hold_against_labels`).
    """
    fitted = base.estimators
    if fitted is None:
        return []
    estimators = fitted.estimators
    if not estimators:
        if fitted.note is None:
            return []
        return [
            CheckResult("estimated.performance", "model", Status.INSUFFICIENT_DATA, fitted.note)
        ]
    frame = rows.frame(base.classes)
    labelled = None
    if 0 < rows.n_labels < len(rows):
        labelled = rows.frame(base.classes, labelled_only=True)
    out: list[CheckResult] = []
    pairs: list[tuple[int, CheckResult]] = []
    for est in estimators:
        try:
            found = list(est.estimate(frame))
        except Exception as exc:  # one estimator must not stop the others
            name = type(est).__name__
            out.append(
                CheckResult(
                    f"estimated.{name.lower()}",
                    "model",
                    Status.ERROR,
                    f"{name} failed on this window: {type(exc).__name__}: {exc}",
                )
            )
            continue
        if rows.n_labels:
            try:
                on_labels = found if labelled is None else list(est.estimate(labelled))
            except Exception as exc:  # the check against labels is extra: the estimates stand
                logger.warning(
                    "%s failed on the window's labelled rows: %s", type(est).__name__, exc
                )
                on_labels = []
            if len(on_labels) == len(found):
                pairs += zip(range(len(out), len(out) + len(found)), on_labels, strict=True)
        out += found
    if pairs:
        try:
            _hold_against_labels(rows, base, out, pairs)
        except Exception as exc:  # as above: the estimates stand even if this check fails
            logger.warning("holding the estimates against the window's labels failed: %s", exc)
    return out


def _hold_against_labels(
    rows: Rows, base: Baseline, out: list[CheckResult], pairs: list[tuple[int, CheckResult]]
) -> None:
    """The no-concept-drift check of the window's estimates, on its labelled rows.

    ``pairs`` holds the index in ``out`` of each reported estimate with the same
    estimator's estimate on the labelled rows only (the same result when every row is
    labelled), whose interval is for the metric those rows' labels give. Each is compared
    with the realised metric by :func:`~watchkeeper.checks.check_estimate_consistency`,
    Bonferroni-corrected over the window's comparisons (under the assumption, a window's
    estimates are flagged together with a chance of at most one minus the confidence). The
    reported estimate in ``out`` is replaced by one whose ``details["consistency"]`` holds
    the outcome, and a failure also ``details["assumption_warning"]``. The estimate's status
    is left as it was: the window's realised performance, judged on its own, is beside it.
    """
    realised = {
        (r.check.removeprefix("performance."), r.subject): r.value
        for r in performance_results(rows, base, PerformanceRule(n_bootstrap=10))
        if r.value is not None
    }
    compared = [
        (i, on_labels, realised[key])
        for i, on_labels in pairs
        if on_labels.lower is not None
        and (key := (out[i].check.removeprefix("estimated."), out[i].subject)) in realised
    ]
    for i, on_labels, value in compared:
        found = check_estimate_consistency(on_labels, value, tests=len(compared))
        if found.status not in (Status.OK, Status.WARN):
            continue
        details = dict(out[i].details)
        details["consistency"] = {
            "status": found.status.value,
            "n_labels": rows.n_labels,
            "realised": value,
            "estimate_on_labels": on_labels.value,
            "lower": on_labels.lower,
            "upper": on_labels.upper,
            "z": found.details["z"],
            "p_value": found.p_value,
            "alpha": found.threshold,
            "tests": len(compared),
        }
        if found.status is Status.WARN:
            warning = found.details["assumption_warning"]
            before = details.get("assumption_warning")
            details["assumption_warning"] = f"{before}; {warning}" if before else warning
        out[i] = dataclasses.replace(out[i], details=details)
