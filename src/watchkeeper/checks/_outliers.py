"""Per-record outlier scores: a detector fitted on the reference, calibrated to a stated rate.

:class:`OutlierDetector` scores how unlike the reference a record is (higher is more
outlying) and flags the records whose score is above a threshold set by split-conformal
calibration: it is fitted on one part of the reference rows and the threshold is the
``ceil((n + 1)(1 - rate))``-th smallest score of the ``n`` held-out rows. A new record drawn
like the reference is then flagged with probability at most ``rate`` (exactly
``(n - k + 1) / (n + 1)`` for continuous scores, ``k`` that rank), whatever the score is
(Vovk et al. 2005; Angelopoulos and Bates 2021, section 1.1) — so a crude score loses power,
never the false-positive guarantee.

Two scores:

- ``mahalanobis``: the squared Mahalanobis distance of the robustly standardised numeric
  features (median and IQR) under a Ledoit-Wolf shrunk covariance.
- ``isolation_forest``: scikit-learn's isolation forest (Liu, Ting and Zhou 2008), fitted
  with a fixed seed and exported as plain node arrays, scored in numpy exactly as
  ``-IsolationForest.score_samples`` scores, plus how far a value lies outside the fit rows'
  range (in units of that range, summed over columns; zero inside it). The forest alone
  cannot tell a value just beyond the reference's range from one a hundred times further: both
  follow the branch of the most extreme reference row, so far-out records would score like the
  reference's own extremes and go unflagged at small rates.

Both use the numeric and boolean feature columns; categorical, text and datetime columns are
ignored. A missing value takes the median of the fit rows. A fitted detector is plain JSON
(:meth:`OutlierDetector.to_dict`): storing and loading it runs no code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.checks._outlier_scores import (
    checked_state,
    fit_forest,
    fit_mahalanobis,
    forest_scores,
    mahalanobis_scores,
    range_excess,
)
from watchkeeper.exceptions import InputError, NotFittedError

__all__ = ["OUTLIER_FLAG_KEY", "OUTLIER_METHODS", "OUTLIER_SCORE_KEY", "OutlierDetector"]

#: Methods of :class:`OutlierDetector`.
OUTLIER_METHODS = ("mahalanobis", "isolation_forest")
#: Keys under which the gateway logs a record's outlier score and flag with its features.
OUTLIER_SCORE_KEY = "_outlier_score"
OUTLIER_FLAG_KEY = "_outlier"

_FORMAT = "watchkeeper.outliers/1"


class OutlierDetector:
    """Outlier score per record, with a threshold calibrated to a stated false-positive rate.

    Parameters
    ----------
    method
        ``"mahalanobis"`` (default) or ``"isolation_forest"``.
    rate
        Stated false-positive rate: the largest share of reference-like records flagged.
    calibration_fraction
        Share of the reference rows held out to set the threshold (the rest fits the score).
    columns
        Columns to use; default every numeric or boolean feature of the schema.
    n_estimators, max_samples
        Trees and rows per tree of the isolation forest.
    random_state
        Seed of the split and of the forest: the same reference gives the same detector.

    Attributes
    ----------
    columns_ : tuple of str
        The columns scored, in order.
    threshold_ : float
        Records scoring above it are flagged.
    n_calibration_, n_above_ : int
        Held-out rows, and how many of them score above the threshold.
    false_positive_rate_ : float
        ``(n_above_ + 1) / (n_calibration_ + 1)``: the chance a new reference-like record is
        flagged, averaged over calibrations (at most ``rate``).
    reference_flagged_share_ : float
        Share of the held-out reference rows flagged, ``n_above_ / n_calibration_``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> reference = pd.DataFrame(rng.normal(size=(2000, 3)), columns=["a", "b", "c"])
    >>> detector = OutlierDetector(rate=0.01).fit(reference)
    >>> detector.columns_, detector.n_calibration_
    (('a', 'b', 'c'), 1000)
    >>> detector.false_positive_rate_ <= 0.01
    True
    >>> detector.predict({"a": [0.1, 8.0], "b": [0.0, -7.0], "c": [0.3, 9.0]}).tolist()
    [False, True]
    """

    columns_: tuple[str, ...]
    threshold_: float
    n_calibration_: int
    n_above_: int
    state_: dict[str, Any]

    def __init__(
        self,
        *,
        method: str = "mahalanobis",
        rate: float = 0.01,
        calibration_fraction: float = 0.5,
        columns: Sequence[str] | None = None,
        n_estimators: int = 100,
        max_samples: int = 256,
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.rate = rate
        self.calibration_fraction = calibration_fraction
        self.columns = None if columns is None else tuple(columns)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state

    # -- fitting --------------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.method not in OUTLIER_METHODS:
            raise InputError(
                f"unknown outlier method {self.method!r}; use one of {', '.join(OUTLIER_METHODS)}"
            )
        if not isinstance(self.rate, int | float) or isinstance(self.rate, bool):
            raise InputError(f"rate must be a number between 0 and 1, got {self.rate!r}")
        if not 0 < float(self.rate) < 1:
            raise InputError(f"rate must be between 0 and 1 (e.g. 0.01), got {self.rate!r}")
        if not isinstance(self.calibration_fraction, int | float) or not (
            0 < float(self.calibration_fraction) < 1
        ):
            raise InputError(
                "calibration_fraction must be between 0 and 1 (e.g. 0.5), got "
                f"{self.calibration_fraction!r}"
            )
        if (
            not isinstance(self.n_estimators, int)
            or not isinstance(self.max_samples, int)
            or self.n_estimators < 1
            or self.max_samples < 2
        ):
            raise InputError("n_estimators must be >= 1 and max_samples >= 2")

    def fit(self, reference: Any, schema: Any = None) -> OutlierDetector:
        """Fit the score on part of ``reference`` and calibrate the threshold on the rest.

        Parameters
        ----------
        reference
            Reference rows: a pandas or polars DataFrame, a pyarrow Table, a CSV or Parquet
            path, or a mapping of column name to values.
        schema
            A :class:`~watchkeeper.data.Schema` (or its dict) naming the features; inferred
            when omitted.

        Returns
        -------
        OutlierDetector
            ``self``, fitted.
        """
        self._check_params()
        columns, X = _reference_matrix(reference, schema, self.columns)
        n = X.shape[0]
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(n)
        n_cal = math.floor(n * float(self.calibration_fraction))
        rank = math.ceil((n_cal + 1) * (1 - float(self.rate)))
        needed = math.ceil((1 - float(self.rate)) / float(self.rate))
        if rank > n_cal or n - n_cal < 2:
            raise InputError(
                f"the reference has {n:,} rows, so {n_cal:,} are held out to calibrate the "
                f"outlier threshold; a rate of {self.rate:g} needs at least {needed:,} held-out "
                "rows: pass more reference rows, a larger rate or a larger calibration_fraction"
            )
        fit_rows, cal_rows = X[order[n_cal:]], X[order[:n_cal]]
        medians = np.nanmedian(fit_rows, axis=0)
        medians = np.where(np.isfinite(medians), medians, 0.0)
        state: dict[str, Any] = {"median": medians}
        if self.method == "mahalanobis":
            state.update(fit_mahalanobis(_impute(fit_rows, medians)))
        else:
            state.update(
                fit_forest(
                    _impute(fit_rows, medians),
                    int(self.n_estimators),
                    int(self.max_samples),
                    int(self.random_state),
                )
            )
        self.columns_ = columns
        self.state_ = state
        scores = np.sort(self._score_matrix(cal_rows))
        self.threshold_ = float(scores[rank - 1])
        self.n_calibration_ = n_cal
        self.n_above_ = int(np.sum(scores > self.threshold_))
        return self

    # -- fitted state -----------------------------------------------------------------------

    def _fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(
                "this OutlierDetector is not fitted yet; call fit(reference) first (or load a "
                "fitted one with OutlierDetector.from_dict)"
            )

    @property
    def false_positive_rate_(self) -> float:
        """Chance that a new reference-like record is flagged (averaged over calibrations)."""
        self._fitted()
        return (self.n_above_ + 1) / (self.n_calibration_ + 1)

    @property
    def reference_flagged_share_(self) -> float:
        """Share of the held-out reference rows above the threshold."""
        self._fitted()
        return self.n_above_ / self.n_calibration_

    # -- scoring ----------------------------------------------------------------------------

    def score(self, X: Any) -> NDArray[np.float64]:
        """Outlier score of each row of ``X`` (higher is more outlying).

        ``X`` is any data :meth:`fit` takes (a mapping of column to values too); it needs
        the columns in ``columns_``, other columns are ignored.
        """
        self._fitted()
        return self._score_matrix(_matrix(X, self.columns_))

    def predict(self, X: Any) -> NDArray[np.bool_]:
        """Whether each row of ``X`` is flagged as an outlier (its score is above
        ``threshold_``)."""
        return np.asarray(self.score(X) > self.threshold_, dtype=bool)

    def _score_matrix(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        state = self.state_
        filled = _impute(X, state["median"])
        if self.method == "mahalanobis":
            return mahalanobis_scores(filled, state)
        return forest_scores(filled, state) + range_excess(filled, state["low"], state["high"])

    # -- storage ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted detector as plain JSON values (numbers, strings, lists).

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> data = {"x": rng.normal(size=600).tolist()}
        >>> d = OutlierDetector(rate=0.05).fit(data)
        >>> again = OutlierDetector.from_dict(d.to_dict())
        >>> bool(np.array_equal(again.score(data), d.score(data)))
        True
        """
        self._fitted()
        return {
            "format": _FORMAT,
            "params": {
                "method": self.method,
                "rate": float(self.rate),
                "calibration_fraction": float(self.calibration_fraction),
                "columns": None if self.columns is None else list(self.columns),
                "n_estimators": int(self.n_estimators),
                "max_samples": int(self.max_samples),
                "random_state": int(self.random_state),
            },
            "columns": list(self.columns_),
            "threshold": self.threshold_,
            "n_calibration": self.n_calibration_,
            "n_above": self.n_above_,
            "state": {
                k: [np.asarray(a).tolist() for a in v] if isinstance(v, list) else v.tolist()
                for k, v in self.state_.items()
            },
        }

    def to_bytes(self) -> bytes:
        """:meth:`to_dict` as UTF-8 JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> OutlierDetector:
        """A fitted detector from :meth:`to_dict`'s output, checked before use."""
        try:
            if payload.get("format") != _FORMAT:
                raise ValueError(f"format is {payload.get('format')!r}, expected {_FORMAT!r}")
            params = dict(payload["params"])
            detector = cls(**params)
            detector._check_params()
            detector.columns_ = tuple(str(c) for c in payload["columns"])
            detector.threshold_ = float(payload["threshold"])
            detector.n_calibration_ = int(payload["n_calibration"])
            detector.n_above_ = int(payload["n_above"])
            if not 0 <= detector.n_above_ < detector.n_calibration_:
                raise ValueError("n_above must be below n_calibration")
            detector.state_ = checked_state(
                detector.method, payload["state"], len(detector.columns_)
            )
        except InputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(
                f"not a fitted outlier detector ({exc}); make one with "
                "OutlierDetector(...).fit(reference).to_dict()"
            ) from None
        return detector

    @classmethod
    def from_bytes(cls, data: bytes) -> OutlierDetector:
        """A fitted detector from :meth:`to_bytes`'s output."""
        try:
            payload = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"not a stored outlier detector: {exc}") from None
        if not isinstance(payload, dict):
            raise InputError("not a stored outlier detector: expected a JSON object")
        return cls.from_dict(payload)

    def describe(self) -> dict[str, Any]:
        """Method, columns, threshold and rates, for listings and responses."""
        self._fitted()
        return {
            "method": self.method,
            "columns": list(self.columns_),
            "rate": float(self.rate),
            "threshold": self.threshold_,
            "false_positive_rate": self.false_positive_rate_,
            "reference_flagged_share": self.reference_flagged_share_,
            "n_calibration": self.n_calibration_,
        }

    def __repr__(self) -> str:
        return f"OutlierDetector(method={self.method!r}, rate={self.rate!r})"


# -- inputs ---------------------------------------------------------------------------------


def _reference_matrix(
    reference: Any, schema: Any, columns: tuple[str, ...] | None
) -> tuple[tuple[str, ...], NDArray[np.float64]]:
    from watchkeeper.data import ColumnKind, Role, Schema, column_to_numpy

    table = _as_table(reference)
    if schema is None:
        found = Schema.infer(table)
    elif isinstance(schema, Mapping):
        found = Schema.from_dict(schema)
    else:
        found = schema
    usable = (ColumnKind.NUMERIC, ColumnKind.BOOLEAN)
    if columns is None:
        names = tuple(
            s.name
            for s in found
            if s.role in (Role.FEATURE,) and s.kind in usable and s.name in table.column_names
        )
        if not names:
            raise InputError(
                "the reference has no numeric or boolean feature column to score outliers on; "
                "pass columns= or a schema that marks numeric features"
            )
    else:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise InputError(f"columns {missing} are not in the reference; pass existing columns")
        names = columns
    kinds = {s.name: s.kind for s in found}
    X = np.column_stack(
        [
            np.asarray(
                column_to_numpy(
                    table, n, "boolean" if kinds.get(n) == ColumnKind.BOOLEAN else "numeric"
                ),
                dtype=float,
            )
            for n in names
        ]
    )
    return names, X


def _as_table(data: Any) -> Any:
    from watchkeeper.data import read_table

    if isinstance(data, Mapping):
        import pyarrow as pa

        try:
            return pa.table({str(k): list(v) for k, v in data.items()})
        except (pa.ArrowException, TypeError) as exc:
            raise InputError(f"cannot read the columns given: {exc}") from None
    return read_table(data)


def _matrix(data: Any, columns: tuple[str, ...]) -> NDArray[np.float64]:
    if isinstance(data, Mapping):
        # the gateway's path: validated JSON values per column, no table built
        missing = [c for c in columns if c not in data]
        if missing:
            raise InputError(f"columns {missing} are missing; the detector scores {list(columns)}")
        try:
            cols = [
                np.array([np.nan if v is None else float(v) for v in data[c]], dtype=float)
                for c in columns
            ]
        except (TypeError, ValueError) as exc:
            raise InputError(f"outlier columns must hold numbers: {exc}") from None
        if len({len(c) for c in cols}) > 1:
            raise InputError("every column must have the same number of values")
        return np.column_stack(cols) if cols else np.empty((0, 0))
    from watchkeeper.data import column_to_numpy

    table = _as_table(data)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(f"columns {missing} are missing; the detector scores {list(columns)}")
    return np.column_stack(
        [np.asarray(column_to_numpy(table, c, "numeric"), dtype=float) for c in columns]
    )


def _impute(X: NDArray[np.float64], medians: NDArray[np.float64]) -> NDArray[np.float64]:
    bad = ~np.isfinite(X)
    if not bad.any():
        return X
    out = X.copy()
    out[bad] = np.broadcast_to(medians, X.shape)[bad]
    return out
