"""Registry of multivariate drift methods and the input handling they share.

A multivariate method compares two 2-D float arrays (rows x features) as a whole, so it can see
changes that no single column shows (a correlation that breaks while every marginal stays the
same). The caller encodes categorical columns and imputes missing values first; the methods
only check that the arrays are numeric, 2-D, finite and have the same features.

Every method subsamples large inputs to a bounded number of rows per side (deterministically
from ``random_state``), so cost and memory do not grow with the data, and returns a
:class:`~watchkeeper.stats.TestResult` whose ``p_value`` is ``None`` when there are too few rows
for a verdict (``details["reason"]`` says why).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.exceptions import InputError
from watchkeeper.stats._result import TestResult

__all__ = [
    "MIN_ROWS",
    "MultivariateMethod",
    "available_multivariate_methods",
    "get_multivariate_method",
    "multivariate_method",
]

#: Fewer rows than this on either side gives a result without a p-value (insufficient data).
MIN_ROWS = 20

F = TypeVar("F", bound=Callable[..., TestResult])

# Rows checked for finiteness at a time, so a 1M-row input needs no full-size boolean mask.
_CHECK_CHUNK = 65_536


@dataclass(frozen=True, slots=True)
class MultivariateMethod:
    """A registered multivariate drift method; calling it calls the method.

    ``effect_floor`` is the documented smallest ``TestResult.effect_size`` that the default
    decision rule treats as practically relevant.

    Examples
    --------
    >>> from watchkeeper.stats import get_multivariate_method
    >>> m = get_multivariate_method("mmd")
    >>> m.name, m.effect_floor
    ('mmd', 0.05)
    """

    name: str
    func: Callable[..., TestResult]
    effect_floor: float
    has_p_value: bool
    description: str

    def __call__(self, reference: ArrayLike, current: ArrayLike, **kwargs: Any) -> TestResult:
        """Run the method on ``reference`` and ``current`` (keyword options as the method)."""
        return self.func(reference, current, **kwargs)


_METHODS: dict[str, MultivariateMethod] = {}


def multivariate_method(
    name: str, *, effect_floor: float, has_p_value: bool = True, description: str = ""
) -> Callable[[F], F]:
    """Register ``func`` as multivariate drift method ``name`` with its effect-size floor.

    Examples
    --------
    The built-in methods are registered this way, next to their code:

    >>> from watchkeeper.stats import get_multivariate_method, mmd
    >>> get_multivariate_method("mmd").func is mmd
    True
    """

    def register(func: F) -> F:
        if name in _METHODS:
            raise RuntimeError(f"multivariate method {name!r} is registered twice")
        first_line = (func.__doc__ or "").strip().splitlines()[:1]
        _METHODS[name] = MultivariateMethod(
            name=name,
            func=func,
            effect_floor=effect_floor,
            has_p_value=has_p_value,
            description=description or (first_line[0] if first_line else ""),
        )
        return func

    return register


def get_multivariate_method(name: str) -> MultivariateMethod:
    """Look up a multivariate method by name, with an error listing the valid names.

    Examples
    --------
    >>> from watchkeeper.stats import get_multivariate_method
    >>> get_multivariate_method("pca_reconstruction").effect_floor
    0.1
    >>> get_multivariate_method("nope")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: unknown multivariate drift method 'nope'; choose one of: ...
    """
    _load_builtin_methods()
    try:
        return _METHODS[name]
    except KeyError:
        valid = ", ".join(available_multivariate_methods())
        raise InputError(
            f"unknown multivariate drift method {name!r}; choose one of: {valid}"
        ) from None


def available_multivariate_methods() -> list[str]:
    """Names of the registered multivariate methods, sorted.

    Examples
    --------
    >>> from watchkeeper.stats import available_multivariate_methods
    >>> {"domain_classifier", "mmd", "pca_reconstruction"} <= set(available_multivariate_methods())
    True
    """
    _load_builtin_methods()
    return sorted(_METHODS)


def _load_builtin_methods() -> None:
    # Importing the modules runs their decorators; cheap after the first call.
    from watchkeeper.stats import _domain_classifier, _mmd, _pca_reconstruction  # noqa: F401


# --- shared input handling -------------------------------------------------------------------


def prepare_samples(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    method: str,
    max_samples: int | None,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validate both inputs and return float64 copies, each subsampled to ``max_samples`` rows.

    The copies are new arrays, so methods may modify them without touching the caller's data.
    Validation reads the inputs in chunks and subsampling happens before the conversion to
    float64, so memory stays ``O(max_samples)`` even for very large inputs.
    """
    if max_samples is not None and (not _is_int(max_samples) or max_samples < 1):
        raise InputError(
            f"{method}: max_samples must be a positive integer or None, got {max_samples!r}"
        )
    ref = _as_matrix(reference, "reference", method)
    cur = _as_matrix(current, "current", method)
    if ref.shape[1] != cur.shape[1]:
        raise InputError(
            f"{method}: reference has {ref.shape[1]} features but current has {cur.shape[1]}; "
            "both must have the same columns in the same order"
        )
    return _subsample(ref, max_samples, rng), _subsample(cur, max_samples, rng)


def insufficient_result(method: str, n_reference: int, n_current: int, reason: str) -> TestResult:
    """A result without a p-value, for the caller to report as insufficient data."""
    return TestResult(
        method=method,
        statistic=math.nan,
        p_value=None,
        effect_size=math.nan,
        n_reference=n_reference,
        n_current=n_current,
        details={"insufficient_data": True, "reason": reason},
    )


def seed_of(rng: np.random.Generator) -> int:
    """An int seed drawn from ``rng``, for libraries that take ``random_state=int``."""
    return int(rng.integers(0, 2**31 - 1))


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _as_matrix(x: ArrayLike, name: str, method: str) -> NDArray[Any]:
    arr = np.asarray(x)
    if arr.ndim != 2:
        hint = " (use x.reshape(-1, 1) for a single feature)" if arr.ndim == 1 else ""
        raise InputError(
            f"{method}: {name} must be a 2-D array of rows x features, got shape {arr.shape}{hint}"
        )
    if arr.shape[1] == 0:
        raise InputError(f"{method}: {name} has no feature columns")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise InputError(
                f"{method}: {name} must be numeric (dtype {arr.dtype} given); encode categorical "
                "columns as numbers (e.g. one-hot) before calling"
            ) from None
    if arr.dtype.kind == "f":
        for start in range(0, arr.shape[0], _CHECK_CHUNK):
            block = arr[start : start + _CHECK_CHUNK]
            bad = ~np.isfinite(block).all(axis=1)
            if bad.any():
                row = start + int(np.argmax(bad))
                raise InputError(
                    f"{method}: {name} contains NaN or infinite values (first in row {row}); "
                    "impute missing values before calling"
                )
    return arr


def _subsample(
    arr: NDArray[Any], max_samples: int | None, rng: np.random.Generator
) -> NDArray[np.float64]:
    n = arr.shape[0]
    if max_samples is None or n <= max_samples:
        return np.array(arr, dtype=np.float64, copy=True)
    # Generator.choice without replacement draws only max_samples indices (no n-sized
    # permutation); sorting keeps the gather cache-friendly and does not change the sample.
    idx = np.sort(rng.choice(n, size=max_samples, replace=False))
    return arr[idx].astype(np.float64, copy=False)  # fancy indexing already made a copy
