"""Request records checked against a model's inputs, with one message per bad field.

A model version's inputs come from what the model itself declares (``feature_names_in_``)
and otherwise from the ``feature`` columns of its registered schema; the schema gives each
input its kind. Values are checked column by column (one type test per value) and the model
input is built once per batch, as a numpy matrix when every input is numeric and the model
takes no column names, and as a DataFrame otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np

from watchkeeper.data import ColumnKind, Contract, Schema
from watchkeeper.gateway._errors import FieldProblem

__all__ = [
    "InputSpec",
    "build_input",
    "check_columns",
    "check_contract_rules",
    "check_extras",
    "check_record_id",
    "records_to_columns",
]

_MAX_ID_LENGTH = 128
_NUMERIC_KINDS = (ColumnKind.NUMERIC, ColumnKind.BOOLEAN)
#: A field absent from a record (already reported), as opposed to an explicit null.
_ABSENT: Any = type("_Absent", (), {"__repr__": lambda self: "<absent>"})()


@dataclass(frozen=True)
class InputSpec:
    """What one model version takes as input.

    Parameters
    ----------
    columns
        Input names in the order the model expects them.
    kinds
        Kind of each input (``None`` when the schema does not say).
    categories
        Declared categories of each input, if any.
    known
        Every field name the schema knows (inputs, targets, ids...): fields outside it are
        "unknown".
    as_frame
        Pass a DataFrame (the model knows column names or the inputs are not all numbers)
        rather than a float matrix.
    n_positional
        Number of inputs of a model that has neither names nor a schema (it can only be fed
        matrices); ``None`` otherwise.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> from watchkeeper.data import ColumnSpec
    >>> schema = Schema((ColumnSpec("x", "numeric"), ColumnSpec("y", "numeric", "target")))
    >>> spec = InputSpec.for_model(schema, LinearRegression())
    >>> spec.columns, spec.as_frame, sorted(spec.known)
    (('x',), False, ['x', 'y'])
    """

    columns: tuple[str, ...]
    kinds: tuple[ColumnKind | None, ...]
    categories: tuple[frozenset[str] | None, ...]
    known: frozenset[str]
    as_frame: bool
    n_positional: int | None = None

    extra_kinds: tuple[tuple[str, ColumnKind | None], ...] = ()
    """Fields the schema knows that are not model inputs (targets, sensitive attributes,
    timestamps...), with their kinds: logged with the record, so checked like inputs."""

    contract: Contract | None = None
    """The schema's data contract, whose per-record rules every record must keep."""

    dims: Mapping[str, int] = field(default_factory=dict)
    """Length of each embedding column in the reference (:meth:`with_dims`): a vector of
    another length is refused, since no window profile could hold it."""

    def with_dims(self, reference: Any) -> InputSpec:
        """This spec with the embedding lengths of ``reference`` (a ``Profile`` or ``None``)."""
        columns = getattr(reference, "columns", None) or {}
        dims = {
            name: int(col.dim)
            for name, col in columns.items()
            if getattr(col, "kind", None) == ColumnKind.EMBEDDING.value and col.dim
        }
        return replace(self, dims=dims) if dims else self

    @cached_property
    def input_set(self) -> frozenset[str]:
        """The input names as a set."""
        return frozenset(self.columns)

    @classmethod
    def for_model(cls, schema: Schema | None, native: Any) -> InputSpec:
        """The inputs of a model from its own feature names, else its schema's features."""
        names = getattr(native, "feature_names_in_", None)
        if names is not None:
            columns = tuple(str(n) for n in names)
        elif schema is not None and schema.features:
            columns = schema.features
        else:
            n = getattr(native, "n_features_in_", None)
            return cls((), (), (), frozenset(), False, int(n) if isinstance(n, int) else 0)
        kinds = tuple(
            schema[c].kind if schema is not None and c in schema else None for c in columns
        )
        cats = tuple(
            frozenset(schema[c].categories)  # type: ignore[arg-type]
            if schema is not None and c in schema and schema[c].categories is not None
            else None
            for c in columns
        )
        known = frozenset(columns) | (
            frozenset(schema.names) if schema is not None else frozenset()
        )
        numeric = all(k in _NUMERIC_KINDS for k in kinds)
        extras = tuple(
            (c.name, c.kind)
            for c in (schema.columns if schema is not None else ())
            if c.name not in columns
        )
        contract = schema.contract if schema is not None else None
        if contract is not None and not any(r.applies_to_records for r in contract.rules):
            contract = None
        return cls(
            columns, kinds, cats, known, names is not None or not numeric, None, extras, contract
        )

    def describe(self) -> list[dict[str, Any]]:
        """The inputs as ``[{"name", "kind", "categories"}]`` for metadata endpoints."""
        return [
            {
                "name": name,
                "kind": None if kind is None else kind.value,
                "categories": None if cats is None else sorted(cats),
            }
            for name, kind, cats in zip(self.columns, self.kinds, self.categories, strict=True)
        ]


def check_record_id(value: Any, where: str) -> str | FieldProblem:
    """A client-supplied prediction id as a string, or the problem with it.

    Examples
    --------
    >>> check_record_id("order-17", "id"), check_record_id(17, "id")
    ('order-17', '17')
    >>> check_record_id("", "id").problem
    'must be a non-empty string of at most 128 printable characters'
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_ID_LENGTH
        and value.isprintable()
        and value.strip() == value
    ):
        return value
    return FieldProblem(
        where, f"must be a non-empty string of at most {_MAX_ID_LENGTH} printable characters"
    )


def records_to_columns(
    records: Sequence[Mapping[str, Any]],
    spec: InputSpec,
    *,
    unknown: str,
    missing: str,
    locate: Callable[[int, str], str],
) -> tuple[dict[str, list[Any]], list[str | None], list[FieldProblem]]:
    """Split JSON records into one list per model input, plus per-record ids and problems.

    ``unknown`` is ``ignore``/``reject`` and ``missing`` is ``reject``/``null`` (see
    :class:`GatewayConfig`); ``locate(row, name)`` names a field in messages. A field
    ``id`` that is not a model input is the record's prediction id.

    Examples
    --------
    >>> from watchkeeper.data import ColumnSpec
    >>> spec = InputSpec.for_model(Schema((ColumnSpec("a", "numeric"),)), None)
    >>> cols, ids, problems = records_to_columns(
    ...     [{"a": 1, "id": "r1"}, {"b": 2}], spec, unknown="reject", missing="reject",
    ...     locate=lambda i, name: f"[{i}].{name}")
    >>> ids, [p.to_dict() for p in problems]  # doctest: +NORMALIZE_WHITESPACE
    (['r1', None],
     [{'field': '[1].b', 'problem': "unknown field; the model's inputs are: a"},
      {'field': '[1].a', 'problem': 'is required'}])
    """
    ids: list[str | None] = []
    problems: list[FieldProblem] = []
    inputs = spec.columns
    id_is_input = "id" in spec.input_set
    known = spec.known if id_is_input else spec.known | {"id"}
    absent = _ABSENT if missing == "reject" else None
    for i, record in enumerate(records):
        record_id: str | None = None
        if not id_is_input and "id" in record:
            found = check_record_id(record["id"], locate(i, "id"))
            if isinstance(found, FieldProblem):
                problems.append(found)
            else:
                record_id = found
        ids.append(record_id)
        keys = record.keys()
        # Set operations on the keys run in C: the per-field loops below only run for the
        # records that actually have a problem.
        if unknown == "reject" and not keys <= known:
            for key in record:
                if key not in known:
                    problems.append(FieldProblem(locate(i, key), _unknown_message(spec)))
        if absent is _ABSENT and not keys >= spec.input_set:
            for name in inputs:
                if name not in record:
                    problems.append(FieldProblem(locate(i, name), "is required"))
    # Reported above; the marker keeps check_columns from reporting a missing field again
    # as null.
    columns = {name: [record.get(name, absent) for record in records] for name in inputs}
    return columns, ids, problems


def _unknown_message(spec: InputSpec) -> str:
    shown = ", ".join(spec.columns[:20]) + (", ..." if len(spec.columns) > 20 else "")
    return f"unknown field; the model's inputs are: {shown}"


def check_columns(
    columns: dict[str, list[Any]],
    spec: InputSpec,
    *,
    missing: str,
    locate: Callable[[int, str], str],
) -> list[FieldProblem]:
    """Check every value against its input's kind, normalising booleans in place.

    ``locate(row, name)`` names a field in messages.

    Examples
    --------
    >>> from watchkeeper.data import ColumnSpec
    >>> spec = InputSpec.for_model(Schema((ColumnSpec("x", "numeric"),
    ...                                    ColumnSpec("ok", "boolean"))), None)
    >>> cols = {"x": [1.5, "2"], "ok": [1, True]}
    >>> [p.to_dict() for p in check_columns(cols, spec, missing="reject",
    ...                                     locate=lambda i, n: f"[{i}].{n}")]
    [{'field': '[1].x', 'problem': 'expected a number, got a string'}]
    >>> cols["ok"]
    [True, True]
    """
    problems: list[FieldProblem] = []
    for name, kind, cats in zip(spec.columns, spec.kinds, spec.categories, strict=True):
        values = columns[name]
        if _all_fine(values, kind, cats):
            continue
        for i, value in enumerate(values):
            if value is None or value is _ABSENT:
                if missing == "reject" and value is None:
                    problems.append(FieldProblem(locate(i, name), "must not be null"))
                continue
            problem = _check_value(value, kind, cats) or _check_dim(value, kind, spec, name)
            if problem is None:
                if kind is ColumnKind.BOOLEAN and type(value) is int:
                    values[i] = bool(value)
                continue
            problems.append(FieldProblem(locate(i, name), problem))
    return problems


def check_extras(
    records: Sequence[Mapping[str, Any]],
    spec: InputSpec,
    *,
    locate: Callable[[int, str], str],
) -> list[FieldProblem]:
    """Check the schema-known fields that are not inputs (logged with the record) by their
    kind; they may be absent or null.

    Examples
    --------
    >>> from watchkeeper.data import ColumnSpec
    >>> spec = InputSpec.for_model(Schema((ColumnSpec("x", "numeric"),
    ...                                    ColumnSpec("y", "numeric", "target"))), None)
    >>> [p.to_dict() for p in check_extras([{"x": 1, "y": {"a": 1e308}}], spec,
    ...                                    locate=lambda i, n: n)]
    [{'field': 'y', 'problem': 'expected a number, got an object'}]
    """
    problems: list[FieldProblem] = []
    for name, kind in spec.extra_kinds:
        for i, record in enumerate(records):
            value = record.get(name)
            if value is None:
                continue
            problem = _check_value(value, kind, None) or _check_dim(value, kind, spec, name)
            if (
                problem is None
                and kind not in (ColumnKind.NUMERIC, ColumnKind.EMBEDDING)
                and type(value) in (dict, list)
            ):
                problem = f"expected a single value, got {_json_type(value)}"
            if problem is not None:
                problems.append(FieldProblem(locate(i, name), problem))
    return problems


def check_contract_rules(
    records: Sequence[Mapping[str, Any]],
    spec: InputSpec,
    *,
    locate: Callable[[int, str], str],
) -> list[FieldProblem]:
    """The per-record rules of the schema's contract that records break (see
    :meth:`~watchkeeper.data.Contract.check_record`), one problem per broken rule naming its
    column and the rule.

    Examples
    --------
    >>> from watchkeeper.data import ColumnSpec, Contract, Range
    >>> schema = Schema((ColumnSpec("age", "numeric"),),
    ...                 Contract((Range(column="age", min=0, max=120),)))
    >>> spec = InputSpec.for_model(schema, None)
    >>> [p.to_dict() for p in check_contract_rules([{"age": 130}], spec,
    ...                                            locate=lambda i, n: f"[{i}].{n}")]
    [{'field': '[0].age',
      'problem': 'breaks contract rule range(age): must be at most 120, got 130'}]
    """
    if spec.contract is None:
        return []
    problems: list[FieldProblem] = []
    for i, record in enumerate(records):
        for rule, why in spec.contract.check_record(record):
            problems.append(
                FieldProblem(locate(i, rule.columns[0]), f"breaks contract rule {rule.name}: {why}")
            )
    return problems


_NUMBER_TYPES = frozenset({int, float})
_SCALAR_TYPES = frozenset({str, int, bool})


def _all_fine(values: list[Any], kind: ColumnKind | None, cats: frozenset[str] | None) -> bool:
    """Whether a whole column is valid, decided by C-level passes (the common case); when
    it says no, the value-by-value check finds and names the problems."""
    types = set(map(type, values))
    if kind is ColumnKind.NUMERIC:
        if not types <= _NUMBER_TYPES:
            return False
        if float in types:
            try:
                return bool(np.isfinite(np.fromiter(values, np.float64, len(values))).all())
            except OverflowError:
                return False
        return True
    if kind is ColumnKind.BOOLEAN:
        return types == {bool}
    if kind is ColumnKind.TEXT:
        return types == {str}
    if kind is ColumnKind.CATEGORICAL or kind is None:
        if cats is not None:
            return types == {str} and set(values) <= cats
        return types <= _SCALAR_TYPES
    return False


def _check_value(value: Any, kind: ColumnKind | None, cats: frozenset[str] | None) -> str | None:
    kind_of = type(value)
    if kind is ColumnKind.NUMERIC:
        if kind_of is float:
            return None if math.isfinite(value) else "must be a finite number"
        if kind_of is int:
            return None
        return f"expected a number, got {_json_type(value)}"
    if kind is ColumnKind.BOOLEAN:
        if kind_of is bool or (kind_of is int and value in (0, 1)):
            return None
        return f"expected true or false, got {_json_type(value)}"
    if kind is ColumnKind.EMBEDDING:
        return _check_vector(value)
    if kind_of in (dict, list):
        return f"expected a single value, got {_json_type(value)}"
    if kind is ColumnKind.CATEGORICAL:
        if kind_of is float and not math.isfinite(value):
            return "must be a finite number or a string"
        if cats is not None and str(value) not in cats:
            allowed = ", ".join(sorted(cats)[:20]) + (", ..." if len(cats) > 20 else "")
            return f"{value!r} is not one of the declared categories ({allowed})"
        return None
    if kind is ColumnKind.TEXT:
        return None if kind_of is str else f"expected a string, got {_json_type(value)}"
    if kind is ColumnKind.DATETIME:
        if kind_of is not str:
            return f"expected an ISO 8601 date-time string, got {_json_type(value)}"
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return f"{value!r} is not an ISO 8601 date-time (e.g. 2024-05-01T12:00:00Z)"
        return None
    if kind_of is float and not math.isfinite(value):
        return "must be a finite number"
    return None


def _check_vector(value: Any) -> str | None:
    """An embedding: a non-empty list of finite numbers (its length is checked against the
    reference when the record is profiled)."""
    if type(value) is not list or not value:
        return f"expected a non-empty list of numbers (an embedding), got {_json_type(value)}"
    for i, item in enumerate(value):
        if type(item) not in _NUMBER_TYPES:
            return f"item {i} of the embedding must be a number, got {_json_type(item)}"
        if type(item) is float and not math.isfinite(item):
            return f"item {i} of the embedding must be a finite number"
    return None


def _check_dim(value: Any, kind: ColumnKind | None, spec: InputSpec, name: str) -> str | None:
    if kind is not ColumnKind.EMBEDDING or name not in spec.dims:
        return None
    dim = spec.dims[name]
    if len(value) != dim:
        return f"expected an embedding of {dim} numbers (as in the reference), got {len(value)}"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def build_input(columns: Mapping[str, list[Any]], spec: InputSpec) -> Any:
    """The model input for checked columns: a float matrix or a DataFrame in input order.

    Examples
    --------
    >>> from watchkeeper.data import ColumnSpec
    >>> spec = InputSpec.for_model(Schema((ColumnSpec("a", "numeric"),
    ...                                    ColumnSpec("b", "numeric"))), None)
    >>> build_input({"b": [2, None], "a": [1, 3]}, spec)
    array([[ 1.,  2.],
           [ 3., nan]])
    """
    if not spec.as_frame:
        matrix = np.array(
            [columns[name] for name in spec.columns], dtype=np.float64
        ).T  # None becomes nan
        return np.ascontiguousarray(matrix)
    import pandas as pd

    data: dict[str, Any] = {}
    for name, kind in zip(spec.columns, spec.kinds, strict=True):
        values = columns[name]
        if kind is ColumnKind.NUMERIC:
            data[name] = np.array(values, dtype=np.float64)
        elif kind is ColumnKind.DATETIME:
            data[name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601")
        else:
            data[name] = pd.Series(values, dtype=object) if None in values else values
    return pd.DataFrame(data, columns=list(spec.columns))
