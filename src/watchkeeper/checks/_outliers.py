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

from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.exceptions import InputError, NotFittedError

__all__ = [
    "OUTLIER_FLAG_KEY",
    "OUTLIER_METHODS",
    "OUTLIER_SCORE_KEY",
    "OutlierDetector",
    "check_outlier_rate",
]

#: Methods of :class:`OutlierDetector`.
OUTLIER_METHODS = ("mahalanobis", "isolation_forest")
#: Keys under which the gateway logs a record's outlier score and flag with its features.
OUTLIER_SCORE_KEY = "_outlier_score"
OUTLIER_FLAG_KEY = "_outlier"

_FORMAT = "watchkeeper.outliers/1"
_EULER = 0.5772156649015329


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
            state.update(_fit_mahalanobis(_impute(fit_rows, medians)))
        else:
            state.update(
                _fit_forest(
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
            z = (filled - state["center"]) / state["scale"] - state["location"]
            return np.asarray(np.einsum("ij,jk,ik->i", z, state["precision"], z), dtype=float)
        return _forest_scores(filled, state) + _range_excess(filled, state["low"], state["high"])

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
            detector.state_ = _checked_state(
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


# -- mahalanobis ----------------------------------------------------------------------------


def _fit_mahalanobis(X: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    from sklearn.covariance import LedoitWolf

    center = np.median(X, axis=0)
    q75, q25 = np.percentile(X, [75, 25], axis=0)
    scale = (q75 - q25) / 1.3489795003921634  # the IQR of a standard normal
    std = X.std(axis=0)
    scale = np.where(scale > 0, scale, np.where(std > 0, std, 1.0))
    z = (X - center) / scale
    lw = LedoitWolf().fit(z)
    return {
        "center": center,
        "scale": scale,
        "location": np.asarray(lw.location_, dtype=float),
        "precision": np.asarray(lw.precision_, dtype=float),
    }


# -- isolation forest -----------------------------------------------------------------------


def _average_path_length(n: NDArray[np.float64]) -> NDArray[np.float64]:
    """Expected path length of an unsuccessful search in a binary search tree of ``n``
    points (Liu et al. 2008, eq. 1), as scikit-learn computes it."""
    n = np.asarray(n, dtype=float)
    out = np.zeros_like(n)
    two = n == 2
    many = n > 2
    out[two] = 1.0
    m = n[many]
    out[many] = 2.0 * (np.log(m - 1.0) + _EULER) - 2.0 * (m - 1.0) / m
    return out


def _fit_forest(
    X: NDArray[np.float64], n_estimators: int, max_samples: int, seed: int
) -> dict[str, Any]:
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(
        n_estimators=n_estimators,
        max_samples=min(max_samples, X.shape[0]),
        random_state=seed,
    ).fit(X)
    lefts, rights, features, thresholds, paths = [], [], [], [], []
    for tree, used in zip(forest.estimators_, forest.estimators_features_, strict=True):
        t = tree.tree_
        left, right = t.children_left, t.children_right
        depth = np.zeros(t.node_count)
        for node in range(t.node_count):  # children come after their parent
            if left[node] >= 0:
                depth[left[node]] = depth[right[node]] = depth[node] + 1
        leaf = left < 0
        path = np.where(leaf, depth + _average_path_length(t.n_node_samples), 0.0)
        lefts.append(np.asarray(left, dtype=np.int64))
        rights.append(np.asarray(right, dtype=np.int64))
        features.append(np.where(leaf, -1, np.asarray(used)[np.maximum(t.feature, 0)]))
        thresholds.append(np.where(leaf, 0.0, t.threshold))
        paths.append(path)
    low, high = X.min(axis=0), X.max(axis=0)
    return {
        "low": low,
        "high": high,
        "left": lefts,
        "right": rights,
        "feature": features,
        "threshold": thresholds,
        "path": paths,
        "sample_size": np.array([float(forest.max_samples_)]),
    }


def _range_excess(
    X: NDArray[np.float64], low: NDArray[np.float64], high: NDArray[np.float64]
) -> NDArray[np.float64]:
    """How far each row lies outside ``[low, high]``, in units of each column's range."""
    width = np.where(high > low, high - low, 1.0)
    excess = np.maximum(X - high, 0.0) + np.maximum(low - X, 0.0)
    return np.asarray((excess / width).sum(axis=1), dtype=float)


def _forest_scores(X: NDArray[np.float64], state: Mapping[str, Any]) -> NDArray[np.float64]:
    # Trees split float32 values (as scikit-learn's trees do), hence the cast.
    X32 = X.astype(np.float32).astype(np.float64)
    rows = np.arange(X.shape[0])
    total = np.zeros(X.shape[0])
    for left, right, feature, threshold, path in zip(
        state["left"], state["right"], state["feature"], state["threshold"], state["path"],
        strict=True,
    ):  # fmt: skip
        node = np.zeros(X.shape[0], dtype=np.int64)
        for _ in range(len(left)):  # a path visits each node at most once
            inner = left[node] >= 0
            if not inner.any():
                break
            go_left = X32[rows, np.maximum(feature[node], 0)] <= threshold[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        total += path[node]
    c = _average_path_length(np.asarray(state["sample_size"]))[0]
    return np.asarray(2.0 ** (-total / (len(state["left"]) * c)), dtype=float)


def _checked_state(method: str, raw: Mapping[str, Any], n_columns: int) -> dict[str, Any]:
    median = np.asarray(raw["median"], dtype=float)
    if median.shape != (n_columns,) or not np.isfinite(median).all():
        raise ValueError("median must hold one finite number per column")
    if method == "mahalanobis":
        out: dict[str, Any] = {"median": median}
        for key, shape in (
            ("center", (n_columns,)),
            ("scale", (n_columns,)),
            ("location", (n_columns,)),
            ("precision", (n_columns, n_columns)),
        ):
            value = np.asarray(raw[key], dtype=float)
            if value.shape != shape or not np.isfinite(value).all():
                raise ValueError(f"{key} must be finite numbers of shape {shape}")
            out[key] = value
        if (out["scale"] <= 0).any():
            raise ValueError("scale must be positive")
        return out
    trees = len(raw["left"])
    if trees < 1 or any(len(raw[k]) != trees for k in ("right", "feature", "threshold", "path")):
        raise ValueError("every tree needs left, right, feature, threshold and path arrays")
    state: dict[str, Any] = {"median": median, "sample_size": np.asarray(raw["sample_size"])}
    for key in ("low", "high"):
        value = np.asarray(raw[key], dtype=float)
        if value.shape != (n_columns,) or not np.isfinite(value).all():
            raise ValueError(f"{key} must hold one finite number per column")
        state[key] = value
    for key in ("left", "right", "feature", "threshold", "path"):
        state[key] = []
    for i in range(trees):
        left = np.asarray(raw["left"][i], dtype=np.int64)
        right = np.asarray(raw["right"][i], dtype=np.int64)
        feature = np.asarray(raw["feature"][i], dtype=np.int64)
        threshold = np.asarray(raw["threshold"][i], dtype=float)
        path = np.asarray(raw["path"][i], dtype=float)
        n = left.shape[0]
        if n < 1 or any(a.shape != (n,) for a in (right, feature, threshold, path)):
            raise ValueError(f"tree {i}: node arrays must have the same length")
        inner = left >= 0
        if (
            (left >= n).any()
            or (right >= n).any()
            or (right[inner] < 0).any()
            or (feature[inner] < 0).any()
            or (feature >= n_columns).any()
            or not np.isfinite(threshold).all()
            or not np.isfinite(path).all()
        ):
            raise ValueError(f"tree {i}: node indices or values out of range")
        for key, value in (
            ("left", left),
            ("right", right),
            ("feature", feature),
            ("threshold", threshold),
            ("path", path),
        ):
            state[key].append(value)
    if state["sample_size"].shape != (1,) or not state["sample_size"][0] >= 2:
        raise ValueError("sample_size must be one number >= 2")
    return state


# -- the window check -----------------------------------------------------------------------


def check_outlier_rate(
    flagged: int,
    n_rows: int,
    n_above: int,
    n_calibration: int,
    *,
    rate: float,
    alpha: float = 0.01,
    min_ratio: float = 1.5,
    min_rows: int = 100,
) -> CheckResult:
    """``outliers.rate``: is the window's share of flagged records above the reference rate?

    The decision is the exact beta-binomial test of
    :func:`watchkeeper.stats.conformal_exceedance` (it carries the calibration's own
    uncertainty): ``alert`` when the one-sided p-value is below ``alpha`` and the share is at
    least ``min_ratio`` times the detector's false-positive rate (so that a huge window does
    not alert on a trivial rise). ``upper`` is the Wilson 95% upper bound of the share.

    Parameters
    ----------
    flagged, n_rows
        Flagged records of the window, and its records with a score.
    n_above, n_calibration
        The detector's held-out reference rows above its threshold, and all of them.
    rate
        The detector's stated false-positive rate (reported beside the decision).
    alpha, min_ratio, min_rows
        Significance level, effect-size floor and the fewest rows for a verdict.

    Examples
    --------
    >>> check_outlier_rate(60, 1000, 9, 999, rate=0.01).status.value
    'alert'
    >>> check_outlier_rate(12, 1000, 9, 999, rate=0.01).status.value
    'ok'
    >>> check_outlier_rate(3, 40, 9, 999, rate=0.01).status.value
    'insufficient_data'
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be between 0 and 1, got {alpha!r}")
    from watchkeeper.stats import conformal_exceedance, wilson_interval

    lo, hi = wilson_interval(flagged, n_rows) if n_rows else (0.0, 1.0)
    share = flagged / n_rows if n_rows else 0.0
    expected = (n_above + 1) / (n_calibration + 1)
    details: dict[str, Any] = {
        "flagged": int(flagged),
        "n_rows": int(n_rows),
        "stated_rate": float(rate),
        "false_positive_rate": expected,
        "n_calibration": int(n_calibration),
        "calibration_above": int(n_above),
    }
    rule = f"beta-binomial exceedance test, alpha={alpha:g}, ratio>={min_ratio:g}"
    if n_rows < min_rows:
        return CheckResult(
            "outliers.rate", "model", Status.INSUFFICIENT_DATA,
            f"only {n_rows:,} scored rows in the window; at least {min_rows:,} are needed "
            f"(outlier share {share:.2%}, {flagged:,} flagged)",
            value=share, lower=lo, upper=hi, threshold=expected, rule=rule, details=details,
        )  # fmt: skip
    test = conformal_exceedance(n_above, n_calibration, flagged, n_rows)
    p = float(test.p_value if test.p_value is not None else 1.0)
    details["ratio"] = share / expected
    if p < alpha and share >= min_ratio * expected:
        status = Status.ALERT
        reason = (
            f"outlier share {share:.2%} ({flagged:,} of {n_rows:,}) is significantly above "
            f"the reference rate {expected:.2%} (stated {rate:g}; one-sided exact p={p:.3g} "
            f"< {alpha:g})"
        )
    else:
        status = Status.OK
        reason = (
            f"outlier share {share:.2%} ({flagged:,} of {n_rows:,}); reference rate "
            f"{expected:.2%} (stated {rate:g})"
        )
        if share > expected:
            reason += (
                f", not significantly higher (p={p:.3g})"
                if p >= alpha
                else f", below {min_ratio:g} times the reference rate"
            )
    return CheckResult(
        "outliers.rate", "model", status, reason,
        value=share, lower=lo, upper=hi, threshold=expected, p_value=p, rule=rule,
        details=details,
    )  # fmt: skip
