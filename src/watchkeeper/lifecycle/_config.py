"""Gate configuration: frozen, validated, loaded from TOML or JSON, with documented defaults.

Every threshold of every gate check lives here so that a pipeline's gate is one reviewed file.
A TOML example (all keys optional; omitted keys keep the defaults below)::

    metrics = ["roc_auc", "accuracy"]
    holdout_fraction = 0.25

    [generalisation]
    folds = 5
    max_gap = 0.05
    required = { roc_auc = 0.8 }

    [comparison]
    mode = "non_inferiority"
    margin = 0.005

    [serving.p99_budget_ms]
    "1" = 20.0
    "10000" = 2000.0

    [extra_checks.fairness]
    max_disparity = 0.1
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar, cast

from watchkeeper.exceptions import InputError

__all__ = [
    "CalibrationConfig",
    "ComparisonConfig",
    "Expectation",
    "GateConfig",
    "GeneralisationConfig",
    "RobustnessConfig",
    "ServingConfig",
]

Expectation = Literal["answer", "reject", "either"]
_EXPECTATIONS = ("answer", "reject", "either")

_C = TypeVar("_C")


def _frozen_map(obj: Any, name: str) -> None:
    # Dataclasses are frozen, but a dict field would still be mutable through the attribute.
    object.__setattr__(obj, name, MappingProxyType(dict(getattr(obj, name))))


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


@dataclass(frozen=True, slots=True)
class GeneralisationConfig:
    """Cross-validation, overfitting, learning and validation curves, early stopping.

    Parameters
    ----------
    enabled
        Run the generalisation checks at all.
    folds
        Number of CV folds (k-fold, stratified for classifiers; time-series split when a
        timestamp column is given).
    confidence
        Level of the corrected resampled t-interval of the CV mean (Nadeau & Bengio, 2003).
    required
        Per-metric requirement on the CV mean: at least this for scores, at most this for
        losses. The check alerts when the whole interval is on the wrong side, warns when only
        the mean is.
    max_gap
        Largest acceptable train-minus-validation gap of the primary metric: absolute for
        bounded scores (accuracy, AUC, R², …), relative to the validation loss for unbounded
        losses (MSE, MAE, log loss).
    overfit_status
        Status given when the gap exceeds ``max_gap``: ``"warn"`` (report only) or ``"alert"``
        (fail the gate).
    curve_folds
        Folds of the learning and validation curves (at most ``folds``; default 3). The
        curves refit the model once per fold and per point, several times the cost of the
        cross-validation itself, and only advise (they never fail the gate): three folds
        give each point a mean and a standard error at a fraction of the cost.
    learning_curve, train_sizes
        Whether to compute a learning curve, and at which fractions of the training data
        (default: a quarter, half and all of it; the recommendation compares the two
        largest sizes, one doubling apart, paired by fold).
    validation_curve, param, param_range
        Whether to compute a validation curve; the parameter (default: the estimator's main
        regularisation parameter) and the values to try (default: the current value and at
        most four others spanning the parameter's usual range).
    early_stopping, stopping_rounds, validation_fraction
        Best-iteration search for iterative learners: rounds without improvement before
        stopping and the share of the training data held out to watch.

    Examples
    --------
    >>> GeneralisationConfig(folds=3).folds
    3
    """

    enabled: bool = True
    folds: int = 5
    confidence: float = 0.95
    required: Mapping[str, float] = field(default_factory=dict)
    max_gap: float = 0.05
    overfit_status: Literal["warn", "alert"] = "warn"
    curve_folds: int = 3
    learning_curve: bool = True
    train_sizes: tuple[float, ...] = (0.25, 0.5, 1.0)
    validation_curve: bool = True
    param: str | None = None
    param_range: tuple[Any, ...] | None = None
    early_stopping: bool = True
    stopping_rounds: int = 20
    validation_fraction: float = 0.2

    def __post_init__(self) -> None:
        _frozen_map(self, "required")
        _check(self.folds >= 2, f"generalisation.folds must be at least 2, got {self.folds}")
        _check(
            self.curve_folds >= 2,
            f"generalisation.curve_folds must be at least 2, got {self.curve_folds}",
        )
        _check(0 < self.confidence < 1, "generalisation.confidence must be in (0, 1)")
        _check(self.max_gap >= 0, "generalisation.max_gap must be non-negative")
        _check(
            self.overfit_status in ("warn", "alert"),
            "generalisation.overfit_status must be 'warn' or 'alert'",
        )
        _check(
            len(self.train_sizes) >= 2 and all(0 < s <= 1 for s in self.train_sizes),
            "generalisation.train_sizes must hold at least two fractions in (0, 1]",
        )
        _check(self.stopping_rounds >= 1, "generalisation.stopping_rounds must be at least 1")
        _check(
            0 < self.validation_fraction < 1, "generalisation.validation_fraction must be in (0, 1)"
        )


@dataclass(frozen=True, slots=True)
class CalibrationConfig:
    """Calibration of a classifier's probabilities on the holdout.

    Parameters
    ----------
    enabled
        Run the check (classifiers with ``predict_proba`` only).
    n_bins, strategy
        Bins of the reliability curve, as in :func:`sklearn.calibration.calibration_curve`.
    max_ece
        Largest acceptable expected calibration error. The check alerts when the ECE exceeds
        it and perfect calibration is rejected at level ``1 - confidence`` (so that the small
        sample bias of the ECE alone never fails a model); it warns when only the ECE does.
    n_resamples, confidence
        Resamples of the consistency test and of the (descriptive) bootstrap interval.

    Examples
    --------
    >>> CalibrationConfig().max_ece
    0.05
    """

    enabled: bool = True
    n_bins: int = 10
    strategy: Literal["uniform", "quantile"] = "uniform"
    max_ece: float = 0.05
    n_resamples: int = 200
    confidence: float = 0.95

    def __post_init__(self) -> None:
        _check(self.n_bins >= 2, "calibration.n_bins must be at least 2")
        _check(
            self.strategy in ("uniform", "quantile"),
            "calibration.strategy must be 'uniform' or 'quantile'",
        )
        _check(0 <= self.max_ece <= 1, "calibration.max_ece must be in [0, 1]")
        _check(self.n_resamples >= 0, "calibration.n_resamples must be non-negative")
        _check(0 < self.confidence < 1, "calibration.confidence must be in (0, 1)")


@dataclass(frozen=True, slots=True)
class ComparisonConfig:
    """Champion versus challenger on the same holdout.

    The challenger is blessed only if, for every metric, the lower end of the two-sided
    ``confidence`` interval of the improvement (challenger minus champion, signed so that
    positive is better) clears the bar: ``> margin`` in ``"superiority"`` mode, ``> -margin``
    in ``"non_inferiority"`` mode. Requiring every metric to clear is an intersection-union
    test, so no multiplicity correction is needed.

    Parameters
    ----------
    enabled
        Run the comparison when a champion is given.
    metrics
        Metrics to compare (default: the gate's primary metric only).
    mode
        ``"superiority"`` (the challenger must be better by ``margin``) or
        ``"non_inferiority"`` (it may be worse by at most ``margin``).
    margin, margins
        Margin in metric units; ``margins`` overrides it per metric.
    confidence
        Level of the two-sided interval; its lower end is a one-sided bound at level
        ``(1 + confidence) / 2`` (the CONSORT convention for non-inferiority trials).
    n_resamples
        Paired bootstrap resamples (percentile interval).
    min_rows
        Smallest holdout on which a comparison is attempted.

    Examples
    --------
    >>> ComparisonConfig(mode="non_inferiority", margin=0.01).margin_for("accuracy")
    0.01
    """

    enabled: bool = True
    metrics: tuple[str, ...] | None = None
    mode: Literal["superiority", "non_inferiority"] = "superiority"
    margin: float = 0.0
    margins: Mapping[str, float] = field(default_factory=dict)
    confidence: float = 0.95
    n_resamples: int = 2000
    min_rows: int = 100

    def __post_init__(self) -> None:
        _frozen_map(self, "margins")
        _check(
            self.mode in ("superiority", "non_inferiority"),
            "comparison.mode must be 'superiority' or 'non_inferiority'",
        )
        _check(self.margin >= 0, "comparison.margin must be non-negative (it is a distance)")
        _check(all(m >= 0 for m in self.margins.values()), "comparison.margins must be >= 0")
        _check(0 < self.confidence < 1, "comparison.confidence must be in (0, 1)")
        _check(self.n_resamples >= 100, "comparison.n_resamples must be at least 100")
        _check(self.min_rows >= 1, "comparison.min_rows must be at least 1")

    def margin_for(self, metric: str) -> float:
        """Margin of ``metric`` (per-metric override, else ``margin``)."""
        return float(self.margins.get(metric, self.margin))


@dataclass(frozen=True, slots=True)
class RobustnessConfig:
    """Edge-case probes and prediction stability.

    Each probe has an expectation: ``"answer"`` (valid predictions required), ``"reject"``
    (a clean ``ValueError``/``TypeError`` required) or ``"either"``. Whatever the
    expectation, invalid output (wrong length, NaN, unknown class, probabilities that do not
    sum to one) or any other exception fails the probe.

    Parameters
    ----------
    enabled
        Run the probes.
    missing, out_of_range, extreme, unseen_category, wrong_type, shuffled_columns,
    duplicates, single_row, large_batch
        Expectation per probe.
    large_batch_rows
        Rows of the large-batch probe.
    n_rows
        Rows sampled from the holdout for the probes.
    perturbation_scale
        Standard deviation of the stability noise, as a fraction of each numeric feature's
        standard deviation.
    max_flip_rate, max_relative_change
        Stability thresholds (share of changed labels for classifiers; median absolute change
        over the prediction standard deviation for regressors); exceeding them warns.
    tolerance
        Absolute tolerance when predictions of the same row must agree.

    Examples
    --------
    >>> RobustnessConfig(wrong_type="either").wrong_type
    'either'
    """

    enabled: bool = True
    missing: Expectation = "either"
    out_of_range: Expectation = "answer"
    extreme: Expectation = "either"
    unseen_category: Expectation = "either"
    wrong_type: Expectation = "reject"
    shuffled_columns: Expectation = "either"
    duplicates: Expectation = "answer"
    single_row: Expectation = "answer"
    large_batch: Expectation = "answer"
    large_batch_rows: int = 100_000
    n_rows: int = 200
    perturbation_scale: float = 0.01
    max_flip_rate: float = 0.05
    max_relative_change: float = 0.05
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        for name in PROBES:
            value = getattr(self, name)
            _check(
                value in _EXPECTATIONS,
                f"robustness.{name} must be one of {_EXPECTATIONS}, got {value!r}",
            )
        _check(self.large_batch_rows >= 1, "robustness.large_batch_rows must be at least 1")
        _check(self.n_rows >= 2, "robustness.n_rows must be at least 2")
        _check(self.perturbation_scale >= 0, "robustness.perturbation_scale must be >= 0")
        _check(self.tolerance >= 0, "robustness.tolerance must be >= 0")

    def expectation(self, probe: str) -> Expectation:
        """Expectation of ``probe``."""
        return cast(Expectation, getattr(self, probe))


PROBES = (
    "missing",
    "out_of_range",
    "extreme",
    "unseen_category",
    "wrong_type",
    "shuffled_columns",
    "duplicates",
    "single_row",
    "large_batch",
)


@dataclass(frozen=True, slots=True)
class ServingConfig:
    """Latency and memory budgets of ``predict``.

    Latency is the CPU time of one ``predict`` call on one thread, which a busy machine
    does not inflate the way it inflates wall-clock time (see
    :func:`~watchkeeper.lifecycle.serving_checks`). Defaults are generous budgets for a
    model answering a synchronous web request on one core; set your own from your
    service-level objective.

    Budgets are reported apart from the statistical checks (``GateReport.budgets``): they
    never change ``GateReport.passed``. Over budget is a ``warn`` by default; with
    ``enforce`` it is an ``alert`` and the gate's exit code is 1.

    Parameters
    ----------
    enabled
        Run the measurements.
    batch_sizes
        Batch sizes timed.
    repeats, warmup
        Fewest timed calls per batch size (more are made, up to ``4 * repeats``, until the
        median is stable) and untimed calls before them.
    max_seconds
        Stop timing a batch size after this much CPU time (at least three calls are always
        made).
    p50_budget_ms, p99_budget_ms
        Budgets per batch size, in milliseconds of CPU time per call; batch sizes without
        a budget are reported only.
    max_memory_mb
        Budget of the peak memory allocated while predicting the largest batch (traced by
        :mod:`tracemalloc`, which sees Python and NumPy allocations).
    enforce
        Whether a budget exceeded fails the gate's exit code (default: reported as a
        warning only).

    Examples
    --------
    >>> ServingConfig().p99_budget_ms[1]
    100.0
    >>> ServingConfig().enforce
    False
    """

    enabled: bool = True
    batch_sizes: tuple[int, ...] = (1, 100, 10_000)
    repeats: int = 15
    warmup: int = 2
    max_seconds: float = 2.0
    p50_budget_ms: Mapping[int, float] = field(
        default_factory=lambda: {1: 50.0, 100: 100.0, 10_000: 2_000.0}
    )
    p99_budget_ms: Mapping[int, float] = field(
        default_factory=lambda: {1: 100.0, 100: 250.0, 10_000: 5_000.0}
    )
    max_memory_mb: float | None = 1024.0
    enforce: bool = False

    def __post_init__(self) -> None:
        for name in ("p50_budget_ms", "p99_budget_ms"):
            raw = getattr(self, name)
            try:
                converted = {int(k): float(v) for k, v in raw.items()}
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"serving.{name} keys must be batch sizes and values milliseconds: {exc}"
                ) from exc
            object.__setattr__(self, name, MappingProxyType(converted))
        _check(
            len(self.batch_sizes) >= 1 and all(b >= 1 for b in self.batch_sizes),
            "serving.batch_sizes must hold positive batch sizes",
        )
        _check(self.repeats >= 3, "serving.repeats must be at least 3")
        _check(self.warmup >= 0, "serving.warmup must be non-negative")
        _check(self.max_seconds > 0, "serving.max_seconds must be positive")


@dataclass(frozen=True, slots=True)
class GateConfig:
    """Everything a validation gate decides with.

    Parameters
    ----------
    metrics
        Metrics to evaluate, the first being the primary one (default: ``roc_auc`` and
        ``accuracy`` for binary classifiers, ``accuracy`` and ``log_loss`` for multiclass,
        ``r2`` and ``mae`` for regressors). See :func:`available_metrics`.
    holdout_fraction
        Share of the data held out (last rows in time when a timestamp is given) when no
        separate holdout is passed.
    min_rows
        Fewest training rows for which the gate runs; below it checks report
        insufficient data.
    generalisation, calibration, comparison, robustness, serving
        Per-check settings.
    extra_checks
        Registered extra gate checks to run (see :func:`gate_check`), with their parameters.

    Examples
    --------
    >>> cfg = GateConfig.from_dict({"metrics": ["accuracy"], "comparison": {"margin": 0.01}})
    >>> cfg.comparison.margin, cfg.generalisation.folds
    (0.01, 5)
    >>> GateConfig.from_dict({"folds": 3})
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: unknown gate setting 'folds'; valid keys here: ...
    """

    metrics: tuple[str, ...] | None = None
    holdout_fraction: float = 0.25
    min_rows: int = 50
    generalisation: GeneralisationConfig = field(default_factory=GeneralisationConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    comparison: ComparisonConfig = field(default_factory=ComparisonConfig)
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    extra_checks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "extra_checks",
            MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.extra_checks.items()}),
        )
        _check(0 < self.holdout_fraction < 1, "holdout_fraction must be in (0, 1)")
        _check(self.min_rows >= 2, "min_rows must be at least 2")
        _check(self.metrics is None or len(self.metrics) >= 1, "metrics must not be empty")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateConfig:
        """Build a config from plain data (as read from TOML or JSON); unknown keys are errors."""
        return _build(cls, data, prefix="")

    @classmethod
    def from_file(cls, path: str | Path) -> GateConfig:
        """Read a config from a ``.toml`` or ``.json`` file."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"gate config {str(p)!r} does not exist; pass an existing file")
        try:
            if p.suffix.lower() == ".toml":
                data = tomllib.loads(p.read_text(encoding="utf-8"))
            elif p.suffix.lower() == ".json":
                data = json.loads(p.read_text(encoding="utf-8"))
            else:
                raise InputError(f"gate config {str(p)!r} must be a .toml or .json file")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"gate config {str(p)!r} is not valid: {exc}") from exc
        if not isinstance(data, Mapping):
            raise InputError(f"gate config {str(p)!r} must hold a table/object at the top")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (``from_dict(to_dict())`` round-trips)."""
        return cast(dict[str, Any], _plain(self))


_NESTED: dict[str, type] = {
    "generalisation": GeneralisationConfig,
    "calibration": CalibrationConfig,
    "comparison": ComparisonConfig,
    "robustness": RobustnessConfig,
    "serving": ServingConfig,
}


def _build(cls: type[_C], data: Mapping[str, Any], prefix: str) -> _C:
    if not isinstance(data, Mapping):
        raise InputError(f"gate setting {prefix.rstrip('.') or 'config'!r} must be a table")
    names = {f.name: f for f in fields(cast(Any, cls))}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise InputError(
                f"unknown gate setting {prefix + key!r}; valid keys here: "
                + ", ".join(sorted(names))
            )
        if cls is GateConfig and key in _NESTED:
            kwargs[key] = _build(_NESTED[key], value, prefix=f"{key}.")
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"invalid gate setting under {prefix or 'top level'}: {exc}") from exc


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
