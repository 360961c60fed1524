"""The contract rules decided row by row (and so on single records at the gateway):
``not_null``, ``allowed_values``, ``range``, ``regex`` and ``relation`` (see
:mod:`watchkeeper.data._contract`)."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from watchkeeper.data._contract import (
    ContractRule,
    RuleCount,
    RuleOutcome,
    contract_rule,
)
from watchkeeper.data._contract_values import (
    _examples,
    _is_datetime_type,
    _is_null,
    _numbers,
    _numeric_examples,
    _record_number,
    _record_string,
    _show_number,
    _strings,
)
from watchkeeper.exceptions import InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from watchkeeper.data.profile import Profile

__all__ = ["AllowedValues", "NotNull", "Range", "Regex", "Relation"]


@contract_rule("not_null")
@dataclass(frozen=True, kw_only=True, repr=False)
class NotNull(ContractRule):
    """Every value of ``column`` is present (not null, not NaN).

    Examples
    --------
    >>> import pyarrow as pa
    >>> out = NotNull(column="x").evaluate(pa.table({"x": [1.0, None]}))
    >>> out.n_checked, out.n_violations
    (2, 1)
    """

    column: str

    def describe(self) -> str:
        return f"{self.column} is never missing"

    def count(self, table: pa.Table) -> RuleCount:
        import numpy as np
        import pyarrow as pa

        from watchkeeper.data._adapters import valid_mask

        column = table.column(self.column)
        present = valid_mask(column)
        t = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if pa.types.is_floating(t):  # NaN is missing, as in profiles
            present &= ~np.isnan(_numbers(table, self.column)[0])
        n = table.num_rows
        return RuleCount(n, int(n - present.sum()))

    def _from_summaries(self, profile: Profile) -> RuleOutcome:
        col = profile.columns[self.column]
        return RuleOutcome(self, int(col.n), int(col.n_missing))

    def check_value(self, record: Mapping[str, Any]) -> str | None:
        return "must not be null" if _is_null(record.get(self.column)) else None


@contract_rule("allowed_values")
@dataclass(frozen=True, kw_only=True, repr=False)
class AllowedValues(ContractRule):
    """Every present value of ``column`` is one of ``values`` (compared as strings:
    booleans as ``true``/``false``, whole floats without ``.0``).

    Examples
    --------
    >>> rule = AllowedValues(column="plan", values=("a", "b"))
    >>> rule.check_value({"plan": "c"})
    "must be one of 'a', 'b', got 'c'"
    """

    column: str
    values: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        ContractRule.__post_init__(self)
        if isinstance(self.values, str) or not isinstance(self.values, Sequence):
            raise InputError(
                f"contract rule 'allowed_values' on {self.column!r}: values must be a list, "
                f"got {self.values!r}"
            )
        if not self.values:
            raise InputError(
                f"contract rule 'allowed_values' on {self.column!r}: give at least one value"
            )
        object.__setattr__(self, "values", tuple(_record_string(v) for v in self.values))

    def describe(self) -> str:
        shown = ", ".join(repr(v) for v in self.values[:10])
        more = ", ..." if len(self.values) > 10 else ""
        return f"{self.column} is one of {shown}{more}"

    def count(self, table: pa.Table) -> RuleCount:
        import pyarrow as pa
        import pyarrow.compute as pc

        strings = _strings(table, self.column).drop_null()
        ok = pc.is_in(strings, pa.array(list(self.values), type=pa.string()))
        bad = strings.filter(pc.invert(ok))
        return RuleCount(len(strings), len(bad), _examples(pc.unique(bad).to_pylist()))

    def _from_summaries(self, profile: Profile) -> RuleOutcome:
        from watchkeeper.data._column_profiles import CategoricalColumnProfile

        col = profile.columns[self.column]
        if not isinstance(col, CategoricalColumnProfile):
            return super()._from_summaries(profile)
        allowed = set(self.values)
        pairs = zip(col.categories, col.counts, strict=True)
        outside = {c: n for c, n in pairs if c not in allowed}
        unseen = {c: n for c, n in (col.unseen or {}).items() if c not in allowed}
        bad = {**outside, **unseen}
        n_bad = sum(bad.values())
        tracked = sum((col.unseen or {}).values())
        if col.other_count > tracked:  # values the profile lumped together as "other"
            if n_bad and self.mostly == 1.0:
                return RuleOutcome(
                    self, int(col.count), n_bad, _examples(k for k, v in bad.items() if v),
                    note="at least this many (some values are only counted as 'other')",
                )  # fmt: skip
            return RuleOutcome(
                self, int(col.count), None,
                note="not decidable from a profile made without the contract: "
                f"{col.other_count - tracked:,} values are only counted as 'other'",
            )  # fmt: skip
        return RuleOutcome(self, int(col.count), n_bad, _examples(k for k, v in bad.items() if v))

    def check_value(self, record: Mapping[str, Any]) -> str | None:
        value = record.get(self.column)
        if _is_null(value):
            return None
        text = _record_string(value)
        if text in self.values:
            return None
        shown = ", ".join(repr(v) for v in self.values[:10])
        return f"must be one of {shown}{', ...' if len(self.values) > 10 else ''}, got {text!r}"


@contract_rule("range")
@dataclass(frozen=True, kw_only=True, repr=False)
class Range(ContractRule):
    """Every present value of a numeric ``column`` lies in ``[min, max]`` (either bound may
    be ``None``; ``strict`` excludes the bounds themselves).

    Examples
    --------
    >>> Range(column="age", min=0, max=120).check_value({"age": 130})
    'must be at most 120, got 130'
    """

    column: str
    min: float | None = None
    max: float | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        ContractRule.__post_init__(self)
        where = f"contract rule 'range' on {self.column!r}"
        for name in ("min", "max"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
                raise InputError(f"{where}: {name} must be a number or null, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.min is None and self.max is None:
            raise InputError(f"{where}: give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InputError(f"{where}: min {self.min} is above max {self.max}")
        if not isinstance(self.strict, bool):
            raise InputError(f"{where}: strict must be true or false, got {self.strict!r}")

    def describe(self) -> str:
        lo = "" if self.min is None else f"{self.min:.6g} {'<' if self.strict else '<='} "
        hi = "" if self.max is None else f" {'<' if self.strict else '<='} {self.max:.6g}"
        return f"{lo}{self.column}{hi}"

    def _bad(self, x: Any) -> Any:
        lt, gt = (operator.le, operator.ge) if self.strict else (operator.lt, operator.gt)
        bad = False if not hasattr(x, "shape") else x != x  # all False, same shape
        if self.min is not None:
            bad = bad | lt(x, self.min)
        if self.max is not None:
            bad = bad | gt(x, self.max)
        return bad

    def count(self, table: pa.Table) -> RuleCount:

        values, present = _numbers(table, self.column)
        values = values[present]
        bad = values[self._bad(values)]
        is_time = _is_datetime_type(table.column(self.column).type)
        return RuleCount(len(values), len(bad), _numeric_examples(bad, is_time))

    def _from_summaries(self, profile: Profile) -> RuleOutcome:
        from watchkeeper.data._numeric_profile import NumericColumnProfile

        col = profile.columns[self.column]
        if not isinstance(col, NumericColumnProfile):
            return super()._from_summaries(profile)
        if not col.count:
            return RuleOutcome(self, 0, 0)
        extremes = [x for x in (col.min, col.max) if self._bad(x)]
        if not extremes:
            return RuleOutcome(self, int(col.count), 0)
        if self.mostly == 1.0:
            return RuleOutcome(
                self, int(col.count), len(set(extremes)), _examples(f"{x:.6g}" for x in extremes),
                note="at least this many (a profile made without the contract keeps only the "
                "min and max)",
            )  # fmt: skip
        return RuleOutcome(
            self, int(col.count), None,
            note=f"not decidable from a profile made without the contract: min {col.min:.6g}, "
            f"max {col.max:.6g}, but how many values are outside is not kept",
        )  # fmt: skip

    def check_value(self, record: Mapping[str, Any]) -> str | None:
        value = record.get(self.column)
        if _is_null(value):
            return None
        x = _record_number(value)
        if x is None:
            return None  # not a number: the kind check reports it
        shown = _record_string(value)
        if self.min is not None and (x <= self.min if self.strict else x < self.min):
            return f"must be {'above' if self.strict else 'at least'} {self.min:.6g}, got {shown}"
        if self.max is not None and (x >= self.max if self.strict else x > self.max):
            return f"must be {'below' if self.strict else 'at most'} {self.max:.6g}, got {shown}"
        return None


@contract_rule("regex")
@dataclass(frozen=True, kw_only=True, repr=False)
class Regex(ContractRule):
    """Every present value of ``column`` (as a string) matches ``pattern`` somewhere, as
    :func:`re.search` does (anchor it with ``^...$`` for whole values). Patterns use the
    syntax that Python and RE2 share (no look-around or back-references).

    Examples
    --------
    >>> Regex(column="code", pattern=r"^[A-Z]{2}[0-9]+$").check_value({"code": "ab1"})
    "must match '^[A-Z]{2}[0-9]+$', got 'ab1'"
    """

    column: str
    pattern: str = ""

    def __post_init__(self) -> None:
        ContractRule.__post_init__(self)
        where = f"contract rule 'regex' on {self.column!r}"
        if not isinstance(self.pattern, str) or not self.pattern:
            raise InputError(f"{where}: pattern must be a non-empty string")
        try:
            re.compile(self.pattern)
            import pyarrow as pa
            import pyarrow.compute as pc

            pc.match_substring_regex(pa.array(["x"]), self.pattern)
        except (re.error, ValueError, NotImplementedError) as exc:
            raise InputError(
                f"{where}: pattern {self.pattern!r} is not a regular expression that both "
                f"Python and RE2 accept ({exc})"
            ) from None

    def describe(self) -> str:
        return f"{self.column} matches {self.pattern!r}"

    def count(self, table: pa.Table) -> RuleCount:
        import pyarrow.compute as pc

        strings = _strings(table, self.column).drop_null()
        bad = strings.filter(pc.invert(pc.match_substring_regex(strings, self.pattern)))
        return RuleCount(len(strings), len(bad), _examples(pc.unique(bad).to_pylist()))

    def check_value(self, record: Mapping[str, Any]) -> str | None:
        value = record.get(self.column)
        if _is_null(value):
            return None
        text = _record_string(value)
        if re.search(self.pattern, text):
            return None
        return f"must match {self.pattern!r}, got {text!r}"


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@contract_rule("relation")
@dataclass(frozen=True, kw_only=True, repr=False)
class Relation(ContractRule):
    """``left OP right`` holds on every row where both are present (numbers, or datetimes;
    ``op`` is one of ``>= > <= < == !=``).

    Examples
    --------
    >>> Relation(left="end", op=">=", right="start").check_value({"start": 5, "end": 3})
    'must be >= start (5), got 3'
    """

    left: str
    op: str = ">="
    right: str = ""

    def __post_init__(self) -> None:
        ContractRule.__post_init__(self)
        if self.op not in _OPS:
            raise InputError(
                f"contract rule 'relation' on {self.left!r}: op must be one of "
                f"{', '.join(_OPS)}, got {self.op!r}"
            )
        if self.right == self.left:
            raise InputError(f"contract rule 'relation': compares {self.left!r} with itself")

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.left, self.right)

    @property
    def subject(self) -> str:
        return f"{self.left} {self.op} {self.right}"

    @property
    def name(self) -> str:
        return f"relation({self.subject})"

    def describe(self) -> str:
        return self.subject

    def count(self, table: pa.Table) -> RuleCount:
        import numpy as np

        a, a_ok = _numbers(table, self.left)
        b, b_ok = _numbers(table, self.right)
        both = a_ok & b_ok
        a, b = a[both], b[both]
        bad = ~_OPS[self.op](a, b)
        a_time = _is_datetime_type(table.column(self.left).type)
        b_time = _is_datetime_type(table.column(self.right).type)
        # Every distinct offending pair (up to a bound) so that the examples are the
        # smallest in text order, as merging keeps them.
        pairs = np.unique(np.stack([a[bad], b[bad]], axis=1), axis=0)[:100_000]
        examples = _examples(
            f"{self.left}={_show_number(x, a_time)}, {self.right}={_show_number(y, b_time)}"
            for x, y in pairs
        )
        return RuleCount(int(both.sum()), int(bad.sum()), examples)

    def check_value(self, record: Mapping[str, Any]) -> str | None:
        a, b = record.get(self.left), record.get(self.right)
        if _is_null(a) or _is_null(b):
            return None
        x, y = _record_number(a), _record_number(b)
        if x is None or y is None or _OPS[self.op](x, y):
            return None
        return f"must be {self.op} {self.right} ({_record_string(b)}), got {_record_string(a)}"
