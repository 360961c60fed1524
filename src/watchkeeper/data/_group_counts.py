"""Per-group counts for fairness metrics: mergeable, exact, stored in profiles.

A :class:`GroupCounts` holds, for every cell of the intersection of the sensitive attributes
(``SEX=2 & RAC1P=1``), the counts fairness metrics are computed from: the confusion counts of
a binary classifier, or the error and prediction sums of a regressor. Cells of single
attributes (or of any subset) come from :meth:`GroupCounts.rollup`, an exact sum, so one
table serves every grouping. Counts add on :meth:`GroupCounts.merge`, which is what lets
fairness be judged from merged window or partition profiles exactly as from the concatenated
rows (integer counts exactly, sums within float rounding).

Missing values of a sensitive attribute form their own group, :data:`MISSING_GROUP`: rows are
never dropped because their group is unknown. Rows without a prediction are counted
(``no_prediction``); rows with a prediction but no label still count for selection rates and
mean predictions (``*_unlabelled``), so the label-free metrics work before feedback arrives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from watchkeeper.data._adapters import numeric_values, read_table, string_values
from watchkeeper.data.schema import ColumnKind, Role, Schema
from watchkeeper.exceptions import InputError

__all__ = [
    "CLASSIFICATION_FIELDS",
    "MISSING_GROUP",
    "REGRESSION_FIELDS",
    "GroupCounts",
    "profile_group_counts",
]

FairnessTask = Literal["classification", "regression"]

#: Group name given to rows whose sensitive attribute is missing.
MISSING_GROUP = "missing"

#: Counts kept per cell for a binary classifier (``positive_label`` is the positive class).
CLASSIFICATION_FIELDS = (
    "tp",
    "fp",
    "fn",
    "tn",
    "predicted_positive_unlabelled",
    "predicted_negative_unlabelled",
    "no_prediction",
)

#: Sums kept per cell for a regressor (error = prediction - target).
REGRESSION_FIELDS = (
    "n_labelled",
    "sum_error",
    "sum_abs_error",
    "sum_sq_error",
    "n_predicted",
    "sum_prediction",
    "sum_sq_prediction",
    "no_prediction",
)

#: Most distinct values one sensitive attribute may have (a guard against declaring an
#: identifier or a continuous column sensitive).
MAX_GROUPS_PER_ATTRIBUTE = 1000

_POSITIVE_SPELLINGS = ("1", "true", "yes", "y", "positive", "pos")


def _fields(task: FairnessTask) -> tuple[str, ...]:
    return CLASSIFICATION_FIELDS if task == "classification" else REGRESSION_FIELDS


@dataclass(frozen=True, eq=False)
class GroupCounts:
    """Counts per cell of the intersection of sensitive attributes.

    Build with :meth:`from_arrays` (or :meth:`from_table`); profiles build one when their
    schema declares sensitive attributes, a target and a prediction.

    Attributes
    ----------
    attributes
        The sensitive attributes, in schema order.
    task
        ``"classification"`` (binary, one class positive) or ``"regression"``.
    keys
        One tuple of group values per cell (aligned with ``attributes``), sorted.
    counts
        Array of shape ``(len(keys), len(fields))``, read-only.
    positive_label
        The positive class (string form) of a classifier.

    Examples
    --------
    >>> gc = GroupCounts.from_arrays({"sex": ["f", "m", "f", None]}, [1, 0, 0, 1],
    ...                              [1, 1, 0, 1])
    >>> gc.keys
    (('f',), ('m',), ('missing',))
    >>> gc.cell(("f",))["tp"], gc.cell(("f",))["tn"], gc.cell(("m",))["fp"]
    (1, 1, 1)
    """

    attributes: tuple[str, ...]
    task: FairnessTask
    keys: tuple[tuple[str, ...], ...]
    counts: NDArray[np.float64]
    positive_label: str | None = None

    def __post_init__(self) -> None:
        counts = np.array(self.counts, dtype=np.float64, copy=True).reshape(
            len(self.keys), len(_fields(self.task))
        )
        counts.flags.writeable = False
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "keys", tuple(tuple(k) for k in self.keys))

    def __repr__(self) -> str:
        return (
            f"GroupCounts(attributes={list(self.attributes)}, task={self.task!r}, "
            f"cells={len(self.keys)})"
        )

    @property
    def fields(self) -> tuple[str, ...]:
        """Names of the columns of :attr:`counts`."""
        return _fields(self.task)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GroupCounts):
            return NotImplemented
        return (
            self.attributes == other.attributes
            and self.task == other.task
            and self.positive_label == other.positive_label
            and self.keys == other.keys
            and bool(np.array_equal(self.counts, other.counts))
        )

    __hash__ = None  # type: ignore[assignment]

    # -- building --------------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        sensitive: Mapping[str, Any],
        y_true: Any,
        y_pred: Any,
        *,
        task: FairnessTask | None = None,
        positive_label: Any = None,
    ) -> GroupCounts:
        """Counts from per-row arrays.

        Parameters
        ----------
        sensitive
            Sensitive attribute name to its values (any array-like; missing values form the
            group ``"missing"``).
        y_true
            Targets, or ``None`` when no labels are known (then only selection rates and
            mean predictions can be computed).
        y_pred
            Predicted labels (classifier) or values (regressor).
        task, positive_label
            Inferred when omitted: classification when the labels are strings, booleans or
            only 0/1, regression otherwise; the positive class is ``1``/``true``/``yes`` when
            present, else the greater of two labels.

        Raises
        ------
        InputError
            Arrays of different lengths, no sensitive attribute, more than two classes
            without ``positive_label``, too many groups.
        """
        if not isinstance(sensitive, Mapping) or not sensitive:
            raise InputError("pass the sensitive attributes as a mapping {name: values}")
        n = len(np.asarray(y_pred, dtype=object))
        columns: dict[str, Any] = {}
        for name, values in sensitive.items():
            columns[str(name)] = _arrow_column(values, f"sensitive attribute {name!r}", n)
        columns["__prediction__"] = _arrow_column(y_pred, "y_pred", n)
        columns["__target__"] = (
            pa.nulls(n) if y_true is None else _arrow_column(y_true, "y_true", n)
        )
        table = pa.table(columns)
        attrs = [str(a) for a in sensitive]
        if task is None:
            task = _infer_task(table, "__target__", "__prediction__", None)
        if task == "classification" and positive_label is None:
            positive_label = _infer_positive(table, "__target__", "__prediction__", None)
            if positive_label is None:
                raise InputError(
                    "the labels have more than two classes; pass positive_label= (the class "
                    "whose selection rate is judged, one class versus the rest)"
                )
        return cls.from_table(
            table,
            attrs,
            "__target__",
            "__prediction__",
            task=task,
            positive_label=None if positive_label is None else _canonical(positive_label),
        )

    @classmethod
    def from_table(
        cls,
        table: pa.Table,
        attributes: Sequence[str],
        target: str,
        prediction: str,
        *,
        task: FairnessTask,
        positive_label: str | None = None,
    ) -> GroupCounts:
        """Counts from the columns of an Arrow table (what profiles use).

        Examples
        --------
        >>> import pyarrow as pa
        >>> t = pa.table({"g": ["a", "a", "b"], "y": [1.0, 2.0, 3.0], "p": [1.5, 2.0, 2.0]})
        >>> gc = GroupCounts.from_table(t, ["g"], "y", "p", task="regression")
        >>> gc.cell(("a",))["sum_abs_error"], gc.cell(("b",))["sum_error"]
        (0.5, -1.0)
        """
        if task not in ("classification", "regression"):
            raise InputError(f"task must be 'classification' or 'regression', got {task!r}")
        if task == "classification" and positive_label is None:
            raise InputError("a classification needs positive_label")
        attributes = tuple(attributes)
        if not attributes:
            raise InputError("no sensitive attributes given")
        n = table.num_rows
        codes = np.zeros(n, dtype=np.int64)
        stride = 1
        uniques: list[list[str]] = []
        for name in attributes:
            values = pc.fill_null(string_values(table.column(name)), MISSING_GROUP)
            distinct = pc.unique(values)
            if len(distinct) > MAX_GROUPS_PER_ATTRIBUTE:
                raise InputError(
                    f"sensitive attribute {name!r} has {len(distinct):,} distinct values (more "
                    f"than {MAX_GROUPS_PER_ATTRIBUTE}); group it into categories first (for "
                    "example age bands) or give it another role"
                )
            index = np.asarray(pc.index_in(values, value_set=distinct).to_numpy(), np.int64)
            if stride > np.iinfo(np.int64).max // max(len(distinct), 1):
                raise InputError("too many combinations of sensitive attributes to count")
            codes += index * stride
            stride *= max(len(distinct), 1)
            uniques.append([str(v) for v in distinct.to_pylist()])
        cells, inverse = np.unique(codes, return_inverse=True)
        weights = (
            _classification_weights(table, target, prediction, str(positive_label))
            if task == "classification"
            else _regression_weights(table, target, prediction)
        )
        counts = np.zeros((len(cells), len(weights)), dtype=np.float64)
        for j, w in enumerate(weights):
            counts[:, j] = np.bincount(inverse, weights=w, minlength=len(cells))
        keys = []
        for cell in cells:
            key, rest = [], int(cell)
            for values in uniques:
                size = max(len(values), 1)
                key.append(values[rest % size])
                rest //= size
            keys.append(tuple(key))
        return cls._sorted(attributes, task, keys, counts, positive_label)

    @classmethod
    def _sorted(
        cls,
        attributes: tuple[str, ...],
        task: FairnessTask,
        keys: Sequence[tuple[str, ...]],
        counts: NDArray[np.float64],
        positive_label: str | None,
    ) -> GroupCounts:
        order = sorted(range(len(keys)), key=lambda i: keys[i])
        return cls(
            attributes,
            task,
            tuple(keys[i] for i in order),
            counts[order] if len(order) else counts,
            positive_label if task == "classification" else None,
        )

    # -- reading ---------------------------------------------------------------------------

    def cell(self, key: Sequence[str]) -> dict[str, float | int]:
        """The counts of one cell by field name (integers for classifiers).

        Raises
        ------
        InputError
            No such cell.
        """
        key = tuple(str(k) for k in key)
        try:
            row = self.counts[self.keys.index(key)]
        except ValueError:
            raise InputError(
                f"no group {key!r} for attributes {list(self.attributes)}; groups: "
                f"{list(self.keys)[:10]}"
            ) from None
        return {f: _number(v, self.task) for f, v in zip(self.fields, row, strict=True)}

    @property
    def n_rows(self) -> int:
        """Rows counted (with or without label or prediction)."""
        total = self.counts.sum()
        if self.task == "regression":
            idx = self.fields.index
            total = self.counts[:, [idx("n_predicted"), idx("no_prediction")]].sum()
        return round(float(total))

    def rollup(self, attributes: Sequence[str]) -> GroupCounts:
        """Counts of the cells of a subset of the attributes (exact sums over the rest).

        Examples
        --------
        >>> gc = GroupCounts.from_arrays({"a": ["x", "x", "y"], "b": ["u", "v", "v"]},
        ...                              [1, 0, 1], [1, 1, 1])
        >>> gc.rollup(["b"]).keys, gc.rollup(["b"]).cell(("v",))["fp"]
        ((('u',), ('v',)), 1)
        """
        attributes = tuple(attributes)
        unknown = [a for a in attributes if a not in self.attributes]
        if unknown or not attributes:
            raise InputError(
                f"cannot roll up to {list(attributes)}: the counts are by {list(self.attributes)}"
            )
        if attributes == self.attributes:
            return self
        pos = [self.attributes.index(a) for a in attributes]
        merged: dict[tuple[str, ...], NDArray[np.float64]] = {}
        for key, row in zip(self.keys, self.counts, strict=True):
            sub = tuple(key[p] for p in pos)
            merged[sub] = merged[sub] + row if sub in merged else row.copy()
        keys = list(merged)
        counts = np.array([merged[k] for k in keys]).reshape(len(keys), len(self.fields))
        return self._sorted(attributes, self.task, keys, counts, self.positive_label)

    # -- merging ---------------------------------------------------------------------------

    def merge(self, other: GroupCounts) -> GroupCounts:
        """Counts of both batches (a new object; associative and commutative).

        Examples
        --------
        >>> a = GroupCounts.from_arrays({"g": ["x", "y"]}, [1, 0], [1, 0])
        >>> b = GroupCounts.from_arrays({"g": ["y", "z"]}, [1, 1], [0, 1])
        >>> a.merge(b).keys, a.merge(b).cell(("y",))["fn"]
        ((('x',), ('y',), ('z',)), 1)
        """
        if not isinstance(other, GroupCounts):
            raise InputError(f"cannot merge GroupCounts with {type(other).__name__}")
        mine = (self.attributes, self.task, self.positive_label)
        theirs = (other.attributes, other.task, other.positive_label)
        if mine != theirs:
            raise InputError(
                f"the group counts differ in (attributes, task, positive label): {mine} vs "
                f"{theirs}; profile every batch with the same schema and reference"
            )
        merged = {k: row.copy() for k, row in zip(self.keys, self.counts, strict=True)}
        for key, row in zip(other.keys, other.counts, strict=True):
            merged[key] = merged[key] + row if key in merged else row.copy()
        keys = list(merged)
        counts = np.array([merged[k] for k in keys]).reshape(len(keys), len(self.fields))
        return self._sorted(self.attributes, self.task, keys, counts, self.positive_label)

    @classmethod
    def merge_all(cls, parts: Sequence[GroupCounts]) -> GroupCounts:
        """Counts of all ``parts`` in one pass (as chaining :meth:`merge`).

        Examples
        --------
        >>> a = GroupCounts.from_arrays({"g": ["x", "y"]}, [1, 0], [1, 0])
        >>> b = GroupCounts.from_arrays({"g": ["y", "z"]}, [1, 1], [0, 1])
        >>> GroupCounts.merge_all([a, b, a]).cell(("x",))["tp"]
        2
        """
        first = parts[0]
        for other in parts[1:]:
            if not isinstance(other, GroupCounts) or (
                other.attributes,
                other.task,
                other.positive_label,
            ) != (first.attributes, first.task, first.positive_label):
                return first.merge(other)  # raises the pairwise error
        position: dict[tuple[str, ...], int] = {}
        for p in parts:
            for key in p.keys:
                position.setdefault(key, len(position))
        counts = np.zeros((len(position), len(first.fields)), dtype=first.counts.dtype)
        for p in parts:
            if p.keys:
                rows = np.fromiter((position[k] for k in p.keys), dtype=np.intp)
                np.add.at(counts, rows, p.counts)
        return cls._sorted(
            first.attributes, first.task, list(position), counts, first.positive_label
        )

    # -- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form.

        Examples
        --------
        >>> gc = GroupCounts.from_arrays({"g": ["x", "y"]}, [1.5, 0.0], [1.0, 0.5])
        >>> GroupCounts.from_dict(gc.to_dict()) == gc
        True
        """
        return {
            "attributes": list(self.attributes),
            "task": self.task,
            "positive_label": self.positive_label,
            "fields": list(self.fields),
            "keys": [list(k) for k in self.keys],
            "counts": [[_number(v, self.task) for v in row] for row in self.counts],
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> GroupCounts:
        """Rebuild from :meth:`to_dict` output.

        Raises
        ------
        InputError
            A damaged payload.
        """
        try:
            task = payload["task"]
            if task not in ("classification", "regression"):
                raise InputError(f"unknown group-count task {task!r}")
            if list(payload["fields"]) != list(_fields(task)):
                raise InputError("the group counts were written with other fields")
            keys = [tuple(str(v) for v in k) for k in payload["keys"]]
            counts = np.asarray(payload["counts"], dtype=np.float64).reshape(
                len(keys), len(_fields(task))
            )
            label = payload.get("positive_label")
            return cls(
                tuple(payload["attributes"]),
                task,
                tuple(keys),
                counts,
                None if label is None else str(label),
            )
        except InputError:
            raise
        except (LookupError, TypeError, ValueError) as exc:
            raise InputError(f"the group counts are damaged and cannot be read: {exc!r}") from exc


# -- helpers -------------------------------------------------------------------------------


def _number(v: float, task: FairnessTask) -> float | int:
    return round(v) if task == "classification" else float(v)


def _canonical(value: Any) -> str:
    """The string form Arrow gives a value (``1.0`` -> ``"1"``, ``True`` -> ``"true"``)."""
    return str(string_values(pa.chunked_array([pa.array([value])]))[0].as_py())


def canonical_strings(values: Any) -> NDArray[Any]:
    """The string form of each value (as group keys and labels use), ``None`` where missing.

    Examples
    --------
    >>> canonical_strings([1.0, None, 2.5]).tolist()
    ['1', None, '2.5']
    """
    n = len(np.asarray(values, dtype=object))
    strings = string_values(_arrow_column(values, "values", n))
    return np.asarray(strings.to_numpy(zero_copy_only=False), dtype=object)


def _arrow_column(values: Any, what: str, n: int) -> pa.ChunkedArray:
    import pandas as pd

    if isinstance(values, pa.ChunkedArray):
        column = values
    elif isinstance(values, pa.Array):
        column = pa.chunked_array([values])
    else:
        if not isinstance(values, pd.Series | pd.Categorical):
            array = np.asarray(values)
            if array.ndim != 1:
                raise InputError(f"{what}: expected one value per row, got shape {array.shape}")
            values = list(array) if array.dtype == object else array
        frame = pd.DataFrame({"v": pd.Series(values).reset_index(drop=True)})
        column = read_table(frame, allow_empty=True).column("v")
    if len(column) != n:
        raise InputError(f"{what} has {len(column)} values but y_pred has {n}; align them")
    return column


def _classification_weights(
    table: pa.Table, target: str, prediction: str, positive: str
) -> list[NDArray[np.float64]]:
    t = string_values(table.column(target))
    p = string_values(table.column(prediction))
    labelled = np.asarray(pc.is_valid(t).to_numpy(zero_copy_only=False), bool)
    predicted = np.asarray(pc.is_valid(p).to_numpy(zero_copy_only=False), bool)
    pos_t = np.asarray(pc.fill_null(pc.equal(t, positive), False).to_numpy(zero_copy_only=False))
    pos_p = np.asarray(pc.fill_null(pc.equal(p, positive), False).to_numpy(zero_copy_only=False))
    both = labelled & predicted
    out = [
        both & pos_t & pos_p,
        both & ~pos_t & pos_p,
        both & pos_t & ~pos_p,
        both & ~pos_t & ~pos_p,
        predicted & ~labelled & pos_p,
        predicted & ~labelled & ~pos_p,
        ~predicted,
    ]
    return [w.astype(np.float64) for w in out]


def _regression_weights(table: pa.Table, target: str, prediction: str) -> list[NDArray[np.float64]]:
    y = numeric_values(table.column(target))[0]
    yhat = numeric_values(table.column(prediction))[0]
    predicted = np.isfinite(yhat)
    labelled = predicted & np.isfinite(y)
    err = np.where(labelled, yhat - np.where(labelled, y, 0.0), 0.0)
    pred = np.where(predicted, yhat, 0.0)
    return [
        labelled.astype(np.float64),
        err,
        np.abs(err),
        err * err,
        predicted.astype(np.float64),
        pred,
        pred * pred,
        (~predicted).astype(np.float64),
    ]


def _labels(table: pa.Table, *columns: str) -> set[str]:
    found: set[str] = set()
    for c in columns:
        values = pc.unique(string_values(table.column(c)))
        found.update(str(v) for v in values.to_pylist() if v is not None)
    return found


def _infer_task(
    table: pa.Table, target: str, prediction: str, kind: ColumnKind | None
) -> FairnessTask:
    if kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        return "classification"
    types = [table.column(c).type for c in (target, prediction)]
    if any(pa.types.is_string(t) or pa.types.is_large_string(t) for t in types):
        return "classification"
    if any(pa.types.is_dictionary(t) or pa.types.is_boolean(t) for t in types):
        return "classification"
    labels = _labels(table, target, prediction)
    return "classification" if labels and labels <= {"0", "1"} else "regression"


def _infer_positive(
    table: pa.Table, target: str, prediction: str, declared: Sequence[str] | None
) -> str | None:
    labels = set(declared) if declared else _labels(table, target, prediction)
    for spelling in _POSITIVE_SPELLINGS:
        match = [lab for lab in labels if lab.lower() == spelling]
        if match:
            return match[0]
    if len(labels) == 2:
        return sorted(labels)[-1]
    return None


def profile_group_counts(
    schema: Schema, table: pa.Table, reference: GroupCounts | None
) -> GroupCounts | None:
    """The group counts a profile keeps, or ``None`` when the schema calls for none.

    Counts are kept when the schema declares sensitive attributes, exactly one target and
    exactly one prediction column. The task and positive class come from ``reference`` when
    given (so windows profiled against it merge), else from the schema (categorical and
    boolean targets are classifications, declared categories name the classes) and the data.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"sex": ["f", "m"], "y": [1, 0], "yhat": [1, 1]})
    >>> schema = Schema.infer(df, roles={"sex": "sensitive", "y": "target",
    ...                                  "yhat": "prediction"})
    >>> profile_group_counts(schema, read_table(df), None)
    GroupCounts(attributes=['sex'], task='classification', cells=2)
    """
    sensitive = schema.with_role(Role.SENSITIVE)
    targets, predictions = schema.with_role(Role.TARGET), schema.with_role(Role.PREDICTION)
    if not sensitive or len(targets) != 1 or len(predictions) != 1:
        return None
    target, prediction = targets[0], predictions[0]
    if reference is not None:
        if reference.attributes != tuple(sensitive):
            raise InputError(
                f"the reference's group counts are by {list(reference.attributes)} but the "
                f"schema's sensitive attributes are {list(sensitive)}; use the reference's schema"
            )
        task, positive = reference.task, reference.positive_label
    else:
        spec = schema[target]
        task = _infer_task(table, target, prediction, spec.kind)
        positive = None
        if task == "classification":
            positive = _infer_positive(table, target, prediction, spec.categories)
            if positive is None:
                return None  # multiclass: no one class to judge selection rates by
    return GroupCounts.from_table(
        table, sensitive, target, prediction, task=task, positive_label=positive
    )
