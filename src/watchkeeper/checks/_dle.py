"""Direct loss estimation (DLE): regression performance without labels.

A second model learns, on the labelled reference, the monitored model's loss per row — its
absolute error for MAE, its squared error for RMSE — from the features and the prediction.
On a window without labels its mean predicted loss estimates the window's MAE (and the square
root of the mean predicted squared error its RMSE). This is NannyML's DLE.

The loss model is cross-fitted: the reference is split into folds, one model per fold is
trained on the other folds, and the window's estimate averages the fold models. The held-out
residuals (true loss minus the fold model's prediction) say how far a row's loss strays from
its prediction, per decile of predicted loss. The interval is simulated from them: each draw
takes one fold model's predictions and adds, row by row, a held-out residual drawn from the
same decile, so it covers the window's loss noise, its dependence on the predicted loss, and
part of the loss model's error (the spread between fold models). It is a *prediction interval
for the MAE (RMSE) this window's labels will give*, valid while the loss given features and
prediction is the reference's (no concept drift).
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
    Estimator,
    Support,
    draws_sd,
    is_numeric_type,
    score_values,
)
from watchkeeper.checks._result import CheckResult
from watchkeeper.data._adapters import get_column, numeric_values, read_table, string_values
from watchkeeper.exceptions import InputError

__all__ = ["DLE"]

METRICS = ("mae", "rmse")
ASSUMPTIONS = (
    "no concept drift: the loss given the features and the prediction is the reference's",
    "the window's rows fall where the reference had rows, so the loss model does not extrapolate",
)
COVERAGE = (
    "prediction interval for the metric this window's labels will give, covering the rows' "
    "loss noise (held-out residuals of the loss model resampled per decile of predicted loss) "
    "and the spread between cross-fitted loss models; valid only under the assumptions"
)
_N_BINS = 10
_MAX_CATEGORIES = 250  # category codes the default model treats as categorical


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
        categories (coded on the reference; unseen categories become missing values).
    model
        An unfitted scikit-learn regressor for the loss (cloned per fold; it must accept
        missing values). ``None`` uses a histogram gradient-boosting model on one thread.
    n_splits
        Cross-fitting folds (one loss model each, per metric).
    chunk_size, confidence, min_rows, max_unsupported_share, n_simulations, random_state
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
        n_splits: int = 3,
        chunk_size: int | None = None,
        tolerance: float = 0.1,
        confidence: float = 0.95,
        min_rows: int = 100,
        max_unsupported_share: float = 0.05,
        n_simulations: int = 200,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            metrics,
            chunk_size=chunk_size,
            tolerance=tolerance,
            confidence=confidence,
            min_rows=min_rows,
            max_unsupported_share=max_unsupported_share,
            n_simulations=n_simulations,
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

    def _new_model(self, seed: int) -> Any:
        if self.model is not None:
            from sklearn.base import clone

            return clone(self.model)
        from sklearn.ensemble import HistGradientBoostingRegressor

        categorical = [
            name in self.codes_ and len(self.codes_[name]) <= _MAX_CATEGORIES
            for name in self.features
        ] + [False]
        # Small, fixed model: no early stopping (no internal random split), so fits repeat.
        return HistGradientBoostingRegressor(
            max_iter=60,
            learning_rate=0.1,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            early_stopping=False,
            categorical_features=categorical if any(categorical) else None,
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
        from threadpoolctl import threadpool_limits

        rng = np.random.default_rng(self.random_state)
        folds = rng.permutation(np.arange(n) % self.n_splits)
        losses = {"mae": np.abs(error), "rmse": error * error}
        limit = threadpool_limits(limits=1) if self.model is None else nullcontext()
        self.models_: dict[str, list[Any]] = {}
        self.residuals_: dict[str, tuple[NDArray[np.float64], list[NDArray[np.float64]]]] = {}
        self.reference_estimate_: dict[str, float] = {}
        with limit:
            for metric in self.metrics:
                held_out = np.empty(n)
                models = []
                for k in range(self.n_splits):
                    model = self._new_model(int(rng.integers(2**31)))
                    model.fit(x[folds != k], losses[metric][folds != k])
                    held_out[folds == k] = model.predict(x[folds == k])
                    models.append(model)
                self.models_[metric] = models
                self.residuals_[metric] = _residual_bins(held_out, losses[metric] - held_out)
                self.reference_estimate_[metric] = _summary(metric, float(held_out.mean()))
        self.reference_ = {m: _summary(m, float(losses[m].mean())) for m in self.metrics}
        self.support_ = Support.learn(table, [*self.features, self.prediction])
        self.n_reference_ = n
        return self

    def _subjects(self) -> list[tuple[str, str]]:
        return [(m, "model") for m in self.metrics]

    def _threshold(self, reference: float) -> float:
        return reference * (1.0 + self.tolerance)

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
        n = table.num_rows
        if n < self.min_rows:
            return self._insufficient(n)
        x = self._matrix(table)
        share, per_column = self.support_.outside(table)
        rng = np.random.default_rng(self.random_state)
        out = []
        for metric in self.metrics:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1) if self.model is None else nullcontext():
                predicted = np.stack([m.predict(x) for m in self.models_[metric]])
            value = _summary(metric, float(predicted.mean()))
            draws = self._simulate(metric, predicted, rng)
            details = self._details(n, self.reference_[metric], self.reference_estimate_[metric])
            sd = draws_sd(draws)
            out.append(self._verdict((metric, "model"), value, sd, details, (share, per_column)))
        return out

    def _simulate(
        self, metric: str, predicted: NDArray[np.float64], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        """The window's metric under ``n_simulations`` draws of held-out residuals."""
        edges, residuals = self.residuals_[metric]
        n_models, n = predicted.shape
        sizes = np.array([r.size for r in residuals])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        pool = np.concatenate(residuals)
        bins = [np.searchsorted(edges, predicted[k], side="right") for k in range(n_models)]
        out = np.empty(self.n_simulations)
        for d in range(self.n_simulations):
            k = d % n_models
            pick = offsets[bins[k]] + (rng.random(n) * sizes[bins[k]]).astype(np.int64)
            out[d] = _summary(metric, float((predicted[k] + pool[pick]).mean()))
        return out


def _residual_bins(
    predicted: NDArray[np.float64], residuals: NDArray[np.float64]
) -> tuple[NDArray[np.float64], list[NDArray[np.float64]]]:
    """Inner decile edges of the held-out predicted loss and the residuals of each decile."""
    edges = np.unique(np.quantile(predicted, np.linspace(0, 1, _N_BINS + 1)[1:-1]))
    bins = np.searchsorted(edges, predicted, side="right")
    per_bin = [residuals[bins == b] for b in range(edges.size + 1)]
    # A decile emptied by ties borrows every residual rather than none.
    return edges, [r if r.size else residuals for r in per_bin]


def _summary(metric: str, mean_loss: float) -> float:
    """MAE is the mean absolute error; RMSE the root of the mean squared error (floored at 0)."""
    return math.sqrt(max(mean_loss, 0.0)) if metric == "rmse" else max(mean_loss, 0.0)
