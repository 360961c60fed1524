"""The slices of weak-segment analysis: quantile bins, categories, missing values, pairs.

Numeric features are cut at quantiles of the data given or at a reference profile's
quantiles; a numeric feature with at most ``max_bins`` distinct values gets one slice per
value; categories rarer than ``min_size`` rows, or beyond the ``max_categories`` most frequent,
are pooled; missing values form their own slice. Subjects read as conditions
(``"hr in [17, 19]"``, ``"temp in (0.24, 0.36]"``, ``"weathersit = mist"``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.exceptions import InputError

__all__ = ["Slice", "data_slices"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# Pooled categories named in a subject; the full list is in the details.
_NAMED = 4


@dataclass(frozen=True)
class Slice:
    """Rows of one slice (``mask``), its subject, its definition per feature and, for an
    intersection, the two slices it was made from."""

    subject: str
    mask: BoolArray
    definition: Mapping[str, Any] = field(default_factory=dict)
    parents: tuple[Slice, ...] = ()


# -- slices ------------------------------------------------------------------------------------


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:.4g}"


def _numeric_slices(
    name: str, x: FloatArray, edges: FloatArray | None, max_bins: int
) -> list[Slice]:
    finite = ~np.isnan(x)
    values = x[np.isfinite(x)]  # infinite values fall into the open end bins
    out: list[Slice] = []
    distinct = np.unique(values)
    if distinct.size <= max_bins:
        for v in distinct:
            out.append(Slice(f"{name} = {_num(v)}", x == v, {name: {"value": float(v)}}))
    else:
        inner = np.linspace(0, 1, max_bins + 1)[1:-1]
        cuts = np.unique(np.quantile(values, inner) if edges is None else edges)
        if edges is None:  # an edge at the maximum would leave an empty top bin
            cuts = cuts[cuts < values.max()]
        integral = bool(np.all(values == np.round(values)))
        bounds = [-math.inf, *cuts.tolist(), math.inf]
        for lo, hi in itertools.pairwise(bounds):
            mask = finite & (x > lo) & (x <= hi)
            definition = {"lower": None if lo == -math.inf else lo,
                          "upper": None if hi == math.inf else hi}  # fmt: skip
            out.append(Slice(_describe_bin(name, lo, hi, integral), mask, {name: definition}))
    if not finite.all():
        out.append(Slice(f"{name} is missing", ~finite, {name: {"missing": True}}))
    return out


def _describe_bin(name: str, lo: float, hi: float, integral: bool) -> str:
    """``lo < x <= hi`` in words; integer features as closed integer ranges."""
    if integral:
        first = None if lo == -math.inf else math.floor(lo) + 1
        last = None if hi == math.inf else math.floor(hi)
        if first is None:
            return f"{name} <= {last}"
        if last is None:
            return f"{name} >= {first}"
        return f"{name} = {first}" if first == last else f"{name} in [{first}, {last}]"
    if lo == -math.inf:
        return f"{name} <= {_num(hi)}"
    if hi == math.inf:
        return f"{name} > {_num(lo)}"
    return f"{name} in ({_num(lo)}, {_num(hi)}]"


def _categorical_slices(
    name: str, keys: NDArray[Any], missing: BoolArray, min_size: int, max_categories: int
) -> list[Slice]:
    present = keys[~missing]
    levels, counts = np.unique(present.astype(str), return_counts=True)
    order = sorted(range(levels.size), key=lambda i: (-counts[i], levels[i]))
    own = [str(levels[i]) for i in order[:max_categories] if counts[i] >= min_size]
    pooled = sorted(str(v) for v in levels if str(v) not in own)
    text = np.where(missing, "", keys.astype(str))
    out = [Slice(f"{name} = {v}", ~missing & (text == v), {name: {"value": v}}) for v in own]
    if len(pooled) == 1:
        v = pooled[0]
        out.append(Slice(f"{name} = {v}", ~missing & (text == v), {name: {"value": v}}))
    elif pooled:
        shown = ", ".join(pooled[:_NAMED]) + (", ..." if len(pooled) > _NAMED else "")
        out.append(
            Slice(
                f"{name} in {{{shown}}}",
                ~missing & np.isin(text, pooled),
                {name: {"pooled": pooled}},
            )
        )
    if missing.any():
        out.append(Slice(f"{name} is missing", missing, {name: {"missing": True}}))
    return out


def _feature_slices(
    name: str,
    column: Any,
    reference: Any,
    *,
    max_bins: int,
    min_size: int,
    max_categories: int,
) -> list[Slice]:
    import pandas as pd

    dtype = column.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if numeric and not isinstance(dtype, pd.CategoricalDtype):
        x = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return _numeric_slices(name, x, _reference_edges(name, reference, max_bins), max_bins)
    missing = column.isna().to_numpy(dtype=bool)
    keys = column.astype(object).to_numpy()
    return _categorical_slices(name, keys, missing, min_size, max_categories)


def _reference_edges(name: str, reference: Any, max_bins: int) -> FloatArray | None:
    if reference is None:
        return None
    col = getattr(reference, "columns", {}).get(name)
    if col is None:
        raise InputError(
            f"feature {name!r} is not in the reference profile; profile the reference with it "
            "or leave reference= out to cut at the data's own quantiles"
        )
    if getattr(col, "kind", None) != "numeric" or not getattr(col, "count", 0):
        return None
    inner = np.linspace(0, 1, max_bins + 1)[1:-1]
    return np.array([col.quantile(float(q)) for q in inner], dtype=np.float64)


def data_slices(
    rows: Any,
    features: Sequence[str],
    reference: Any,
    *,
    max_bins: int,
    min_size: int,
    max_categories: int,
    pairs: bool,
) -> list[Slice]:
    """Slices of every feature of the pandas frame ``rows``, then (``pairs``) every non-empty
    intersection of two slices of different features.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"hr": np.arange(100) % 24, "rain": [True, False] * 50})
    >>> [s.subject for s in data_slices(rows, ["hr", "rain"], None, max_bins=3, min_size=10,
    ...                                 max_categories=5, pairs=False)]
    ['hr <= 7', 'hr in [8, 15]', 'hr >= 16', 'rain = False', 'rain = True']
    """
    by_feature = [
        _feature_slices(f, rows[f], reference, max_bins=max_bins, min_size=min_size,
                        max_categories=max_categories)
        for f in features
    ]  # fmt: skip
    slices = [s for group in by_feature for s in group]
    if pairs:
        for a, b in itertools.combinations(by_feature, 2):
            for sa, sb in itertools.product(a, b):
                mask = sa.mask & sb.mask
                if mask.any():  # empty intersections are not slices of the data
                    definition = {**sa.definition, **sb.definition}
                    slices.append(Slice(f"{sa.subject} & {sb.subject}", mask, definition, (sa, sb)))
    return slices
