"""Schema inference rules (documented on :meth:`Schema.infer`)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.data._adapters import mixed_types_info
from watchkeeper.data._embedding_profile import is_vector_type
from watchkeeper.data.schema import ColumnKind, ColumnSpec, Role

__all__ = ["infer_columns"]

_ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid)$|[a-z0-9]Id$|^(uuid|guid)$", re.IGNORECASE)
#: Strings this long on average, or with this many words, are free text.
_TEXT_MEAN_LENGTH = 40
_TEXT_MEAN_WORDS = 5
#: Share of unique values above which a high-cardinality string column is an identifier.
_NEARLY_UNIQUE = 0.95


def _looks_like_id_name(name: str) -> bool:
    return bool(_ID_NAME.search(name))


def _distinct(column: pa.ChunkedArray) -> int:
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    return int(pc.count_distinct(column, mode="only_valid").as_py())


def _infer_one(
    field: pa.Field, column: pa.ChunkedArray, max_categories: int
) -> tuple[ColumnKind, Role | None, str]:
    """Kind, role (None: decided later) and note of one column."""
    t = field.type
    n_valid = len(column) - column.null_count
    mixed = mixed_types_info(field)
    if mixed is not None:
        types = ", ".join(f"{k}: {v}" for k, v in mixed["types"].items())
        return (
            ColumnKind.CATEGORICAL,
            None,
            (f"mixed Python types ({types}); profiled as the string form of each value"),
        )
    if pa.types.is_boolean(t):
        return ColumnKind.BOOLEAN, None, ""
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        if _looks_like_id_name(field.name) and n_valid > 1 and _distinct(column) == n_valid:
            return ColumnKind.NUMERIC, Role.ID, "id-like name and every value is unique"
        return ColumnKind.NUMERIC, None, ""
    if pa.types.is_duration(t):
        return ColumnKind.NUMERIC, None, "duration, profiled as a number of its time unit"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return ColumnKind.DATETIME, None, ""
    if pa.types.is_null(t):
        return ColumnKind.CATEGORICAL, None, "every value is missing; declare the kind"
    if pa.types.is_dictionary(t):
        n_distinct = _distinct(column)
        note = (
            f"categorical dtype with {n_distinct:,} categories; profiles keep the top ones"
            if n_distinct > max_categories
            else ""
        )
        return ColumnKind.CATEGORICAL, None, note
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return _infer_strings(field.name, column, n_valid, max_categories)
    if is_vector_type(t):
        return _infer_vectors(column, n_valid)
    if pa.types.is_time(t):
        return ColumnKind.CATEGORICAL, None, "time of day, profiled as strings"
    return (
        ColumnKind.TEXT,
        Role.IGNORED,
        f"Arrow type {t} is not profiled; declare a role to use it",
    )


def _infer_vectors(column: pa.ChunkedArray, n_valid: int) -> tuple[ColumnKind, Role | None, str]:
    """Numeric vectors of one length are embeddings; ragged ones are not profiled."""
    lengths = pc.unique(pc.list_value_length(column).drop_null()).to_pylist()
    if n_valid and len(lengths) == 1 and lengths[0] >= 1:
        return ColumnKind.EMBEDDING, None, f"embedding: vectors of {lengths[0]} numbers"
    shown = ", ".join(str(v) for v in sorted(lengths)[:5])
    return (
        ColumnKind.TEXT,
        Role.IGNORED,
        f"numeric lists of different lengths ({shown}) are not profiled; declare "
        "kind embedding to profile the vectors of the most common length",
    )


def _infer_strings(
    name: str, column: pa.ChunkedArray, n_valid: int, max_categories: int
) -> tuple[ColumnKind, Role | None, str]:
    n_distinct = _distinct(column)
    all_unique = n_valid > 1 and n_distinct == n_valid
    if all_unique and _looks_like_id_name(name):
        return ColumnKind.CATEGORICAL, Role.ID, "id-like name and every value is unique"
    if n_distinct <= max_categories:
        return ColumnKind.CATEGORICAL, None, ""
    lengths = pc.utf8_length(column)
    mean_length = float(pc.mean(lengths).as_py() or 0.0)
    words = pc.count_substring_regex(column, pattern=r"\S+")
    mean_words = float(pc.mean(words).as_py() or 0.0)
    summary = f"{n_distinct:,} distinct values in {n_valid:,}"
    if mean_length >= _TEXT_MEAN_LENGTH or mean_words >= _TEXT_MEAN_WORDS:
        return (
            ColumnKind.TEXT,
            None,
            (f"free text ({summary}, mean length {mean_length:.0f} characters)"),
        )
    if n_distinct >= _NEARLY_UNIQUE * n_valid:
        return (
            ColumnKind.CATEGORICAL,
            Role.ID,
            (f"nearly every value is unique ({summary}): an identifier, not monitored"),
        )
    if n_distinct <= math.sqrt(n_valid):
        return (
            ColumnKind.CATEGORICAL,
            None,
            (
                f"high-cardinality categorical ({summary}); profiles keep the top categories "
                "and count the rest as other"
            ),
        )
    return (
        ColumnKind.TEXT,
        None,
        (
            f"too many distinct short strings to compare as categories ({summary}); declare "
            "kinds={name!r: 'categorical'} to profile the top categories"
        ).replace("name!r", repr(name)),
    )


def infer_columns(
    table: pa.Table,
    *,
    roles: Mapping[str, Role],
    kinds: Mapping[str, ColumnKind],
    max_categories: int,
) -> tuple[ColumnSpec, ...]:
    """Column specs of ``table`` by the rules of :meth:`Schema.infer`."""
    inferred: list[tuple[str, ColumnKind, Role | None, str, str]] = []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind, role, note = _infer_one(field, column, max_categories)
        if field.name in kinds and kinds[field.name] is not kind:
            kind, note = kinds[field.name], "kind declared"
            if role is Role.IGNORED:
                role = None
        inferred.append((field.name, kind, role, note, str(field.type)))
    datetimes = [name for name, kind, *_ in inferred if kind is ColumnKind.DATETIME]
    declared_timestamp = any(r is Role.TIMESTAMP for r in roles.values())
    specs = []
    for name, kind, role, note, dtype in inferred:
        if name in roles:
            role = roles[name]
        elif role is None:
            only_datetime = datetimes == [name] and not declared_timestamp
            role = Role.TIMESTAMP if only_datetime else Role.FEATURE
        specs.append(ColumnSpec(name=name, kind=kind, role=role, dtype=dtype, note=note))
    return tuple(specs)
