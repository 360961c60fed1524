"""The contract rules about a set of rows, not decided on single records: ``unique``,
``monotone``, ``freshness`` and ``row_count`` (see :mod:`watchkeeper.data._contract`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from watchkeeper.data._contract import (
    MAX_SEEN,
    ContractRule,
    RuleCount,
    RuleOutcome,
    contract_rule,
)
from watchkeeper.data._contract_values import (
    _as_ns,
    _duration,
    _examples,
    _is_datetime_type,
    _is_numeric_type,
    _numbers,
    _numeric_examples,
    _show_number,
    _strings,
)
from watchkeeper.exceptions import InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from watchkeeper.data.profile import Profile

__all__ = ["Freshness", "Monotone", "RowCount", "Unique"]


# -- set rules ---------------------------------------------------------------------------------


@contract_rule("unique")
@dataclass(frozen=True, kw_only=True, repr=False)
class Unique(ContractRule):
    """No present value of ``column`` repeats (counted: rows repeating an earlier value).

    Profiles keep the hashes of up to :data:`~watchkeeper.data._contract.MAX_SEEN`
    distinct values, so merged profiles count repeats across their batches too (without
    examples for those); beyond that, only repeats inside each batch are counted.

    Examples
    --------
    >>> import pyarrow as pa
    >>> Unique(column="id").evaluate(pa.table({"id": ["a", "b", "a"]})).examples
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
        seen = _value_hashes(counts.field("values")) if n_distinct <= MAX_SEEN else None
        n_repeats = len(present_values) - n_distinct
        return RuleCount(len(present_values), n_repeats, examples, 1, seen)

    def _from_summaries(self, profile: Profile) -> RuleOutcome:
        return RuleOutcome(
            self, profile.n_rows, None,
            note="not decidable from a profile made without the contract (it keeps no "
            "record of which values repeat); check the rows",
        )  # fmt: skip


#: Key of the hash of string values (16 bytes, as pandas wants): fixed, so that hashes made
#: in different processes (Spark workers) agree.
_HASH_KEY = "watchkeeper.uniq"


def _value_hashes(values: pa.Array) -> bytes:
    """Sorted 64-bit hashes of distinct values: a float's bits (``-0.0`` as ``0.0``), or a
    keyed hash of a string."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_floating(values.type):
        floats = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64) + 0.0
        hashes = floats.view(np.uint64)
    else:
        objects = np.asarray(values.to_pylist(), dtype=object)
        hashes = pd.util.hash_array(objects, hash_key=_HASH_KEY, categorize=False)
    return np.unique(np.asarray(hashes, dtype="<u8")).tobytes()


@contract_rule("monotone")
@dataclass(frozen=True, kw_only=True, repr=False)
class Monotone(ContractRule):
    """The present values of ``column``, in row order, never decrease (``direction=
    "increasing"``) or never increase (``"decreasing"``); ``strict`` forbids ties too.
    Counted: values that break the order with the value before them.

    Examples
    --------
    >>> import pyarrow as pa
    >>> out = Monotone(column="t").evaluate(pa.table({"t": [1, 2, 1.5, 3]}))
    >>> out.n_violations, out.examples
    (1, ('1.5',))
    """

    per_record: ClassVar[bool] = False
    within_batches: ClassVar[bool] = True
    row_order: ClassVar[bool] = True

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

    def _from_summaries(self, profile: Profile) -> RuleOutcome:
        return RuleOutcome(
            self, profile.n_rows, None,
            note="not decidable from a profile that holds no count of it (made without the "
            "contract, or by an engine whose rows have no order, such as Spark); check the rows",
        )  # fmt: skip

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
    >>> import pandas as pd, pyarrow as pa
    >>> rule = Freshness(column="t", max_age_seconds=3600)
    >>> df = pd.DataFrame({"t": pd.to_datetime(["2024-01-01 10:00"])})
    >>> rule.evaluate(pa.Table.from_pandas(df), as_of="2024-01-01 12:00").n_violations
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


@contract_rule("row_count")
@dataclass(frozen=True, kw_only=True, repr=False)
class RowCount(ContractRule):
    """The number of rows lies in ``[min, max]`` (either bound may be ``None``).

    Examples
    --------
    >>> import pyarrow as pa
    >>> RowCount(min=5).evaluate(pa.table({"x": [1, 2]})).n_violations
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
