"""The ``explanations`` gate check: what the candidate relies on, shown before it is deployed.

It never fails a gate. It explains the candidate on (a seeded sample of) the holdout with
SHAP through :mod:`watchkeeper.explain` — global importance with its noise floor over several
backgrounds drawn from the training rows, and a shallow surrogate tree with its fidelity — and
keeps both in the result's ``details``, from which the gate report draws its explanations
section. Enable it in the gate config::

    [extra_checks.explanations]
    max_rows = 500      # holdout rows explained
    backgrounds = 3     # repeats behind the noise floor
    surrogate_depth = 3
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle._extra import GateContext, gate_check

__all__ = ["explanations_gate"]

_KEYS = {"max_rows": 500, "backgrounds": 3, "surrogate_depth": 3, "max_background": 100}


@gate_check("explanations")
def explanations_gate(ctx: GateContext, params: Mapping[str, Any]) -> list[CheckResult]:
    """Global SHAP importance (with its noise floor) and a surrogate tree of the candidate.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> from watchkeeper.lifecycle import GateConfig, validate
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    >>> df["y"] = 3 * df["a"] + 0.1 * rng.normal(size=400)
    >>> cfg = GateConfig.from_dict({"generalisation": {"enabled": False},
    ...     "robustness": {"enabled": False}, "serving": {"enabled": False},
    ...     "extra_checks": {"explanations": {"max_rows": 100, "backgrounds": 2}}})
    >>> report = validate(LinearRegression(), df, target="y", config=cfg)
    >>> (result,) = report.by_check("gate.explanations")
    >>> result.status.value, result.details["global"]["features"][0]
    ('ok', 'a')
    """
    unknown = set(params) - set(_KEYS)
    if unknown:
        raise InputError(
            f"unknown explanations gate settings {sorted(unknown)}; valid: {', '.join(_KEYS)}"
        )
    settings = {k: int(params.get(k, default)) for k, default in _KEYS.items()}
    if settings["max_rows"] < 10 or settings["backgrounds"] < 2:
        raise InputError("explanations: max_rows must be >= 10 and backgrounds >= 2")
    from threadpoolctl import threadpool_limits

    from watchkeeper.explain import global_importance, surrogate

    X = ctx.X_holdout
    if len(X) > settings["max_rows"]:
        X = X.sample(n=settings["max_rows"], random_state=ctx.random_state)
    with threadpool_limits(1):
        explained = global_importance(
            ctx.model,
            X,
            background=ctx.X_train,
            n_backgrounds=settings["backgrounds"],
            max_background=settings["max_background"],
            random_state=ctx.random_state,
        )
        tree = surrogate(
            ctx.model, X, max_depth=settings["surrogate_depth"], random_state=ctx.random_state
        )
    order = sorted(range(len(explained.features)), key=lambda i: -explained.importance[i])
    floor = explained.noise_floor
    top = ", ".join(
        f"{explained.features[i]} {explained.importance[i]:.3g} (± {floor[i]:.2g})"
        for i in order[:3]
    )
    fidelity = tree.to_dict().get("fidelity")
    reason = (
        f"largest mean |attribution| ({explained.output_label}, {explained.method}, "
        f"{explained.n_rows} holdout rows, noise floor over {explained.n_backgrounds} "
        f"backgrounds): {top}"
        + (
            ""
            if fidelity is None
            else f"; a depth-{settings['surrogate_depth']} surrogate "
            f"tree reproduces the model with fidelity {fidelity:.3g}"
        )
    )
    global_dict = explained.to_dict()
    global_dict.pop("local", None)  # the per-row attributions stay out of the report file
    return [
        CheckResult(
            "gate.explanations",
            "model",
            Status.OK,
            reason,
            details={"global": global_dict, "surrogate": tree.to_dict()},
        )
    ]
