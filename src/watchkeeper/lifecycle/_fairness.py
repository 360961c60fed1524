"""Fairness at the validation gate, and mitigation through Fairlearn.

The gate check ``fairness`` (registered with :func:`~watchkeeper.lifecycle.gate_check`) runs
:func:`watchkeeper.checks.check_fairness` on the candidate's holdout predictions, by the
sensitive attributes of the holdout rows. Configure it in the gate TOML; every key is optional::

    [extra_checks.fairness]
    attributes = ["SEX", "RAC1P"]      # default: the schema's sensitive columns
    max_difference = 0.1               # any FairnessConfig field
    min_group_size = 50
    thresholds = { equalized_odds_difference = 0.05 }
    mitigation = ["threshold_optimizer", "exponentiated_gradient"]
    constraint = "equalized_odds"      # or "demographic_parity" (default)

With ``mitigation``, the gate also fits the mitigated models (:func:`mitigate`) and reports a
trade-off table (:func:`tradeoff_table`): accuracy and every gap, with intervals, for the
candidate as it is and for each mitigation, on the same holdout, before anything is deployed.
Mitigations are offered, never applied: the gate's verdict is about the candidate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from watchkeeper._extras import require
from watchkeeper.checks import CheckResult, FairnessConfig, Status, check_fairness
from watchkeeper.data import MISSING_GROUP, FairnessTask
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle._common import record_warnings
from watchkeeper.lifecycle._extra import GateContext, gate_check
from watchkeeper.stats import wilson_interval

__all__ = ["MITIGATIONS", "MitigatedModel", "fairness_gate", "mitigate", "tradeoff_table"]

Method = Literal["threshold_optimizer", "exponentiated_gradient"]
Constraint = Literal["demographic_parity", "equalized_odds"]
#: Mitigation methods :func:`mitigate` offers.
MITIGATIONS: tuple[str, ...] = ("threshold_optimizer", "exponentiated_gradient")
_CONSTRAINTS = ("demographic_parity", "equalized_odds")
_GATE_KEYS = ("attributes", "positive_label", "mitigation", "constraint", "max_iter")


@dataclass(frozen=True)
class MitigatedModel:
    """A model made fairer by Fairlearn, with a deterministic ``predict``.

    Parameters
    ----------
    method, constraint
        How it was mitigated.
    mitigator
        The fitted :class:`fairlearn.postprocessing.ThresholdOptimizer` or
        :class:`fairlearn.reductions.ExponentiatedGradient`.
    random_state
        Seed of the randomised predictions both methods make.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=400)})
    >>> group = rng.choice(["a", "b"], 400)
    >>> y = (X["x"] + (group == "a") > 0.5).astype(int)
    >>> model = LogisticRegression().fit(X, y)
    >>> fair = mitigate(model, X, y, {"group": group})
    >>> fair.predict(X, sensitive_features={"group": group}).shape
    (400,)
    """

    method: str
    constraint: str
    mitigator: Any
    random_state: int = 0

    @property
    def needs_sensitive_features(self) -> bool:
        """Whether ``predict`` needs the sensitive attributes (post-processing does)."""
        return self.method == "threshold_optimizer"

    def predict(self, X: Any, sensitive_features: Any = None) -> NDArray[Any]:
        """Predicted labels (the same for the same rows and seed).

        Raises
        ------
        InputError
            A post-processed model called without the sensitive attributes.
        """
        with record_warnings():
            if self.needs_sensitive_features:
                if sensitive_features is None:
                    raise InputError(
                        "a threshold-optimised model needs sensitive_features= to predict"
                    )
                return np.asarray(
                    self.mitigator.predict(
                        X,
                        sensitive_features=_sensitive_frame(sensitive_features),
                        random_state=self.random_state,
                    )
                )
            return np.asarray(self.mitigator.predict(X, random_state=self.random_state))


def mitigate(
    model: Any,
    X: Any,
    y: Any,
    sensitive_features: Any,
    *,
    method: Method = "threshold_optimizer",
    constraint: Constraint = "demographic_parity",
    max_iter: int = 20,
    random_state: int = 0,
) -> MitigatedModel:
    """Mitigate ``model`` with Fairlearn.

    Parameters
    ----------
    model
        A scikit-learn classifier. Post-processing uses it as fitted (or fits it first);
        reductions refit clones of it with sample weights, so its ``fit`` must accept
        ``sample_weight``.
    X, y, sensitive_features
        Training rows, labels and their sensitive attributes (a DataFrame, a mapping or one
        array).
    method
        ``"threshold_optimizer"`` (post-processing: group-specific thresholds on the model's
        scores, Hardt et al. 2016) or ``"exponentiated_gradient"`` (reductions: a randomised
        mix of refitted models, Agarwal et al. 2018).
    constraint
        ``"demographic_parity"`` or ``"equalized_odds"``.
    max_iter
        Iterations of the exponentiated gradient (each refits the model once).
    random_state
        Seed of the randomised predictions.

    Raises
    ------
    InputError
        Unknown method or constraint.
    MissingExtraError
        Fairlearn is not installed.
    """
    if method not in MITIGATIONS:
        raise InputError(f"unknown mitigation {method!r}; choose one of {', '.join(MITIGATIONS)}")
    if constraint not in _CONSTRAINTS:
        raise InputError(f"unknown constraint {constraint!r}; choose one of {_CONSTRAINTS}")
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    from watchkeeper.lifecycle._inputs import is_fitted

    purpose = "Mitigating unfairness"
    sensitive = _sensitive_frame(sensitive_features)
    with threadpool_limits(1), record_warnings():
        if method == "threshold_optimizer":
            post = require("fairlearn.postprocessing", extra="fairness", purpose=purpose)
            fitted = is_fitted(model)
            mitigator = post.ThresholdOptimizer(
                estimator=model if fitted else clone(model),
                constraints=constraint,
                prefit=fitted,
                predict_method="auto",
            )
        else:
            red = require("fairlearn.reductions", extra="fairness", purpose=purpose)
            moment = red.DemographicParity() if constraint == "demographic_parity" else (
                red.EqualizedOdds()
            )  # fmt: skip
            mitigator = red.ExponentiatedGradient(clone(model), moment, max_iter=max_iter)
        mitigator.fit(X, np.asarray(y), sensitive_features=sensitive)
    return MitigatedModel(method, constraint, mitigator, random_state)


def tradeoff_table(
    models: Mapping[str, Any],
    X: Any,
    y: Any,
    sensitive_features: Any,
    *,
    config: FairnessConfig | None = None,
    positive_label: Any = None,
) -> list[CheckResult]:
    """Accuracy and every fairness gap, with intervals, for each model on the same rows.

    One ``fairness.tradeoff`` result per model (subject: its label); ``value`` is the
    accuracy with its Wilson interval, ``details["gaps"]`` every gap by attribute with its
    interval and status. Reported, not judged.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> group = rng.choice(["a", "b"], 1000)
    >>> X = pd.DataFrame({"x": rng.normal(size=1000), "in_a": (group == "a").astype(float)})
    >>> y = (X["x"] + X["in_a"] + rng.normal(size=1000) > 0.5).astype(int)
    >>> model = LogisticRegression().fit(X, y)
    >>> fair = mitigate(model, X, y, {"group": group})
    >>> rows = tradeoff_table({"as is": model, "mitigated": fair}, X, y, {"group": group})
    >>> [(r.subject, round(r.details["gaps"]["group"]["demographic_parity_difference"]
    ...   ["value"], 2)) for r in rows]
    [('as is', 0.29), ('mitigated', 0.01)]
    """
    sensitive = _sensitive_frame(sensitive_features)
    y = np.asarray(y)
    out = []
    for label, model in models.items():
        with record_warnings():
            if isinstance(model, MitigatedModel):
                pred = model.predict(X, sensitive_features=sensitive)
            else:
                pred = np.asarray(model.predict(X))
        correct = int(np.sum(pred == y))
        accuracy = correct / len(y)
        lo, hi = wilson_interval(correct, len(y), (config or FairnessConfig()).confidence)
        gaps: dict[str, dict[str, Any]] = {}
        results = check_fairness(
            y, pred, sensitive, positive_label=positive_label, task="classification",
            config=config,
        )  # fmt: skip
        for r in results:
            if "=" in r.subject or r.check == "fairness.roc_auc":
                continue
            gaps.setdefault(r.subject, {})[r.check.removeprefix("fairness.")] = {
                "value": r.value, "lower": r.lower, "upper": r.upper, "status": r.status.value,
            }  # fmt: skip
        shown = "; ".join(
            f"{gap.replace('_', ' ')} by {attr} {_num(g['value'])} "
            f"({_num(g['lower'])} to {_num(g['upper'])})"
            for attr, by_gap in gaps.items()
            for gap, g in by_gap.items()
            if gap.endswith("_difference")
        )
        out.append(
            CheckResult(
                check="fairness.tradeoff",
                subject=label,
                status=Status.OK,
                reason=f"accuracy {accuracy:.4f} ({lo:.4f} to {hi:.4f}); {shown}",
                value=accuracy,
                lower=lo,
                upper=hi,
                rule="reported, not judged",
                details={"accuracy": accuracy, "gaps": gaps, "n": len(y)},
            )
        )
    return out


@gate_check("fairness")
def fairness_gate(ctx: GateContext, params: Mapping[str, Any]) -> list[CheckResult]:
    """The ``fairness`` gate check: fairness results on the holdout, and a trade-off table.

    Examples
    --------
    >>> from watchkeeper.lifecycle import GateConfig, validate
    >>> from sklearn.linear_model import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"x": rng.normal(size=800), "sex": rng.choice(["f", "m"], 800)})
    >>> df["y"] = (df["x"] + rng.normal(size=800) > 0).astype(int)
    >>> cfg = GateConfig.from_dict({"generalisation": {"enabled": False},
    ...     "robustness": {"enabled": False}, "serving": {"enabled": False},
    ...     "extra_checks": {"fairness": {"attributes": ["sex"]}}})
    >>> report = validate(LogisticRegression(), df, target="y", features=["x"], config=cfg)
    >>> [r.status.value for r in report.by_check("fairness.demographic_parity_difference")]
    ['ok']
    """
    valid = {*_GATE_KEYS, *(f.name for f in dataclasses.fields(FairnessConfig))}
    unknown = set(params) - valid
    if unknown:
        raise InputError(
            f"unknown fairness gate settings {sorted(unknown)}; valid: {', '.join(sorted(valid))}"
        )
    settings: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if k not in _GATE_KEYS
    }
    cfg = FairnessConfig(**settings)
    holdout = ctx.holdout_frame
    if holdout is None:
        raise InputError("the fairness gate check needs the holdout rows (holdout_frame)")
    attributes = _attributes(params, ctx, holdout)
    task: FairnessTask = "regression" if ctx.task == "regression" else "classification"
    positive = params.get("positive_label")
    if ctx.task == "multiclass" and positive is None:
        raise InputError(
            "a multiclass model needs positive_label in [extra_checks.fairness] (the class whose "
            "selection rate is judged, one class versus the rest)"
        )
    preds = ctx.predictions
    score = _positive_scores(preds, positive) if task == "classification" else None
    results = check_fairness(
        preds.y, preds.label, holdout[attributes], y_score=score, positive_label=positive,
        task=task, config=cfg,
    )  # fmt: skip
    if task == "regression" and score is None:
        results = [r for r in results if r.check != "fairness.roc_auc"]
    methods = params.get("mitigation") or []
    if methods:
        results += _mitigation_table(ctx, attributes, methods, params, cfg, positive)
    return results


# -- helpers -----------------------------------------------------------------------------------


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def _sensitive_frame(sensitive: Any) -> pd.DataFrame:
    """Sensitive attributes as a frame of strings, missing values as their own group."""
    if isinstance(sensitive, pd.DataFrame):
        frame = sensitive
    elif isinstance(sensitive, Mapping):
        frame = pd.DataFrame({str(k): np.asarray(v, dtype=object) for k, v in sensitive.items()})
    else:
        frame = pd.DataFrame({"group": np.asarray(sensitive, dtype=object)})
    out = frame.astype(object).where(frame.notna(), MISSING_GROUP).astype(str)
    return out.reset_index(drop=True)


def _attributes(params: Mapping[str, Any], ctx: GateContext, holdout: pd.DataFrame) -> list[str]:
    attributes = params.get("attributes")
    if attributes is None and ctx.schema is not None:
        attributes = list(ctx.schema.with_role("sensitive"))
    if not attributes:
        raise InputError(
            "name the sensitive attributes: attributes = [...] under [extra_checks.fairness], "
            "or a schema with sensitive columns"
        )
    attributes = [str(a) for a in attributes]
    missing = [a for a in attributes if a not in holdout.columns]
    if missing:
        raise InputError(
            f"sensitive attributes {missing} are not in the holdout; keep them in the data "
            "(they need not be features)"
        )
    return attributes


def _positive_scores(preds: Any, positive: Any) -> NDArray[np.float64] | None:
    if preds.proba is None or preds.classes is None:
        return None
    classes = [str(c) for c in preds.classes]
    label = str(positive) if positive is not None else classes[-1]
    if label not in classes:
        return None
    return np.asarray(preds.proba[:, classes.index(label)], dtype=float)


def _mitigation_table(
    ctx: GateContext,
    attributes: Sequence[str],
    methods: Sequence[str],
    params: Mapping[str, Any],
    cfg: FairnessConfig,
    positive: Any,
) -> list[CheckResult]:
    if ctx.task != "binary":
        raise InputError("fairness mitigation is offered for binary classifiers only")
    train = ctx.train_frame
    if train is None or any(a not in train.columns for a in attributes):
        raise InputError("mitigation needs the sensitive attributes of the training rows")
    constraint = params.get("constraint", "demographic_parity")
    models: dict[str, Any] = {"unmitigated": ctx.model}
    notes: list[CheckResult] = []
    for method in methods:
        label = f"{method} ({constraint})"
        try:
            models[label] = mitigate(
                ctx.model, ctx.X_train, ctx.y_train, train[list(attributes)],
                method=cast(Method, method),
                constraint=constraint, max_iter=int(params.get("max_iter", 20)),
                random_state=ctx.random_state,
            )  # fmt: skip
        except InputError:
            raise
        except Exception as exc:
            # A mitigation is an optional view offered for comparison: one that cannot be
            # fitted (e.g. ThresholdOptimizer on a group with one label only) is its own
            # error entry, and decides nothing about the candidate.
            notes.append(CheckResult(
                "fairness.tradeoff", label, Status.ERROR,
                f"mitigation failed: {type(exc).__name__}: {exc}"
                + (" (reductions refit the model with sample_weight, which its fit must accept)"
                   if method == "exponentiated_gradient" else "")
                + "; an optional step, so it does not decide the gate",
                details={"optional": True},
            ))  # fmt: skip
    table = tradeoff_table(
        models, ctx.X_holdout, ctx.y_holdout, ctx.holdout_frame[list(attributes)],  # type: ignore[index]
        config=cfg, positive_label=positive,
    )  # fmt: skip
    return table + notes
