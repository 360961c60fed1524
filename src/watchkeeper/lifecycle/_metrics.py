"""The metrics a gate can judge a model by, and the predictions they are computed from.

A metric is known under one name everywhere in the gate: in the config, in cross-validation
(through a scikit-learn scorer), on the holdout and in the paired comparison. Metrics that are
a mean over rows also carry their per-row form, which makes the paired bootstrap cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sklearn import metrics as skm

from watchkeeper.exceptions import InputError
from watchkeeper.stats import f1_from_counts, macro_f1, roc_auc

__all__ = ["Metric", "Predictions", "available_metrics", "default_metrics", "get_metric", "predict"]

Task = Literal["binary", "multiclass", "regression"]
FloatArray = NDArray[np.float64]
_EPS = 1e-15


@dataclass(frozen=True, slots=True)
class Predictions:
    """What a model said about some rows, with the truth.

    Parameters
    ----------
    y
        True targets.
    label
        Predicted labels (classifiers) or values (regressors).
    proba
        Class probabilities, columns ordered as ``classes`` (classifiers with
        ``predict_proba``).
    classes
        Class labels of a classifier.

    Examples
    --------
    >>> p = Predictions(y=np.array([0, 1]), label=np.array([0, 0]))
    >>> p.take(np.array([1, 1])).y.tolist()
    [1, 1]
    """

    y: NDArray[Any]
    label: NDArray[Any]
    proba: FloatArray | None = None
    classes: NDArray[Any] | None = None

    def take(self, idx: NDArray[np.intp]) -> Predictions:
        """The same predictions restricted (or resampled) to rows ``idx``."""
        return Predictions(
            y=self.y[idx],
            label=self.label[idx],
            proba=None if self.proba is None else self.proba[idx],
            classes=self.classes,
        )

    def y_index(self) -> NDArray[np.intp]:
        """Column of ``proba`` holding each row's true class."""
        if self.classes is None:
            raise InputError("class probabilities need the classifier's classes_")
        idx = np.searchsorted(self.classes, self.y)
        idx = np.clip(idx, 0, len(self.classes) - 1)
        if not np.all(self.classes[idx] == self.y):
            raise InputError(
                "the holdout holds classes the model never saw; train on all classes or "
                "drop those rows"
            )
        return idx


def predict(model: Any, X: Any, y: NDArray[Any], task: Task) -> Predictions:
    """Predict ``X`` with ``model`` into a :class:`Predictions`.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> p = predict(LogisticRegression().fit(X, y), X, y, "binary")
    >>> p.proba.shape
    (4, 2)
    """
    label = np.asarray(model.predict(X))
    if task == "regression":
        return Predictions(y=np.asarray(y, dtype=float), label=label.astype(float))
    proba = None
    classes = getattr(model, "classes_", None)
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=float)
    return Predictions(
        y=np.asarray(y),
        label=label,
        proba=proba,
        classes=None if classes is None else np.asarray(classes),
    )


@dataclass(frozen=True, slots=True)
class Metric:
    """A named metric.

    Parameters
    ----------
    name
        Name used in configs and reports.
    greater_is_better
        ``True`` for scores, ``False`` for losses.
    bounded
        Whether the metric lives on a fixed scale (so absolute gaps are meaningful).
    tasks
        Tasks it applies to.
    needs_proba
        Whether it needs ``predict_proba``.
    compute
        ``compute(predictions) -> float``.
    per_row
        ``per_row(predictions) -> array`` whose mean is the metric, when it is a mean.

    Examples
    --------
    >>> m = get_metric("accuracy")
    >>> m.compute(Predictions(y=np.array([1, 0, 1]), label=np.array([1, 1, 1])))
    0.666...
    """

    name: str
    greater_is_better: bool
    bounded: bool
    tasks: tuple[Task, ...]
    needs_proba: bool
    compute: Callable[[Predictions], float]
    per_row: Callable[[Predictions], FloatArray] | None = None

    @property
    def value_range(self) -> tuple[float, float]:
        """Values the metric can take (intervals are clipped to it)."""
        if self.bounded:
            return (0.0, 1.0)
        return _UNBOUNDED_RANGES.get(self.name, (-math.inf, math.inf))

    def scorer(self, task: Task, classes: Sequence[Any] | NDArray[Any] | None = None) -> Any:
        """A scikit-learn scorer (always greater-is-better, as scikit-learn requires)."""
        if self.name == "roc_auc":
            return "roc_auc" if task == "binary" else "roc_auc_ovr"
        if self.name == "log_loss":
            return "neg_log_loss"
        if self.name == "brier":
            if task == "binary" and classes is not None:
                # The built-in scorer cannot guess the positive class of string labels.
                return skm.make_scorer(
                    skm.brier_score_loss,
                    response_method="predict_proba",
                    greater_is_better=False,
                    pos_label=list(classes)[1],
                )
            return "neg_brier_score"
        if self.name == "f1":
            if task == "binary" and classes is not None:
                return skm.make_scorer(skm.f1_score, pos_label=list(classes)[1])
            return "f1_macro"
        return {
            "accuracy": "accuracy",
            "balanced_accuracy": "balanced_accuracy",
            "mse": "neg_mean_squared_error",
            "mae": "neg_mean_absolute_error",
            "r2": "r2",
        }[self.name]

    def from_scorer(self, value: FloatArray) -> FloatArray:
        """Scorer output back in the metric's own units (losses are negated by scikit-learn)."""
        return value if self.greater_is_better else -value

    def improvement(self, challenger: float, champion: float) -> float:
        """``challenger - champion`` signed so that positive means the challenger is better."""
        d = challenger - champion
        return d if self.greater_is_better else -d


def _proba(p: Predictions) -> FloatArray:
    if p.proba is None:
        raise InputError("this metric needs predict_proba; choose a label metric such as accuracy")
    return p.proba


def _accuracy_rows(p: Predictions) -> FloatArray:
    return np.asarray(p.label == p.y, dtype=float)


def _log_loss_rows(p: Predictions) -> FloatArray:
    proba = _proba(p)
    picked = proba[np.arange(len(p.y)), p.y_index()]
    return -np.log(np.clip(picked, _EPS, 1.0))


def _brier_rows(p: Predictions) -> FloatArray:
    proba = _proba(p)
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(p.y)), p.y_index()] = 1.0
    sq = np.sum((proba - onehot) ** 2, axis=1)
    # Binary Brier is the squared error of the positive-class probability: half the sum over
    # both columns (scikit-learn's convention).
    return np.asarray(sq / 2.0 if proba.shape[1] == 2 else sq, dtype=float)


def _roc_auc(p: Predictions) -> float:
    proba = _proba(p)
    if proba.shape[1] == 2:
        positive = p.classes[1] if p.classes is not None else 1
        return _defined_auc(proba[:, 1], p.y == positive)
    # one-vs-rest macro average (scikit-learn's roc_auc_score(multi_class="ovr"))
    classes = p.classes if p.classes is not None else np.arange(proba.shape[1])
    return float(np.mean([_defined_auc(proba[:, i], p.y == c) for i, c in enumerate(classes)]))


def _defined_auc(score: FloatArray, positive: NDArray[np.bool_]) -> float:
    if positive.all() or not positive.any():
        raise ValueError("Only one class present in y_true. ROC AUC score is not defined.")
    return roc_auc(score, positive)


def _f1(p: Predictions) -> float:
    if p.classes is not None and len(p.classes) == 2:
        t, s = p.y == p.classes[1], p.label == p.classes[1]
        return float(f1_from_counts(np.sum(t & s), np.sum(~t & s), np.sum(t & ~s)))
    return macro_f1(p.y, p.label)


def _mean_of(rows: Callable[[Predictions], FloatArray]) -> Callable[[Predictions], float]:
    return lambda p: float(np.mean(rows(p)))


_CLS: tuple[Task, ...] = ("binary", "multiclass")
# Losses cannot be negative; R2 cannot exceed 1.
_UNBOUNDED_RANGES: dict[str, tuple[float, float]] = {
    "mse": (0.0, math.inf),
    "mae": (0.0, math.inf),
    "log_loss": (0.0, math.inf),
    "r2": (-math.inf, 1.0),
}
_METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", True, True, _CLS, False, _mean_of(_accuracy_rows), _accuracy_rows),
        Metric(
            "balanced_accuracy",
            True,
            True,
            _CLS,
            False,
            lambda p: float(skm.balanced_accuracy_score(p.y, p.label)),
        ),
        Metric("f1", True, True, _CLS, False, _f1),
        Metric("roc_auc", True, True, _CLS, True, _roc_auc),
        Metric("log_loss", False, False, _CLS, True, _mean_of(_log_loss_rows), _log_loss_rows),
        Metric("brier", False, True, _CLS, True, _mean_of(_brier_rows), _brier_rows),
        Metric(
            "mse",
            False,
            False,
            ("regression",),
            False,
            _mean_of(lambda p: (p.y - p.label) ** 2),
            lambda p: (p.y - p.label) ** 2,
        ),
        Metric(
            "mae",
            False,
            False,
            ("regression",),
            False,
            _mean_of(lambda p: np.abs(p.y - p.label)),
            lambda p: np.abs(p.y - p.label),
        ),
        Metric(
            "r2",
            True,
            False,
            ("regression",),
            False,
            lambda p: float(skm.r2_score(p.y, p.label)),
        ),
    )
}


def available_metrics() -> list[str]:
    """Names of the metrics a gate understands.

    Examples
    --------
    >>> "roc_auc" in available_metrics()
    True
    """
    return sorted(_METRICS)


def get_metric(name: str, task: Task | None = None) -> Metric:
    """Look up a metric, checking it applies to ``task``.

    Examples
    --------
    >>> get_metric("mse").greater_is_better
    False
    """
    try:
        metric = _METRICS[name]
    except KeyError:
        raise InputError(
            f"unknown metric {name!r}; choose one of {', '.join(available_metrics())}"
        ) from None
    if task is not None and task not in metric.tasks:
        raise InputError(
            f"metric {name!r} does not apply to a {task} model; "
            f"choose one of {', '.join(n for n, m in _METRICS.items() if task in m.tasks)}"
        )
    return metric


def default_metrics(task: Task) -> tuple[str, ...]:
    """Metrics used when the config names none; the first is the primary metric.

    Examples
    --------
    >>> default_metrics("regression")
    ('r2', 'mae')
    """
    return {
        "binary": ("roc_auc", "accuracy"),
        "multiclass": ("accuracy", "log_loss"),
        "regression": ("r2", "mae"),
    }[task]
