"""Best iteration and early-stopping advice for iterative learners.

A clone of the model is trained with a validation split watched at every iteration, using the
learner's own machinery:

- LightGBM (scikit-learn API): an ``eval_set`` with :func:`lightgbm.record_evaluation`;
- scikit-learn ``GradientBoosting*``: the validation loss of ``staged_predict[_proba]``;
- ``HistGradientBoosting*`` and ``MLP*``: their built-in ``validation_fraction`` scores, with
  patience set to the full budget so the whole curve is seen;
- ``SGD*``: its built-in early stopping (it exposes no curve, only where it stopped).

The best iteration is where early stopping with ``stopping_rounds`` of patience would stop
(the last improvement before that many rounds without one), so the advice matches what turning
on early stopping would do.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone
from sklearn.metrics import log_loss, mean_squared_error
from sklearn.model_selection import train_test_split

from watchkeeper.checks import CheckResult, Status
from watchkeeper.lifecycle._common import final_step, record_warnings
from watchkeeper.lifecycle._config import GeneralisationConfig
from watchkeeper.lifecycle._metrics import Task

__all__ = ["early_stopping_check", "early_stopping_point"]

_OVERSHOOT = 1.5  # configured iterations beyond this multiple of the best one are wasteful


def early_stopping_point(losses: NDArray[np.float64], rounds: int) -> int:
    """1-based iteration that early stopping with ``rounds`` of patience would keep.

    Examples
    --------
    >>> early_stopping_point(np.array([5.0, 4.0, 3.0, 3.5, 3.6, 2.0]), rounds=2)
    3
    >>> early_stopping_point(np.array([5.0, 4.0, 3.0, 3.5, 3.6, 2.0]), rounds=3)
    6
    """
    best, best_i = np.inf, 0
    for i, v in enumerate(np.asarray(losses, dtype=float)):
        if v < best:
            best, best_i = v, i
        elif i - best_i >= rounds:
            break
    return best_i + 1


def _kind(est: Any) -> str | None:
    name = type(est).__name__
    module = type(est).__module__
    if module.startswith("lightgbm") and name.startswith("LGBM"):
        return "lightgbm"
    for prefix in ("HistGradientBoosting", "GradientBoosting", "MLP", "SGD"):
        if name.startswith(prefix):
            return prefix
    return None


def _curve(
    kind: str,
    est: Any,
    Xt: Any,
    yt: Any,
    Xv: Any,
    yv: Any,
    task: Task,
    rounds: int,
    fraction: float,
) -> tuple[NDArray[np.float64] | None, int, int, str]:
    """(validation loss per iteration or None, configured iterations, iterations run, what)."""
    if kind == "lightgbm":
        import lightgbm

        record: dict[str, Any] = {}
        est.set_params(verbose=-1)
        # LightGBM 4.6 renamed eval_set to eval_X/eval_y; use whichever this version has.
        if "eval_X" in inspect.signature(est.fit).parameters:
            evals: dict[str, Any] = {"eval_X": (Xv,), "eval_y": (yv,)}
        else:
            evals = {"eval_set": [(Xv, yv)]}
        est.fit(Xt, yt, callbacks=[lightgbm.record_evaluation(record)], **evals)
        (metric_name, values), *_ = record["valid_0"].items()
        return np.asarray(values, float), int(est.n_estimators), len(values), metric_name
    if kind == "GradientBoosting":
        est.fit(Xt, yt)
        if task == "regression":
            losses = [mean_squared_error(yv, p) for p in est.staged_predict(Xv)]
            what = "mse"
        else:
            losses = [log_loss(yv, p, labels=est.classes_) for p in est.staged_predict_proba(Xv)]
            what = "log_loss"
        return np.asarray(losses, float), int(est.n_estimators), len(losses), what
    if kind == "HistGradientBoosting":
        budget = int(est.max_iter)
        est.set_params(
            early_stopping=True,
            validation_fraction=fraction,
            n_iter_no_change=budget + 1,
            scoring="loss",
        )
        est.fit(Xt, yt)
        # validation_score_[0] scores the constant start; scores are negated losses.
        return -np.asarray(est.validation_score_[1:], float), budget, int(est.n_iter_), "loss"
    if kind == "MLP":
        budget = int(est.max_iter)
        est.set_params(
            early_stopping=True, validation_fraction=fraction, n_iter_no_change=budget + 1
        )
        est.fit(Xt, yt)
        # MLP scores its validation split with accuracy / R², higher is better.
        return -np.asarray(est.validation_scores_, float), budget, int(est.n_iter_), "-score"
    budget = int(est.max_iter)
    est.set_params(early_stopping=True, validation_fraction=fraction, n_iter_no_change=rounds)
    est.fit(Xt, yt)
    return None, budget, int(est.n_iter_), "score"


def early_stopping_check(
    model: Any,
    X: Any,
    y: NDArray[Any],
    *,
    task: Task,
    time_ordered: bool = False,
    config: GeneralisationConfig | None = None,
    random_state: int = 0,
) -> CheckResult | None:
    """Best iteration of an iterative learner and whether to stop earlier.

    Returns ``None`` for learners that are not iterative. Warns, with the evidence, when the
    configured number of iterations is more than 1.5 times the best one *and* the validation
    loss at the end is worse than at the best iteration (the extra iterations overfit);
    otherwise reports the best iteration and whether the learner was still improving.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from sklearn.ensemble import GradientBoostingRegressor
    >>> X, y = make_regression(300, 5, noise=30, random_state=0)
    >>> r = early_stopping_check(GradientBoostingRegressor(n_estimators=400, random_state=0),
    ...                          X, y, task="regression")
    >>> r.check, r.details["configured_iterations"]
    ('gate.early_stopping', 400)
    """
    cfg = config or GeneralisationConfig()
    head, last = final_step(model)
    kind = _kind(last)
    if kind is None:
        return None
    est = clone(last)
    split_ext = kind in ("lightgbm", "GradientBoosting")
    try:
        with record_warnings() as seen:
            if split_ext:
                strat = y if (task != "regression" and not time_ordered) else None
                Xt, Xv, yt, yv = train_test_split(
                    X,
                    y,
                    test_size=cfg.validation_fraction,
                    shuffle=not time_ordered,
                    stratify=strat,
                    random_state=None if time_ordered else random_state,
                )
                if head is not None:
                    prep = clone(head).fit(Xt, yt)
                    Xt, Xv = prep.transform(Xt), prep.transform(Xv)
            else:
                # The learner carves its own validation split out of what it is given; the
                # preprocessing seeing those rows only shifts the curve a little.
                Xt, Xv, yt, yv = X, None, y, None
                if head is not None:
                    Xt = clone(head).fit(X, y).transform(X)
            losses, budget, ran, what = _curve(
                kind, est, Xt, yt, Xv, yv, task, cfg.stopping_rounds, cfg.validation_fraction
            )
    except Exception as exc:
        return CheckResult(
            check="gate.early_stopping",
            subject=type(last).__name__,
            status=Status.ERROR,
            reason=f"could not fit the model with a validation split: {type(exc).__name__}: {exc}",
        )
    details: dict[str, Any] = {
        "learner": type(last).__name__,
        "configured_iterations": budget,
        "iterations_run": ran,
        "stopping_rounds": cfg.stopping_rounds,
        "validation_metric": what,
    }
    if seen:
        details["warnings"] = seen[:10]
    if losses is None:
        best = max(ran - cfg.stopping_rounds, 1)
        stopped_early = ran < budget
        details |= {"best_iteration": best}
        reason = (
            f"built-in early stopping ended at iteration {ran} of {budget}: "
            "enable early_stopping=True to avoid the wasted iterations"
            if stopped_early
            else f"still improving after {budget} iterations: raise max_iter"
        )
        return CheckResult(
            check="gate.early_stopping",
            subject=type(last).__name__,
            status=Status.OK,
            reason=reason,
            value=float(best),
            rule="reported, not judged (no validation curve exposed)",
            details=details,
        )
    best = early_stopping_point(losses, cfg.stopping_rounds)
    final_loss, best_loss = float(losses[-1]), float(losses[best - 1])
    details |= {
        "best_iteration": best,
        "global_best_iteration": int(np.argmin(losses)) + 1,
        "validation_loss": losses.tolist(),
        "best_loss": best_loss,
        "final_loss": final_loss,
    }
    overshoot = budget > _OVERSHOOT * best and final_loss > best_loss
    if overshoot:
        excess = (final_loss - best_loss) / max(abs(best_loss), 1e-12)
        reason = (
            f"overfitting with iterations: validation {what} is best at iteration {best} "
            f"({best_loss:.4g}) and {excess:.1%} worse at iteration {len(losses)} "
            f"({final_loss:.4g}); use about {best} iterations or enable early stopping "
            f"({cfg.stopping_rounds} rounds)"
        )
    elif best >= len(losses) - 1:
        reason = f"still improving at iteration {len(losses)} of {budget}: more iterations may help"
    else:
        reason = (
            f"best iteration {best} of {budget}; the configured budget is reasonable "
            "(early stopping would save little)"
        )
    details["recommendation"] = reason
    return CheckResult(
        check="gate.early_stopping",
        subject=type(last).__name__,
        status=Status.WARN if overshoot else Status.OK,
        reason=reason,
        value=float(best),
        threshold=float(budget) / _OVERSHOOT,
        rule=f"configured iterations > {_OVERSHOOT:g} x best and final loss worse -> warn",
        details=details,
    )
