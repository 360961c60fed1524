"""The loop's policy for one model: when to retrain, how, how to gate, how to roll out.

A :class:`LoopConfig` is immutable data, built in Python or read from a TOML file with
:meth:`LoopConfig.from_toml`; :meth:`LoopConfig.to_dict` gives back the same tables.

Alpha budget: the rollout's quality test (the confidence sequence on the loss difference)
spends ``rollout.alpha``; the label-free guardrails share ``guardrails.alpha`` equally (a
Bonferroni split over the guardrails that are switched on). The family's total is their sum,
stated in every decision's evidence.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from watchkeeper.exceptions import InputError

__all__ = [
    "Candidate",
    "Guardrails",
    "LoopConfig",
    "LoopGateConfig",
    "Rollout",
    "Training",
    "Triggers",
]

Loss = Literal["auto", "absolute", "squared", "log", "zero_one"]


@dataclass(frozen=True)
class Triggers:
    """What starts a retraining.

    Parameters
    ----------
    performance
        The realised-performance alert (rule ``performance``) of the champion is firing.
    estimated_performance
        The label-free estimate (CBPE/DLE, rule ``estimated-performance``) is firing.
    drift_features
        Drift alerts (rule ``drift``) on any of these features are firing.
    drift_importance
        Fire when the features drifting now carry at least this share of the total
        importance given in ``importances``.
    importances
        Importance of each feature (any non-negative scale) for ``drift_importance``.
    concept_drift
        The concept-drift detector's alert (rule ``concept-drift``) is firing.
    every_days
        Retrain on a schedule, this many days of event time after the last rollout started.
    new_labels
        Retrain once this many labels arrived since the last rollout started.
    min_days_in_service
        The champion must have served this long (event time) before anything but a manual
        trigger acts.
    cooldown_days
        Days after a rollout ended before the next may start.
    """

    performance: bool = True
    estimated_performance: bool = False
    drift_features: tuple[str, ...] = ()
    drift_importance: float | None = None
    importances: Mapping[str, float] = field(default_factory=dict)
    concept_drift: bool = False
    every_days: float | None = None
    new_labels: int | None = None
    min_days_in_service: float = 0.0
    cooldown_days: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "drift_features", tuple(self.drift_features))
        object.__setattr__(self, "importances", dict(self.importances))
        _nonneg("triggers.min_days_in_service", self.min_days_in_service)
        _nonneg("triggers.cooldown_days", self.cooldown_days)
        if self.every_days is not None:
            _positive("triggers.every_days", self.every_days)
        if self.new_labels is not None and (
            not isinstance(self.new_labels, int) or self.new_labels < 1
        ):
            raise InputError(
                f"triggers.new_labels must be a positive integer, got {self.new_labels!r}"
            )
        if self.drift_importance is not None:
            if not 0 < self.drift_importance <= 1:
                raise InputError("triggers.drift_importance is a share in (0, 1]")
            if not self.importances:
                raise InputError(
                    "triggers.drift_importance needs [triggers.importances] (feature = weight)"
                )


@dataclass(frozen=True)
class Candidate:
    """A model trained beside the refit: an estimator class and its parameters, or a grid.

    ``estimator`` is ``"module:Class"`` (for example
    ``"sklearn.ensemble:RandomForestRegressor"``); ``grid`` maps parameters to lists of
    values, one candidate per combination.
    """

    name: str
    estimator: str
    params: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _entry("candidates.estimator", self.estimator)
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "grid", {k: list(v) for k, v in self.grid.items()})


@dataclass(frozen=True)
class Training:
    """How a challenger is trained.

    Parameters
    ----------
    entry_point
        ``"module:function"`` called as ``function(frame, previous_model, context)`` and
        returning a fitted model; without it, a clone of the champion's estimator is refit.
    target
        Name of the label column in the training frame.
    window
        ``expanding`` (everything logged since ``since``) or ``sliding`` (the last
        ``window_days``).
    window_days
        Length of a sliding window, in days of event time.
    max_age_days
        Rows older than this are dropped whatever the window.
    include_reference
        Add the rows the user passes as reference (the champion's training data).
    flagged
        Rows users flagged through the feedback route: ``exclude``, ``downweight`` (to
        ``flagged_weight``, passed as ``sample_weight``) or ``keep``.
    flagged_weight
        Weight of flagged rows when down-weighted.
    holdout_days
        The most recent labelled days, held out for the gate (time order respected).
    candidates
        Other models trained beside the refit; each is gated, the best by the gate's lower
        confidence bound goes on.
    """

    entry_point: str | None = None
    target: str = "label"
    window: Literal["expanding", "sliding"] = "expanding"
    window_days: float | None = None
    max_age_days: float | None = None
    include_reference: bool = True
    flagged: Literal["exclude", "downweight", "keep"] = "exclude"
    flagged_weight: float = 0.1
    holdout_days: float = 7.0
    candidates: tuple[Candidate, ...] = ()

    def __post_init__(self) -> None:
        if self.entry_point is not None:
            _entry("training.entry_point", self.entry_point)
        if self.window not in ("expanding", "sliding"):
            raise InputError(f"training.window is expanding or sliding, got {self.window!r}")
        if self.window == "sliding" and self.window_days is None:
            raise InputError("a sliding training window needs training.window_days")
        for name in ("window_days", "max_age_days"):
            if getattr(self, name) is not None:
                _positive(f"training.{name}", getattr(self, name))
        if self.flagged not in ("exclude", "downweight", "keep"):
            raise InputError(
                f"training.flagged is exclude, downweight or keep, got {self.flagged!r}"
            )
        if not 0 <= self.flagged_weight <= 1:
            raise InputError("training.flagged_weight is in [0, 1]")
        _positive("training.holdout_days", self.holdout_days)
        cands = tuple(c if isinstance(c, Candidate) else Candidate(**c) for c in self.candidates)
        object.__setattr__(self, "candidates", cands)


@dataclass(frozen=True)
class LoopGateConfig:
    """The validation gate a challenger must pass: :func:`watchkeeper.lifecycle.validate`
    with the champion comparison on the holdout (``config``: a gate TOML file or table),
    plus the fairness gate when ``sensitive`` names a column."""

    config: str | Mapping[str, Any] | None = None
    require_blessed: bool = True
    sensitive: str | None = None


@dataclass(frozen=True)
class Rollout:
    """How a gated challenger meets live traffic, and how the verdict is reached.

    Parameters
    ----------
    mode
        ``shadow`` (the challenger answers copies; paired loss differences) or ``canary``
        (the challenger answers a share of requests; two-sample loss differences).
    steps
        Canary percentages in order (``100`` is the promotion itself).
    step_labels
        Labelled requests on the challenger at a step before the next step may start.
    budget_labels, budget_days
        When either is reached without a verdict, the rollout ends ``inconclusive`` and the
        champion stays.
    margin
        Practical margin in loss units: ``better`` needs the whole confidence sequence above
        ``+margin``, ``worse`` below ``-margin``; ``equivalent`` inside after
        ``min_exposure`` labels.
    min_exposure
        Labelled requests before ``equivalent`` may be declared.
    alpha
        Error probability of the quality test (both sides together).
    t_opt
        Labels at which the confidence sequence is tightest.
    min_labels
        Burn-in of the sequence (per arm in a canary).
    on_equivalent
        ``keep`` the champion or ``promote`` the challenger when they are equivalent.
    loss
        Per-request loss: ``absolute``/``squared`` error (regression), ``log`` loss or
        ``zero_one`` (classification); ``auto`` picks absolute error for numbers.
    """

    mode: Literal["shadow", "canary"] = "shadow"
    steps: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)
    step_labels: int = 200
    budget_labels: int = 20_000
    budget_days: float = 28.0
    margin: float = 0.0
    min_exposure: int = 500
    alpha: float = 0.05
    t_opt: float = 1000.0
    min_labels: int = 30
    on_equivalent: Literal["keep", "promote"] = "keep"
    loss: Loss = "auto"

    def __post_init__(self) -> None:
        if self.mode not in ("shadow", "canary"):
            raise InputError(f"rollout.mode is shadow or canary, got {self.mode!r}")
        steps = tuple(float(s) for s in self.steps)
        object.__setattr__(self, "steps", steps)
        if self.mode == "canary":
            if not steps or any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(steps):
                raise InputError("rollout.steps are increasing percentages in (0, 100]")
            if steps[-1] != 100.0:
                object.__setattr__(self, "steps", (*steps, 100.0))
        _positive("rollout.budget_days", self.budget_days)
        for name in ("step_labels", "budget_labels", "min_exposure"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"rollout.{name} must be a positive integer, got {value!r}")
        if not isinstance(self.min_labels, int) or self.min_labels < 2:
            raise InputError("rollout.min_labels must be an integer >= 2")
        _nonneg("rollout.margin", self.margin)
        _alpha("rollout.alpha", self.alpha)
        _positive("rollout.t_opt", self.t_opt)
        if self.on_equivalent not in ("keep", "promote"):
            raise InputError("rollout.on_equivalent is keep or promote")
        if self.loss not in ("auto", "absolute", "squared", "log", "zero_one"):
            raise InputError(
                f"rollout.loss is auto, absolute, squared, log or zero_one, got {self.loss!r}"
            )


@dataclass(frozen=True)
class Guardrails:
    """Label-free checks that can stop a rollout at once, each an always-valid test.

    Parameters
    ----------
    alpha
        Shared equally by the guardrails switched on.
    error_rate_increase
        Roll back when the challenger's error rate exceeds the champion's by more than this.
    latency_p99_ms
        Roll back when more than 1 % of the challenger's requests take longer than this.
    prediction_shift
        Roll back when the challenger's mean prediction moves from the champion's by more
        than this many standard deviations of the champion's predictions.
    fairness_attribute, fairness_gap_increase
        Roll back when the gap between groups of ``fairness_attribute`` in mean prediction
        grows by more than ``fairness_gap_increase`` over the champion's.
    min_requests
        Requests on the challenger before a guardrail may act (per arm in a canary).
    """

    alpha: float = 0.01
    error_rate_increase: float | None = 0.01
    latency_p99_ms: float | None = None
    prediction_shift: float | None = 1.0
    fairness_attribute: str | None = None
    fairness_gap_increase: float = 0.05
    min_requests: int = 30

    def __post_init__(self) -> None:
        _alpha("guardrails.alpha", self.alpha)
        for name in ("error_rate_increase", "latency_p99_ms", "prediction_shift"):
            if getattr(self, name) is not None:
                _nonneg(f"guardrails.{name}", getattr(self, name))
        _nonneg("guardrails.fairness_gap_increase", self.fairness_gap_increase)

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the guardrails switched on."""
        out = []
        if self.error_rate_increase is not None:
            out.append("error_rate")
        if self.latency_p99_ms is not None:
            out.append("latency_p99")
        if self.prediction_shift is not None:
            out.append("prediction_shift")
        if self.fairness_attribute is not None:
            out.append("fairness_gap")
        return tuple(out)

    @property
    def alpha_each(self) -> float:
        """Alpha of each guardrail (Bonferroni split)."""
        return self.alpha / max(len(self.active), 1)


@dataclass(frozen=True)
class LoopConfig:
    """Everything the loop does for one model.

    Examples
    --------
    >>> p = LoopConfig.from_dict({"model": "churn", "rollout": {"mode": "canary",
    ...                        "steps": [5, 25, 50]}, "triggers": {"cooldown_days": 7}})
    >>> p.rollout.steps, p.triggers.cooldown_days, p.total_alpha
    ((5.0, 25.0, 50.0, 100.0), 7, 0.06)
    >>> LoopConfig.from_dict(p.to_dict()) == p
    True
    >>> LoopConfig.from_dict({"model": "churn", "rollout": {"mode": "blue-green"}})
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: rollout.mode is shadow or canary, got 'blue-green'
    """

    model: str
    triggers: Triggers = field(default_factory=Triggers)
    training: Training = field(default_factory=Training)
    gate: LoopGateConfig = field(default_factory=LoopGateConfig)
    rollout: Rollout = field(default_factory=Rollout)
    guardrails: Guardrails = field(default_factory=Guardrails)
    champion: str = "champion"
    challenger: str = "challenger"
    actor: str = "watchkeeper-loop"

    def __post_init__(self) -> None:
        from watchkeeper.registry import validate_alias, validate_name

        validate_name(self.model)
        validate_alias(self.champion)
        validate_alias(self.challenger)
        if self.champion == self.challenger:
            raise InputError("the champion and challenger aliases must differ")

    @property
    def total_alpha(self) -> float:
        """Alpha of the whole family: the quality test plus the guardrails."""
        return round(self.rollout.alpha + self.guardrails.alpha, 12)

    def replace(self, **changes: Any) -> LoopConfig:
        """A copy with some top-level fields changed."""
        return replace(self, **changes)

    # -- files --------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopConfig:
        """Build from plain tables, as in a TOML file; unknown keys are refused."""
        if not isinstance(data, Mapping):
            raise InputError("a loop policy is a table of settings")
        parts: dict[str, type] = {
            "triggers": Triggers,
            "training": Training,
            "gate": LoopGateConfig,
            "rollout": Rollout,
            "guardrails": Guardrails,
        }
        top = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - top)
        if unknown:
            raise InputError(
                f"unknown loop policy setting {unknown[0]!r}; valid: {', '.join(sorted(top))}"
            )
        if "model" not in data:
            raise InputError('a loop policy needs model = "NAME" (the registered model)')
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in parts:
                kwargs[key] = _section(key, parts[key], value)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> LoopConfig:
        """Read a policy file (TOML).

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = Path(d) / "loop.toml"
        ...     _ = path.write_text('model = "m"\\n[rollout]\\nmode = "shadow"\\n')
        ...     LoopConfig.from_toml(path).rollout.mode
        'shadow'
        """
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read the loop policy {str(file)!r}: {exc.strerror}") from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"the loop policy {str(file)!r} is not valid TOML: {exc}") from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain tables (``None`` settings left out, as TOML has no null)."""
        out: dict[str, Any] = _drop_none(asdict(self))
        return out


def _section(name: str, kind: type, value: Any) -> Any:
    if isinstance(value, kind):
        return value
    if not isinstance(value, Mapping):
        raise InputError(f"[{name}] must be a table of settings")
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise InputError(f"unknown setting {name}.{unknown[0]}; valid: {', '.join(sorted(known))}")
    try:
        return kind(**value)
    except TypeError as exc:
        raise InputError(f"[{name}]: {exc}") from exc


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_drop_none(v) for v in value]
    return value


def _entry(what: str, value: Any) -> None:
    if not isinstance(value, str) or value.count(":") != 1 or not all(value.split(":")):
        raise InputError(f"{what} is 'module:name', got {value!r}")


def _positive(what: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise InputError(f"{what} must be a positive number, got {value!r}")


def _nonneg(what: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value >= 0)
    ):
        raise InputError(f"{what} must be a number >= 0, got {value!r}")


def _alpha(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise InputError(f"{what} must be in (0, 1), got {value!r}")
