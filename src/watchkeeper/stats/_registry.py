"""Registry of drift methods, filled by the ``@drift_method`` decorator next to each method.

A numeric method takes two 1-D float arrays of finite values (reference, current).
A categorical method takes two aligned 1-D integer count vectors (same categories, same order).
A numeric method with ``binned=True`` is the categorical method of the same name applied to
counts on bins fixed by the reference (:func:`watchkeeper.stats.reference_bin_edges`), so it
can be computed exactly from two profiles' histograms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from watchkeeper.exceptions import InputError
from watchkeeper.stats._result import TestResult

__all__ = ["DriftMethod", "Kind", "available_methods", "drift_method", "get_method"]

Kind = Literal["numeric", "categorical"]
F = TypeVar("F", bound=Callable[..., TestResult])


@dataclass(frozen=True, slots=True)
class DriftMethod:
    """A registered two-sample method.

    ``effect_floor`` is the documented smallest effect (on ``TestResult.effect_size``) that the
    default decision rule treats as practically relevant; ``has_p_value`` says whether the
    method returns a p-value.
    """

    name: str
    kind: Kind
    func: Callable[..., TestResult]
    effect_floor: float
    has_p_value: bool
    binned: bool
    description: str


_METHODS: dict[tuple[Kind, str], DriftMethod] = {}


def drift_method(
    name: str,
    *,
    kind: Kind,
    effect_floor: float,
    has_p_value: bool = True,
    binned: bool = False,
    description: str = "",
) -> Callable[[F], F]:
    """Register ``func`` as drift method ``name`` for columns of ``kind``."""

    def register(func: F) -> F:
        key = (kind, name)
        if key in _METHODS:
            raise RuntimeError(f"drift method {name!r} for {kind} columns is registered twice")
        doc = description or (func.__doc__ or "").strip().splitlines()[0:1]
        _METHODS[key] = DriftMethod(
            name=name,
            kind=kind,
            func=func,
            effect_floor=effect_floor,
            has_p_value=has_p_value,
            binned=binned,
            description=doc if isinstance(doc, str) else (doc[0] if doc else ""),
        )
        return func

    return register


def get_method(name: str, kind: Kind) -> DriftMethod:
    """Look up a registered method, with an error listing the valid names."""
    _load_builtin_methods()
    try:
        return _METHODS[(kind, name)]
    except KeyError:
        valid = ", ".join(available_methods(kind))
        raise InputError(
            f"unknown drift method {name!r} for {kind} columns; choose one of: {valid}"
        ) from None


def available_methods(kind: Kind | None = None) -> list[str]:
    """Names of the registered methods (for one kind of column, or all)."""
    _load_builtin_methods()
    return sorted({n for (k, n) in _METHODS if kind is None or k == kind})


def _load_builtin_methods() -> None:
    # Importing the modules runs their decorators; cheap after the first call.
    from watchkeeper.stats import _categorical, _numeric  # noqa: F401
