"""What :meth:`Schema.validate` checks and reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.data._adapters import (
    datetime_values,
    mixed_types_info,
    numeric_values,
    string_values,
)
from watchkeeper.data.schema import ColumnKind, ColumnSpec
from watchkeeper.exceptions import SchemaError

__all__ = ["SchemaReport", "TypeMismatch", "find_mismatches"]

_N_EXAMPLES = 5


class TypeMismatch(NamedTuple):
    """A column whose values do not fit the kind the schema expects."""

    column: str
    expected_kind: str
    found_dtype: str
    n_bad: int
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SchemaReport:
    """What :meth:`Schema.validate` found.

    Missing columns and type mismatches are errors; extra columns are reported but are not
    errors (they are simply not monitored).

    Examples
    --------
    >>> SchemaReport(missing_columns=("age",)).ok
    False
    """

    missing_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()
    type_mismatches: tuple[TypeMismatch, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no column is missing and every column's values fit its kind."""
        return not self.missing_columns and not self.type_mismatches

    def problems(self) -> list[str]:
        """One readable line per problem (errors first, then extra columns)."""
        lines = [f"missing column {c!r}" for c in self.missing_columns]
        for m in self.type_mismatches:
            examples = f"; e.g. {', '.join(m.examples)}" if m.examples else ""
            lines.append(
                f"column {m.column!r} should be {m.expected_kind} but has {m.found_dtype}: "
                f"{m.n_bad:,} bad values{examples}"
            )
        lines += [
            f"extra column {c!r} (not in the schema; not monitored)" for c in self.extra_columns
        ]
        return lines

    def raise_for_errors(self) -> None:
        """Raise :class:`SchemaError` listing every problem, unless :attr:`ok`.

        Examples
        --------
        >>> SchemaReport(extra_columns=("new",)).raise_for_errors()  # extra columns are fine
        """
        if self.ok:
            return
        listed = "\n".join(f"  - {line}" for line in self.problems())
        raise SchemaError(
            f"the data does not match the schema:\n{listed}\n"
            "Fix the data, or update the schema (Schema.with_kinds / Schema.select)."
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "ok": self.ok,
            "missing_columns": list(self.missing_columns),
            "extra_columns": list(self.extra_columns),
            "type_mismatches": [
                m._asdict() | {"examples": list(m.examples)} for m in self.type_mismatches
            ],
        }


def _smallest(values: list[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values))[:_N_EXAMPLES])


def find_mismatches(table: pa.Table, spec: ColumnSpec) -> list[TypeMismatch]:
    """Values of column ``spec.name`` that cannot be read as ``spec.kind``."""
    field = table.schema.field(spec.name)
    column = table.column(spec.name)
    found = str(field.type)
    kind = spec.kind
    mixed = mixed_types_info(field)
    if mixed is not None and kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        main = mixed["main"]
        n_bad = sum(v for k, v in mixed["types"].items() if k != main)
        found = f"mixed Python types ({', '.join(mixed['types'])}; mostly {main})"
        return [TypeMismatch(spec.name, kind.value, found, n_bad, tuple(mixed["examples"]))]
    if kind is ColumnKind.NUMERIC:
        _, n_bad, examples = numeric_values(column)
    elif kind is ColumnKind.DATETIME:
        _, _, n_bad = datetime_values(column)
        examples = () if not n_bad else _bad_datetimes(column)
    elif kind is ColumnKind.BOOLEAN and not pa.types.is_boolean(field.type):
        strings = pc.utf8_lower(string_values(column))
        ok = pc.is_in(strings, pa.array(["true", "false", "1", "0"]))
        bad = string_values(column).filter(pc.invert(ok.fill_null(True)))
        n_bad, examples = len(bad), _smallest(bad.slice(0, 10_000).to_pylist())
    elif kind is ColumnKind.EMBEDDING:
        from watchkeeper.data._embedding_profile import embedding_matrix

        _, dim, _, n_bad = embedding_matrix(column)
        examples = (f"vectors not of length {dim} or with non-finite values",) if n_bad else ()
    elif spec.categories is not None:
        strings = string_values(column)
        ok = pc.is_in(strings, pa.array(list(spec.categories), type=pa.string()))
        bad = strings.filter(pc.invert(ok.fill_null(True)))
        n_bad, examples = len(bad), _smallest(pc.unique(bad).to_pylist())
        found = f"{found} with undeclared categories"
    else:
        return []
    if n_bad == 0:
        return []
    return [TypeMismatch(spec.name, kind.value, found, int(n_bad), tuple(examples))]


def _bad_datetimes(column: pa.ChunkedArray) -> tuple[str, ...]:
    import pandas as pd

    strings = string_values(column).slice(0, 10_000)
    raw = pd.Series(strings.to_numpy(zero_copy_only=False), dtype=object)
    parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
    return _smallest([str(v) for v in raw[raw.notna() & parsed.isna()]])
