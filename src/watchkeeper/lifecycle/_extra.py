"""Extra gate checks registered by name (the hook for fairness and any in-house rule).

A gate check is a function ``check(context, params) -> CheckResult | Sequence[CheckResult]``
registered with :func:`gate_check`. :func:`~watchkeeper.lifecycle.validate` runs the ones
named under ``extra_checks`` in the gate config, passing their parameters; a check that raises
is reported as an ``error`` result, never lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd
from numpy.typing import NDArray

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle._config import GateConfig
from watchkeeper.lifecycle._metrics import Predictions, Task

__all__ = [
    "GateCheck",
    "GateContext",
    "available_gate_checks",
    "gate_check",
    "get_gate_check",
    "run_gate_check",
]


@dataclass(frozen=True, slots=True)
class GateContext:
    """Everything an extra gate check may look at; read-only by convention.

    Parameters
    ----------
    model
        The candidate.
    task
        ``"binary"``, ``"multiclass"`` or ``"regression"``.
    X_train, y_train
        Data the generalisation checks used.
    X_holdout, y_holdout
        The holdout.
    predictions
        The candidate's predictions on the holdout.
    champion, champion_predictions
        The champion and its holdout predictions, when one was given.
    config
        The gate config.
    random_state
        Seed for any randomness.
    holdout_frame
        Every column of the holdout rows, including those that are not features (a
        fairness check finds its sensitive attributes here).
    schema
        The :class:`watchkeeper.data.Schema` given to ``validate``, if any.
    train_frame
        Every column of the training rows (a mitigation that retrains needs their sensitive
        attributes).
    """

    model: Any
    task: Task
    X_train: pd.DataFrame
    y_train: NDArray[Any]
    X_holdout: pd.DataFrame
    y_holdout: NDArray[Any]
    predictions: Predictions
    champion: Any
    champion_predictions: Predictions | None
    config: GateConfig
    random_state: int
    holdout_frame: pd.DataFrame | None = None
    schema: Any = None
    train_frame: pd.DataFrame | None = None


GateCheck = Callable[[GateContext, Mapping[str, Any]], "CheckResult | Sequence[CheckResult]"]
_F = TypeVar("_F", bound=GateCheck)
_REGISTRY: dict[str, GateCheck] = {}


def gate_check(name: str) -> Callable[[_F], _F]:
    """Register an extra gate check under ``name``.

    Examples
    --------
    >>> @gate_check("doc_example_min_rows")
    ... def _min_rows(ctx, params):
    ...     n = len(ctx.y_holdout)
    ...     ok = n >= params.get("rows", 1)
    ...     return CheckResult(check="gate.doc_example_min_rows", subject="holdout",
    ...                        status=Status.OK if ok else Status.ALERT, reason=f"{n} rows")
    >>> "doc_example_min_rows" in available_gate_checks()
    True
    """
    if not name or not name.replace("_", "").replace(".", "").isalnum():
        raise InputError(f"gate check name {name!r} must be letters, digits, '_' or '.'")

    def register(func: _F) -> _F:
        existing = _REGISTRY.get(name)
        # Re-running the same definition (a reloaded module, a notebook cell) replaces it;
        # a different function under a taken name is a mistake.
        same = existing is not None and (
            getattr(existing, "__module__", None),
            getattr(existing, "__qualname__", None),
        ) == (getattr(func, "__module__", None), getattr(func, "__qualname__", None))
        if existing is not None and not same:
            raise InputError(
                f"a gate check named {name!r} is already registered by "
                f"{getattr(existing, '__module__', '?')}; choose another name"
            )
        _REGISTRY[name] = func
        return func

    return register


def available_gate_checks() -> list[str]:
    """Names of the registered extra gate checks.

    Examples
    --------
    >>> isinstance(available_gate_checks(), list)
    True
    """
    return sorted(_REGISTRY)


def get_gate_check(name: str) -> GateCheck:
    """The extra gate check registered under ``name``.

    Examples
    --------
    >>> get_gate_check("no_such_check")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: no gate check named 'no_such_check' is registered; ...
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(available_gate_checks()) or "none"
        raise InputError(
            f"no gate check named {name!r} is registered; registered: {known}. Import the "
            "module that defines it before validating"
        ) from None


def run_gate_check(name: str, context: GateContext, params: Mapping[str, Any]) -> list[CheckResult]:
    """Run one extra check, turning exceptions and wrong return types into ``error`` results.

    Examples
    --------
    >>> @gate_check("doc_example_broken")
    ... def _broken(ctx, params):
    ...     raise RuntimeError("boom")
    >>> run_gate_check("doc_example_broken", None, {})[0].status.value
    'error'
    """
    func = get_gate_check(name)
    try:
        got = func(context, params)
        results = [got] if isinstance(got, CheckResult) else list(got)
    except Exception as exc:
        return [
            CheckResult(
                check=f"gate.{name}",
                subject=name,
                status=Status.ERROR,
                reason=f"extra gate check raised {type(exc).__name__}: {exc}",
            )
        ]
    if not results or not all(isinstance(r, CheckResult) for r in results):
        return [
            CheckResult(
                check=f"gate.{name}",
                subject=name,
                status=Status.ERROR,
                reason="extra gate check must return CheckResult objects",
            )
        ]
    return results
