"""Columns of a log window as the checks need them: times, predictions, labels, scores."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from watchkeeper.checks import OUTLIER_FLAG_KEY, OUTLIER_SCORE_KEY
from watchkeeper.logstore import LOG_COLUMNS as _LOG_COLUMNS
from watchkeeper.logstore import label_key

__all__ = ["LOG_COLUMNS", "Rows", "label_key"]

#: The log's own columns, and the outlier score and flag the gateway logs beside the
#: features (everything else in a window table is a feature).
LOG_COLUMNS = frozenset(_LOG_COLUMNS) | {OUTLIER_SCORE_KEY, OUTLIER_FLAG_KEY}


@dataclass
class Rows:
    """One (version, arm) slice of a log window table, sorted by time, as numpy columns.

    ``ids``, ``prediction`` and ``label`` are Python lists made on first use (a window's
    checks often need none of them, and a million of each is hundreds of megabytes).

    A *summarised* window (its own columns summarised as its records were logged, see
    :class:`~watchkeeper.logstore.LogSummary`) holds in ``table`` only the rows that have
    feedback (a label or a flag); ``n_total`` is then the window's number of rows and
    ``summary`` its merged summary. :attr:`n_rows` is the window's size either way.
    """

    table: pa.Table
    ts_us: NDArray[np.int64]
    has_label: NDArray[np.bool_]
    _lists: dict[str, list[Any]] = field(default_factory=dict, repr=False)
    n_total: int | None = None
    summary: Any = None

    @classmethod
    def from_table(cls, table: pa.Table) -> Rows:
        import pyarrow.compute as pc

        ts = table.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
        valid = pc.is_valid(table.column("label")).to_numpy(zero_copy_only=False)
        return cls(
            table=table,
            ts_us=np.asarray(ts, dtype=np.int64),
            has_label=np.asarray(valid, dtype=bool),
        )

    def _list(self, name: str) -> list[Any]:
        found = self._lists.get(name)
        if found is None:
            found = self._lists[name] = self.table.column(name).to_pylist()
        return found

    @property
    def ids(self) -> list[str]:
        """Prediction ids."""
        return self._list("id")

    @property
    def prediction(self) -> list[Any]:
        """Predictions (decoded JSON values)."""
        return self._list("prediction")

    @property
    def label(self) -> list[Any]:
        """Latest labels (``None`` where none arrived)."""
        return self._list("label")

    def column(self, name: str, rows: NDArray[np.intp]) -> list[Any]:
        """Values of column ``name`` at positions ``rows``."""
        values: list[Any] = self.table.column(name).take(pa.array(rows, pa.int64())).to_pylist()
        return values

    def values(self, name: str, rows: NDArray[np.intp]) -> list[Any]:
        """Values of column ``name`` at positions ``rows`` as the JSON values that were
        logged: a column kept as JSON text (mixed kinds, e.g. lists and mappings) is decoded,
        and a mapping column (read as an Arrow struct over every key of the window) loses
        the keys a row did not have.

        Examples
        --------
        >>> t = pa.table({"label": pa.array([{"a": 1, "b": None}, {"a": None, "b": 2}])})
        >>> Rows(t, np.zeros(2, np.int64), np.ones(2, bool)).values("label", np.arange(2))
        [{'a': 1}, {'b': 2}]
        """
        column = self.table.column(name)
        field = self.table.schema.field(name)
        found = self.column(name, rows)
        if field.metadata and field.metadata.get(b"watchkeeper.encoding") == b"json":
            return [None if v is None else json.loads(v) for v in found]
        if pa.types.is_struct(column.type):
            return [
                None if v is None else {k: x for k, x in v.items() if x is not None} for v in found
            ]
        return found

    def take(self, first: int, stop: int) -> Rows:
        """Rows ``first:stop``."""
        return Rows(
            self.table.slice(first, stop - first),
            self.ts_us[first:stop],
            self.has_label[first:stop],
        )

    def __len__(self) -> int:
        return int(self.table.num_rows)

    @property
    def n_rows(self) -> int:
        """Rows of the window (more than ``len(self)`` when the window is summarised)."""
        return len(self) if self.n_total is None else self.n_total

    def summarised(self, n_total: int, summary: Any = None) -> Rows:
        """These rows (those with feedback) as a summarised window of ``n_total`` rows."""
        return Rows(self.table, self.ts_us, self.has_label, self._lists, n_total, summary)

    @property
    def n_labels(self) -> int:
        """Rows with a label."""
        return int(self.has_label.sum())

    def features(self, names: list[str]) -> pa.Table:
        """The feature columns ``names`` present in the window."""
        return self.table.select([n for n in names if n in self.table.column_names])

    def feature_names(self) -> list[str]:
        """Every feature column of the window."""
        return [n for n in self.table.column_names if n not in LOG_COLUMNS]

    def scores(self) -> list[dict[str, float] | None]:
        """Logged class probabilities per row (``None`` where none were logged)."""
        return [
            None if s is None else json.loads(s) for s in self.table.column("scores").to_pylist()
        ]

    def classes(self) -> list[str] | None:
        """Class keys of the logged scores, in their logged order (``None`` without scores)."""
        for s in self.table.column("scores").to_pylist():
            if s is not None:
                return list(json.loads(s))
        return None

    def score_matrix(
        self, classes: list[str], rows: NDArray[np.bool_]
    ) -> NDArray[np.float64] | None:
        """Scores of the selected ``rows`` as a matrix (columns ordered as ``classes``), or
        ``None`` when any selected row has no scores."""
        picked = [s for s, keep in zip(self.scores(), rows.tolist(), strict=True) if keep]
        if not picked or any(s is None for s in picked):
            return None
        return np.array([[float(s.get(c, 0.0)) for c in classes] for s in picked if s is not None])

    def frame(self, classes: list[str] | None, labelled_only: bool = False) -> Any:
        """A pandas DataFrame for estimators: features, ``prediction``, ``label`` and one
        ``score.<class>`` column per class."""
        import pandas as pd

        keep = self.has_label if labelled_only else np.ones(len(self), dtype=bool)
        idx = np.flatnonzero(keep)
        data: dict[str, Any] = {
            n: self.table.column(n).take(pa.array(idx)).to_pylist() for n in self.feature_names()
        }
        data["prediction"] = [self.prediction[i] for i in idx]
        data["label"] = [self.label[i] for i in idx]
        if classes:
            scores = self.scores()
            for c in classes:
                data[f"score.{c}"] = [
                    np.nan if scores[i] is None else float(scores[i].get(c, np.nan))  # type: ignore[union-attr]
                    for i in idx
                ]
        return pd.DataFrame(data)
