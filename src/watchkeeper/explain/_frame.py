"""Tabular input for explainers: a pandas frame in, a float matrix for SHAP, and back.

SHAP's maskers mix rows of a numeric matrix, so every column is held as floats: numbers as
they are, booleans as 0/1, and any other column (strings, categories, mixed objects) as the
index of its value in a table of the values seen so far. :class:`FrameCodec` decodes such a
matrix back into the frame (or array) the model was trained on before it is called, so a
model never sees a code, and the attributions stay per original column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.exceptions import InputError

__all__ = ["FrameCodec", "as_frame", "is_numeric_column", "model_frame", "sample_rows"]


def as_frame(X: Any, feature_names: Sequence[str] | None = None) -> Any:
    """``X`` as a pandas DataFrame with the columns ``feature_names`` (in that order).

    Accepts a pandas or polars DataFrame, a pyarrow Table, a 2-D array (columns named by
    ``feature_names``, else ``x0, x1, ...``) or a list of records (dicts).

    Examples
    --------
    >>> as_frame(np.zeros((2, 2)), ["a", "b"]).columns.tolist()
    ['a', 'b']
    >>> as_frame([{"a": 1, "b": "x"}], ["b"]).to_dict("records")
    [{'b': 'x'}]
    """
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        frame = X
    elif isinstance(X, list) and all(isinstance(r, dict) for r in X):
        frame = pd.DataFrame.from_records(X)
    elif isinstance(X, np.ndarray | list | tuple):
        array = np.asarray(X)
        if array.ndim != 2:
            raise InputError(
                f"expected 2-D data (rows x features), got an array of shape {array.shape}"
            )
        names = list(feature_names) if feature_names is not None else None
        if names is None:
            names = [f"x{i}" for i in range(array.shape[1])]
        if len(names) != array.shape[1]:
            raise InputError(
                f"the data has {array.shape[1]} columns but the model has {len(names)} "
                f"features ({', '.join(names[:10])}); pass a frame with named columns"
            )
        return pd.DataFrame(array, columns=names)
    else:
        from watchkeeper.data import read_table

        frame = read_table(X).to_pandas()
    frame.columns = [str(c) for c in frame.columns]
    if feature_names is None:
        return frame
    missing = [c for c in feature_names if c not in frame.columns]
    if missing:
        raise InputError(
            f"the data lacks the model's features {missing[:10]}; its columns: "
            f"{list(frame.columns)[:20]}"
        )
    return frame[list(feature_names)]


def model_frame(native: Any, X: Any) -> Any:
    """``X`` as a frame named by the model's own feature names, when it has them."""
    names = getattr(native, "feature_names_in_", None)
    return as_frame(X, None if names is None else [str(n) for n in names])


def sample_rows(
    frame: Any, max_rows: int | None, random_state: int
) -> tuple[Any, NDArray[np.intp] | None]:
    """A seeded sample of at most ``max_rows`` rows (in their order) and its positions.

    Examples
    --------
    >>> import pandas as pd
    >>> rows, keep = sample_rows(pd.DataFrame({"x": range(10)}), 3, 0)
    >>> len(rows), keep.tolist() == sorted(keep.tolist())
    (3, True)
    """
    if max_rows is None or len(frame) <= max_rows:
        return frame, None
    rng = np.random.default_rng(random_state)
    keep = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[keep], keep


def is_numeric_column(series: Any) -> bool:
    """Whether a pandas column holds numbers (booleans included, categoricals not)."""
    import pandas as pd

    dtype = series.dtype
    return bool(pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype))


class FrameCodec:
    """Encodes frames as float matrices and decodes them for the model.

    Parameters
    ----------
    as_frame
        Decode to a DataFrame (the model was fitted on named columns) rather than an array
        (of floats, or of objects when some columns are not numeric).

    Examples
    --------
    >>> import pandas as pd
    >>> codec = FrameCodec(as_frame=True).fit(pd.DataFrame({"n": [1.5, 2.0], "c": ["a", "b"]}))
    >>> Z = codec.encode(pd.DataFrame({"n": [3.0], "c": ["b"]}))
    >>> Z
    array([[3., 1.]])
    >>> codec.decode(Z).to_dict("records")
    [{'n': 3.0, 'c': 'b'}]
    """

    def __init__(self, *, as_frame: bool) -> None:
        self.as_frame = as_frame

    def fit(self, frame: Any) -> FrameCodec:
        """Learn the columns, their dtypes and the values of the non-numeric ones."""
        self.columns_: tuple[str, ...] = tuple(str(c) for c in frame.columns)
        self.dtypes_ = {c: frame[c].dtype for c in self.columns_}
        self.categorical_: tuple[str, ...] = tuple(
            c for c in self.columns_ if not is_numeric_column(frame[c])
        )
        self.values_: dict[str, list[Any]] = {c: [] for c in self.categorical_}
        self._index: dict[str, dict[Any, int]] = {c: {} for c in self.categorical_}
        self.encode(frame)
        return self

    def _key(self, value: Any) -> Any:
        # Every missing value (None, NaN, pd.NA) is one category.
        try:
            if value is None or value != value:
                return None
        except (TypeError, ValueError):  # pd.NA compares to neither True nor False
            return None
        return value

    def encode(self, frame: Any) -> NDArray[np.float64]:
        """The float matrix of ``frame`` (new categories are added to the table)."""
        out = np.empty((len(frame), len(self.columns_)), dtype=np.float64)
        for j, c in enumerate(self.columns_):
            if c not in self._index:
                try:
                    out[:, j] = frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
                except (TypeError, ValueError) as exc:
                    raise InputError(
                        f"column {c!r} was numeric in the background data but holds "
                        f"non-numbers here ({exc}); pass the same types as the model's inputs"
                    ) from exc
                continue
            index = self._index[c]
            codes = np.empty(len(frame), dtype=np.float64)
            for i, value in enumerate(frame[c].tolist()):
                key = self._key(value)
                code = index.get(key)
                if code is None:
                    code = index[key] = len(self.values_[c])
                    self.values_[c].append(key)
                codes[i] = code
            out[:, j] = codes
        return out

    def decode(self, Z: NDArray[np.float64]) -> Any:
        """The model input for the float matrix ``Z``."""
        if not self.as_frame and not self.categorical_:
            return Z
        import pandas as pd

        data: dict[str, Any] = {}
        for j, c in enumerate(self.columns_):
            column = Z[:, j]
            if c in self._index:
                table = np.empty(len(self.values_[c]), dtype=object)
                table[:] = self.values_[c]
                values = table[column.astype(np.int64)]
                data[c] = (
                    pd.Series(values, dtype=self.dtypes_[c]) if _keeps(self.dtypes_[c]) else values
                )
            elif np.issubdtype(self.dtypes_[c], np.integer) and not np.isnan(column).any():
                data[c] = column.astype(self.dtypes_[c])
            elif self.dtypes_[c] == np.bool_ and not np.isnan(column).any():
                data[c] = column.astype(bool)
            else:
                data[c] = column
        frame = pd.DataFrame(data, columns=list(self.columns_))
        return frame if self.as_frame else frame.to_numpy(dtype=object)

    def categories(self, column: str) -> list[Any]:
        """Values of a non-numeric column, in code order."""
        return list(self.values_[column])


def _keeps(dtype: Any) -> bool:
    """Whether decoded values can be put back into ``dtype`` (categoricals, strings)."""
    import pandas as pd

    return isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype)
