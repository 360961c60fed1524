"""Feature health and fairness of one window: fairness by sensitive group, training–serving
skew, attribution drift and weak segments.

- **Fairness** (``fairness.*``): when the version's reference schema declares sensitive
  attributes and the log carries them, the window's rows are counted per group
  (:class:`~watchkeeper.data.GroupCounts`: labelled rows for the label-based rates, every
  row for selection rates) and judged by :func:`~watchkeeper.checks.check_fairness_counts`,
  so the numbers are those a merged window profile would give. They depend on labels and
  are recomputed when late labels arrive.
- **Skew** (``skew.training_serving``): each version's first window of at least
  ``min_rows`` rows (per arm) is profiled against the reference profile and checked by
  :func:`~watchkeeper.checks.check_skew`; later windows are left to the drift checks.
- **Attribution drift** (``attribution.drift``): a seeded sample of at most ``N`` rows of
  the window is explained with the version's model against the reference profile's row
  sample as background, and compared with the explanation of that sample (computed once per
  version and kept by the monitor) by :func:`~watchkeeper.explain.attribution_drift`.
- **Weak segments** (``segments.weak``): :func:`~watchkeeper.checks.check_weak_segments` on the
  window's labelled rows, numeric features cut at the reference profile's quantiles so that
  every window is sliced alike.

Failures of one family (a model that cannot be loaded or explained, a multiclass target
without a positive class) become ``error`` or ``insufficient_data`` results that say why;
they never stop the window's other checks.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from watchkeeper.checks import CheckResult, FairnessConfig, Status
from watchkeeper.exceptions import InputError
from watchkeeper.monitor._config import MonitorConfig
from watchkeeper.monitor._frames import Rows, label_key

__all__ = ["HealthChecks", "fairness_results", "segment_results", "skew_results"]

logger = logging.getLogger("watchkeeper.monitor")

#: Check families that depend on labels (recomputed when a window's label count changes).
LABEL_FAMILIES = ("fairness.", "segments.")
#: Explanations repeated over this many seeded backgrounds (the noise floor's spread).
_N_BACKGROUNDS = 3


def _names(profile: Any, *roles: str) -> list[str]:
    return [s.name for s in profile.schema if s.role.value in roles]


def _positive_label(base: Any) -> str | None:
    counts = getattr(base.profile, "group_counts", None)
    if counts is not None and counts.positive_label is not None:
        return str(counts.positive_label)
    if base.classes and len(base.classes) == 2:
        return label_key(base.classes[-1])
    return None  # inferred from the labels and predictions


def fairness_results(rows: Rows, base: Any, config: FairnessConfig) -> list[CheckResult]:
    """``fairness.*`` results of a window by the reference schema's sensitive attributes.

    No results when the version has no reference profile or its schema declares no sensitive
    attribute; one ``insufficient_data`` result (``fairness.window``) when the log lacks the
    attributes or the task has no positive class to judge.
    """
    from watchkeeper.checks import check_fairness_counts
    from watchkeeper.data import GroupCounts

    if base.profile is None:
        return []
    attributes = _names(base.profile, "sensitive")
    if not attributes:
        return []
    missing = [a for a in attributes if a not in rows.table.column_names]
    if missing:
        return [
            CheckResult(
                "fairness.window",
                "model",
                Status.INSUFFICIENT_DATA,
                f"the sensitive attributes {missing} are not in the logged features: send them "
                "with each prediction (the model may ignore them) to monitor fairness",
            )
        ]
    sensitive = {a: rows.table.column(a).to_pylist() for a in attributes}
    classification = base.task == "classification"

    def values(items: list[Any]) -> list[Any]:
        if classification:
            return [None if v is None else label_key(v) for v in items]
        return [None if v is None else float(v) for v in items]

    y_true = values(rows.label) if rows.n_labels else None
    try:
        counts = GroupCounts.from_arrays(
            sensitive,
            y_true,
            values(rows.prediction),
            task="classification" if classification else "regression",
            positive_label=_positive_label(base) if classification else None,
        )
        return check_fairness_counts(counts, config)
    except InputError as exc:
        return [
            CheckResult(
                "fairness.window",
                "model",
                Status.INSUFFICIENT_DATA,
                f"fairness not judged in this window: {exc}",
            )
        ]


def skew_results(
    rows: Rows, base: Any, config: MonitorConfig, current: Any = None
) -> list[CheckResult]:
    """``skew.training_serving`` per feature: the window's profile against the reference.

    ``current`` is the window's feature profile when it was built already (merged from the
    partial profiles made as the records were logged); its row sample is not used, as the
    window's own profile for skew keeps none.
    """
    from watchkeeper.checks import check_skew
    from watchkeeper.data import Profile

    profile = base.profile
    if profile is None:
        return []
    present = rows.table.column_names if current is None else list(current.columns)
    names = [n for n in _names(profile, "feature", "sensitive") if n in present]
    if not names:
        return []
    if current is not None:
        current = dataclasses.replace(
            current,
            sample=None,
            sample_priorities=None,
            meta={**current.meta, "sample_size": 0},
        )
        return check_skew(profile, current, columns=names, min_rows=config.min_rows)
    schema = profile.schema.select(names)
    current = Profile.from_data(
        rows.features(names),
        schema,
        reference=profile,
        sample_size=0,
        random_state=config.random_state,
        n_jobs=1,
    )
    return check_skew(profile, current, columns=names, min_rows=config.min_rows)


def segment_results(rows: Rows, base: Any, config: MonitorConfig) -> list[CheckResult]:
    """``segments.weak`` slices of the window's labelled rows (``warn`` where weak)."""
    from watchkeeper.checks import check_weak_segments

    keep = rows.has_label & np.array([p is not None for p in rows.prediction], dtype=bool)
    n = int(keep.sum())
    if n < config.min_rows:
        return [
            CheckResult(
                "segments.weak",
                "model",
                Status.INSUFFICIENT_DATA,
                f"only {n:,} labelled rows in the window; at least {config.min_rows:,} are "
                "needed to look for weak segments",
            )
        ]
    profile = base.profile
    columns = rows.feature_names()
    if profile is not None:
        declared = [n for n in _names(profile, "feature", "sensitive") if n in columns]
        columns = declared or columns
    frame = rows.frame(None, labelled_only=True)
    frame = frame[[p is not None for p in frame["prediction"]]].reset_index(drop=True)
    classification = base.task == "classification"
    convert = label_key if classification else float
    y_true = [convert(v) for v in frame["label"]]
    y_pred = [convert(v) for v in frame["prediction"]]
    # numeric features are cut at the reference's quantiles when it has every column
    usable = profile is not None and all(c in profile.schema for c in columns)
    reference = profile if usable else None
    try:
        return check_weak_segments(
            frame[columns],
            y_true=np.asarray(y_true, dtype=object if classification else float),
            y_pred=np.asarray(y_pred, dtype=object if classification else float),
            task="classification" if classification else "regression",
            reference=reference,
        )
    except InputError as exc:
        return [
            CheckResult(
                "segments.weak", "model", Status.ERROR, f"weak segments not computed: {exc}"
            )
        ]


@dataclass(frozen=True)
class _Reference:
    """A version's model, explanation background and reference explanation (or why not)."""

    model: Any = None
    background: Any = None
    explanation: Any = None
    note: str | None = None
    status: Status = Status.ERROR


class HealthChecks:
    """The health checks of a monitor, with what they keep across runs: each version's
    reference explanation (computed once) and, per (model, version, arm), the window whose
    skew was checked.

    Examples
    --------
    >>> HealthChecks(MonitorConfig()).label_families
    ('fairness.', 'segments.')
    """

    label_families = LABEL_FAMILIES

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self._references: dict[tuple[str, int], _Reference] = {}
        self._skew_window: dict[tuple[str, int, str], int | None] = {}

    def label_results(self, rows: Rows, base: Any) -> list[CheckResult]:
        """Fairness and weak segments (the families recomputed when labels arrive)."""
        out: list[CheckResult] = []
        if base.task == "ranking":
            return out  # group and slice metrics of ranked lists are not defined yet
        fairness = self.config.fairness_config
        if fairness is not None:
            out += fairness_results(rows, base, fairness)
        if self.config.segments:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                out += segment_results(rows, base, self.config)
        return out

    def window_results(
        self,
        rows: Rows,
        base: Any,
        *,
        model: str,
        version: int,
        arm: str,
        start_us: int,
        registry: Any,
        store: Any,
        features: Any = None,
    ) -> list[CheckResult]:
        """Skew (first window of the version with enough rows) and attribution drift
        (``features``: the window's feature profile when it exists already)."""
        out: list[CheckResult] = []
        if self.config.skew and self._is_skew_window(
            model, version, arm, start_us, rows.n_rows, store
        ):
            out += skew_results(rows, base, self.config, features)
        if self.config.attribution_rows:
            out += self._attribution(rows, base, model, version, registry)
        return out

    # -- skew ------------------------------------------------------------------------------

    def _is_skew_window(
        self, model: str, version: int, arm: str, start_us: int, n_rows: int, store: Any
    ) -> bool:
        key = (model, version, arm)
        if key not in self._skew_window:
            from watchkeeper.monitor._windows import to_us

            done = [
                to_us(r.window_start)
                for r in store.results(model, check="skew.", version=version, arm=arm)
                if r.status is not Status.INSUFFICIENT_DATA
            ]
            self._skew_window[key] = min(done, default=None)
        checked = self._skew_window[key]
        if checked is not None:
            return checked == start_us  # the same window, re-evaluated
        if n_rows < self.config.min_rows:
            return False
        self._skew_window[key] = start_us
        return True

    # -- attribution drift -----------------------------------------------------------------

    def _reference(self, model: str, version: int, registry: Any, base: Any) -> _Reference:
        key = (model, version)
        found = self._references.get(key)
        if found is not None:
            return found
        profile = base.profile
        if profile is None or profile.sample is None or profile.sample.num_rows == 0:
            ref = _Reference(
                note="the version has no reference profile with a row sample to explain and "
                "use as background; register it with reference= data (sample_size > 0)",
                status=Status.INSUFFICIENT_DATA,
            )
        else:
            names = [n for n in _names(profile, "feature") if n in profile.sample.column_names]
            background = profile.sample.select(names).to_pandas()
            try:
                loaded = registry.load_model(model, version)
                explanation = self._explain(loaded, background, background)
            except Exception as exc:  # a model that cannot be explained is reported, not fatal
                ref = _Reference(note=f"{type(exc).__name__}: {exc}")
            else:
                ref = _Reference(loaded, background, explanation)
        if ref.note is not None:
            logger.info("attribution drift of %s v%s: %s", model, version, ref.note)
        self._references[key] = ref
        return ref

    def _explain(self, model: Any, rows: Any, background: Any) -> Any:
        import warnings

        from threadpoolctl import threadpool_limits

        from watchkeeper.explain import global_importance

        with threadpool_limits(1), warnings.catch_warnings():
            # explainers warn about feature names and convergence of sampled rows; the
            # noise floor already accounts for what those warnings are about
            warnings.simplefilter("ignore")
            return global_importance(
                model,
                rows,
                background=background,
                n_backgrounds=_N_BACKGROUNDS,
                max_rows=self.config.attribution_rows,
                random_state=self.config.random_state,
            )

    def _attribution(
        self, rows: Rows, base: Any, model: str, version: int, registry: Any
    ) -> list[CheckResult]:
        from watchkeeper.explain import attribution_drift

        ref = self._reference(model, version, registry, base)
        if ref.explanation is None:
            return [
                CheckResult(
                    "attribution.drift",
                    "model",
                    ref.status,
                    f"attribution drift not computed: {ref.note}",
                )
            ]
        names = list(ref.background.columns)
        frame = rows.features(names).to_pandas()
        if len(frame) == 0 or list(frame.columns) != names:
            lacking = [n for n in names if n not in frame.columns]
            return [
                CheckResult(
                    "attribution.drift",
                    "model",
                    Status.INSUFFICIENT_DATA,
                    f"the window lacks the features {lacking} or has no rows to explain",
                )
            ]
        try:
            window = self._explain(ref.model, frame, ref.background)
        except Exception as exc:  # one bad window must not stop the others
            return [
                CheckResult(
                    "attribution.drift",
                    "model",
                    Status.ERROR,
                    f"explaining this window failed: {type(exc).__name__}: {exc}",
                )
            ]
        return attribution_drift(ref.explanation, window)
