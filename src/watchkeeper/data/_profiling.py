"""Profiling one column: its canonical values and the matching column profile."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from watchkeeper.data._adapters import datetime_values, numeric_values, string_values
from watchkeeper.data._column_profiles import (
    CategoricalColumnProfile,
    DatetimeColumnProfile,
    TextColumnProfile,
)
from watchkeeper.data._embedding_profile import EmbeddingColumnProfile
from watchkeeper.data._numeric_profile import NumericColumnProfile
from watchkeeper.data.schema import ColumnKind, ColumnSpec

__all__ = ["COLUMN_CLASSES", "ColumnProfile", "profile_column"]

ColumnProfile = (
    NumericColumnProfile
    | CategoricalColumnProfile
    | DatetimeColumnProfile
    | TextColumnProfile
    | EmbeddingColumnProfile
)

COLUMN_CLASSES: dict[str, Any] = {
    "numeric": NumericColumnProfile,
    "categorical": CategoricalColumnProfile,
    "boolean": CategoricalColumnProfile,
    "datetime": DatetimeColumnProfile,
    "text": TextColumnProfile,
    "embedding": EmbeddingColumnProfile,
}


def _boolean_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``"true"``/``"false"`` for booleans and their usual spellings (1/0, any case)."""
    strings = string_values(column)
    if pa.types.is_boolean(column.type):
        return strings
    lower = pc.utf8_lower(strings)
    lower = pc.if_else(pc.equal(lower, "1"), "true", lower)
    return pc.if_else(pc.equal(lower, "0"), "false", lower)


def _masked(
    values: NDArray[Any], missing: NDArray[np.bool_], type_: pa.DataType
) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(values, type=type_, mask=missing)], type=type_)


def profile_column(
    spec: ColumnSpec,
    column: pa.ChunkedArray,
    reference: ColumnProfile | None,
    *,
    n_bins: int,
    max_categories: int,
    sketch: bool = True,
) -> tuple[ColumnProfile, pa.ChunkedArray | None]:
    """The column's profile and its canonical values (what the sample stores and hashes;
    ``None`` for embedding columns, whose profile keeps its own sample of projected vectors)."""
    kind = spec.kind
    if kind is ColumnKind.NUMERIC:
        values, n_bad, examples = numeric_values(column)
        ref = reference if isinstance(reference, NumericColumnProfile) else None
        numeric = NumericColumnProfile.from_values(
            values,
            n_type_errors=n_bad,
            type_error_examples=examples,
            n_bins=n_bins,
            reference=ref,
            sketch=sketch,
        )
        return numeric, _masked(values, np.isnan(values), pa.float64())
    if kind is ColumnKind.DATETIME:
        ns, valid, n_bad = datetime_values(column)
        canonical = _masked(ns, ~valid, pa.int64()).cast(pa.timestamp("ns"))
        return DatetimeColumnProfile.from_values(ns, valid, n_type_errors=n_bad), canonical
    if kind is ColumnKind.TEXT:
        strings = string_values(column)
        ref_text = reference if isinstance(reference, TextColumnProfile) else None
        return TextColumnProfile.from_strings(strings, reference=ref_text, n_bins=n_bins), strings
    if kind is ColumnKind.EMBEDDING:
        ref_emb = reference if isinstance(reference, EmbeddingColumnProfile) else None
        return EmbeddingColumnProfile.from_column(column, reference=ref_emb), None
    strings = _boolean_strings(column) if kind is ColumnKind.BOOLEAN else string_values(column)
    known: tuple[str, ...] | None
    if isinstance(reference, CategoricalColumnProfile):
        # A reference that kept only its top categories cannot tell "rare" from "new".
        known, track = reference.categories, reference.other_count == 0
    elif kind is ColumnKind.BOOLEAN:
        known, track = ("false", "true"), True
    elif spec.categories is not None:
        known, track = spec.categories, True
    else:
        known, track = None, False
    prof = CategoricalColumnProfile.from_strings(
        strings, kind=kind.value, known=known, track_unseen=track, max_categories=max_categories
    )
    return prof, strings
