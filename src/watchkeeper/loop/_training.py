"""Training a challenger: the data, the refit or the user's entry point, the candidates and
the gate that picks one.

The training frame is the user's reference rows plus the logged live predictions whose
labels had arrived by the trigger's event time, cut by the policy's window rule; the most
recent ``holdout_days`` of labelled rows are held out for the gate (time order respected:
nothing after the holdout's start is trained on). Flagged rows are excluded, down-weighted
(``sample_weight``) or kept. Every candidate goes through :func:`watchkeeper.lifecycle.validate`
against the champion on that holdout; the one with the best lower confidence bound of the
comparison goes on, and every report is kept.
"""

from __future__ import annotations

import importlib
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper.exceptions import InputError
from watchkeeper.loop._policy import Candidate, LoopConfig

__all__ = ["TrainingContext", "TrainingOutcome", "load_entry_point", "train_and_gate"]

_DAY = 86_400.0
_LOG_COLUMNS = frozenset(
    ("id", "ts", "version", "arm", "shadow", "status", "error", "latency_ms", "prediction",
     "scores", "label", "flag", "label_ts",
     "_outlier_score", "_outlier")  # the gateway's outlier score and flag: not features
)  # fmt: skip


@dataclass(frozen=True)
class TrainingContext:
    """What a user's training entry point is told besides the frame and the previous model.

    ``sample_weight`` is ``None`` unless flagged rows are down-weighted; ``holdout`` is the
    frame the gate will judge on (do not train on it).
    """

    model: str
    champion_version: int
    now: float
    rollout_id: str
    features: tuple[str, ...]
    target: str
    sample_weight: Any
    holdout: Any
    policy: LoopConfig


@dataclass(frozen=True)
class CandidateReport:
    """One trained candidate and its gate verdict."""

    name: str
    passed: bool
    blessed: bool | None
    lower: float | None
    improvement: float | None
    report: Any = field(repr=False, compare=False)
    estimator: Any = field(repr=False, compare=False)
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (without the report and the model)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "blessed": self.blessed,
            "lower": self.lower,
            "improvement": self.improvement,
            "report": self.path,
        }


@dataclass(frozen=True)
class TrainingOutcome:
    """The candidates, the one chosen (``None`` when none passed), and the data used."""

    candidates: tuple[CandidateReport, ...]
    chosen: CandidateReport | None
    train_rows: int
    logged_rows: int
    holdout_rows: int
    train: Any = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "candidates": [c.to_dict() for c in self.candidates],
            "chosen": None if self.chosen is None else self.chosen.name,
            "train_rows": self.train_rows,
            "logged_rows": self.logged_rows,
            "holdout_rows": self.holdout_rows,
        }


def load_entry_point(spec: str) -> Callable[..., Any]:
    """Import ``module:name`` and return the object.

    Examples
    --------
    >>> load_entry_point("math:sqrt")(9.0)
    3.0
    >>> load_entry_point("math:nope")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: entry point 'math:nope': module 'math' has no 'nope'
    """
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"entry point {spec!r}: cannot import {module_name!r} ({exc})") from exc
    try:
        return getattr(module, attr)  # type: ignore[no-any-return]
    except AttributeError:
        raise InputError(f"entry point {spec!r}: module {module_name!r} has no {attr!r}") from None


def logged_frame(sink: Any, policy: LoopConfig, *, start: float | None, now: float) -> Any:
    """Live logged rows up to ``now`` whose labels had arrived by ``now``, as training rows
    (``timestamp``, features, target, ``flag``)."""
    window = sink.read_window(policy.model, start=start, end=now).to_pandas()
    window = window[~window["shadow"]]
    if window.empty:
        return window
    label_ts = window["label_ts"].dt.tz_convert("UTC")
    now_ts = _stamp(now)
    rows = window[window["label"].notna() & (label_ts <= now_ts)]
    features = [c for c in rows.columns if c not in _LOG_COLUMNS]
    frame = rows[features].copy()
    frame.insert(0, "timestamp", rows["ts"].dt.tz_convert("UTC").dt.tz_localize(None))
    frame[policy.training.target] = _numeric_or_raw(rows["label"])
    frame["flag"] = rows["flag"].fillna(False).astype(bool).to_numpy()
    return frame.reset_index(drop=True)


def train_and_gate(
    *,
    registry: Any,
    sink: Any,
    policy: LoopConfig,
    reference: Any,
    now: float,
    rollout_id: str,
    reports: Path | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> TrainingOutcome:
    """Build the data, train the refit (or the entry point) and every candidate, gate each
    against the champion, choose the best by the lower confidence bound."""
    import pandas as pd

    from watchkeeper.lifecycle import validate

    t = policy.training
    champion = registry.load_model(policy.model, policy.champion)
    start = None
    if t.window == "sliding" and t.window_days is not None:
        start = now - t.window_days * _DAY
    if t.max_age_days is not None:
        start = max(start or -math.inf, now - t.max_age_days * _DAY)
    logged = logged_frame(sink, policy, start=start, now=now)
    if logged.empty:
        raise InputError(
            f"no labelled rows of model {policy.model!r} logged by the trigger time; a "
            "retraining needs labels (send them to the feedback route)"
        )
    cut = logged["timestamp"].max() - pd.Timedelta(days=t.holdout_days)
    holdout = logged[logged["timestamp"] > cut].drop(columns="flag")
    logged_train = logged[logged["timestamp"] <= cut]
    features = tuple(c for c in logged.columns if c not in ("timestamp", t.target, "flag"))
    parts = [logged_train]
    if t.include_reference and reference is not None:
        ref = reference.copy()
        if "timestamp" not in ref.columns:
            ref.insert(0, "timestamp", pd.NaT)
        missing = [c for c in (*features, t.target) if c not in ref.columns]
        if missing:
            raise InputError(
                f"the reference rows lack column(s) {', '.join(missing)}; pass the champion's "
                "training data with its features and the target"
            )
        ref = ref[["timestamp", *features, t.target]].assign(flag=False)
        parts.insert(0, ref)
    train = pd.concat(parts, ignore_index=True)
    weight = None
    if t.flagged == "exclude":
        train = train[~train["flag"]]
    elif t.flagged == "downweight":
        weight = np.where(train["flag"].to_numpy(), t.flagged_weight, 1.0)
    train = train.drop(columns="flag").reset_index(drop=True)
    say(
        f"training on {len(train):,} rows ({len(logged_train):,} logged with labels), "
        f"holdout {len(holdout):,} rows (the last {t.holdout_days:g} days)"
    )
    context = TrainingContext(
        policy.model, champion.version.version, now, rollout_id, features, t.target, weight,
        holdout, policy,
    )  # fmt: skip
    models: list[tuple[str, Any]] = []
    if t.entry_point is not None:
        fn = load_entry_point(t.entry_point)
        models.append(("entry-point", fn(train, champion.native, context)))
    else:
        models.append(("refit", _fit(_clone(champion.native), train, features, t.target, weight)))
    for cand in t.candidates:
        for name, est in _expand(cand):
            models.append((name, _fit(est, train, features, t.target, weight)))
    reports_out: list[CandidateReport] = []
    gate_cfg = _gate_config(policy.gate.config, policy.gate.sensitive)
    for name, model in models:
        report = validate(
            model,
            train,
            target=t.target,
            timestamp="timestamp",
            holdout=holdout,
            champion=champion.native,
            config=gate_cfg,
            features=list(features),
            name=f"{policy.model} {name}",
            champion_name=f"{policy.model} v{champion.version.version}",
        )
        lower, improvement = _comparison(report)
        path = None
        if reports is not None:
            reports.mkdir(parents=True, exist_ok=True)
            file = reports / f"gate-{rollout_id}-{name}.json"
            report.to_json(file)
            path = str(file)
        reports_out.append(
            CandidateReport(
                name, bool(report.passed), report.blessed, lower, improvement, report, model, path
            )
        )
        say(
            f"  candidate {name}: gate {'passed' if report.passed else 'failed'}"
            + (f", improvement lower bound {lower:+.4g}" if lower is not None else "")
        )
    eligible = [
        c for c in reports_out
        if c.passed and (c.blessed or not policy.gate.require_blessed)
    ]  # fmt: skip
    chosen = max(eligible, key=lambda c: -math.inf if c.lower is None else c.lower, default=None)
    return TrainingOutcome(
        tuple(reports_out), chosen, len(train), len(logged_train), len(holdout), train
    )


def _gate_config(config: Any, sensitive: str | None = None) -> Any:
    """The policy's gate configuration. Left unset, the serving-latency measurements are off:
    their verdict would depend on the machine's load, and the loop's decisions may depend
    only on data (the latency guardrail watches live latency instead). With ``sensitive``,
    the fairness gate check runs on that column unless the configuration already sets it.

    Examples
    --------
    >>> cfg = _gate_config(None, sensitive="sex")
    >>> dict(cfg.extra_checks["fairness"]), cfg.serving.enabled
    ({'attributes': ['sex']}, False)
    """
    from watchkeeper.lifecycle import GateConfig

    if config is None:
        cfg = GateConfig.from_dict({"serving": {"enabled": False}})
    elif isinstance(config, Mapping):
        cfg = GateConfig.from_dict({"serving": {"enabled": False}, **config})
    elif isinstance(config, str | Path):
        cfg = GateConfig.from_file(config)
    else:
        cfg = config
    if sensitive is None or "fairness" in cfg.extra_checks:
        return cfg
    extra = {**cfg.extra_checks, "fairness": {"attributes": [sensitive]}}
    return replace(cfg, extra_checks=extra)


def _comparison(report: Any) -> tuple[float | None, float | None]:
    for r in report.results:
        if r.check == "gate.comparison" and r.lower is not None:
            return float(r.lower), None if r.value is None else float(r.value)
    return None, None


def _clone(model: Any) -> Any:
    from sklearn.base import clone

    try:
        return clone(model)
    except TypeError as exc:
        raise InputError(
            "the champion cannot be cloned for a refit (not a scikit-learn estimator); give "
            "the policy a training entry point (training.entry_point = 'module:function')"
        ) from exc


def _fit(model: Any, train: Any, features: tuple[str, ...], target: str, weight: Any) -> Any:
    X, y = train[list(features)], train[target]
    if weight is None:
        return model.fit(X, y)
    try:
        return model.fit(X, y, sample_weight=weight)
    except TypeError as exc:
        raise InputError(
            f"{type(model).__name__} does not take sample_weight; set training.flagged to "
            "exclude or keep"
        ) from exc


def _expand(cand: Candidate) -> list[tuple[str, Any]]:
    cls = load_entry_point(cand.estimator)
    if not cand.grid:
        return [(cand.name, cls(**cand.params))]
    keys = sorted(cand.grid)
    out = []
    for values in itertools.product(*(cand.grid[k] for k in keys)):
        params = {**cand.params, **dict(zip(keys, values, strict=True))}
        label = ",".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
        out.append((f"{cand.name}[{label}]", cls(**params)))
    return out


def _numeric_or_raw(values: Any) -> Any:
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    return numeric if numeric.notna().all() else values


def _stamp(seconds: float) -> Any:
    import pandas as pd

    return pd.Timestamp(seconds, unit="s", tz="UTC")
