"""Turning logged rows into the Arrow window table, and putting window tables together.

A window has the log columns of :data:`LOG_COLUMNS` first, then one column per feature (the
union of the feature names in the window, in order of first appearance). Column types are
inferred from the JSON values: ints and floats together become ``double``, absent keys are
null. Where one column mixes kinds Arrow cannot hold in one type (a number and a string, a
list and a number) every value of that column is kept as its JSON text, and the field carries
the metadata ``{"watchkeeper.encoding": "json"}`` so that it is never encoded twice. A feature
whose name is one of the log columns is returned as ``"features.<name>"``.

The JSON columns are decoded in bulk: the rows' texts are joined into one newline-delimited
buffer that Arrow's JSON reader parses in C++ (no Python object per value). Where that
reader would decide differently from the rules above (text it reads as a timestamp, a column
mixing kinds, nested values, integers beyond 64 bits) the column is decoded row by row in
Python instead, so both paths give the same table.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.logstore._normalize import dumps

__all__ = ["LOG_COLUMNS", "concat_windows", "filter_window", "json_column", "window_table"]

#: Log columns of a window table, in order; feature columns follow.
LOG_COLUMNS = (
    "id",
    "ts",
    "version",
    "arm",
    "shadow",
    "status",
    "error",
    "latency_ms",
    "prediction",
    "scores",
    "label",
    "flag",
    "label_ts",
)
_RESERVED = frozenset(LOG_COLUMNS) | {"model", "date"}
_JSON_META = {b"watchkeeper.encoding": b"json"}
_TS = pa.timestamp("us", tz="UTC")


def _micros(seconds: Sequence[float | None]) -> pa.Array:
    values = np.array([np.nan if s is None else s for s in seconds], dtype=np.float64)
    mask = np.isnan(values)
    micros = np.round(np.where(mask, 0.0, values) * 1e6).astype(np.int64)
    return pa.array(micros, type=_TS, mask=mask)


def json_column(values: Sequence[Any]) -> pa.Array:
    """Arrow array of ``values``, or their JSON text where Arrow cannot hold them in one type.

    Examples
    --------
    >>> json_column([1, 2.5, None]).type
    DataType(double)
    >>> json_column([1, "a"]).to_pylist()
    ['1', '"a"']
    """
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else dumps(v) for v in values], pa.string())


#: Types the bulk reader may produce for a column; anything else is decoded in Python.
_PLAIN = (pa.types.is_null, pa.types.is_boolean, pa.types.is_int64, pa.types.is_float64,
          pa.types.is_string)  # fmt: skip


def _read_lines(lines: list[str], strings: Sequence[str] = ()) -> pa.Table | None:
    """Parse newline-delimited JSON objects in bulk; ``strings`` are read as text."""
    import pyarrow.json as pj

    buffer = "\n".join(lines).encode("utf-8")
    schema = pa.schema([(n, pa.string()) for n in strings]) if strings else None
    try:
        return pj.read_json(
            io.BytesIO(buffer),
            read_options=pj.ReadOptions(
                use_threads=False, block_size=max(len(buffer) + 1, 1 << 20)
            ),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="infer"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
        return None


def _bulk_objects(texts: Sequence[str]) -> pa.Table | None:
    """One row per JSON object text, one column per key (first-appearance order), or
    ``None`` when some column needs the row-by-row rules."""
    if not texts:
        return None
    lines = list(texts)
    table = _read_lines(lines)
    if table is None:
        return None
    dated = [
        f.name for f in table.schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)
    ]
    if dated:  # ISO-looking text: JSON says string, and so must the window
        table = _read_lines(lines, dated)
        if table is None:
            return None
        # the explicit columns come first: put them back in first-appearance order
        order = _key_order(lines)
        if order is None or set(order) != set(table.column_names):
            return None
        table = table.select(order)
    if not all(any(ok(f.type) for ok in _PLAIN) for f in table.schema):
        return None
    for column, field in zip(table.columns, table.schema, strict=True):
        # Arrow reads an integer beyond 64 bits as a double; Python keeps it as JSON text.
        # Any double that large sends the column to the row-by-row rules (which decide).
        if pa.types.is_float64(field.type) and column.null_count < len(column):
            extremes = pc.min_max(pc.abs(column))
            if (extremes["max"].as_py() or 0.0) >= 2.0**63:
                return None
    return table


def _key_order(lines: list[str]) -> list[str] | None:
    names: dict[str, None] = {}
    for line in lines:
        for key in json.loads(line):
            names[key] = None
    return list(names)


def _bulk_values(texts: Sequence[str | None]) -> pa.Array | None:
    """One value per JSON text (``None`` for null rows), or ``None`` when the rows need the
    row-by-row rules."""
    if not texts:
        return None
    table = _bulk_objects(['{"v":' + t + "}" if t is not None else "{}" for t in texts])
    if table is None:
        return None
    if table.num_columns == 0:
        return pa.nulls(len(texts))
    return table.column("v").combine_chunks()


def _field(name: str, array: pa.Array, is_json: bool) -> pa.Field:
    return pa.field(name, array.type, metadata=_JSON_META if is_json else None)


def _is_json_fallback(values: Sequence[Any], array: pa.Array) -> bool:
    return pa.types.is_string(array.type) and any(
        v is not None and not isinstance(v, str) for v in values
    )


def window_table(rows: Sequence[Sequence[Any]], *, features: bool = True) -> pa.Table:
    """Window table from SQL rows.

    Each row is ``(id, ts, version, arm, shadow, status, error, latency_ms, prediction_json,
    scores_json, features_json, label_json, flag, label_ts)``; with ``features=False`` the
    features texts are ignored (the table has the log's own columns only).

    Examples
    --------
    >>> t = window_table([("r1", 1.5, 1, "a", 0, "ok", None, 2.0, "1", None, '{"x":3}',
    ...                    None, None, None)])
    >>> t.column_names[:3], t.column("x").to_pylist(), t.column("prediction").to_pylist()
    (['id', 'ts', 'version'], [3], [1])
    """
    cols = list(zip(*rows, strict=True)) if rows else [()] * 14
    loads = json.loads
    bulk = _bulk_objects(cols[10]) if features else None
    decoded_features: list[dict[str, Any]] = (
        [] if bulk is not None or not features else [loads(f) for f in cols[10]]
    )
    names: dict[str, None] = {}
    if bulk is not None:
        names = dict.fromkeys(bulk.column_names)
    for feats in decoded_features:
        for key in feats:
            names[key] = None

    def decoded(idx: int) -> list[Any]:
        return [None if v is None else loads(v) for v in cols[idx]]

    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []

    def add(name: str, values: Sequence[Any], array: pa.Array | None = None) -> None:
        arr = json_column(values) if array is None else array
        arrays.append(arr)
        fields.append(_field(name, arr, array is None and _is_json_fallback(values, arr)))

    add("id", cols[0], pa.array(cols[0], pa.string()))
    add("ts", cols[1], _micros(cols[1]))
    add("version", cols[2], pa.array(cols[2], pa.int64()))
    add("arm", cols[3], pa.array(cols[3], pa.string()))
    add("shadow", cols[4], pa.array([bool(v) for v in cols[4]], pa.bool_()))
    add("status", cols[5], pa.array(cols[5], pa.string()))
    add("error", cols[6], pa.array(cols[6], pa.string()))
    add("latency_ms", cols[7], pa.array(cols[7], pa.float64()))
    predictions = _bulk_values(cols[8])
    if predictions is not None:
        add("prediction", (), predictions)
    else:
        add("prediction", decoded(8))
    add("scores", cols[9], pa.array(cols[9], pa.string()))
    labels = _bulk_values(cols[11])
    if labels is not None:
        add("label", (), labels)
    else:
        add("label", decoded(11))
    add("flag", cols[12], pa.array([None if v is None else bool(v) for v in cols[12]], pa.bool_()))
    add("label_ts", cols[13], _micros(cols[13]))
    for name in names:
        out = f"features.{name}" if name in _RESERVED else name
        if bulk is not None:
            add(out, (), bulk.column(name).combine_chunks())
        else:
            add(out, [f.get(name) for f in decoded_features])
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _as_json_text(column: pa.ChunkedArray, field: pa.Field) -> pa.ChunkedArray:
    if field.metadata and field.metadata.get(b"watchkeeper.encoding") == b"json":
        return column
    values = column.to_pylist()
    return pa.chunked_array(
        [pa.array([None if v is None else dumps(v) for v in values], pa.string())]
    )


def concat_windows(tables: Iterable[pa.Table]) -> pa.Table | None:
    """Concatenate window tables whose feature columns may differ in presence or type.

    Columns missing from a table are null there; ``int64`` and ``double`` promote to
    ``double``; a column whose types cannot be unified is turned into JSON text in every
    table (as :func:`window_table` does within one window). ``None`` when there are no tables.

    Examples
    --------
    >>> a = pa.table({"id": ["1"], "x": [1]})
    >>> b = pa.table({"id": ["2"], "x": ["s"], "y": [0.5]})
    >>> concat_windows([a, b]).to_pydict()
    {'id': ['1', '2'], 'x': ['1', '"s"'], 'y': [None, 0.5]}
    """
    tables = list(tables)
    if not tables:
        return None
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    types: dict[str, list[pa.DataType]] = {}
    for table in tables:
        for field in table.schema:
            types.setdefault(field.name, []).append(field.type)
    conflicting = set()
    for name, kinds in types.items():
        try:
            pa.unify_schemas([pa.schema([(name, k)]) for k in kinds], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            conflicting.add(name)
    fixed = []
    for table in tables:
        for name in conflicting & set(table.column_names):
            i = table.schema.get_field_index(name)
            field = table.schema.field(i)
            table = table.set_column(
                i, pa.field(name, pa.string(), metadata=_JSON_META), _as_json_text(table[i], field)
            )
        fixed.append(table)
    return pa.concat_tables(fixed, promote_options="permissive")


def filter_window(
    table: pa.Table,
    lo: float | None,
    hi: float | None,
    version: int | None,
    arm: str | None,
    include_shadow: bool,
) -> pa.Table:
    """The rows of a window table with ``lo <= ts < hi`` (UTC seconds), of ``version`` and
    ``arm`` when given, shadow records only with ``include_shadow``.

    Examples
    --------
    >>> t = window_table([("a", 10.0, 1, "c", False, "ok", None, 1.0, "1", None, "{}",
    ...                    None, None, None),
    ...                   ("b", 20.0, 2, "c", True, "ok", None, 1.0, "1", None, "{}",
    ...                    None, None, None)])
    >>> filter_window(t, 5, None, None, None, True).column("id").to_pylist()
    ['a', 'b']
    >>> filter_window(t, None, 15, None, None, False).column("id").to_pylist()
    ['a']
    """
    ts = pa.timestamp("us", tz="UTC")
    conditions = []
    if lo is not None:
        conditions.append(pc.greater_equal(table["ts"], pa.scalar(round(lo * 1e6), ts)))
    if hi is not None:
        conditions.append(pc.less(table["ts"], pa.scalar(round(hi * 1e6), ts)))
    if version is not None:
        conditions.append(pc.equal(table["version"], version))
    if arm is not None:
        conditions.append(pc.equal(table["arm"], arm))
    if not include_shadow:
        conditions.append(pc.invert(table["shadow"]))
    if not conditions:
        return table
    mask = conditions[0]
    for condition in conditions[1:]:
        mask = pc.and_(mask, condition)
    return table.filter(mask)
