"""Propose a contract from reference data, for a person to edit.

Every proposed rule holds on the data it was proposed from:

- ``row_count``: at least one row;
- ``not_null`` for each column with no missing value;
- ``allowed_values`` for categorical and boolean columns with at most ``max_categories``
  distinct values (not for ids);
- ``range`` for numeric columns (not ids): the observed [min, max] widened by ``widen``
  times its span on each side, never across zero for a column that never crossed it;
- ``unique`` for id and timestamp columns whose present values never repeat;
- ``monotone`` (increasing) for id and timestamp columns already in increasing row order;
- ``regex`` for string columns beyond the allowed-values size whose values all share one
  shape (runs of capitals, small letters, digits and the same punctuation);
- ``freshness`` for the timestamp column: twice the largest gap between consecutive
  timestamps (at least a minute);
- ``relation`` ``a >= b`` for pairs of numeric columns on overlapping scales (their ranges
  overlap over at least a quarter of the wider one; whole-number codes with at most 31
  distinct values left out) where it holds on every row and is strict on some (at most
  ``max_relations``), and for datetime pairs.
"""

from __future__ import annotations

import re
from itertools import combinations
from typing import Any

import numpy as np

from watchkeeper.data._contract import Contract, ContractRule
from watchkeeper.data._contract_rules import AllowedValues, NotNull, Range, Regex, Relation
from watchkeeper.data._contract_sets import Freshness, Monotone, RowCount, Unique
from watchkeeper.data._contract_values import _numbers

__all__ = ["propose_contract"]

#: Whole-number columns with at most this many distinct values are codes (month, weekday,
#: hour...): no relations are proposed between them and amounts.
_MAX_CODES = 31

_TOKEN = re.compile(r"[A-Z]+|[a-z]+|[0-9]+|.", re.DOTALL)
_CLASSES = {"A": "[A-Z]", "a": "[a-z]", "9": "[0-9]"}


def _token_class(token: str) -> str:
    c = token[0]
    if c.isascii() and c.isupper():
        return "A"
    if c.isascii() and c.islower():
        return "a"
    if c.isascii() and c.isdigit():
        return "9"
    return token


def value_shape(values: list[str]) -> str | None:
    """A pattern all ``values`` match when they share one shape, else ``None``.

    Examples
    --------
    >>> value_shape(["B-0012", "C-3", "AB-77"])
    '^[A-Z]{1,2}\\\\-[0-9]{1,4}$'
    >>> value_shape(["a1", "1a"]) is None
    True
    """
    if not values:
        return None
    signature: tuple[str, ...] | None = None
    lengths: list[list[int]] = []
    for v in values:
        tokens = _TOKEN.findall(v)
        sig = tuple(_token_class(t) for t in tokens)
        if signature is None:
            signature = sig
            lengths = [[len(t), len(t)] for t in tokens]
        elif sig != signature:
            return None
        for span, t in zip(lengths, tokens, strict=True):
            span[0] = min(span[0], len(t))
            span[1] = max(span[1], len(t))
    assert signature is not None
    parts = []
    for cls, (lo, hi) in zip(signature, lengths, strict=True):
        if cls in _CLASSES:
            parts.append(_CLASSES[cls] + (f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"))
        else:
            parts.append(re.escape(cls))
    return "^" + "".join(parts) + "$"


def _widened(lo: float, hi: float, widen: float, whole: bool) -> tuple[float, float]:
    span = hi - lo
    pad = widen * span if span > 0 else widen * max(abs(lo), 1.0)
    new_lo, new_hi = lo - pad, hi + pad
    if lo >= 0 > new_lo:
        new_lo = 0.0
    if hi <= 0 < new_hi:
        new_hi = 0.0
    if whole:
        new_lo, new_hi = float(np.floor(new_lo)), float(np.ceil(new_hi))
    return new_lo, new_hi


def propose_contract(
    data: Any,
    schema: Any = None,
    *,
    max_categories: int = 50,
    widen: float = 0.1,
    max_relations: int = 10,
) -> Contract:
    """Rules that ``data`` satisfies (see the module docs), for a person to edit.

    Parameters
    ----------
    data
        Reference data (anything :func:`~watchkeeper.data.read_table` reads).
    schema
        Its :class:`~watchkeeper.data.Schema` (default: inferred); ``ignored`` columns get no
        rules.
    max_categories
        Distinct values up to which a categorical column gets ``allowed_values``.
    widen
        Share of the observed span added on each side of proposed ranges.
    max_relations
        At most this many proposed relations between numeric columns.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"start": [1.5, 2.0, 3.25], "end": [2.0, 2.5, 5.0]})
    >>> [r.describe() for r in propose_contract(df).rules]  # doctest: +NORMALIZE_WHITESPACE
    ['1 <= rows', 'start is never missing', '1.325 <= start <= 3.425', 'end is never missing',
     '1.7 <= end <= 5.3', 'end >= start']
    """
    from watchkeeper.data._adapters import read_table, string_values
    from watchkeeper.data.schema import ColumnKind, Role, Schema

    table = read_table(data)
    if schema is None:
        schema = Schema.infer(table, max_categories=max_categories)
    rules: list[ContractRule] = [RowCount(min=1)]
    numeric_columns: list[str] = []
    datetime_columns: list[str] = []
    for spec in schema:
        name = spec.name
        if spec.role is Role.IGNORED or name not in table.column_names:
            continue
        column = table.column(name)
        if column.null_count == 0 and not _has_nan(table, name, spec.kind):
            rules.append(NotNull(column=name))
        keyed = spec.role in (Role.ID, Role.TIMESTAMP)
        if spec.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN, ColumnKind.TEXT):
            strings = string_values(column).drop_null()
            distinct = sorted(set(strings.unique().to_pylist()))
            if not distinct:
                continue
            if len(distinct) <= max_categories and spec.role is not Role.ID:
                rules.append(AllowedValues(column=name, values=tuple(distinct)))
                continue
            shape = value_shape(distinct[:100_000]) if len(distinct) <= 100_000 else None
            if shape is not None:
                rules.append(Regex(column=name, pattern=shape))
            if keyed and len(distinct) == len(strings):
                rules.append(Unique(column=name))
            continue
        if spec.kind not in (ColumnKind.NUMERIC, ColumnKind.DATETIME):
            continue
        values, present = _numbers(table, name)
        values = values[present]
        if not len(values):
            continue
        if spec.kind is ColumnKind.NUMERIC and not keyed:
            whole = bool(np.all(values == np.round(values)))
            lo, hi = _widened(float(values.min()), float(values.max()), widen, whole)
            rules.append(Range(column=name, min=lo, max=hi))
            is_code = whole and len(np.unique(values)) <= _MAX_CODES
            if spec.role in (Role.FEATURE, Role.TARGET) and not is_code:
                numeric_columns.append(name)
        if spec.kind is ColumnKind.DATETIME and spec.role is not Role.IGNORED:
            datetime_columns.append(name)
        if keyed:
            if len(np.unique(values)) == len(values):
                rules.append(Unique(column=name))
            if len(values) > 1 and bool(np.all(np.diff(values) >= 0)):
                rules.append(Monotone(column=name))
        if spec.kind is ColumnKind.DATETIME and spec.role is Role.TIMESTAMP:
            gaps = np.diff(np.sort(values)) / 1e9
            largest = float(gaps.max()) if len(gaps) else 0.0
            rules.append(Freshness(column=name, max_age_seconds=max(2 * largest, 60.0)))
    rules += _relations(table, numeric_columns, max_relations)
    rules += _relations(table, datetime_columns, max_relations, scale_check=False)
    return Contract(tuple(rules))


def _has_nan(table: Any, name: str, kind: Any) -> bool:
    import pyarrow as pa

    t = table.column(name).type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if not pa.types.is_floating(t):
        return False
    return bool(np.isnan(_numbers(table, name)[0]).any())


def _relations(
    table: Any, names: list[str], limit: int, *, scale_check: bool = True
) -> list[ContractRule]:
    out: list[ContractRule] = []
    cache = {n: _numbers(table, n) for n in names}
    for a, b in combinations(names, 2):
        if len(out) >= limit:
            break
        x, x_ok = cache[a]
        y, y_ok = cache[b]
        both = x_ok & y_ok
        x, y = x[both], y[both]
        if len(x) < 2 or x.min() == x.max() or y.min() == y.max():
            continue
        if scale_check:
            overlap = min(x.max(), y.max()) - max(x.min(), y.min())
            wider = max(x.max() - x.min(), y.max() - y.min())
            if overlap < 0.25 * wider:
                continue
        if np.all(x >= y) and np.any(x > y):
            out.append(Relation(left=a, op=">=", right=b))
        elif np.all(y >= x) and np.any(y > x):
            out.append(Relation(left=b, op=">=", right=a))
    return out
