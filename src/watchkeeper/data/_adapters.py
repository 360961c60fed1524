"""Input adapters: every supported kind of data becomes one :class:`pyarrow.Table`.

Everything downstream (schema inference, validation, profiles) reads Arrow, so a pandas frame,
a polars frame, an Arrow table and a CSV or Parquet file holding the same values give the same
numbers. Conversions avoid copying the whole frame where Arrow allows it: an Arrow table is used
as is, a polars frame through its zero-copy ``to_arrow()``.

Columns of a pandas ``object`` column that mix Python types (``[1, "a", 2.5]``) cannot become
one Arrow type; they are converted to the string form of each value, and the field metadata key
:data:`MIXED_TYPES_KEY` records which types were found, so that :meth:`Schema.infer` can note it
and :meth:`Schema.validate` can report it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from watchkeeper.exceptions import InputError

__all__ = ["MIXED_TYPES_KEY", "column_to_numpy", "drop_pandas_index", "read_table"]

#: Arrow field-metadata key holding ``{"types": {name: count}, "examples": [...]}`` for a
#: column whose Python values had mixed types (set by :func:`read_table`).
MIXED_TYPES_KEY = b"watchkeeper.mixed_types"

_ACCEPTED = (
    "a pandas DataFrame, a polars DataFrame, a pyarrow Table or RecordBatch, "
    "or the path of a .csv, .csv.gz, .parquet or .pq file"
)
_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_N_EXAMPLES = 5


def read_table(data: Any, *, allow_empty: bool = False) -> pa.Table:
    """Read any supported kind of data into a :class:`pyarrow.Table`.

    Parameters
    ----------
    data
        A pandas DataFrame (its index is dropped; call ``reset_index()`` to keep it), a polars
        DataFrame (polars is imported only if such a frame is passed), a pyarrow Table or
        RecordBatch, or a ``str``/``Path`` to a ``.csv``, ``.csv.gz``, ``.parquet`` or ``.pq``
        file. The columns that hold a pandas index in a Parquet file or an Arrow table
        (``__index_level_0__``, or the columns its pandas metadata names as the index) are
        dropped, as for a DataFrame: an index is never data.
    allow_empty
        Accept data with no rows (a streaming window can be empty). Data without columns is
        always refused.

    Returns
    -------
    pyarrow.Table
        The data, not copied when it already was Arrow.

    Raises
    ------
    InputError
        Unsupported kind of data, missing or unreadable file, duplicate column names, no
        columns, or no rows (unless ``allow_empty``).

    Examples
    --------
    >>> import pandas as pd
    >>> table = read_table(pd.DataFrame({"x": [1.5, 2.0], "city": ["Oslo", None]}))
    >>> table.num_rows, table.column_names
    (2, ['x', 'city'])
    """
    table = drop_pandas_index(_to_table(data))
    names = table.column_names
    if table.num_columns == 0:
        raise InputError("the data has no columns; pass a table with at least one column")
    duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
    if duplicates:
        raise InputError(
            f"the data has duplicate column names {duplicates}; rename them so every column "
            "name is unique"
        )
    if table.num_rows == 0 and not allow_empty:
        raise InputError(
            f"the data has no rows (columns: {', '.join(names[:10])}"
            f"{', ...' if len(names) > 10 else ''}); pass at least one row"
        )
    return table


_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


def drop_pandas_index(table: pa.Table) -> pa.Table:
    """``table`` without the columns that store a pandas index.

    ``pyarrow.Table.from_pandas`` and ``DataFrame.to_parquet`` keep an index that is not a
    plain range (a sampled or filtered frame's) as a column named ``__index_level_0__``, or
    by the index's name, and list it under ``index_columns`` in the schema's ``pandas``
    metadata; pandas reads it back as the index. Those columns are dropped here (and the
    metadata updated to match), so an index is never inferred as a feature.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}).iloc[[3, 0, 2]]
    >>> pa.Table.from_pandas(frame).column_names
    ['x', '__index_level_0__']
    >>> drop_pandas_index(pa.Table.from_pandas(frame)).column_names
    ['x']
    """
    names = table.column_names
    index: set[str] = {n for n in names if _PANDAS_INDEX.fullmatch(n)}
    metadata = dict(table.schema.metadata or {})
    pandas_meta = None
    if b"pandas" in metadata:
        try:
            pandas_meta = json.loads(metadata[b"pandas"])
            index |= {
                c for c in pandas_meta.get("index_columns", []) if isinstance(c, str) and c in names
            }
        except (ValueError, TypeError, AttributeError):
            pandas_meta = None
    if not index:
        return table
    table = table.drop_columns([n for n in names if n in index])
    if pandas_meta is not None:
        pandas_meta["index_columns"] = [
            c for c in pandas_meta.get("index_columns", []) if not isinstance(c, str)
        ]
        pandas_meta["columns"] = [
            c
            for c in pandas_meta.get("columns", [])
            if not (isinstance(c, dict) and c.get("field_name") in index)
        ]
        metadata[b"pandas"] = json.dumps(pandas_meta).encode()
        table = table.replace_schema_metadata(metadata)
    return table


def _to_table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, str | Path):
        return _read_file(Path(data))
    module = type(data).__module__
    # polars is recognised by module name, so it is never imported for other inputs.
    if module.startswith("polars"):
        if type(data).__name__ == "LazyFrame":
            raise InputError("got a polars LazyFrame; call .collect() and pass the DataFrame")
        if type(data).__name__ == "DataFrame":
            return data.to_arrow()
    if module.startswith("pandas") and type(data).__name__ == "DataFrame":
        return _from_pandas(data)
    raise InputError(f"cannot read data of type {type(data).__name__}; pass {_ACCEPTED}")


def _read_file(path: Path) -> pa.Table:
    name = path.name.lower()
    if not name.endswith(_CSV_SUFFIXES + _PARQUET_SUFFIXES):
        raise InputError(f"cannot read {str(path)!r}: unknown file type; pass {_ACCEPTED}")
    if not path.is_file():
        raise InputError(f"file {str(path)!r} does not exist; check the path")
    try:
        if name.endswith(_CSV_SUFFIXES):
            from pyarrow import csv

            # Empty fields are missing values in every column, as pandas reads them.
            options = csv.ConvertOptions(strings_can_be_null=True)
            return csv.read_csv(path, convert_options=options)
        from pyarrow import parquet

        # One file: ParquetFile reads it as read_table does, without pyarrow.dataset (whose
        # import pulls in pandas, ~0.3 s of a command's start).
        with parquet.ParquetFile(path) as reader:
            return reader.read()
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"cannot read {str(path)!r}: {exc}") from exc


def _from_pandas(frame: Any) -> pa.Table:
    frame = (
        frame.rename(columns=str) if not all(isinstance(c, str) for c in frame.columns) else frame
    )
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    # Only reached when some column cannot be converted as a whole: convert column by column
    # and fall back to string forms for the columns that mix Python types.
    fields: list[pa.Field] = []
    arrays: list[pa.Array] = []
    for name in frame.columns:
        series = frame[name]
        try:
            array = pa.array(series, from_pandas=True)
            fields.append(pa.field(name, array.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            array, info = _mixed_to_strings(series)
            fields.append(pa.field(name, pa.string(), metadata={MIXED_TYPES_KEY: info}))
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _mixed_to_strings(series: Any) -> tuple[pa.Array, bytes]:
    import pandas as pd

    values = series.to_numpy(dtype=object)
    missing = np.asarray(pd.isna(series), dtype=bool)
    strings: list[str | None] = [
        None if m else str(v) for v, m in zip(values, missing, strict=True)
    ]
    types = Counter(type(v).__name__ for v, m in zip(values, missing, strict=True) if not m)
    main = types.most_common(1)[0][0] if types else ""
    examples: list[str] = []
    for v, m in zip(values, missing, strict=True):
        if not m and type(v).__name__ != main and repr(v) not in examples:
            examples.append(repr(v))
            if len(examples) == _N_EXAMPLES:
                break
    info = {"types": dict(sorted(types.items())), "main": main, "examples": examples}
    return pa.array(strings, type=pa.string()), json.dumps(info).encode()


def mixed_types_info(field: pa.Field) -> dict[str, Any] | None:
    """The mixed-types record :func:`read_table` attached to ``field``, if any."""
    if field.metadata and MIXED_TYPES_KEY in field.metadata:
        info: dict[str, Any] = json.loads(field.metadata[MIXED_TYPES_KEY])
        return info
    return None


def get_column(table: pa.Table, name: str) -> pa.ChunkedArray:
    """Column ``name`` of ``table`` with an error listing the columns when it is absent."""
    if name not in table.column_names:
        shown = ", ".join(table.column_names[:20])
        raise InputError(f"column {name!r} is not in the data; its columns are: {shown}")
    return table.column(name)


def _mask(column: pa.ChunkedArray | pa.Array) -> NDArray[np.bool_]:
    """A boolean Arrow column as numpy (null counts as False)."""
    if len(column) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(column.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def valid_mask(column: pa.ChunkedArray | pa.Array) -> NDArray[np.bool_]:
    """True where ``column`` holds a value (not null)."""
    return _mask(pc.is_valid(column))


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column with dictionary encoding (pandas/polars categoricals) undone."""
    if pa.types.is_dictionary(column.type):
        return pc.cast(column, column.type.value_type)
    return column


def _is_number(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _is_stringlike(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _smallest_unique(values: Sequence[str] | NDArray[Any], k: int = _N_EXAMPLES) -> tuple[str, ...]:
    # Sorted, so examples do not depend on row order and merge exactly (see profiles).
    return tuple(sorted({str(v) for v in values})[:k])


def numeric_values(column: pa.ChunkedArray) -> tuple[NDArray[np.float64], int, tuple[str, ...]]:
    """Float64 values of ``column`` (NaN for missing and for values that are not numbers).

    Returns the values, the number of non-missing entries that are not numbers (type errors),
    and up to five of them (the smallest string forms, so examples merge exactly). The array
    may be a read-only view of Arrow memory.
    """
    column = _decoded(column)
    t = column.type
    if _is_number(t) or pa.types.is_boolean(t):
        return _to_float(column), 0, ()
    if pa.types.is_null(t):
        return np.full(len(column), np.nan), 0, ()
    if pa.types.is_duration(t):
        return _to_float(pc.cast(column, pa.int64())), 0, ()
    if _is_stringlike(t):
        try:
            return _to_float(pc.cast(column, pa.float64())), 0, ()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _parse_numbers(column)
    # Timestamps, nested and binary values are not numbers: every present value is an error.
    bad = column.filter(pc.is_valid(column))
    examples = _smallest_unique([str(v) for v in bad.slice(0, 1000).to_pylist()])
    return np.full(len(column), np.nan), len(bad), examples


def _to_float(column: pa.ChunkedArray) -> NDArray[np.float64]:
    cast = pc.cast(column, pa.float64()) if column.type != pa.float64() else column
    if cast.num_chunks == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray(cast.to_numpy(), dtype=np.float64)


def _parse_numbers(column: pa.ChunkedArray) -> tuple[NDArray[np.float64], int, tuple[str, ...]]:
    import pandas as pd

    raw = column.to_numpy(zero_copy_only=False)
    parsed = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce")
    values = np.asarray(parsed, dtype=np.float64)
    present = valid_mask(column)
    # Blank strings read as missing values; "nan" is a number (NaN) and not an error.
    stripped = np.char.strip(np.asarray(np.where(present, raw, ""), dtype=str))
    blank = stripped == ""
    bad = present & np.isnan(values) & ~blank & (np.char.lower(stripped) != "nan")
    return values, int(bad.sum()), _smallest_unique(raw[bad])


def string_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The string form of every value of ``column`` (null where missing).

    Booleans become ``"true"``/``"false"``; numbers use Arrow's shortest form (``1.0`` is
    ``"1"``) and NaN counts as missing; timestamps use ISO 8601.
    """
    column = _decoded(column)
    t = column.type
    if pa.types.is_string(t):
        return column
    if _is_stringlike(t):
        return pc.cast(column, pa.string())
    if pa.types.is_floating(t):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, t), column)
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = [None if v is None else str(v) for v in column.to_pylist()]
        return pa.chunked_array([pa.array(values, type=pa.string())])


def datetime_values(column: pa.ChunkedArray) -> tuple[NDArray[np.int64], NDArray[np.bool_], int]:
    """Nanoseconds since the epoch (UTC) of a datetime column, a validity mask, and the number
    of present values that are not datetimes (ISO strings are parsed)."""
    column = _decoded(column)
    t = column.type
    n = len(column)
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        ns = pc.cast(column, pa.timestamp("ns")) if not pa.types.is_timestamp(t) else column
        if pa.types.is_timestamp(t) and (t.unit != "ns" or t.tz is not None):
            ns = pc.cast(column, pa.timestamp("ns", tz=t.tz))
        ints = pc.cast(ns, pa.int64())
        valid = valid_mask(ints)
        out = (
            np.asarray(ints.fill_null(0).to_numpy(), dtype=np.int64) if n else np.zeros(0, np.int64)
        )
        return out, valid, 0
    present = valid_mask(column)
    if _is_stringlike(t):
        import pandas as pd

        parsed = pd.to_datetime(
            pd.Series(column.to_numpy(zero_copy_only=False), dtype=object),
            errors="coerce",
            utc=True,
            format="ISO8601",
        )
        ok = np.asarray(parsed.notna(), dtype=bool)
        ints = np.asarray(parsed.dt.as_unit("ns").astype("int64"), dtype=np.int64)
        ints = np.where(ok, ints, 0)
        return ints, ok, int((present & ~ok).sum())
    return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool), int(present.sum())


def column_to_numpy(table: pa.Table, name: str, kind: str) -> NDArray[Any]:
    """One column as a numpy array in the form that columns of ``kind`` are analysed in.

    Parameters
    ----------
    table
        The data (see :func:`read_table`).
    name
        Column name.
    kind
        A :class:`ColumnKind` or its value:

        - ``numeric``: ``float64``, NaN for missing values and for entries that are not
          numbers (:class:`~watchkeeper.data.Profile` counts those as type errors); booleans
          are 0/1, number strings are parsed.
        - ``categorical`` and ``text``: ``object`` array of ``str`` (``None`` for missing);
          booleans are ``"true"``/``"false"``.
        - ``boolean``: ``float64`` 1.0/0.0 with NaN for missing (a bool array cannot hold
          missing values); strings ``true``/``false``/``1``/``0`` are parsed, other values are
          NaN.
        - ``datetime``: ``datetime64[ns]`` in UTC, ``NaT`` for missing or unparseable values.

    Returns
    -------
    numpy.ndarray
        Possibly a read-only view of Arrow memory: copy it before writing to it.

    Raises
    ------
    InputError
        Unknown column or kind.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"x": [1, None, 3], "flag": [True, False, None]})
    >>> column_to_numpy(t, "x", "numeric")
    array([ 1., nan,  3.])
    >>> column_to_numpy(t, "flag", "categorical")
    array(['true', 'false', None], dtype=object)
    """
    column = get_column(table, name)
    kind = str(kind)
    if kind == "numeric":
        return numeric_values(column)[0]
    if kind in ("categorical", "text"):
        return np.asarray(string_values(column).to_numpy(zero_copy_only=False), dtype=object)
    if kind == "boolean":
        return _boolean_floats(column)
    if kind == "datetime":
        ints, valid, _ = datetime_values(column)
        out = ints.view("datetime64[ns]").copy()
        out[~valid] = np.datetime64("NaT")
        return out
    raise InputError(
        f"unknown column kind {kind!r}; use one of numeric, categorical, boolean, datetime, text"
    )


def _boolean_floats(column: pa.ChunkedArray) -> NDArray[np.float64]:
    strings = pc.utf8_lower(string_values(column))
    true = _mask(pc.is_in(strings, pa.array(["true", "1"])))
    false = _mask(pc.is_in(strings, pa.array(["false", "0"])))
    out = np.full(len(column), np.nan)
    out[true] = 1.0
    out[false] = 0.0
    return out
