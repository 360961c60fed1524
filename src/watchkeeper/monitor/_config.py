"""The monitor's configuration: one frozen object, changed by making a new one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from watchkeeper.checks import CheckResult, FairnessConfig, PerformanceRule, RankingConfig
from watchkeeper.exceptions import InputError
from watchkeeper.monitor._windows import WindowSpec, parse_every

__all__ = ["DriftDetector", "MonitorConfig", "PerformanceEstimator"]


@runtime_checkable
class PerformanceEstimator(Protocol):
    """Label-free performance estimation (``watchkeeper.checks.CBPE``, ``DLE``).

    ``fit`` receives the reference frame and ``estimate`` each window's frame: pandas
    DataFrames with the feature columns, ``prediction``, ``label`` (``None`` where no label
    arrived; the reference frame holds labelled rows only), and for classifiers one
    ``score.<class>`` column per class (the logged probabilities).
    """

    def fit(self, reference: Any) -> Any: ...

    def estimate(self, data: Any) -> list[CheckResult]: ...


@runtime_checkable
class DriftDetector(Protocol):
    """A concept-drift detector on the error stream (``watchkeeper.checks.Detector``)."""

    def update(self, x: float) -> Any: ...

    @property
    def drift_detected(self) -> bool: ...


@dataclass(frozen=True)
class MonitorConfig:
    """What the monitor computes for each window.

    Parameters
    ----------
    every
        Window size: a duration (``"1h"``, ``"1d"``, aligned to UTC) or a row count (1000).
    min_rows
        Rows a window needs for drift, quality and serving verdicts (drift tests also apply
        their own ``min_samples``); fewer give ``insufficient_data``.
    performance
        Rule for realised performance (minimum labels, interval level, tolerated drop).
    drift_rule
        Decision rule of the drift checks (``"fdr"`` default, ``"threshold"``, ``"chunks"``
        or a rule object), the same rules as :func:`watchkeeper.compare`.
    multivariate
        Multivariate drift method run on the features of each window, or ``None``.
    quality
        Run the data-quality checks.
    window_sample
        Rows kept in each window's stored profile (a uniform, mergeable sample). Exact tests
        such as KS use it: windows of up to this many rows are tested on every row, longer
        ones on the sample (a valid test with less power); binned tests, category tests and
        quality checks always count every row.
    baseline_rows
        Rows of a version's earliest windows used as the baseline of prediction and score
        drift when the reference profile has no prediction column (and of feature drift when
        the version has no reference profile).
    reference_window
        ``(start, end)`` of the log to use as that baseline instead of the earliest rows.
    estimators
        Label-free performance estimators (see :class:`PerformanceEstimator`). ``"auto"``
        (default): :class:`~watchkeeper.checks.CBPE` for a classifier that logs class scores,
        :class:`~watchkeeper.checks.DLE` for a regressor, none otherwise. Each version gets
        its own copy, fitted on its labelled baseline rows once at least ``min_rows`` of them
        are labelled (until then its windows get ``estimated.*`` ``insufficient_data``).
    detectors
        Concept-drift detectors on the error stream: names (``"adwin"``, ``"page_hinkley"``,
        ``"ddm"``..., see :func:`watchkeeper.checks.available_detectors`). Binary detectors
        are skipped for regressors and ranking models (whose error is 1 - nDCG@k per
        query). Default: ADWIN alone (0/1 errors and losses alike), whose false alarms stay
        far below one per model-year at 10,000 labelled rows a week;
        Page-Hinkley's fixed threshold (in the loss's units) alarms every few tens of
        thousands of rows on a stable model (docs/monitoring.md, *False alerts over time*).
    label_delay
        Seconds after a prediction before its error is fed to the detectors; a label that
        arrives later than this is not fed (labels are otherwise fed as soon as they are
        seen, in prediction-time order).
    recompute_horizon
        Seconds back from the latest evaluated window within which windows are re-read to
        pick up late labels (older windows are left as they are unless ``since`` asks).
    max_error_rate
        Share of failed predictions that alerts (``warn`` while only the estimate exceeds
        it).
    flag_alpha
        Significance level of the user-flag rate check (``feedback.flag_rate``: the window's
        rate of rows flagged through the feedback endpoint against the version's baseline
        rows, an exact one-sided test).
    max_latency_p99_ms
        p99 latency above which the window alerts (``None``: reported, never judged).
    fairness
        Fairness checks per window when the version's reference schema declares sensitive
        attributes (role ``sensitive``) and the log has them: ``True`` (default
        :class:`~watchkeeper.checks.FairnessConfig`), a ``FairnessConfig``, or ``False``.
    skew
        Check each version's first window of at least ``min_rows`` rows for
        training–serving skew against the reference profile
        (:func:`~watchkeeper.checks.check_skew`).
    attributions
        Attribution drift per window (:func:`~watchkeeper.explain.attribution_drift`):
        ``False`` (default), ``True`` (explain a seeded sample of at most 200 rows per window)
        or that number of rows. Needs the ``explain`` extra and a reference profile with a
        row sample (the background and the reference rows).
    segments
        Weak segments on each window's labelled rows
        (:func:`~watchkeeper.checks.check_weak_segments`, ``warn`` only).
    random_state
        Seed of every random choice.
    outlier_alpha
        Significance level of the outlier-share check (``outliers.rate``: the window's share
        of records its version's outlier detector flagged against the detector's calibrated
        rate, an exact one-sided beta-binomial test; only for versions registered with
        ``outliers=``).
    ranking
        Realised ranking quality of models registered with ``output_kind="ranking"``
        (predictions are ranked lists of item ids, labels the relevant items): ``k``
        (default 10), minimum labelled queries, interval over queries and tolerated drop
        (:class:`~watchkeeper.checks.RankingConfig`).

    Examples
    --------
    >>> MonitorConfig(every="1d").window.size
    86400
    >>> MonitorConfig().estimators, MonitorConfig().detectors
    ('auto', ('adwin',))
    >>> MonitorConfig(attributions=True).attribution_rows, MonitorConfig().attribution_rows
    (200, 0)
    >>> MonitorConfig(every="fortnightly")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: every='fortnightly' is not a window size; ...
    """

    every: str | int = "1h"
    min_rows: int = 100
    performance: PerformanceRule = field(default_factory=PerformanceRule)
    drift_rule: Any = None
    multivariate: str | None = None
    quality: bool = True
    window_sample: int = 10_000
    baseline_rows: int = 1000
    reference_window: tuple[datetime, datetime] | None = None
    estimators: Sequence[PerformanceEstimator] | Literal["auto"] = "auto"
    detectors: Sequence[str] = ("adwin",)
    label_delay: float = 0.0
    recompute_horizon: float = 7 * 86400.0
    max_error_rate: float = 0.01
    flag_alpha: float = 0.01
    max_latency_p99_ms: float | None = None
    fairness: bool | FairnessConfig = True
    skew: bool = True
    attributions: bool | int = False
    segments: bool = False
    random_state: int = 0
    outlier_alpha: float = 0.01
    ranking: RankingConfig = field(default_factory=RankingConfig)

    def __post_init__(self) -> None:
        parse_every(self.every)
        if self.min_rows < 1:
            raise InputError(f"min_rows must be at least 1, got {self.min_rows}")
        if not 0 < self.flag_alpha < 1:
            raise InputError(f"flag_alpha must be between 0 and 1, got {self.flag_alpha}")
        if not 0 < self.outlier_alpha < 1:
            raise InputError(f"outlier_alpha must be between 0 and 1, got {self.outlier_alpha}")
        if self.window_sample < 0:
            raise InputError(f"window_sample must be 0 or more rows, got {self.window_sample}")
        if self.baseline_rows < 1:
            raise InputError(f"baseline_rows must be at least 1, got {self.baseline_rows}")
        if self.label_delay < 0 or self.recompute_horizon < 0:
            raise InputError("label_delay and recompute_horizon must be >= 0 seconds")
        if not 0 <= self.max_error_rate <= 1:
            raise InputError(f"max_error_rate must be in [0, 1], got {self.max_error_rate}")
        object.__setattr__(self, "detectors", tuple(self.detectors))
        if isinstance(self.estimators, str):
            if self.estimators != "auto":
                raise InputError(
                    f"estimators must be 'auto' or a list of estimators, got {self.estimators!r}"
                )
        else:
            object.__setattr__(self, "estimators", tuple(self.estimators))
            for est in self.estimators:
                if not isinstance(est, PerformanceEstimator):
                    raise InputError(
                        f"estimators must have fit(reference) and estimate(window), got "
                        f"{type(est).__name__}"
                    )
        self._check_detectors_and_window()
        self._check_health()

    def _check_health(self) -> None:
        if not isinstance(self.ranking, RankingConfig):
            raise InputError(f"ranking must be a RankingConfig, got {self.ranking!r}")
        if not isinstance(self.fairness, bool | FairnessConfig):
            raise InputError(
                f"fairness must be True, False or a FairnessConfig, got {self.fairness!r}"
            )
        if not isinstance(self.attributions, bool) and (
            not isinstance(self.attributions, int) or self.attributions < 1
        ):
            raise InputError(
                "attributions must be True, False or the most rows to explain per window "
                f"(at least 1), got {self.attributions!r}"
            )

    @property
    def fairness_config(self) -> FairnessConfig | None:
        """The fairness settings, or ``None`` when fairness checks are off."""
        if self.fairness is False:
            return None
        return self.fairness if isinstance(self.fairness, FairnessConfig) else FairnessConfig()

    @property
    def attribution_rows(self) -> int:
        """Most rows explained per window (``0``: attribution drift is off)."""
        if isinstance(self.attributions, bool):
            return 200 if self.attributions else 0
        return int(self.attributions)

    def _check_detectors_and_window(self) -> None:
        if self.detectors:
            from watchkeeper.checks import available_detectors

            unknown = [d for d in self.detectors if d not in available_detectors()]
            if unknown:
                raise InputError(
                    f"unknown detectors {unknown}; choose from {', '.join(available_detectors())}"
                )
        if self.reference_window is not None:
            start, end = self.reference_window
            if start.tzinfo is None or end.tzinfo is None or not start < end:
                raise InputError(
                    "reference_window must be (start, end) aware datetimes with start < end"
                )

    @property
    def window(self) -> WindowSpec:
        """The parsed window size."""
        return parse_every(self.every)
