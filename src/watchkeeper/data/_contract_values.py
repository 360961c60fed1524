"""Values as the contract rules read them: columns of a table as numbers or strings, JSON
values of single records, and the offending examples rules keep (see
:mod:`watchkeeper.data._contract`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from watchkeeper.exceptions import InputError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from numpy.typing import NDArray

#: Offending examples kept per rule (the smallest string forms, so they merge exactly).
N_EXAMPLES = 5


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
