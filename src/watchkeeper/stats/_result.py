"""Small immutable results returned by every statistical function."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TestResult"]


@dataclass(frozen=True, slots=True)
class TestResult:
    """Outcome of a two-sample comparison.

    Parameters
    ----------
    method
        Registered name of the method that produced the result (``"ks"``, ``"psi"``...).
    statistic
        The method's own statistic, on the scale the literature uses (``D`` for KS,
        ``A2`` for Anderson–Darling, the chi-square statistic for ``chi2``...).
    p_value
        p-value of the null hypothesis "both samples come from one distribution", or
        ``None`` where the method has no test.
    effect_size
        A practical size of the difference, comparable to the method's documented
        effect-size floor (for distances it equals the distance).
    n_reference, n_current
        Sample sizes the result is based on (for categorical inputs: total counts).
    details
        Extra numbers a method wants to expose (e.g. ``{"df": 3.0}``), JSON-serializable.

    Examples
    --------
    >>> r = TestResult(method="ks", statistic=0.5, p_value=0.01, effect_size=0.5,
    ...                n_reference=10, n_current=12)
    >>> r.to_dict()["p_value"]
    0.01
    """

    __test__ = False  # not a pytest test class

    method: str
    statistic: float
    p_value: float | None
    effect_size: float
    n_reference: int
    n_current: int
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (non-finite floats become ``None``)."""
        return {
            "method": self.method,
            "statistic": _finite_or_none(self.statistic),
            "p_value": _finite_or_none(self.p_value),
            "effect_size": _finite_or_none(self.effect_size),
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
            "details": {k: _jsonable(v) for k, v in self.details.items()},
        }


def _finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _jsonable(v: Any) -> Any:
    if isinstance(v, bool | int | str) or v is None:
        return v
    if isinstance(v, float):
        return _finite_or_none(v)
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    try:
        return _finite_or_none(float(v))
    except (TypeError, ValueError):
        return str(v)
