"""Confidence-based performance estimation (CBPE): classifier performance without labels.

If a classifier's scores are calibrated — among rows scored ``s``, a share ``s`` is positive —
then a window's labels are, row by row, independent Bernoulli draws with the calibrated
probabilities, and every confusion-matrix count has a known expectation:
``E[TP] = sum of p over rows predicted positive``, ``E[FP] = sum of 1 - p`` over the same rows,
and so on (the entries sum to the number of rows). Metrics are computed from the expected
matrix, and ROC AUC from the expected numbers of correctly ordered positive/negative pairs.
Scores are calibrated on the labelled reference by isotonic regression (one-vs-rest per class,
rows renormalised, for multiclass). This is the method of NannyML's ``CBPE``; on NannyML's car
loan data both give the same estimates (see ``BENCHMARKS.md``).

The interval is a *prediction interval for the metric the window's labels will give*. Its
variance adds, by the law of total variance, the label noise of a finite window given the
calibrated probabilities (binary: exact Poisson-binomial moments of the confusion counts and
the delta method; multiclass: simulated label draws) and the calibrator's estimation error
from a finite reference (the spread of the estimate between calibrators refitted on Poisson
bootstrap resamples of the reference). It does not cover concept drift: if the chance of a
class given the score changes, the estimate is wrong and nothing without labels can show it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from scipy.stats import rankdata

from watchkeeper.checks._calibration import (
    N_FOLDS,
    Calibrator,
    binary_moments,
    expected_auc,
    expected_confusion,
    metrics_from_confusion,
)
from watchkeeper.checks._estimation import (
    Estimator,
    Support,
    class_indices,
    draws_sd,
    label_values,
    score_values,
)
from watchkeeper.checks._result import CheckResult
from watchkeeper.data import read_table
from watchkeeper.exceptions import InputError

__all__ = ["CBPE"]

METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")
ASSUMPTIONS = (
    "no concept drift: the chance of each class given the model's score is the reference's",
    "the calibration learnt on the reference holds in the window (scores in the window fall "
    "where the reference had scores)",
)
COVERAGE = (
    "prediction interval for the metric this window's labels will give, covering label noise "
    "(labels drawn from the calibrated probabilities) and the calibrator's estimation error "
    "(calibrators refitted on bootstrap resamples of the reference); valid only under the "
    "assumptions"
)
_DRAW_BUDGET = 2_000_000  # simulated labels held in memory at once


def _label(c: Any) -> str:
    """A class as the string the adapters give its column values (``1.0`` is ``"1"``)."""
    if isinstance(c, bool | np.bool_):
        return "true" if c else "false"
    if isinstance(c, float | np.floating) and float(c).is_integer():
        return str(int(c))
    return str(c)


class CBPE(Estimator):
    """Estimate a classifier's performance on windows without labels (confidence-based).

    Parameters
    ----------
    metrics
        Any of ``"roc_auc"``, ``"accuracy"``, ``"precision"``, ``"recall"``, ``"f1"``.
    score
        The score column (binary: the score of the positive class), or one column per class
        in the order of ``classes`` (multiclass). Any real scores work with isotonic
        calibration; ``calibration="none"`` needs probabilities.
    prediction, target
        The predicted and the true class columns (the target is needed only in ``fit``).
    features
        Input columns whose reference support is checked in each window (the score columns
        always are).
    classes
        The classes; for binary data the last one is the positive class. ``None`` sorts the
        reference's target values (binary only).
    calibration
        ``"isotonic"`` (fitted on the reference) or ``"none"`` (the scores already are
        calibrated probabilities; the estimate is then the exact Bernoulli expectation).
    chunk_size
        Rows per chunk for :meth:`estimate_chunks`.
    tolerance
        Drop from the reference value (metric units) that matters: ``alert`` when the upper
        bound is below ``reference - tolerance``. Out-of-support windows get at least
        ``warn`` (see ``max_unsupported_share``).
    confidence
        Level of the intervals.
    min_rows
        Windows with fewer rows get ``insufficient_data``.
    max_unsupported_share
        Share of window rows out of the reference support above which the estimate is flagged.
    n_simulations
        Simulated label draws per window for the interval.
    random_state
        Seed of the bootstrap, the folds and the simulation.

    Examples
    --------
    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> def frame(n):
    ...     p = rng.beta(2, 2, n)
    ...     return pd.DataFrame({"p": p, "yhat": (p > 0.5).astype(int),
    ...                          "y": (rng.random(n) < p).astype(int)})
    >>> cbpe = CBPE(["accuracy"], score="p", prediction="yhat", target="y").fit(frame(2000))
    >>> [r] = cbpe.estimate(frame(1000).drop(columns="y"))
    >>> r.check, r.status.value, r.lower < r.value < r.upper
    ('estimated.accuracy', 'ok', True)
    """

    _method = "cbpe"
    _all_metrics = METRICS
    _assumptions = ASSUMPTIONS
    _coverage = COVERAGE
    _higher_is_better = True
    _upper_limit = 1.0

    def __init__(
        self,
        metrics: Sequence[str] = METRICS,
        *,
        score: str | Sequence[str],
        prediction: str,
        target: str,
        features: Sequence[str] = (),
        classes: Sequence[Any] | None = None,
        calibration: str = "isotonic",
        chunk_size: int | None = None,
        tolerance: float = 0.01,
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
            random_state=random_state,
        )
        self.score = score
        self.prediction = prediction
        self.target = target
        self.features = tuple(features)
        self.classes = None if classes is None else tuple(classes)
        self.calibration = calibration
        self.n_simulations = n_simulations

    # -- fit ------------------------------------------------------------------------------

    def _score_columns(self) -> tuple[str, ...]:
        return (self.score,) if isinstance(self.score, str) else tuple(self.score)

    def _validate(self) -> None:
        self._check_options()
        if self.n_simulations < 2:
            raise InputError(f"n_simulations must be at least 2, got {self.n_simulations}")
        if self.calibration not in ("isotonic", "none"):
            raise InputError(f"calibration must be 'isotonic' or 'none', got {self.calibration!r}")
        n_scores = len(self._score_columns())
        if n_scores > 1 and (self.classes is None or len(self.classes) != n_scores):
            raise InputError(
                f"{n_scores} score columns need classes=[...] naming the class of each, in order"
            )

    def _scores(self, table: pa.Table) -> NDArray[np.float64]:
        s = np.column_stack([score_values(table, c, "score") for c in self._score_columns()])
        if self.calibration == "none" and ((s < 0).any() or (s > 1).any()):
            raise InputError(
                "calibration='none' needs scores that are probabilities in [0, 1]; "
                "use calibration='isotonic' for other scores"
            )
        return s

    def _indices(self, table: pa.Table, column: str, role: str) -> NDArray[np.int64]:
        return class_indices(table, column, role, self.classes_)

    def fit(self, reference: Any) -> CBPE:
        """Calibrate the scores and record the reference performance.

        Parameters
        ----------
        reference
            Labelled data with the score, prediction and target columns (any input
            :func:`~watchkeeper.data.read_table` accepts).

        Returns
        -------
        CBPE
            ``self``, fitted.

        Raises
        ------
        InputError
            Missing columns, missing or non-numeric scores, a single class in the target,
            unknown classes, or a score column count that does not match the classes.
        """
        self._validate()
        table = read_table(reference)
        s = self._scores(table)
        y_labels = label_values(table, self.target, "target")
        if self.classes is None:
            self.classes_ = tuple(sorted(pc.unique(y_labels).to_pylist()))
        else:
            self.classes_ = tuple(_label(c) for c in self.classes)
        k = len(self.classes_)
        if k < 2 or (s.shape[1] == 1 and k != 2):
            raise InputError(
                f"the reference target {self.target!r} has classes {list(self.classes_)}; CBPE "
                "needs both classes of a binary model (one score column) or one score column "
                "per class"
            )
        y = self._indices(table, self.target, "target")
        yhat = self._indices(table, self.prediction, "prediction")
        if np.unique(y).size < 2:
            raise InputError(
                f"the reference target {self.target!r} holds a single class "
                f"({self.classes_[y[0]]}); calibration needs labelled rows of every class"
            )
        rng = np.random.default_rng(self.random_state)
        folds = rng.permutation(np.arange(y.size) % N_FOLDS)
        self.calibrators_: list[Calibrator] = []
        crossed = np.empty_like(s)
        for j in range(s.shape[1]):
            positive = y == (1 if s.shape[1] == 1 else j)
            if self.calibration == "isotonic":
                cal = Calibrator(s[:, j], positive, rng)
                self.calibrators_.append(cal)
                crossed[:, j] = cal.cross_fitted(positive, folds, s[:, j])
            else:
                crossed[:, j] = s[:, j]
        self.support_ = Support.learn(table, [*self._score_columns(), *self.features])
        self.reference_ = self._values(np.eye(k)[y], yhat, s)
        self.reference_estimate_ = self._values(self._probabilities(crossed), yhat, s)
        self.n_reference_ = int(y.size)
        return self

    # -- estimate -------------------------------------------------------------------------

    def _probabilities(self, s: NDArray[np.float64]) -> NDArray[np.float64]:
        """Class probabilities (..., k) from calibrated per-column probabilities (..., m)."""
        if s.shape[-1] == 1:
            return np.concatenate([1.0 - s, s], axis=-1)
        total = s.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(total > 0, s / total, 1.0 / s.shape[-1])
        return np.asarray(p, dtype=np.float64)

    def _calibrated(self, s: NDArray[np.float64]) -> NDArray[np.float64]:
        """Class probabilities per calibrator, shape (calibrators, n, k)."""
        if self.calibration == "none":
            return self._probabilities(s)[None]
        per_column = np.stack([cal(s[:, j]) for j, cal in enumerate(self.calibrators_)], axis=-1)
        return self._probabilities(per_column)

    def _ranks(self, s: NDArray[np.float64]) -> NDArray[np.float64]:
        """Midranks of the score of each class (n, k); binary class 0 ranks by ``-score``."""
        if s.shape[1] == 1:
            r = rankdata(s[:, 0])
            return np.column_stack([s.shape[0] + 1.0 - r, r])
        return np.column_stack([rankdata(s[:, j]) for j in range(s.shape[1])])

    def _subjects(self) -> list[tuple[str, str]]:
        per_class = len(self.classes_) > 2
        out = []
        for m in self.metrics:
            out.append((m, "model"))
            if per_class and m != "accuracy":
                out.extend((m, c) for c in self.classes_)
        return out

    def _pick(self, values: dict[str, Any]) -> dict[tuple[str, str], Any]:
        """The reported numbers: binary metrics of the positive class, multiclass macro
        averages plus each class."""
        k = len(self.classes_)
        out: dict[tuple[str, str], Any] = {}
        for m, subject in self._subjects():
            v = values[m]
            if m == "accuracy":
                out[(m, subject)] = v
            elif subject != "model":
                out[(m, subject)] = v[..., self.classes_.index(subject)]
            else:
                out[(m, subject)] = v[..., 1] if k == 2 else v.mean(axis=-1)
        return out

    def _values(
        self, p: NDArray[np.float64], yhat: NDArray[np.int64], s: NDArray[np.float64]
    ) -> dict[tuple[str, str], float]:
        k = len(self.classes_)
        ranks = self._ranks(s)
        auc = np.array([expected_auc(p[:, j], ranks[:, j]) for j in range(k)])
        picked = self._pick(metrics_from_confusion(expected_confusion(p, yhat, k), auc))
        return {key: float(v) for key, v in picked.items()}

    def expected_confusion_matrix(self, data: Any) -> NDArray[np.float64]:
        """Expected confusion matrix ``[true class, predicted class]`` of ``data``.

        Rows and columns follow ``classes_``; the entries sum to the number of rows.

        Examples
        --------
        >>> import pandas as pd
        >>> ref = pd.DataFrame({"p": [0.2, 0.9, 0.6, 0.1], "yhat": [0, 1, 1, 0],
        ...                     "y": [0, 1, 0, 1]})
        >>> cbpe = CBPE(score="p", prediction="yhat", target="y", calibration="none").fit(ref)
        >>> cbpe.expected_confusion_matrix(ref).round(2).tolist()
        [[1.7, 0.5], [0.3, 1.5]]
        """
        self._require_fitted()
        table = read_table(data)
        s = self._scores(table)
        yhat = self._indices(table, self.prediction, "prediction")
        return np.asarray(
            expected_confusion(self._calibrated(s)[0], yhat, len(self.classes_)),
            dtype=np.float64,
        )

    def _binary(
        self, s: NDArray[np.float64], yhat: NDArray[np.int64]
    ) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float], NDArray[np.float64]]:
        """Estimates, their standard deviations and the class probabilities of a binary
        window.

        The standard deviation follows the law of total variance: the label noise given a
        calibrator (exact Poisson-binomial moments and the delta method, averaged over the
        bootstrap calibrators) plus the spread of the estimate between calibrators. Rows are
        grouped by distinct score first: a row's probability and rank depend on its score
        only.
        """
        u, inv = np.unique(s, return_inverse=True)
        count = np.bincount(inv).astype(np.float64)
        predicted = np.asarray(
            np.bincount(inv, weights=(yhat == 1).astype(np.float64), minlength=u.size),
            dtype=np.float64,
        )
        ranks = np.cumsum(count) - (count - 1.0) / 2.0
        pu = self._calibrated(u[:, None])[:, :, 1]
        mean, var = binary_moments(pu, predicted, count, ranks)
        boot = slice(1, None) if pu.shape[0] > 1 else slice(None)
        point, sd = {}, {}
        for m in self.metrics:
            between = float(np.var(mean[m][boot], ddof=1)) if pu.shape[0] > 1 else 0.0
            point[(m, "model")] = float(mean[m][0])
            sd[(m, "model")] = math.sqrt(float(np.mean(var[m][boot])) + between)
        p1 = pu[0][inv]
        return point, sd, np.column_stack([1.0 - p1, p1])

    def _simulate(
        self, p: NDArray[np.float64], yhat: NDArray[np.int64], ranks: NDArray[np.float64]
    ) -> dict[tuple[str, str], NDArray[np.float64]]:
        """Metrics of ``n_simulations`` label draws, draw ``d`` from calibrator ``d mod B``.

        Labels are drawn by inverse-CDF sampling of each row's class probabilities and
        counted into one confusion matrix per draw by a single ``bincount`` per batch.
        """
        n_cal, n, k = p.shape
        rng = np.random.default_rng(self.random_state)
        cum = np.cumsum(p, axis=-1)[..., :-1]
        batch = max(1, _DRAW_BUDGET // max(n * (k - 1), 1))
        parts: list[dict[tuple[str, str], NDArray[np.float64]]] = []
        for start in range(0, self.n_simulations, batch):
            which = np.arange(start, min(start + batch, self.n_simulations)) % n_cal
            u = rng.random((which.size, n), dtype=np.float32)
            y = (u[..., None] >= cum[which]).sum(axis=-1)  # class index of each row
            codes = (np.arange(which.size)[:, None] * k + y) * k + yhat[None, :]
            c = np.bincount(codes.ravel(), minlength=which.size * k * k).reshape(-1, k, k)
            positives = c.sum(axis=-1)
            auc = np.column_stack(
                [_auc((y == j) @ ranks[:, j], positives[:, j], n) for j in range(k)]
            )
            parts.append(self._pick(metrics_from_confusion(c.astype(np.float64), auc)))
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def estimate(self, data: Any) -> list[CheckResult]:
        """Estimated metrics of a window without labels, each with its interval and verdict.

        Parameters
        ----------
        data
            The window: score and prediction columns (and the features named at
            construction); a target column, if present, is ignored.

        Returns
        -------
        list of CheckResult
            One per metric (check ``estimated.<metric>``, subject ``"model"``; multiclass
            adds one per class and metric except accuracy). ``lower``/``upper`` bound the
            metric the window's labels will give; ``threshold`` is the reference value minus
            ``tolerance``; ``details`` states the assumptions, what the interval covers, the
            reference value and the share of rows out of the reference support.
        """
        self._require_fitted()
        table = read_table(data, allow_empty=True)
        n = table.num_rows
        if n < self.min_rows:
            return self._insufficient(n)
        s = self._scores(table)
        yhat = self._indices(table, self.prediction, "prediction")
        if s.shape[1] == 1:
            point, sd, p0 = self._binary(s[:, 0], yhat)
        else:
            p = self._calibrated(s)
            p0, point = p[0], self._values(p[0], yhat, s)
            boot = p[1:] if p.shape[0] > 1 else p
            draws = self._simulate(boot, yhat, self._ranks(s))
            sd = {key: draws_sd(v) for key, v in draws.items()}
        share, per_column = self.support_.outside(table)
        confusion = expected_confusion(p0, yhat, len(self.classes_)).round(6).tolist()
        out = []
        for key, value in point.items():
            details = self._details(n, self.reference_[key], self.reference_estimate_[key])
            details["calibration"] = self.calibration
            if key[1] == "model":
                details["expected_confusion_matrix"] = confusion
                details["classes"] = list(self.classes_)
            out.append(self._verdict(key, value, sd[key], details, (share, per_column)))
        return out

    def _threshold(self, reference: float) -> float:
        return reference - self.tolerance


def _auc(wins: Any, npos: Any, n: int) -> Any:
    """Mann–Whitney AUC from the rank sum of the positives (midranks, ties count one half)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (wins - npos * (npos + 1) / 2) / (npos * (n - npos))
