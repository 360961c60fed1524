"""``Monitor(config).run(sink, registry, store)``: evaluate the log's new windows, once.

One run, per model:

1. reads the log from ``since`` (default: ``recompute_horizon`` before the latest window
   already evaluated, or the whole log the first time), shadow arms included;
2. cuts it into windows per (version, arm) (see :mod:`._windows`);
3. evaluates every closed window not yet stored, and re-evaluates stored windows whose row
   count changed (everything) or whose label count changed (``performance.*`` only, replaced
   in place);
4. feeds the new labelled rows' errors to the concept-drift detectors in prediction-time
   order, persisting each detector's state and position with its results (so a row is fed
   once across runs).

Every window is written in its own transaction, so an interrupted run resumes where it
stopped on the next run, and a repeated run changes nothing.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.monitor._config import MonitorConfig
from watchkeeper.monitor._estimators import FittedEstimators, fit_estimators
from watchkeeper.monitor._frames import Rows, label_key
from watchkeeper.monitor._health_checks import LABEL_FAMILIES as _HEALTH_LABEL_FAMILIES
from watchkeeper.monitor._health_checks import HealthChecks
from watchkeeper.monitor._store import DetectorState, MonitorStore, WindowSummary
from watchkeeper.monitor._window_checks import (
    Baseline,
    drift_results,
    estimated_results,
    flag_count,
    flag_results,
    outlier_results,
    performance_results,
    prediction_schema,
    prediction_table,
    ranked_queries,
    serving_results,
)
from watchkeeper.monitor._windows import Window, count_windows, time_windows, to_us

__all__ = ["Monitor", "MonitorSummary"]

logger = logging.getLogger("watchkeeper.monitor")

Progress = Callable[[str, int, int], None]
_LABEL_FAMILIES = ("performance.", "feedback.", *_HEALTH_LABEL_FAMILIES)
#: Partial profiles merged at a time (one n-way merge each): the peak memory of merging a
#: window's partials is about this many hourly row samples (8 rather than 24: 9 % less peak
#: memory at 2,000,000 rows a week, CPU the same within the noise; BENCHMARKS.md, *Monitor*)
_MERGE_BATCH = 8


@dataclass(frozen=True, slots=True)
class MonitorSummary:
    """What one run did.

    ``windows`` are the windows evaluated (or re-evaluated) in this run; ``results`` their
    results by ``(model, version, arm, window_start)``; ``skipped`` the stored windows that
    needed nothing; ``feedback`` the feedback statistics of each model (labels for unknown
    ids are counted there, not lost).
    """

    run_id: str
    windows: tuple[WindowSummary, ...]
    results: Mapping[tuple[str, int, str, datetime], tuple[CheckResult, ...]]
    skipped: int
    feedback: Mapping[str, Any] = field(default_factory=dict)

    @property
    def worst_status(self) -> Status:
        """The most severe status among this run's results (``ok`` when there are none)."""
        found = [r.status for rs in self.results.values() for r in rs]
        return max(found, key=lambda s: s.severity, default=Status.OK)

    @property
    def alerts(self) -> list[tuple[tuple[str, int, str, datetime], CheckResult]]:
        """Every result of this run with status ``alert`` or ``error``."""
        return [
            (key, r)
            for key, rs in self.results.items()
            for r in rs
            if r.status.severity >= Status.ALERT.severity
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form."""
        return {
            "run_id": self.run_id,
            "worst_status": self.worst_status.value,
            "skipped": self.skipped,
            "windows": [
                {
                    **w.to_dict(),
                    "results": [
                        r.to_dict()
                        for r in self.results.get((w.model, w.version, w.arm, w.window_start), ())
                    ],
                }
                for w in self.windows
            ],
            "feedback": {
                m: (s if isinstance(s, dict) else _fields(s)) for m, s in self.feedback.items()
            },
        }


def _fields(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in getattr(obj, "__dataclass_fields__", {})}


class Monitor:
    """Scheduled checks over the prediction log.

    Parameters
    ----------
    config
        What to compute (default :class:`MonitorConfig`).

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np, pandas as pd
    >>> from sklearn.dummy import DummyRegressor
    >>> from watchkeeper.logstore import PredictionRecord, SQLiteLogSink
    >>> from watchkeeper.monitor import MonitorConfig, MonitorStore
    >>> from watchkeeper.registry import Registry
    >>> tmp = tempfile.TemporaryDirectory()
    >>> registry = Registry(root=tmp.name)
    >>> rng = np.random.default_rng(0)
    >>> _ = registry.register("m", DummyRegressor().fit([[0.0]], [1.0]), actor="a",
    ...                       reference=pd.DataFrame({"x": rng.normal(size=500)}))
    >>> sink = SQLiteLogSink(os.path.join(tmp.name, "predictions.db"))
    >>> t0 = 1_700_000_000 // 3600 * 3600
    >>> sink.write_predictions([PredictionRecord(f"r{i}", t0 + i * 10.0, "m", 1, "champion",
    ...                                          {"x": float(rng.normal())}, 1.0)
    ...                         for i in range(600)])
    >>> store = MonitorStore(root=tmp.name)
    >>> summary = Monitor(MonitorConfig(every="1h", detectors=())).run(
    ...     sink, registry, store, now=t0 + 7200)
    >>> [(w.window_start.hour, w.n_rows, w.status.value) for w in summary.windows]
    [(22, 360, 'insufficient_data'), (23, 240, 'insufficient_data')]
    >>> Monitor(MonitorConfig(every="1h", detectors=())).run(
    ...     sink, registry, store, now=t0 + 7200).skipped
    2
    >>> sink.close(); registry.close(); store.close(); tmp.cleanup()
    """

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = config or MonitorConfig()
        # each version's fitted estimators, kept across runs of this monitor (refitted when
        # more of its baseline rows are labelled)
        self._fitted: dict[tuple[str, int], FittedEstimators] = {}
        # each version's reference explanation and skew-checked window, kept across runs
        self._health = HealthChecks(self.config)

    def run(
        self,
        sink: Any,
        registry: Any,
        store: MonitorStore,
        *,
        model: str | None = None,
        since: datetime | float | None = None,
        now: datetime | float | None = None,
        progress: Progress | None = None,
    ) -> MonitorSummary:
        """Evaluate the new (and changed) windows of ``model`` (default: every logged model).

        Parameters
        ----------
        sink
            The prediction log (:class:`~watchkeeper.logstore.SQLiteLogSink`).
        registry
            The model registry (reference profiles, output kinds, registered metrics).
        store
            Where results are kept (:class:`MonitorStore`).
        model
            Monitor only this model.
        since
            Re-read the log from here (aware datetime or UTC seconds) instead of the default
            (``recompute_horizon`` before the latest stored window).
        now
            The current time (default: the clock); only windows closed by then are evaluated.
        progress
            Called as ``progress(model, windows_done, windows_total)``.
        """
        now_us = _as_us(now, "now") if now is not None else to_us(datetime.now(UTC))
        since_us = _as_us(since, "since") if since is not None else None
        models = [model] if model is not None else sink.models()
        run_id = store.start_run()
        summary_windows: list[WindowSummary] = []
        found: dict[tuple[str, int, str, datetime], tuple[CheckResult, ...]] = {}
        skipped = 0
        feedback: dict[str, Any] = {}
        try:
            for name in models:
                state = _ModelRun(
                    self.config, sink, registry, store, name, run_id, now_us, self._fitted
                )
                state.health = self._health
                skipped += state.run(since_us, summary_windows, found, progress)
                feedback[name] = sink.feedback_stats(name)
        except BaseException as exc:
            store.finish_run(
                run_id,
                status="failed",
                n_windows=len(summary_windows),
                message=f"{type(exc).__name__}: {exc}",
            )
            raise
        store.finish_run(run_id, status="done", n_windows=len(summary_windows))
        return MonitorSummary(run_id, tuple(summary_windows), found, skipped, feedback)


def _as_us(value: datetime | float, name: str) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InputError(f"{name} must be an aware datetime (e.g. tzinfo=timezone.utc)")
        return to_us(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a datetime or UTC seconds, got {value!r}")
    return round(float(value) * 1e6)


class _ModelRun:
    """One model within one run: reading, slicing, baselines and writing."""

    def __init__(
        self,
        config: MonitorConfig,
        sink: Any,
        registry: Any,
        store: MonitorStore,
        model: str,
        run_id: str,
        now_us: int,
        fitted: dict[tuple[str, int], FittedEstimators],
    ) -> None:
        self.config = config
        self.fitted = fitted
        self.sink = sink
        self.registry = registry
        self.store = store
        self.model = model
        self.run_id = run_id
        self.now_us = now_us
        self.spec = config.window
        self._baselines: dict[int, Baseline] = {}
        self._table: Any = None
        self._read_from_us: int | None = None
        self._lean = False
        self.health = HealthChecks(config)

    # -- reading -------------------------------------------------------------------------

    def _start(self, since_us: int | None, stored: list[WindowSummary]) -> int | None:
        if since_us is not None:
            return since_us
        if not stored:
            return None
        latest = max(to_us(w.window_end) for w in stored)
        return latest - int(self.config.recompute_horizon * 1e6)
        # detectors resume from their positions, which may lie before the horizon

    def run(
        self,
        since_us: int | None,
        out_windows: list[WindowSummary],
        out_results: dict[tuple[str, int, str, datetime], tuple[CheckResult, ...]],
        progress: Progress | None,
    ) -> int:
        stored_all = self.store.windows(self.model)
        read_from = self._read_from_us = self._start(since_us, stored_all)
        if read_from is not None and self.spec.kind == "count":
            # a count window is cut from where the previous one ended: start reading there
            before = [to_us(w.window_start) for w in stored_all if to_us(w.window_end) > read_from]
            read_from = self._read_from_us = min([read_from, *before])
        # With partial profiles in the log (built as records were logged), a window whose
        # every row they cover is evaluated from them: only its rows with feedback are read
        # (see _summarised). Otherwise the windows are read without their features, and a
        # window the partials do not cover is read again whole (see _covered).
        self._lean = self.spec.kind == "time" and callable(
            getattr(self.sink, "profile_partials", None)
        )
        found = self._summarised(read_from) if self._lean else None
        if found is not None:
            slices, cut = found
        else:
            table = self.sink.read_window(
                self.model,
                start=None if read_from is None else read_from / 1e6,
                end=self.now_us / 1e6,
                include_shadow=True,
                **({"features": False} if self._lean else {}),
            )
            self._table = table
            if table.num_rows == 0:
                return 0
            slices = _slices(table)
            cut = {
                key: [
                    (window, rows.take(window.first, window.stop))
                    for window in self._windows(rows, *key, _stored(stored_all, *key), read_from)
                ]
                for key, rows in slices.items()
            }
        stored_flags = {
            (r.version, r.arm, to_us(r.window_start)): r.details.get("flags")
            for r in self.store.results(self.model, check="feedback.flag_rate")
        }
        plan: list[tuple[int, str, Rows, Window, WindowSummary | None, str]] = []
        skipped = 0
        for (version, arm), windows in cut.items():
            stored = _stored(stored_all, version, arm)
            for window, part in windows:
                old = stored.get((window.start_us, window.end_us))
                if old is None or old.n_rows != part.n_rows:
                    plan.append((version, arm, part, window, old, "all"))
                elif old.n_labels != part.n_labels or stored_flags.get(
                    (version, arm, window.start_us)
                ) != flag_count(part):
                    plan.append((version, arm, part, window, old, "labels"))
                else:
                    skipped += 1
        for i, (version, arm, part, window, _old, what) in enumerate(plan):
            window_profiles: dict[str, Any] = {}
            features = None
            if self._lean:
                base = self._baseline(version, part)
                features, summary = self._covered(version, arm, window, part.n_rows, base, what)
                if features is None or self._needs_features(base, what):
                    part = self._whole(version, arm, window)
                elif what == "all" and part.n_total is not None:
                    if self._summary_serves(summary, base, part.n_rows):
                        part = part.summarised(part.n_rows, summary)
                    else:  # summaries missing or made before the prediction baseline
                        part = self._whole(version, arm, window, features=False)
            results = self._evaluate(
                version, arm, part, window, what, window_profiles, features or None
            )
            self.store.write_window(
                self.model,
                version,
                arm,
                window.start,
                window.end,
                window.kind,
                part.n_rows,
                part.n_labels,
                results,
                run_id=self.run_id,
                replace=None if what == "all" else list(_LABEL_FAMILIES),
                window_profiles=window_profiles,
            )
            out_windows.append(
                WindowSummary(
                    self.model,
                    version,
                    arm,
                    window.start,
                    window.end,
                    window.kind,
                    part.n_rows,
                    part.n_labels,
                    max((r.status for r in results), key=lambda s: s.severity, default=Status.OK),
                    run_id=self.run_id,
                )
            )
            out_results[(self.model, version, arm, window.start)] = tuple(results)
            if progress is not None:
                progress(self.model, i + 1, len(plan))
        if self.config.detectors:
            for (version, arm), rows in slices.items():
                self._feed_detectors(version, arm, rows)
        return skipped

    def _summarised(
        self, read_from: int | None
    ) -> (
        tuple[dict[tuple[int, str], Rows], dict[tuple[int, str], list[tuple[Window, Rows]]]] | None
    ):
        """The closed time windows of the read range and their parts, from the partial
        profiles and index-only row counts, reading only the rows that have feedback (what
        the checks need row by row: labels and flags). ``None`` when a row of the range lies
        in a window the partials do not cover with summaries (the range is then read as
        before); the windows' profiles and summaries are merged later (:meth:`_covered`)."""
        from watchkeeper.logstore import PartialRow

        size = self.spec.size
        step = size * 1_000_000
        span = self.sink.time_span(self.model)
        if span is None:
            return {}, {}
        # the first window: the log's first, or the first that starts at or after the read
        # (a window cut by the start of the read is left as stored)
        first = round(span[0] * 1e6) // step if read_from is None else -(-read_from // step)
        last = self.now_us // step  # windows before it are closed
        by_window: dict[int, list[PartialRow]] = {}
        if last > first:
            for p in self.sink.profile_partials(
                self.model, start=first * size, end=last * size, profiles=False
            ):
                by_window.setdefault(int(p.bucket_start // size), []).append(p)
        counts: dict[tuple[int, str], list[tuple[int, int]]] = {}
        for k in sorted(by_window):
            parts = by_window[k]
            where = {"start": k * size, "end": (k + 1) * size}
            n = self.sink.count_window(self.model, **where)
            claims: dict[tuple[int, str], int] = {}
            for p in parts:
                claims[(p.version, p.arm)] = claims.get((p.version, p.arm), 0) + p.n_rows
            if not all(p.summary for p in parts) or sum(claims.values()) != n:
                return None
            if len(claims) > 1 and any(
                self.sink.count_window(self.model, version=v, arm=a, **where) != c
                for (v, a), c in claims.items()
            ):
                return None
            for key, c in claims.items():
                counts.setdefault(key, []).append((k, c))
        # every row of the range lies in a covered window: none between them
        edges = [first, *(e for k in sorted(by_window) for e in (k, k + 1)), last]
        for lo, hi in zip(edges[::2], edges[1::2], strict=True):
            if hi > lo and self.sink.count_window(self.model, start=lo * size, end=hi * size):
                return None
        fed = self.sink.read_window(
            self.model,
            start=None if read_from is None else read_from / 1e6,
            end=self.now_us / 1e6,
            include_shadow=True,
            features=False,
            feedback_only=True,
        )
        self._table = None
        slices = _slices(fed)
        cut: dict[tuple[int, str], list[tuple[Window, Rows]]] = {}
        for key, found in counts.items():
            rows = slices.get(key) or Rows.from_table(fed.slice(0, 0))
            out = cut[key] = []
            for k, n in found:
                window = Window(k * step, (k + 1) * step, "time", 0, 0)
                lo = int(np.searchsorted(rows.ts_us, window.start_us, side="left"))
                hi = int(np.searchsorted(rows.ts_us, window.end_us, side="left"))
                out.append((window, rows.take(lo, hi).summarised(n)))
        return slices, cut

    def _summary_serves(self, summary: Any, base: Baseline, n_rows: int) -> bool:
        """Whether a window's merged log summary stands in for its own columns: it counts
        every row, and holds the predictions binned on the version's prediction baseline
        when prediction drift needs them."""
        if summary is None or summary.n_rows != n_rows:
            return False
        if base.predictions is None:
            return True
        if base.baseline_end_us is not None and round(summary.ts_max * 1e6) < base.baseline_end_us:
            return True  # a window of baseline rows: no prediction drift to decide
        return summary.predictions is not None and summary.predictions_key == base.predictions_key

    def _windows(
        self,
        rows: Rows,
        version: int,
        arm: str,
        stored: Mapping[tuple[int, int], WindowSummary],
        read_from: int | None,
    ) -> list[Window]:
        if self.spec.kind == "time":
            found = time_windows(rows.ts_us, self.spec.size, self.now_us)
            # a window cut by the start of the read is incomplete: leave it as stored
            return [w for w in found if read_from is None or w.start_us >= read_from]
        out: list[Window] = []
        ends = sorted(stored)
        for start, end in ends:
            lo = int(np.searchsorted(rows.ts_us, start, side="left"))
            hi = int(np.searchsorted(rows.ts_us, end, side="left"))
            if hi > lo and (read_from is None or start >= read_from):
                out.append(Window(start, end, "count", lo, hi))
        last_end = ends[-1][1] if ends else None
        return out + count_windows(rows.ts_us, self.spec.size, last_end)

    # -- partial profiles ----------------------------------------------------------------

    def _needs_features(self, base: Baseline, what: str) -> bool:
        """Whether evaluating a window needs its rows' features (beyond its profile)."""
        config = self.config
        sensitive = base.profile is not None and any(
            s.role.value == "sensitive" for s in base.profile.schema
        )
        if (config.fairness_config is not None and sensitive) or config.segments:
            return True  # row-level: per-row groups and slices of the labelled rows
        if what != "all":
            return False
        fitted = base.estimators
        return (
            bool(config.attribution_rows)
            or bool(fitted is not None and fitted.estimators)
            or base.outliers is not None  # the outlier flags are logged with the features
        )

    def _covered(
        self, version: int, arm: str, window: Window, n_rows: int, base: Baseline, what: str
    ) -> tuple[Any, Any]:
        """The window's feature profile merged from the partial profiles stored as its
        records were logged, when they cover every one of its ``n_rows`` rows (same
        reference, same columns, the monitor's sample size and seed); ``None`` otherwise
        (the window is then read whole and profiled as before). ``False`` when no profile
        is needed (a re-evaluation for late labels). Second, the merge of the partials'
        log summaries (:class:`~watchkeeper.logstore.LogSummary`) when every partial has
        one, else ``None``."""
        from watchkeeper.data import Profile
        from watchkeeper.logstore import LogSummary, reference_key

        if what != "all":
            return False, None
        if base.profile is None:
            return None, None
        if base.reference_key is None:
            base.reference_key = reference_key(base.profile)
        where = {
            "start": window.start_us / 1e6,
            "end": window.end_us / 1e6,
            "version": version,
            "arm": arm,
        }
        partials = self.sink.profile_partials(self.model, profiles=False, **where)
        found = sum(p.n_rows for p in partials)
        if found != n_rows or not partials:
            if partials:
                logger.info(
                    "model %s v%s %s window %s: partial profiles cover %d of %d rows; "
                    "reading the window's rows",
                    self.model, version, arm, window.start, found, n_rows,
                )  # fmt: skip
            return None, None
        if {p.reference for p in partials} != {base.reference_key} or (
            len({p.columns for p in partials}) != 1
        ):
            return None, None
        monitor_sample = (self.config.random_state, self.config.window_sample)

        def decoded() -> Iterator[Any]:
            for data in self.sink.partial_profile_texts(self.model, **where):
                # JSON text from logs written before partials were stored in binary
                profile = Profile.from_bytes(data.encode() if isinstance(data, str) else data)
                meta = profile.meta
                if (int(meta["random_state"]), int(meta["sample_size"])) != monitor_sample:
                    raise _OtherSample
                yield profile

        try:
            merged = _merge_in_batches(decoded(), Profile.merge_all, Profile.merge)
        except _OtherSample:  # made for a monitor configured otherwise: read the rows
            return None, None
        if merged is None or merged.n_rows != n_rows:  # changed since: read the rows
            return None, None
        summary = None
        if all(p.summary for p in partials):
            try:
                summary = _merge_in_batches(
                    (
                        LogSummary.from_bytes(data)
                        for data in self.sink.partial_summaries(self.model, **where)
                        if data is not None
                    ),
                    LogSummary.merge_all,
                    LogSummary.merge,
                )
            except InputError as exc:
                logger.warning("log summaries of %s v%s not read: %s", self.model, version, exc)
        return merged, summary

    def _whole(self, version: int, arm: str, window: Window, features: bool = True) -> Rows:
        """The window's rows with their features (or only its own columns), read again."""
        table = self.sink.read_window(
            self.model,
            start=(window.start_us - 1000) / 1e6,
            end=(window.end_us + 1000) / 1e6,
            version=version,
            arm=arm,
            include_shadow=True,
            features=features,
        )
        rows = Rows.from_table(table)
        first = int(np.searchsorted(rows.ts_us, window.start_us, side="left"))
        stop = int(np.searchsorted(rows.ts_us, window.end_us, side="left"))
        return rows.take(first, stop)

    # -- baselines -----------------------------------------------------------------------

    def _baseline(self, version: int, rows_now: Rows) -> Baseline:
        found = self._baselines.get(version)
        if found is not None:
            return found
        record = self.registry.get_version(self.model, version)
        profile = self.registry.load_profile(self.model, version)
        head = self._baseline_rows(version)
        classes = head.classes() if len(head) else rows_now.classes()
        task = _task(record.output_kind, classes, head if len(head) else rows_now)
        predictions = None
        if len(head) >= self.config.baseline_rows:
            from watchkeeper.data import Profile

            pseudo = Baseline(task, classes, None, None, 0, None)
            table = prediction_table(head, pseudo)
            predictions = Profile.from_data(
                table,
                prediction_schema(table, task),
                sample_size=5000,
                random_state=self.config.random_state,
                n_jobs=1,
            )
        if profile is None and predictions is not None:
            from watchkeeper.data import Profile, Schema

            features = head.features(head.feature_names())
            profile = Profile.from_data(
                features,
                Schema.infer(features),
                sample_size=5000,
                random_state=self.config.random_state,
                n_jobs=1,
            )
        base = Baseline(
            task=task,
            classes=classes,
            profile=profile,
            predictions=predictions,
            n_baseline=len(head),
            baseline_end_us=int(head.ts_us[-1]) + 1 if len(head) else None,
            performance=_registered_performance(record.metrics, task, self.config.ranking.k),
            flags=(flag_count(head), len(head)) if len(head) else None,
            outliers=self._outlier_detector(version),
        )
        if not base.performance:
            base.performance = self._first_labelled_performance(version)
        if predictions is not None and self._lean:
            self._share_baseline(version, base)
        key = (self.model, version)
        base.estimators = self.fitted[key] = fit_estimators(
            self.config,
            task,
            classes,
            head.frame(classes, labelled_only=True),
            self.fitted.get(key),
        )
        if base.estimators.note:
            logger.info("estimators of %s v%s: %s", self.model, version, base.estimators.note)
        self._baselines[version] = base
        return base

    def _share_baseline(self, version: int, base: Baseline) -> None:
        """Store the version's prediction baseline in the log (when it can hold one), so
        that its partial profiler summarises later records' predictions binned on it."""
        from watchkeeper.logstore import PredictionBaseline

        write = getattr(self.sink, "write_prediction_baseline", None)
        if write is None:
            return
        base.predictions_key = key = _binning_key(base.predictions)
        try:
            stored = self.sink.prediction_baseline(self.model, version)
            if stored is None or stored.key != key:
                classes = None if base.classes is None else tuple(base.classes)
                baseline = PredictionBaseline(base.task, classes, base.predictions.to_bytes(), key)
                write(self.model, version, baseline)
        except Exception as exc:  # the monitor goes on: windows read their predictions
            logger.warning(
                "prediction baseline of %s v%s not stored in the log: %s", self.model, version, exc
            )

    def _outlier_detector(self, version: int) -> Any:
        """The version's outlier detector, or ``None`` (also when it cannot be loaded: the
        other checks go on, and the log says why)."""
        load = getattr(self.registry, "load_outliers", None)
        if load is None:
            return None
        try:
            return load(self.model, version)
        except Exception as exc:
            logger.warning("outlier detector of %s v%s not loaded: %s", self.model, version, exc)
            return None

    def _baseline_rows(self, version: int) -> Rows:
        n = self.config.baseline_rows
        if self.config.reference_window is not None:
            start, end = self.config.reference_window
            table = self.sink.read_window(
                self.model, start=start, end=end, version=version, include_shadow=True
            )
            return Rows.from_table(table)
        stored = list(self.store.windows(self.model, version=version))
        first_stored = min((to_us(w.window_start) for w in stored), default=None)
        if self._table is None:  # summarised windows: the version's first rows, read
            head = self.sink.read_window(
                self.model,
                start=None if self._read_from_us is None else self._read_from_us / 1e6,
                end=self.now_us / 1e6,
                version=version,
                include_shadow=True,
                first=n,
            )
            rows = Rows.from_table(head)
            if len(rows) and (first_stored is None or int(rows.ts_us[0]) <= first_stored):
                return rows
            if first_stored is None:
                return rows
        else:
            table = self._table
            mask = np.asarray(table.column("version").to_numpy(zero_copy_only=False)) == version
            in_hand = table.filter(mask)
            if in_hand.num_rows and (
                first_stored is None
                or int(in_hand.column("ts").cast("int64")[0].as_py()) <= first_stored
            ):
                head = in_hand.slice(0, n)
                if self._lean:  # read without features: read these rows again, whole
                    ts = head.column("ts").cast("int64")
                    table = self.sink.read_window(
                        self.model,
                        start=(int(ts[0].as_py()) - 1000) / 1e6,
                        end=(int(ts[-1].as_py()) + 1000) / 1e6,
                        version=version,
                        include_shadow=True,
                    )
                    rows = Rows.from_table(table)
                    first = int(np.searchsorted(rows.ts_us, int(ts[0].as_py()), side="left"))
                    return rows.take(first, first + n)
                return Rows.from_table(head)
            if first_stored is None:
                return Rows.from_table(in_hand.slice(0, 0))
        # the earliest windows of this version were evaluated in earlier runs: read them back
        stored.sort(key=lambda w: w.window_start)
        total, end = 0, stored[0].window_end
        for w in stored:
            total += w.n_rows
            end = w.window_end
            if total >= n:
                break
        table = self.sink.read_window(
            self.model,
            start=stored[0].window_start,
            end=end,
            version=version,
            include_shadow=True,
        )
        return Rows.from_table(table.slice(0, n))

    def _first_labelled_performance(self, version: int) -> dict[tuple[str, str], Any]:
        """Reference performance from the earliest window of the version with enough
        labels (per metric and subject), with that window's interval: it was measured on a
        sample too, so later windows are compared with it as two samples."""
        out: dict[tuple[str, str], Any] = {}
        for r in self.store.results(self.model, check="performance.", version=version):
            key = (r.check.removeprefix("performance."), r.subject)
            if key not in out and r.status is not Status.INSUFFICIENT_DATA and r.value is not None:
                if r.lower is not None and r.upper is not None:
                    out[key] = (float(r.value), float(r.lower), float(r.upper))
                else:
                    out[key] = float(r.value)
        return out

    # -- evaluation ----------------------------------------------------------------------

    def _evaluate(
        self,
        version: int,
        arm: str,
        rows: Rows,
        window: Window,
        what: str,
        profiles: dict[str, Any] | None = None,
        features: Any = None,
    ) -> list[CheckResult]:
        base = self._baseline(version, rows)
        t0 = time.perf_counter()
        if not base.performance:
            base.performance = self._first_labelled_performance(version) or None
        results = performance_results(rows, base, self.config.performance, self.config.ranking)
        results += flag_results(rows, base, self.config)
        results += self.health.label_results(rows, base)
        if what == "all":
            results = (
                drift_results(rows, base, self.config, profiles, features, as_of=window.end)
                + results
                + estimated_results(rows, base)
                + serving_results(rows, window.seconds, self.config)
                + outlier_results(rows, base, self.config)
                + self.health.window_results(
                    rows,
                    base,
                    model=self.model,
                    version=version,
                    arm=arm,
                    start_us=window.start_us,
                    registry=self.registry,
                    store=self.store,
                    features=features,
                )
            )
        logger.debug(
            "model %s v%s window %s: %d results in %.2f s",
            self.model,
            version,
            window.start,
            len(results),
            time.perf_counter() - t0,
        )
        return results

    # -- concept drift -------------------------------------------------------------------

    def _feed_detectors(self, version: int, arm: str, rows: Rows) -> None:
        from watchkeeper.checks import Detector, check_concept_drift, error_stream, get_detector

        base = self._baseline(version, rows)
        states = self.store.detector_states(self.model, version, arm)
        dets: dict[str, Detector] = {}
        for name in self.config.detectors:
            det = get_detector(name)
            if det.binary and base.task != "classification":
                continue
            saved = states.get(name)
            if saved is not None:
                try:
                    det = Detector.from_state(saved.state)
                except InputError:
                    logger.warning(
                        "detector %s of %s v%s %s restarted: %s",
                        name,
                        self.model,
                        version,
                        arm,
                        "unreadable state",
                    )
            dets[name] = det
        if not dets:
            return
        position = max(
            ((s.position_ts, s.position_id) for s in states.values()), default=(-np.inf, "")
        )
        windows = {
            (to_us(w.window_start), to_us(w.window_end)): w
            for w in self.store.windows(self.model, version=version, arm=arm)
        }
        cutoff = self.now_us - int(self.config.label_delay * 1e6)
        closed_end = max((end for _, end in windows), default=None)
        if closed_end is None:
            return
        cutoff = min(cutoff, closed_end)
        ts_s = rows.ts_us / 1e6
        candidates = np.flatnonzero(rows.has_label & (rows.ts_us < cutoff) & (ts_s >= position[0]))
        ids = rows.column("id", candidates)
        eligible = [
            int(i)
            for i, rid in zip(candidates, ids, strict=True)
            if (float(ts_s[i]), rid) > position
        ]
        if not eligible:
            return
        picked = np.asarray(eligible, dtype=np.intp)
        at = np.asarray([rows.ts_us[i] for i in eligible])
        if base.task == "ranking":
            # 1 - nDCG@k per query; queries that cannot be scored are passed over
            ranked, relevant, kept = ranked_queries(rows, picked)
            errors = error_stream(relevant, ranked, task="ranking", k=self.config.ranking.k)
            at = at[kept]
        else:
            y = rows.column("label", picked)
            p = rows.column("prediction", picked)
            if base.task == "classification":
                errors = error_stream([label_key(v) for v in y], [label_key(v) for v in p])
            else:
                errors = error_stream(np.asarray(y, float), np.asarray(p, float), task="regression")
        # attribute each fed row to its stored window, in prediction-time order
        bounds = sorted(windows)
        window_results: list[tuple[Any, list[CheckResult]]] = []
        for start, end in bounds:
            pick = np.flatnonzero((at >= start) & (at < end))
            if pick.size == 0:
                continue
            found = [check_concept_drift(det, errors[pick]) for det in dets.values()]
            window_results.append((windows[(start, end)], found))
        last = eligible[-1]
        new_position = (float(ts_s[last]), rows.column("id", picked[-1:])[0])
        saved_states = [
            DetectorState(
                name,
                det.to_state(),
                new_position[0],
                new_position[1],
                (states[name].n_fed if name in states else 0) + len(errors),
            )
            for name, det in dets.items()
        ]
        self.store.save_detectors(
            self.model, version, arm, saved_states, window_results, run_id=self.run_id
        )


class _OtherSample(Exception):
    """A partial profile made with another row-sample size or seed than the monitor's."""


def _merge_in_batches(
    parts: Iterable[Any], merge_all: Callable[[list[Any]], Any], merge: Callable[[Any, Any], Any]
) -> Any:
    """The merge of ``parts`` (profiles or log summaries, read one at a time), ``_MERGE_BATCH``
    at a time (one n-way ``merge_all`` each, then ``merge`` into the running result): memory
    holds the merge and that many parts, not every hour of the window. ``None`` without
    parts."""
    merged, batch = None, []
    for part in itertools.chain(parts, [None]):
        if part is not None:
            batch.append(part)
        if batch and (part is None or len(batch) == _MERGE_BATCH):
            done = merge_all(batch)
            merged, batch = done if merged is None else merge(merged, done), []
    return merged


def _binning_key(profile: Any) -> str:
    """A digest of what profiling *against* ``profile`` reads of it (its schema and
    settings, each numeric column's bins and range, each categorical column's categories):
    profiles of the same rows made in two runs have the same key, and data profiled
    against either is binned alike."""
    import hashlib
    import json

    data = profile.to_dict()
    keep = ("kind", "bin_edges", "min", "max", "categories", "other_count")
    summary = {
        "meta": {k: v for k, v in data.get("meta", {}).items() if k != "created"},
        "schema": data.get("schema"),
        "columns": {
            name: {k: column.get(k) for k in keep}
            for name, column in data.get("columns", {}).items()
        },
    }
    text = json.dumps(summary, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _stored(
    stored_all: Sequence[WindowSummary], version: int, arm: str
) -> dict[tuple[int, int], WindowSummary]:
    """The stored windows of ``version`` and ``arm`` by their ``(start, end)`` in µs."""
    return {
        (to_us(w.window_start), to_us(w.window_end)): w
        for w in stored_all
        if w.version == version and w.arm == arm
    }


def _slices(table: Any) -> dict[tuple[int, str], Rows]:
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[tuple[int, str], Rows] = {}
    groups = table.select(["version", "arm"]).group_by(["version", "arm"]).aggregate([])
    keys = sorted(
        zip(groups.column("version").to_pylist(), groups.column("arm").to_pylist(), strict=True)
    )
    for version, arm in keys:
        mask = pc.and_(
            pc.equal(table.column("version"), pa.scalar(version, pa.int64())),
            pc.equal(table.column("arm"), pa.scalar(arm, pa.string())),
        )
        out[(int(version), str(arm))] = Rows.from_table(table.filter(mask))
    return out


def _task(output_kind: str, classes: Sequence[str] | None, rows: Rows) -> str:
    if output_kind in ("classification", "regression", "ranking"):
        return output_kind
    if classes:
        return "classification"
    values = [p for p in rows.prediction if p is not None]
    if values and all(isinstance(v, list) for v in values):
        return "ranking"  # a ranked list of item ids per record
    numeric = values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if numeric and any(isinstance(v, float) and not float(v).is_integer() for v in values):
        return "regression"
    return "classification"


_METRIC_NAMES = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "mae",
    "rmse",
    "mape",
    "r2",
)


def _ranking_names(k: int) -> dict[str, tuple[str, ...]]:
    """Registered names of each ranking metric at ``k``, preferred first."""
    return {
        "ndcg_at_k": (f"ndcg_at_{k}", f"ndcg@{k}"),
        "map_at_k": (f"map_at_{k}", f"map@{k}"),
        "mrr": (f"mrr_at_{k}", f"mrr@{k}", "mrr"),
        "recall_at_k": (f"recall_at_{k}", f"recall@{k}"),
    }


def _registered_performance(
    metrics: Mapping[str, float], task: str = "classification", k: int = 10
) -> dict[tuple[str, str], float]:
    """Reference values from a version's registered metrics: ``accuracy``, or a dotted name
    ending in it (``holdout.accuracy``, ``cv.r2.score``...), exact names first. A ranking
    model's are ``ndcg_at_10`` (or ``ndcg@10``), ``map_at_10``, ``mrr_at_10`` (or ``mrr``)
    and ``recall_at_10`` at the monitor's ``k``."""
    out: dict[tuple[str, str], float] = {}
    names = _ranking_names(k) if task == "ranking" else {name: (name,) for name in _METRIC_NAMES}
    for metric, spelled in names.items():
        exact = next((n for n in spelled if n in metrics), None)
        if exact is not None:
            out[(metric, "model")] = float(metrics[exact])
            continue
        for key in sorted(metrics):
            parts = key.split(".")
            if any(n in parts for n in spelled):
                out[(metric, "model")] = float(metrics[key])
                break
    return out
