"""Direct loss estimation (DLE): regression performance without labels.

A second model learns, on the labelled reference, the monitored model's loss per row — its
absolute error for MAE, its squared error for RMSE — from the features and the prediction.
On a window without labels its mean predicted loss estimates the window's MAE (and the square
root of the mean predicted squared error its RMSE). This is NannyML's DLE.

The loss model is cross-fitted: the reference is split into folds, one model per fold is
trained on the other folds, and each reference row's loss is predicted by the model that did
not see it. Those held-out residuals (true loss minus predicted loss), grouped by decile of
predicted loss, say how far a row's loss strays from its prediction there. On a window, the
estimate is the mean loss predicted by one more model, fitted on the whole reference. Its
standard deviation combines the rows' residual variances (rows are independent, so the variance
of the window's mean loss is their sum over ``n^2``) with the loss model's own estimation
error, shared by all rows of the window — the grouped (delete-a-fold) jackknife variance of the
fold models' window means (law of total variance); with few folds that part is itself
uncertain, so the interval uses Student's t with Welch–Satterthwaite degrees of freedom. The
RMSE's follows by the delta method. The interval is a *prediction interval for the MAE (RMSE)
this window's labels will give*, valid while the loss given features and prediction is the
reference's (no concept drift) and the window lies in the reference's support.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from watchkeeper.checks._estimation import (
    ChunkEstimate,
    Estimator,
    Support,
    is_numeric_type,
    score_values,
)
from watchkeeper.checks._result import CheckResult
from watchkeeper.data import get_column, numeric_values, read_table, string_values
from watchkeeper.exceptions import InputError

__all__ = ["DLE"]

METRICS = ("mae", "rmse")
ASSUMPTIONS = (
    "no concept drift: the loss given the features and the prediction is the reference's",
    "the window's rows fall where the reference had rows, so the loss model does not extrapolate",
)
COVERAGE = (
    "prediction interval for the metric this window's labels will give, covering the rows' "
    "loss noise (variance of the loss model's held-out residuals per decile of predicted loss) "
    "and the loss model's estimation error (delete-a-fold jackknife over the cross-fitted loss "
    "models); valid only under the assumptions"
)
_N_BINS = 10
# Inner decile edges of the held-out predicted loss; residual variance per decile.
_Bins = tuple[NDArray[np.float64], NDArray[np.float64]]


class DLE(Estimator):
    """Estimate a regressor's MAE and RMSE on windows without labels (direct loss estimation).

    Parameters
    ----------
    metrics
        ``"mae"`` and/or ``"rmse"``.
    prediction, target
        The prediction and the true value columns (the target is needed only in ``fit``).
    features
        The model's input columns; numeric ones are used as numbers, the others as
        category codes (sorted categories of the reference; unseen ones become missing).
    model
        An unfitted scikit-learn regressor for the loss (cloned for each fit; it must accept
        missing values). ``None`` uses a histogram gradient-boosting model (100 trees of up
        to 31 leaves, LightGBM's default size) on one thread.
    n_splits
        Cross-fitting folds: one loss model per fold, fitted on the other folds, besides the
        model on the whole reference that gives the estimate. Their held-out residuals size
        the rows' scatter, and their spread (delete-a-fold jackknife) the loss model's
        estimation error. Fit time grows with ``n_splits``.
    chunk_size, confidence, min_rows, max_unsupported_share, random_state
        As for :class:`CBPE`.
    tolerance
        Relative worsening that matters: ``alert`` when the lower bound exceeds the
        reference value times ``1 + tolerance``.

    Examples
    --------
    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> def frame(n):
    ...     x = rng.uniform(0, 1, n)
    ...     return pd.DataFrame({"x": x, "pred": 2 * x, "y": 2 * x + rng.normal(0, 0.1 + x, n)})
    >>> dle = DLE(["mae"], prediction="pred", target="y", features=["x"]).fit(frame(2000))
    >>> [r] = dle.estimate(frame(500).drop(columns="y"))
    >>> r.check, r.status.value, r.lower < r.value < r.upper
    ('estimated.mae', 'ok', True)
    """

    _method = "dle"
    _all_metrics = METRICS
    _assumptions = ASSUMPTIONS
    _coverage = COVERAGE
    _higher_is_better = False
    _upper_limit = math.inf

    def __init__(
        self,
        metrics: Sequence[str] = METRICS,
        *,
        prediction: str,
        target: str,
        features: Sequence[str],
        model: Any = None,
        n_splits: int = 2,
        chunk_size: int | None = None,
        tolerance: float = 0.1,
        confidence: float = 0.95,
        min_rows: int = 100,
        max_unsupported_share: float = 0.05,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            metrics,
            chunk_size=chunk_size,
            tolerance=tolerance,
            confidence=confidence,
            min_rows=min_rows,
            max_unsupported_share=max_unsupported_share,
            random_state=random_state,
        )
        self.prediction = prediction
        self.target = target
        self.features = tuple(features)
        self.model = model
        self.n_splits = n_splits

    def _validate(self) -> None:
        self._check_options()
        if not self.features:
            raise InputError("DLE needs features=[...]: the loss is learnt from them")
        if self.n_splits < 2:
            raise InputError(f"n_splits must be at least 2, got {self.n_splits}")

    def _matrix(self, table: pa.Table, *, learn: bool = False) -> NDArray[np.float64]:
        """Features (numbers; categories as reference codes, unseen ones missing) and the
        prediction, one row per row."""
        if learn:
            self.codes_: dict[str, dict[str, int]] = {}
        columns = []
        for name in self.features:
            column = get_column(table, name)
            if is_numeric_type(column.type):
                columns.append(numeric_values(column)[0])
                continue
            strings = string_values(column).to_numpy(zero_copy_only=False)
            if learn:
                seen = sorted({v for v in strings.tolist() if v is not None})
                self.codes_[name] = {v: i for i, v in enumerate(seen)}
            codes = self.codes_.get(name)
            if codes is None:
                raise InputError(
                    f"feature {name!r} was numeric in the reference but is not numeric here; "
                    "pass the same column types as in fit"
                )
            columns.append(np.array([codes.get(v, np.nan) for v in strings], dtype=np.float64))
        columns.append(score_values(table, self.prediction, "prediction"))
        return np.column_stack(columns)

    def _new_model(self, seed: int, *, trees: int = 100) -> Any:
        if self.model is not None:
            from sklearn.base import clone

            return clone(self.model)
        from sklearn.ensemble import HistGradientBoostingRegressor

        # LightGBM's default size (NannyML's loss model); no early stopping (no internal random
        # split), so fits repeat. Category codes are split on as ordered numbers: on NannyML's
        # car price data this estimated MAE closer than native categorical splits (see
        # benchmarks/estimation_notes.md).
        return HistGradientBoostingRegressor(
            max_iter=trees,
            learning_rate=0.1,
            max_leaf_nodes=31,
            min_samples_leaf=20,
            early_stopping=False,
            random_state=seed,
        )

    def fit(self, reference: Any) -> DLE:
        """Learn the monitored model's loss on a labelled reference.

        Parameters
        ----------
        reference
            Data with the features, prediction and target columns.

        Returns
        -------
        DLE
            ``self``, fitted.

        Raises
        ------
        InputError
            Missing columns, missing or non-numeric predictions or targets, or fewer rows
            than ``5 * n_splits``.
        """
        self._validate()
        table = read_table(reference)
        x = self._matrix(table, learn=True)
        error = score_values(table, self.target, "target") - x[:, -1]
        n = error.size
        if n < 5 * self.n_splits:
            raise InputError(
                f"the reference has {n} rows; DLE needs at least {5 * self.n_splits} to "
                f"cross-fit {self.n_splits} loss models"
            )
        rng = np.random.default_rng(self.random_state)
        folds = rng.permutation(np.arange(n) % self.n_splits)
        losses = {"mae": np.abs(error), "rmse": error * error}
        self.models_: dict[str, list[Any]] = {}
        self.residuals_: dict[str, _Bins] = {}
        self.reference_estimate_: dict[str, float] = {}
        with self._threads():
            for metric in self.metrics:
                loss = losses[metric]
                held_out = np.empty(n)
                models = []
                for k in range(self.n_splits):
                    model = self._new_model(int(rng.integers(2**31)))
                    model.fit(x[folds != k], loss[folds != k])
                    held_out[folds == k] = model.predict(x[folds == k])
                    models.append(model)
                self.residuals_[metric] = _residual_bins(held_out, loss - held_out)
                self.reference_estimate_[metric] = _summary(metric, float(held_out.mean()))
                # The estimate comes from a model on the whole reference; the fold models are
                # its delete-a-fold jackknife replicates.
                full = self._new_model(int(rng.integers(2**31))).fit(x, loss)
                self.models_[metric] = [full, *models]
        self.reference_ = {m: _summary(m, float(losses[m].mean())) for m in self.metrics}
        self.support_ = Support.learn(table, [*self.features, self.prediction])
        self.n_reference_ = n
        return self

    def _threads(self) -> Any:
        """One thread for the default model (see the module notes); the user's model as is."""
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=1) if self.model is None else nullcontext()

    def _subjects(self) -> list[tuple[str, str]]:
        return [(m, "model") for m in self.metrics]

    def _threshold(self, reference: float) -> float:
        return reference * (1.0 + self.tolerance)

    def _predicted(self, table: pa.Table) -> dict[str, NDArray[np.float64]]:
        """Each row's loss as the full model (row 0) and each fold model predict it, shape
        (1 + folds, rows) per metric."""
        x = self._matrix(table)
        with self._threads():
            return {
                m: np.stack([np.asarray(f.predict(x), dtype=np.float64) for f in self.models_[m]])
                for m in self.metrics
            }

    def estimate(self, data: Any) -> list[CheckResult]:
        """Estimated MAE/RMSE of a window without labels, with intervals and verdicts.

        Parameters
        ----------
        data
            The window: features and prediction (a target column, if present, is ignored).

        Returns
        -------
        list of CheckResult
            One per metric (check ``estimated.<metric>``, subject ``"model"``);
            ``lower``/``upper`` bound the metric the window's labels will give;
            ``threshold`` is the reference value times ``1 + tolerance``.
        """
        self._require_fitted()
        table = read_table(data, allow_empty=True)
        if table.num_rows < self.min_rows:
            return self._insufficient(table.num_rows)
        return self._results(table, self._predicted(table))

    def estimate_chunks(self, data: Any) -> list[ChunkEstimate]:
        """As :meth:`Estimator.estimate_chunks`, with the loss predicted once for all rows."""
        self._require_fitted()
        table = read_table(data, allow_empty=True)
        size = self._chunk_rows()
        predicted = self._predicted(table) if table.num_rows >= self.min_rows else {}
        out = []
        for start in range(0, table.num_rows, size):
            chunk = table.slice(start, size)
            if chunk.num_rows < self.min_rows:
                results = self._insufficient(chunk.num_rows)
            else:
                part = {m: p[:, start : start + chunk.num_rows] for m, p in predicted.items()}
                results = self._results(chunk, part)
            out.append(ChunkEstimate(start, start + chunk.num_rows, tuple(results)))
        return out

    def _results(
        self, table: pa.Table, predicted: dict[str, NDArray[np.float64]]
    ) -> list[CheckResult]:
        n = table.num_rows
        share, per_column = self.support_.outside(table)
        out = []
        for metric in self.metrics:
            mean_loss, sd_loss, df = _moments(self.residuals_[metric], predicted[metric])
            # Student's t for the jackknife's few degrees of freedom, passed on as a wider sd.
            sd_loss *= _t_factor(df, self.confidence)
            value = _summary(metric, mean_loss)
            # RMSE = sqrt(mean squared error): delta method, d sqrt(v) = dv / (2 sqrt(v)).
            sd = sd_loss / (2 * value) if metric == "rmse" and value > 0 else sd_loss
            details = self._details(n, self.reference_[metric], self.reference_estimate_[metric])
            out.append(self._verdict((metric, "model"), value, sd, details, (share, per_column)))
        return out


def _residual_bins(predicted: NDArray[np.float64], residuals: NDArray[np.float64]) -> _Bins:
    """Inner decile edges of the held-out predicted loss and the variance of the held-out
    residuals in each decile (a decile emptied by ties takes the overall variance)."""
    edges = np.unique(np.quantile(predicted, np.linspace(0, 1, _N_BINS + 1)[1:-1]))
    bins = np.searchsorted(edges, predicted, side="right")
    count = np.bincount(bins, minlength=edges.size + 1).astype(np.float64)
    total = np.bincount(bins, weights=residuals, minlength=edges.size + 1)
    squares = np.bincount(bins, weights=residuals * residuals, minlength=edges.size + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        var = squares / count - mean * mean
    var[count < 2] = residuals.var()
    return edges, np.maximum(var, 0.0)


def _moments(bins: _Bins, predicted: NDArray[np.float64]) -> tuple[float, float, float]:
    """Estimated mean loss of the window, its standard deviation and the degrees of freedom.

    ``predicted`` holds the loss predictions of the full model (row 0) and of the ``K`` fold
    models, shape (1 + K, rows). The estimate is the full model's window mean. Its variance
    adds (law of total variance) the rows' own scatter — each row's loss strays from its
    prediction independently, by the held-out residual variance of its decile, so the window
    mean strays by their sum over ``n^2`` — and the loss model's estimation error, which all
    rows of a window share and which does not shrink with the window: the grouped
    (delete-a-fold) jackknife variance of the full model's window mean, ``(K - 1) / K *
    sum_k (m_k - m)^2`` over the fold models' window means ``m_k`` (Shao and Tu, *The
    Jackknife and Bootstrap*, 1995, section 2.3). That part has ``K - 1`` degrees of freedom;
    the Welch–Satterthwaite approximation gives those of the sum (the rows' part counts as
    exactly known).
    """
    edges, var = bins
    full, folds = predicted[0], predicted[1:]
    rows = float(var[np.searchsorted(edges, full, side="right")].sum()) / full.size**2
    means = folds.mean(axis=1)
    k = means.size
    model = (k - 1) / k * float(np.sum((means - means.mean()) ** 2))
    total = rows + model
    df = math.inf if model <= 0.0 else (k - 1) * (total / model) ** 2
    return float(full.mean()), math.sqrt(total), df


def _t_factor(df: float, confidence: float) -> float:
    """How much wider a Student t interval with ``df`` degrees of freedom is than a normal one."""
    from scipy.stats import norm, t

    if not math.isfinite(df):
        return 1.0
    q = 0.5 + confidence / 2
    return float(t.ppf(q, df) / norm.ppf(q))


def _summary(metric: str, mean_loss: float) -> float:
    """MAE is the mean absolute error; RMSE the root of the mean squared error (floored at 0)."""
    return math.sqrt(max(mean_loss, 0.0)) if metric == "rmse" else max(mean_loss, 0.0)
