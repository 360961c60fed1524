"""Validation curve over the estimator's main regularisation parameter, with a recommendation.

The parameter is looked up by estimator class (the final step of a pipeline). The grid spans
the current value; the recommendation follows the one-standard-error rule (Hastie, Tibshirani
& Friedman, *ESL* 7.10): among values whose CV score is within one standard error of the best,
take the most regularised. The current value is kept when it is within that band.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.model_selection import validation_curve

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle._common import final_step, record_warnings, split_sizes
from watchkeeper.lifecycle._config import GeneralisationConfig
from watchkeeper.lifecycle._metrics import Task, get_metric

__all__ = ["RegularisationParam", "regularisation_param", "validation_curve_check"]


@dataclass(frozen=True, slots=True)
class RegularisationParam:
    """The parameter that controls an estimator's complexity.

    Parameters
    ----------
    name
        Parameter name on the final estimator.
    scale
        ``"log"`` for continuous strengths (C, alpha), ``"int"`` for counts and depths.
    stronger
        Which way regularises more: ``"lower"`` (C, max_depth) or ``"higher"`` (alpha,
        min_samples_leaf).
    grid
        Default values to try (``None`` means the estimator's unlimited setting).
    """

    name: str
    scale: Literal["log", "int"]
    stronger: Literal["lower", "higher"]
    grid: tuple[Any, ...] = ()


_DEPTH = RegularisationParam("max_depth", "int", "lower", (1, 2, 3, 4, 6, 8, 12))
_LEAF = RegularisationParam("min_samples_leaf", "int", "higher", (1, 5, 10, 20, 50, 100))
_CHILD = RegularisationParam("min_child_samples", "int", "higher", (5, 10, 20, 50, 100, 200))
_C = RegularisationParam("C", "log", "lower")
_ALPHA = RegularisationParam("alpha", "log", "higher")
_PARAMS: dict[str, RegularisationParam] = {
    **dict.fromkeys(["LogisticRegression", "LinearSVC", "LinearSVR", "SVC", "SVR", "NuSVC"], _C),
    **dict.fromkeys(
        [
            "Ridge",
            "RidgeClassifier",
            "Lasso",
            "ElasticNet",
            "SGDClassifier",
            "SGDRegressor",
            "MLPClassifier",
            "MLPRegressor",
        ],
        _ALPHA,
    ),
    **dict.fromkeys(
        [
            "DecisionTreeClassifier",
            "DecisionTreeRegressor",
            "RandomForestClassifier",
            "RandomForestRegressor",
            "ExtraTreesClassifier",
            "ExtraTreesRegressor",
            "GradientBoostingClassifier",
            "GradientBoostingRegressor",
            "XGBClassifier",
            "XGBRegressor",
        ],
        _DEPTH,
    ),
    **dict.fromkeys(["HistGradientBoostingClassifier", "HistGradientBoostingRegressor"], _LEAF),
    **dict.fromkeys(["LGBMClassifier", "LGBMRegressor"], _CHILD),
    **dict.fromkeys(
        ["KNeighborsClassifier", "KNeighborsRegressor"],
        RegularisationParam("n_neighbors", "int", "higher", (1, 3, 5, 10, 20, 50)),
    ),
}


def regularisation_param(model: Any) -> tuple[str, RegularisationParam] | None:
    """The main regularisation parameter of ``model`` as (full name, spec), or ``None``.

    The full name carries the pipeline step prefix, ready for ``set_params``.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn.linear_model import LogisticRegression
    >>> regularisation_param(make_pipeline(StandardScaler(), LogisticRegression()))[0]
    'logisticregression__C'
    """
    _, last = final_step(model)
    spec = _PARAMS.get(type(last).__name__)
    if spec is None:
        return None
    steps = getattr(model, "steps", None)
    prefix = f"{steps[-1][0]}__" if steps else ""
    return prefix + spec.name, spec


#: Values tried by default: the current one and at most four others. Each value costs one fit
#: per fold; five points spanning the range locate the best value to within a grid step,
#: which is what the check reports (it warns only when the current value is more than one
#: standard error worse than the best).
_MAX_GRID = 5


def _grid(spec: RegularisationParam, current: Any, n_train: int) -> list[Any]:
    if spec.scale == "log":
        base = float(current) if current is not None and float(current) > 0 else 1.0
        return [base * 10.0**e for e in (-2, -1, 0, 1, 2)]
    key = lambda v: math.inf if v is None else v  # noqa: E731
    others = sorted({v for v in spec.grid if (v is None or v < n_train) and v != current}, key=key)
    if len(others) > _MAX_GRID - 1:  # spread over the whole range, both ends kept
        picks = np.linspace(0, len(others) - 1, _MAX_GRID - 1).round().astype(int)
        others = [others[i] for i in sorted(set(picks.tolist()))]
    return sorted([*others, current], key=key)


def _strength(spec: RegularisationParam, value: Any) -> float:
    # Sort key that grows with regularisation strength; None (unlimited) is the weakest.
    if value is None:
        return -math.inf if spec.stronger == "lower" else math.inf
    return -float(value) if spec.stronger == "lower" else float(value)


def validation_curve_check(
    model: Any,
    X: Any,
    y: NDArray[Any],
    *,
    task: Task,
    metric: str,
    cv: Any,
    config: GeneralisationConfig | None = None,
) -> CheckResult | None:
    """Validation curve of ``metric`` over the main regularisation parameter.

    Returns ``None`` when the estimator has no known regularisation parameter and none is
    configured. Warns when the current value is outside one standard error of the best, with
    the recommended value in the reason and ``details["recommended"]``.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.model_selection import StratifiedKFold
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> X, y = make_classification(300, random_state=0)
    >>> r = validation_curve_check(DecisionTreeClassifier(random_state=0), X, y,
    ...                            task="binary", metric="accuracy", cv=StratifiedKFold(3))
    >>> r.subject, r.status.value, r.details["current"]
    ('max_depth', 'warn', None)
    """
    cfg = config or GeneralisationConfig()
    m = get_metric(metric, task)
    found = regularisation_param(model)
    if cfg.param is not None:
        name = cfg.param
        spec = found[1] if found and found[0].endswith(name) else None
    elif found is not None:
        name, spec = found
    else:
        return None
    params = model.get_params()
    if name not in params:
        raise InputError(
            f"generalisation.param {name!r} is not a parameter of {type(model).__name__}; "
            "use the name set_params accepts (with the pipeline step prefix)"
        )
    current = params[name]
    n_train = min(tr for tr, _ in split_sizes(cv, X, y))
    if cfg.param_range is not None:
        grid = list(cfg.param_range)
    elif spec is not None:
        grid = _grid(spec, current, n_train)
    else:
        raise InputError(f"set generalisation.param_range: no default grid is known for {name!r}")
    if current not in grid:
        grid.append(current)
    classes = np.unique(y) if task != "regression" else None
    try:
        with record_warnings() as seen:
            train, test = validation_curve(
                clone(model),
                X,
                y,
                param_name=name,
                param_range=grid,
                cv=cv,
                scoring=m.scorer(task, classes),
                error_score=np.nan,
                n_jobs=1,
            )
    except Exception as exc:
        return CheckResult(
            check="gate.validation_curve",
            subject=name,
            status=Status.ERROR,
            reason=f"could not refit the model: {type(exc).__name__}: {exc}",
        )
    train = m.from_scorer(np.asarray(train, dtype=float))
    test = m.from_scorer(np.asarray(test, dtype=float))
    if not np.isfinite(test).any():
        return CheckResult(
            check="gate.validation_curve",
            subject=name,
            status=Status.ERROR,
            reason=f"no value of {name} could be fitted: {'; '.join(seen[:3])}",
        )
    sign = 1.0 if m.greater_is_better else -1.0
    ratio = float(np.mean([te / tr for tr, te in split_sizes(cv, X, y)]))
    k = test.shape[1]
    with warnings.catch_warnings():
        # Values whose fits all failed give all-NaN rows; they simply never win.
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(test, axis=1)
        train_mean = np.nanmean(train, axis=1)
        # Same fold-overlap correction as the CV interval (Nadeau & Bengio 2003).
        se = np.nan_to_num(np.sqrt((1.0 / k + ratio) * np.nanvar(test, axis=1, ddof=1)))
    oriented = sign * mean
    best = int(np.nanargmax(oriented))
    band = oriented >= oriented[best] - se[best]
    ci = grid.index(current)
    if spec is not None:
        candidates = [i for i in range(len(grid)) if band[i]]
        chosen = max(candidates, key=lambda i: _strength(spec, grid[i]))
    else:
        chosen = best
    keep = bool(band[ci])
    recommended = current if keep else grid[chosen]
    if keep:
        reason = (
            f"{name}={current!r} is within one standard error of the best "
            f"({name}={grid[best]!r}, {metric} {mean[best]:.4g}); keep it"
        )
    else:
        reason = (
            f"{name}={current!r} scores {metric} {mean[ci]:.4g}, more than one standard error "
            f"from the best {mean[best]:.4g} at {name}={grid[best]!r}; try "
            f"{name}={grid[chosen]!r}"
        )
    details: dict[str, Any] = {
        "param": name,
        "values": [None if v is None else v for v in grid],
        "train_mean": train_mean.tolist(),
        "validation_mean": mean.tolist(),
        "validation_se": se.tolist(),
        "current": current,
        "best": grid[best],
        "recommended": recommended,
        "rule": "one standard error rule, most regularised value within the band",
    }
    if seen:
        details["warnings"] = seen[:10]
    return CheckResult(
        check="gate.validation_curve",
        subject=name.split("__")[-1],
        status=Status.OK if keep else Status.WARN,
        reason=reason,
        value=float(mean[ci]),
        threshold=float(mean[best] - sign * se[best]),
        rule="current value within one standard error of the best",
        details=details,
    )
