"""Data contracts: declared rules about the values of a dataset, kept in its schema file.

A :class:`Contract` is a tuple of rules, each a small frozen dataclass registered by its
``kind`` (the key in the schema JSON). Every rule is decided three ways:

- on rows (a frame or table): exactly, with a few offending values as examples;
- on a :class:`~watchkeeper.data.Profile`: rules that need rows (``regex``, ``unique``,
  ``monotone``, ``relation``, and the exact counts of ``not_null``, ``allowed_values`` and
  ``range``) are counted when the profile is made with a schema that carries the contract,
  and those counts merge by summing, so a merged window profile gives the verdict of the
  concatenated rows. ``unique`` and ``monotone`` are counted within each profiled batch:
  a violation inside any batch is found, but a repeat or an order break *across* batches
  of a merged profile is not tracked, so a merged profile with none inside its batches is
  reported as not decidable, never as a pass. Profiles made without the contract decide
  ``not_null``, ``row_count`` and ``freshness`` exactly, ``range`` and ``allowed_values``
  where min/max and category counts suffice, and report the others as not decidable;
- on a single record at the gateway: the per-row rules (``not_null``, ``allowed_values``,
  ``range``, ``regex``, ``relation``) that allow no violations (``mostly=1``) and are
  alerts; set-level rules (``unique``, ``monotone``, ``row_count``, ``freshness``) are not
  applied to single records.

Every rule has ``mostly`` (the share of checked values that must satisfy it, as in Great
Expectations) and ``severity`` (``"alert"`` or ``"warn"``: the status of a broken rule).
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

from watchkeeper.exceptions import InputError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from numpy.typing import NDArray

    from watchkeeper.data.profile import Profile

__all__ = [
    "RULE_KINDS",
    "AllowedValues",
    "Contract",
    "ContractRule",
    "Freshness",
    "Monotone",
    "NotNull",
    "Range",
    "Regex",
    "Relation",
    "RowCount",
    "RuleCount",
    "RuleOutcome",
    "Unique",
]

#: Offending examples kept per rule (the smallest string forms, so they merge exactly).
N_EXAMPLES = 5

#: Rule class by ``kind``, filled by :func:`contract_rule`.
RULE_KINDS: dict[str, type[ContractRule]] = {}

_R = TypeVar("_R", bound="type[ContractRule]")


def contract_rule(kind: str) -> Callable[[_R], _R]:
    """Register a rule class under ``kind`` (its key in the schema JSON)."""

    def register(cls: _R) -> _R:
        cls.kind = kind
        RULE_KINDS[kind] = cls
        return cls

    return register


def _example_key(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def _examples(values: Iterable[Any]) -> tuple[str, ...]:
    """The smallest offending values: numbers by value, other strings in text order (ISO
    timestamps chronologically); the same order whatever the batches, so counts merge
    exactly."""
    return tuple(sorted({str(v) for v in values}, key=_example_key)[:N_EXAMPLES])


def _numeric_examples(bad: NDArray[np.float64], is_time: bool) -> tuple[str, ...]:
    import numpy as np

    smallest = np.unique(bad)[: 4 * N_EXAMPLES]
    return _examples(_show_number(float(x), is_time) for x in smallest)


@dataclass(frozen=True, slots=True)
class RuleCount:
    """What one rule found in a batch of rows; counts of batches merge by summing.

    Attributes
    ----------
    n_checked
        Values (or rows) the rule looked at.
    n_violations
        Of those, the ones that break it.
    examples
        Up to five offending values, the smallest string forms (so merging is exact).
    n_parts
        Batches merged into this count (rules checked within batches need it).

    Examples
    --------
    >>> a = RuleCount(10, 1, ("-3",))
    >>> a.merge(RuleCount(5, 2, ("-1", "-7")))
    RuleCount(n_checked=15, n_violations=3, examples=('-7', '-3', '-1'), n_parts=2)
    """

    n_checked: int
    n_violations: int
    examples: tuple[str, ...] = ()
    n_parts: int = 1

    def merge(self, other: RuleCount) -> RuleCount:
        """The count of both batches."""
        return RuleCount(
            self.n_checked + other.n_checked,
            self.n_violations + other.n_violations,
            _examples(self.examples + other.examples),
            self.n_parts + other.n_parts,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "n_checked": self.n_checked,
            "n_violations": self.n_violations,
            "examples": list(self.examples),
            "n_parts": self.n_parts,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RuleCount:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            int(d["n_checked"]),
            int(d["n_violations"]),
            tuple(str(e) for e in d.get("examples", ())),
            int(d.get("n_parts", 1)),
        )


class RuleOutcome(NamedTuple):
    """The verdict material of one rule on one dataset or profile.

    ``n_violations`` is ``None`` when the rule cannot be decided from what was given (the
    ``note`` says why); ``note`` otherwise says what was measured where counts do not.
    """

    rule: ContractRule
    n_checked: int
    n_violations: int | None
    examples: tuple[str, ...] = ()
    note: str = ""

    @property
    def share(self) -> float | None:
        """Share of checked values that break the rule (``None`` when not decidable)."""
        if self.n_violations is None:
            return None
        return self.n_violations / self.n_checked if self.n_checked else 0.0

    @property
    def broken(self) -> bool | None:
        """Whether more than ``1 - mostly`` of the checked values break the rule."""
        share = self.share
        if share is None:
            return None
        return share > 1.0 - self.rule.mostly + 1e-12


# -- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, repr=False)
class ContractRule:
    """Base of the contract rules: ``mostly`` and ``severity`` shared by all.

    Attributes
    ----------
    mostly
        Share of checked values that must satisfy the rule (1 = every one).
    severity
        Status of a broken rule: ``"alert"`` or ``"warn"``.
    """

    kind: ClassVar[str] = ""
    #: Decided on single records at the gateway.
    per_record: ClassVar[bool] = True
    #: Counted from the rows when a profile is made with the contract.
    counted: ClassVar[bool] = True
    #: Counts only see violations inside one batch (not across merged batches).
    within_batches: ClassVar[bool] = False

    mostly: float = 1.0
    severity: str = "alert"

    def __post_init__(self) -> None:
        where = f"contract rule {self.kind!r}"
        mostly = self.mostly
        if isinstance(mostly, bool) or not isinstance(mostly, int | float):
            raise InputError(f"{where}: mostly must be a number in (0, 1], got {mostly!r}")
        if not 0.0 < float(mostly) <= 1.0:
            raise InputError(f"{where}: mostly must be in (0, 1], got {mostly!r}")
        object.__setattr__(self, "mostly", float(mostly))
        if self.severity not in ("alert", "warn"):
            raise InputError(f"{where}: severity must be 'alert' or 'warn', got {self.severity!r}")
        for f in fields(self):
            if f.name in ("column", "left", "right"):
                name = getattr(self, f.name)
                if not isinstance(name, str) or not name:
                    raise InputError(
                        f"{where}: {f.name} must be a non-empty column name, got {name!r}"
                    )

    # -- description -----------------------------------------------------------------------

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the rule reads."""
        column = getattr(self, "column", None)
        return () if column is None else (column,)

    @property
    def subject(self) -> str:
        """What a result of this rule is about: a column, a pair, or ``"dataset"``."""
        return ", ".join(self.columns) or "dataset"

    @property
    def name(self) -> str:
        """Short name, e.g. ``range(temp)``."""
        return f"{self.kind}({self.subject})"

    def describe(self) -> str:
        """One readable line saying what the rule requires."""
        return self.name

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "kind")
        return f"{type(self).__name__}({params})"

    @property
    def key(self) -> str:
        """Canonical JSON of the rule: identifies its counts inside a profile."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def applies_to_records(self) -> bool:
        """Whether the gateway rejects single records that break it."""
        return self.per_record and self.mostly == 1.0 and self.severity == "alert"

    # -- evaluation ------------------------------------------------------------------------

    def count(self, table: pa.Table) -> RuleCount:
        """Violations among the rows of ``table`` (which has the rule's columns)."""
        raise NotImplementedError

    def evaluate(self, table: pa.Table, *, as_of: Any = None) -> RuleOutcome:
        """The rule on rows: exact."""
        missing = [c for c in self.columns if c not in table.column_names]
        if missing:
            return RuleOutcome(self, 0, None, note=f"the data has no column {missing[0]!r}")
        c = self.count(table)
        return RuleOutcome(self, c.n_checked, c.n_violations, c.examples)

    def evaluate_profile(
        self, profile: Profile, counts: RuleCount | None, *, as_of: Any = None
    ) -> RuleOutcome:
        """The rule on a profile: from the counts kept at profiling time when there are
        some, else from the column summaries where they suffice."""
        missing = [c for c in self.columns if c not in profile.columns]
        if missing:
            return RuleOutcome(self, 0, None, note=f"the profile has no column {missing[0]!r}")
        if counts is None:
            return self._from_summaries(profile)
        if self.within_batches and counts.n_violations == 0 and counts.n_parts > 1:
            return RuleOutcome(
                self, counts.n_checked, None,
                note=f"not decidable from a profile: none within each of its {counts.n_parts} "
                "merged batches, but profiles do not track this across batches; check the rows",
            )  # fmt: skip
        return RuleOutcome(self, counts.n_checked, counts.n_violations, counts.examples)

    def _from_summaries(self, profile: Profile) -> RuleOutcome:
        return RuleOutcome(
            self, profile.n_rows, None,
            note="not decidable from a profile made without the contract; profile the data "
            "with a schema that carries the contract, or check the rows",
        )  # fmt: skip

    def check_value(self, record: Mapping[str, Any]) -> str | None:
        """Why one record breaks the rule, or ``None`` (absent fields count as null)."""
        return None

    # -- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form: ``kind`` and the rule's parameters."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "mostly" and value == 1.0:
                continue
            if f.name == "severity" and value == "alert":
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def rule_from_dict(payload: Mapping[str, Any]) -> ContractRule:
    """Build a rule from its JSON form (a mapping with ``kind``).

    Raises
    ------
    InputError
        Unknown kind, missing or unknown parameters, bad values; the message names the rule.
    """
    if not isinstance(payload, Mapping) or "kind" not in payload:
        raise InputError(f"a contract rule must be an object with a 'kind', got {payload!r}")
    kind = payload["kind"]
    cls = RULE_KINDS.get(str(kind))
    if cls is None:
        raise InputError(
            f"unknown contract rule kind {kind!r}; use one of: {', '.join(sorted(RULE_KINDS))}"
        )
    params = {k: v for k, v in payload.items() if k != "kind"}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InputError(
            f"contract rule {kind!r} has unknown parameters {unknown}; it takes: "
            f"{', '.join(sorted(known))}"
        )
    for k, v in params.items():
        if isinstance(v, list):
            params[k] = tuple(v)
    try:
        return cls(**params)
    except TypeError as exc:
        raise InputError(f"contract rule {kind!r}: {exc}") from None


# -- value helpers ---------------------------------------------------------------------------


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _record_string(value: Any) -> str:
    """The string form :func:`~watchkeeper.data.string_values` gives a JSON value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _record_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return _record_datetime(value)
    return None


def _record_datetime(value: str) -> float | None:
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1e9


def _is_datetime_type(t: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))


def _numbers(table: pa.Table, name: str) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Values of a numeric or datetime column as floats (datetimes: ns since the epoch), and
    where they are present."""
    import numpy as np

    from watchkeeper.data._adapters import datetime_values, numeric_values

    column = table.column(name)
    if _is_datetime_type(column.type):
        ns, valid, _ = datetime_values(column)
        return ns.astype(np.float64), valid
    values, _, _ = numeric_values(column)
    return values, ~np.isnan(values)


def _show_number(x: float, is_time: bool) -> str:
    if is_time:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(x / 1e9, tz=UTC).isoformat()
    return f"{x:.6g}"


def _strings(table: pa.Table, name: str) -> pa.ChunkedArray:
    from watchkeeper.data._adapters import string_values

    return string_values(table.column(name))


# -- row rules -------------------------------------------------------------------------------


@contract_rule("not_null")
@dataclass(frozen=True, kw_only=True, repr=False)
class NotNull(ContractRule):
    """Every value of ``column`` is present (not null, not NaN).

    Examples
    --------
    >>> import pandas as pd
    >>> out = NotNull(column="x").evaluate(_table(pd.DataFrame({"x": [1.0, None]})))
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


def _is_string_type(t: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _is_numeric_type(t: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


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


# -- set rules ---------------------------------------------------------------------------------


@contract_rule("unique")
@dataclass(frozen=True, kw_only=True, repr=False)
class Unique(ContractRule):
    """No present value of ``column`` repeats (counted: rows repeating an earlier value).

    Examples
    --------
    >>> import pandas as pd
    >>> Unique(column="id").evaluate(_table(pd.DataFrame({"id": ["a", "b", "a"]}))).examples
    ('a',)
    """

    per_record: ClassVar[bool] = False
    within_batches: ClassVar[bool] = True

    column: str

    def describe(self) -> str:
        return f"{self.column} values are unique"

    def count(self, table: pa.Table) -> RuleCount:
        import pyarrow as pa
        import pyarrow.compute as pc

        column = table.column(self.column)
        if _is_numeric_type(column.type) or _is_datetime_type(column.type):
            values, present = _numbers(table, self.column)
            present_values = pa.array(values[present])
        else:
            present_values = _strings(table, self.column).drop_null()
        counts = pc.value_counts(present_values)
        n_distinct = len(counts)
        repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
        if pa.types.is_floating(repeated.type):
            examples = _numeric_examples(repeated.to_numpy(), _is_datetime_type(column.type))
        else:
            examples = _examples(repeated.to_pylist())
        return RuleCount(len(present_values), len(present_values) - n_distinct, examples)

    def _from_summaries(self, profile: Profile) -> RuleOutcome:
        return RuleOutcome(
            self, profile.n_rows, None,
            note="not decidable from a profile made without the contract (it keeps no "
            "record of which values repeat); check the rows",
        )  # fmt: skip


@contract_rule("monotone")
@dataclass(frozen=True, kw_only=True, repr=False)
class Monotone(ContractRule):
    """The present values of ``column``, in row order, never decrease (``direction=
    "increasing"``) or never increase (``"decreasing"``); ``strict`` forbids ties too.
    Counted: values that break the order with the value before them.

    Examples
    --------
    >>> import pandas as pd
    >>> out = Monotone(column="t").evaluate(_table(pd.DataFrame({"t": [1, 2, 1.5, 3]})))
    >>> out.n_violations, out.examples
    (1, ('1.5',))
    """

    per_record: ClassVar[bool] = False
    within_batches: ClassVar[bool] = True

    column: str
    direction: str = "increasing"
    strict: bool = False

    def __post_init__(self) -> None:
        ContractRule.__post_init__(self)
        if self.direction not in ("increasing", "decreasing"):
            raise InputError(
                f"contract rule 'monotone' on {self.column!r}: direction must be "
                f"'increasing' or 'decreasing', got {self.direction!r}"
            )

    def describe(self) -> str:
        strictly = "strictly " if self.strict else ""
        return f"{self.column} is {strictly}{self.direction} in row order"

    def count(self, table: pa.Table) -> RuleCount:
        import numpy as np

        values, present = _numbers(table, self.column)
        values = values[present]
        step = np.diff(values)
        if self.direction == "decreasing":
            step = -step
        bad = step <= 0 if self.strict else step < 0
        is_time = _is_datetime_type(table.column(self.column).type)
        return RuleCount(len(values), int(bad.sum()), _numeric_examples(values[1:][bad], is_time))


@contract_rule("freshness")
@dataclass(frozen=True, kw_only=True, repr=False)
class Freshness(ContractRule):
    """The latest value of the datetime ``column`` is at most ``max_age_seconds`` before
    ``as_of`` (the end of the window being checked; decisions never read the clock).

    Examples
    --------
    >>> import pandas as pd
    >>> rule = Freshness(column="t", max_age_seconds=3600)
    >>> df = pd.DataFrame({"t": pd.to_datetime(["2024-01-01 10:00"])})
    >>> rule.evaluate(_table(df), as_of="2024-01-01 12:00").n_violations
    1
    """

    per_record: ClassVar[bool] = False
    counted: ClassVar[bool] = False

    column: str
    max_age_seconds: float = 86_400.0

    def __post_init__(self) -> None:
        ContractRule.__post_init__(self)
        v = self.max_age_seconds
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise InputError(
                f"contract rule 'freshness' on {self.column!r}: max_age_seconds must be a "
                f"positive number, got {v!r}"
            )

    def describe(self) -> str:
        return f"latest {self.column} at most {_duration(self.max_age_seconds)} old"

    def _decide(self, latest_ns: int | None, as_of: Any) -> RuleOutcome:
        if as_of is None:
            return RuleOutcome(self, 0, None, note="needs as_of (the time the data should be "
                               "fresh at) to be decided")  # fmt: skip
        as_of_ns = _as_ns(as_of)
        if latest_ns is None:
            return RuleOutcome(self, 1, 1, note=f"no {self.column} value at all")
        age = (as_of_ns - latest_ns) / 1e9
        latest = _show_number(float(latest_ns), True)
        note = f"latest {latest}, {_duration(max(age, 0.0))} before {_show_number(as_of_ns, True)}"
        return RuleOutcome(self, 1, int(age > self.max_age_seconds), (latest,), note)

    def evaluate(self, table: pa.Table, *, as_of: Any = None) -> RuleOutcome:
        if self.column not in table.column_names:
            return RuleOutcome(self, 0, None, note=f"the data has no column {self.column!r}")
        values, present = _numbers(table, self.column)
        latest = int(values[present].max()) if present.any() else None
        return self._decide(latest, as_of)

    def evaluate_profile(
        self, profile: Profile, counts: RuleCount | None, *, as_of: Any = None
    ) -> RuleOutcome:
        from watchkeeper.data._column_profiles import DatetimeColumnProfile

        col = profile.columns.get(self.column)
        if not isinstance(col, DatetimeColumnProfile):
            return RuleOutcome(
                self, 0, None, note=f"the profile has no datetime column {self.column!r}"
            )
        return self._decide(col.max, as_of)


def _as_ns(value: Any) -> float:
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"as_of must be a datetime or an ISO string, got {value!r}") from exc
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return float(ts.value)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


@contract_rule("row_count")
@dataclass(frozen=True, kw_only=True, repr=False)
class RowCount(ContractRule):
    """The number of rows lies in ``[min, max]`` (either bound may be ``None``).

    Examples
    --------
    >>> import pandas as pd
    >>> RowCount(min=5).evaluate(_table(pd.DataFrame({"x": [1, 2]}))).n_violations
    1
    """

    per_record: ClassVar[bool] = False
    counted: ClassVar[bool] = False

    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        ContractRule.__post_init__(self)
        for name in ("min", "max"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise InputError(
                    f"contract rule 'row_count': {name} must be a whole number >= 0 or null, "
                    f"got {v!r}"
                )
        if self.min is None and self.max is None:
            raise InputError("contract rule 'row_count': give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InputError(f"contract rule 'row_count': min {self.min} is above max {self.max}")

    def describe(self) -> str:
        lo = "" if self.min is None else f"{self.min:,} <= "
        hi = "" if self.max is None else f" <= {self.max:,}"
        return f"{lo}rows{hi}"

    def _decide(self, n: int) -> RuleOutcome:
        bad = (self.min is not None and n < self.min) or (self.max is not None and n > self.max)
        return RuleOutcome(self, 1, int(bad), (f"{n:,} rows",) if bad else (), f"{n:,} rows")

    def evaluate(self, table: pa.Table, *, as_of: Any = None) -> RuleOutcome:
        return self._decide(table.num_rows)

    def evaluate_profile(
        self, profile: Profile, counts: RuleCount | None, *, as_of: Any = None
    ) -> RuleOutcome:
        return self._decide(profile.n_rows)


def _table(data: Any) -> pa.Table:
    from watchkeeper.data._adapters import read_table

    return read_table(data, allow_empty=True)


# -- the contract ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contract:
    """Declared rules about a dataset, stored under ``"contract"`` in the schema JSON.

    Build one from rule objects, from JSON (:meth:`from_dict`), from reference data
    (:meth:`propose`), or from a TFDV schema or Great Expectations suite
    (:meth:`from_tfdv`, :meth:`from_great_expectations`). Decide it with
    :func:`watchkeeper.checks.check_contract` (frames and profiles) or :meth:`check_record`.

    Examples
    --------
    >>> import pandas as pd
    >>> contract = Contract.from_dict({"rules": [
    ...     {"kind": "range", "column": "age", "min": 0, "max": 120},
    ...     {"kind": "relation", "left": "end", "op": ">=", "right": "start"}]})
    >>> df = pd.DataFrame({"age": [30, 150], "start": [1, 5], "end": [2, 4]})
    >>> [(o.rule.name, o.n_violations, o.examples) for o in contract.evaluate(df)]
    [('range(age)', 1, ('150',)), ('relation(end >= start)', 1, ('end=4, start=5',))]
    >>> [(rule.name, why) for rule, why in contract.check_record({"age": 130, "end": 2})]
    [('range(age)', 'must be at most 120, got 130')]
    """

    rules: tuple[ContractRule, ...] = ()

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        for r in rules:
            if not isinstance(r, ContractRule):
                raise InputError(f"contract rules must be rule objects, got {r!r}")
        keys = [r.key for r in rules]
        if len(set(keys)) != len(keys):
            twice = sorted({k for k in keys if keys.count(k) > 1})
            raise InputError(f"the contract declares the same rule twice: {twice[0]}")
        object.__setattr__(self, "rules", rules)

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns named by the rules, in first-use order."""
        return tuple(dict.fromkeys(c for r in self.rules for c in r.columns))

    def select(self, names: Iterable[str]) -> Contract:
        """The rules that read only columns in ``names`` (dataset rules are kept)."""
        keep = set(names)
        return Contract(tuple(r for r in self.rules if set(r.columns) <= keep))

    def __add__(self, other: Contract) -> Contract:
        mine = {r.key for r in self.rules}
        return Contract(self.rules + tuple(r for r in other.rules if r.key not in mine))

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, data: Any, *, as_of: Any = None) -> list[RuleOutcome]:
        """Every rule on the rows of ``data`` (anything :func:`read_table` reads): exact."""
        table = _table(data)
        return [r.evaluate(table, as_of=as_of) for r in self.rules]

    def count(self, data: Any) -> dict[str, RuleCount]:
        """Counts of the counted rules on rows, by rule key (what a profile keeps)."""
        table = _table(data)
        return {
            r.key: r.count(table)
            for r in self.rules
            if r.counted and all(c in table.column_names for c in r.columns)
        }

    def evaluate_profile(self, profile: Profile, *, as_of: Any = None) -> list[RuleOutcome]:
        """Every rule on a profile (see the module docs for what a profile decides)."""
        counts = profile.contract_counts or {}
        return [r.evaluate_profile(profile, counts.get(r.key), as_of=as_of) for r in self.rules]

    def check_record(self, record: Mapping[str, Any]) -> list[tuple[ContractRule, str]]:
        """The per-record rules that one record breaks, with why (see the module docs).

        Examples
        --------
        >>> c = Contract((NotNull(column="x"), Unique(column="x")))
        >>> [(r.name, why) for r, why in c.check_record({"x": None})]
        [('not_null(x)', 'must not be null')]
        """
        out = []
        for r in self.rules:
            if r.applies_to_records:
                why = r.check_value(record)
                if why is not None:
                    out.append((r, why))
        return out

    # -- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form: ``{"rules": [...]}``."""
        return {"rules": [r.to_dict() for r in self.rules]}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Contract:
        """Rebuild from :meth:`to_dict` output (or a bare list of rules).

        Raises
        ------
        InputError
            Unknown rule kinds or bad parameters (the message names the rule).
        """
        rules = payload.get("rules", ()) if isinstance(payload, Mapping) else payload
        if isinstance(rules, str | bytes) or not isinstance(rules, Sequence):
            raise InputError(f"a contract's rules must be a list, got {rules!r}")
        return cls(tuple(rule_from_dict(r) for r in rules))

    @classmethod
    def propose(cls, data: Any, schema: Any = None) -> Contract:
        """Rules that ``data`` satisfies, proposed for a person to edit (see
        :func:`~watchkeeper.data._contract_propose.propose_contract`).

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"size": ["S", "M", "S"], "n": [1, 2, 3]})
        >>> [r.name for r in Contract.propose(df).rules]  # doctest: +NORMALIZE_WHITESPACE
        ['row_count(dataset)', 'not_null(size)', 'allowed_values(size)', 'not_null(n)',
         'range(n)']
        """
        from watchkeeper.data._contract_propose import propose_contract

        return propose_contract(data, schema)

    @classmethod
    def from_tfdv(cls, source: Any) -> ImportedContract:
        """The rules of a TFDV schema (``schema.pbtxt`` text or its JSON form) that map to
        contract rules, and the entries that do not (see
        :mod:`watchkeeper.data._contract_import`).

        Examples
        --------
        >>> text = 'feature { name: "age" presence { min_fraction: 1.0 } '
        >>> text += 'int_domain { min: 0 max: 120 } }'
        >>> [r.name for r in Contract.from_tfdv(text).contract.rules]
        ['not_null(age)', 'range(age)']
        """
        from watchkeeper.data._contract_import import from_tfdv

        return from_tfdv(source)

    @classmethod
    def from_great_expectations(cls, suite: Any) -> ImportedContract:
        """The expectations of a Great Expectations suite (JSON text, path or mapping) that
        map to contract rules, and the ones that do not.

        Examples
        --------
        >>> suite = {"expectations": [
        ...     {"expectation_type": "expect_column_values_to_be_unique",
        ...      "kwargs": {"column": "id"}},
        ...     {"expectation_type": "expect_column_kl_divergence_to_be_less_than",
        ...      "kwargs": {"column": "x"}}]}
        >>> found = Contract.from_great_expectations(suite)
        >>> [r.name for r in found.contract.rules], found.unmapped
        (['unique(id)'], ('expect_column_kl_divergence_to_be_less_than(column=x)',))
        """
        from watchkeeper.data._contract_import import from_great_expectations

        return from_great_expectations(suite)


class ImportedContract(NamedTuple):
    """A contract imported from another tool and the entries that did not map."""

    contract: Contract
    unmapped: tuple[str, ...]


def merge_counts(
    a: Mapping[str, RuleCount] | None, b: Mapping[str, RuleCount] | None
) -> dict[str, RuleCount] | None:
    """Counts of two profiles' batches: rules counted in both (a rule missing from one side
    cannot be counted on the union, so it falls back to the column summaries)."""
    if a is None or b is None:
        return None
    return {k: a[k].merge(b[k]) for k in a if k in b}


def merge_all_counts(
    parts: Sequence[Mapping[str, RuleCount] | None],
) -> dict[str, RuleCount] | None:
    """:func:`merge_counts` over many profiles in one pass."""
    if any(p is None for p in parts):
        return None
    present: list[Mapping[str, RuleCount]] = [p for p in parts if p is not None]
    if not present:
        return None
    keys = [k for k in present[0] if all(k in p for p in present[1:])]
    out = {}
    for k in keys:
        counts = [p[k] for p in present]
        out[k] = RuleCount(
            sum(c.n_checked for c in counts),
            sum(c.n_violations for c in counts),
            _examples(e for c in counts for e in c.examples),
            sum(c.n_parts for c in counts),
        )
    return out


def counts_to_list(counts: Mapping[str, RuleCount]) -> list[dict[str, Any]]:
    """JSON form of a profile's rule counts."""
    return [{"rule": json.loads(k)} | c.to_dict() for k, c in counts.items()]


def counts_from_list(items: Sequence[Mapping[str, Any]]) -> dict[str, RuleCount]:
    """Rebuild a profile's rule counts from :func:`counts_to_list` output."""
    return {rule_from_dict(d["rule"]).key: RuleCount.from_dict(d) for d in items}
