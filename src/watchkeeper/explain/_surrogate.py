"""Model-agnostic global views: permutation importance and an interpretable surrogate.

:func:`permutation_importance` wraps scikit-learn's: how much the score drops when one
feature's values are shuffled, repeated ``n_repeats`` times (an interval from the repeats).
Without labels, the target is the model's own output (its predictions), so the score measures
how much of the model's behaviour each feature carries.

:func:`surrogate` fits a shallow decision tree (or a sparse linear model) to the model's
outputs and reports how faithfully it mimics the model on held-out rows (R² for regressors,
accuracy for classifiers' labels) with its rules as text. Non-numeric features are one-hot
encoded so the rules read ``plan=pro <= 0.5`` rather than codes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy.stats import t as student_t

from watchkeeper.exceptions import InputError
from watchkeeper.explain._frame import is_numeric_column, model_frame, sample_rows
from watchkeeper.explain._global import ranked
from watchkeeper.explain._model import ModelView

__all__ = ["PermutationImportance", "Surrogate", "permutation_importance", "surrogate"]


def _model_input(view: ModelView, frame: Any) -> Any:
    """A frame for models fitted on named columns, else a float matrix."""
    if getattr(view.native, "feature_names_in_", None) is not None:
        return frame
    try:
        return frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        return frame


def _own_target(view: ModelView, X: Any) -> NDArray[Any]:
    """The model's own output as a target: labels of a classifier, numbers otherwise."""
    return np.asarray(view.model.predict(X))


@dataclass(frozen=True, eq=False)
class PermutationImportance:
    """Score drop per shuffled feature, with the spread over repeats.

    ``lower``/``upper`` is the t-interval (95%) of the mean drop over the repeats.
    """

    features: tuple[str, ...]
    importance: NDArray[np.float64]
    std: NDArray[np.float64]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    n_repeats: int
    scoring: str
    baseline_score: float
    target: str

    def ranking(self) -> list[str]:
        """Features from largest to smallest drop."""
        return ranked(self.features, self.importance)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form."""
        return {
            "features": list(self.features),
            "importance": self.importance.tolist(),
            "std": self.std.tolist(),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "n_repeats": self.n_repeats,
            "scoring": self.scoring,
            "baseline_score": self.baseline_score,
            "target": self.target,
        }


def permutation_importance(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    n_repeats: int = 5,
    scoring: str | None = None,
    max_rows: int | None = 2000,
    random_state: int = 0,
) -> PermutationImportance:
    """Permutation importance (scikit-learn) with a 95% interval from the repeats.

    Parameters
    ----------
    model
        A fitted model with ``predict``.
    X, y
        Rows and their labels; without ``y`` the target is the model's own predictions.
    n_repeats
        Shuffles per feature (at least 2 for an interval).
    scoring
        A scikit-learn scorer name (default ``"r2"`` for regressors, ``"accuracy"`` for
        classifiers).
    max_rows
        Score a seeded sample of at most this many rows (``None``: all).
    random_state
        Seed of the row sample and the shuffles.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> model = LinearRegression().fit(X, 3 * X[:, 0] + X[:, 1])
    >>> pi = permutation_importance(model, X)
    >>> pi.ranking(), pi.target
    (['x0', 'x1', 'x2'], 'model predictions')
    """
    from sklearn.inspection import permutation_importance as sk_permutation_importance
    from threadpoolctl import threadpool_limits

    if isinstance(n_repeats, bool) or n_repeats < 2:
        raise InputError(f"n_repeats must be at least 2 for an interval, got {n_repeats}")
    view = ModelView.of(model)
    frame, keep = sample_rows(model_frame(view.native, X), max_rows, random_state)
    if y is not None and keep is not None:
        y = np.asarray(y)[keep]
    data = _model_input(view, frame)
    target = "labels" if y is not None else "model predictions"
    truth = np.asarray(y) if y is not None else _own_target(view, data)
    scoring = scoring or ("accuracy" if view.is_classifier else "r2")
    estimator = view.native if hasattr(view.native, "fit") else _Scorable(view.model)
    with threadpool_limits(1):
        found = sk_permutation_importance(
            estimator,
            data,
            truth,
            scoring=scoring,
            n_repeats=n_repeats,
            random_state=random_state,
        )
        from sklearn.metrics import get_scorer

        baseline = float(get_scorer(scoring)(estimator, data, truth))
    mean = np.asarray(found.importances_mean, dtype=np.float64)
    std = np.asarray(found.importances_std, dtype=np.float64) * math.sqrt(
        n_repeats / (n_repeats - 1)
    )  # scikit-learn's std is the population one
    half = float(student_t.ppf(0.975, n_repeats - 1)) * std / math.sqrt(n_repeats)
    return PermutationImportance(
        features=tuple(str(c) for c in frame.columns),
        importance=mean,
        std=std,
        lower=mean - half,
        upper=mean + half,
        n_repeats=n_repeats,
        scoring=scoring,
        baseline_score=baseline,
        target=target,
    )


class _Scorable:
    """A predict-only model (e.g. ONNX from the registry) seen as an estimator."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, X: Any, y: Any) -> _Scorable:  # never called; scorers check it exists
        return self

    def predict(self, X: Any) -> Any:
        return self.model.predict(X)


@dataclass(frozen=True, eq=False)
class Surrogate:
    """An interpretable model mimicking the explained one, with its fidelity."""

    kind: str
    fidelity: float
    fidelity_metric: str
    rules: str
    features: tuple[str, ...]
    importance: Mapping[str, float]
    n_train: int
    n_test: int
    params: Mapping[str, Any] = field(default_factory=dict)
    estimator: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (without the fitted estimator)."""
        return {
            "kind": self.kind,
            "fidelity": self.fidelity,
            "fidelity_metric": self.fidelity_metric,
            "rules": self.rules,
            "features": list(self.features),
            "importance": dict(self.importance),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "params": dict(self.params),
        }


def _one_hot(frame: Any, max_levels: int = 20) -> Any:
    """Numbers as they are; other columns one-hot (``col=value``), rare levels pooled."""
    import pandas as pd

    parts = []
    for c in frame.columns:
        s = frame[c]
        if is_numeric_column(s):
            parts.append(s.astype(float).rename(c))
        else:
            text = s.astype(object).where(s.notna(), "<missing>").astype(str)
            top = text.value_counts().index[:max_levels]
            for level in sorted(top):
                parts.append((text == level).astype(float).rename(f"{c}={level}"))
    return pd.concat(parts, axis=1)


def surrogate(
    model: Any,
    X: Any,
    *,
    kind: Literal["tree", "linear"] = "tree",
    max_depth: int = 3,
    max_features: int = 5,
    test_size: float = 0.25,
    max_rows: int | None = 20_000,
    random_state: int = 0,
) -> Surrogate:
    """A shallow decision tree (or sparse linear model) fitted to the model's outputs.

    Parameters
    ----------
    model
        A fitted model with ``predict``.
    X
        Rows to mimic the model on; a seeded ``test_size`` share is held out to measure
        fidelity.
    kind
        ``"tree"``: a decision tree of depth at most ``max_depth`` (rules as text).
        ``"linear"``: a Lasso path model (regressors) or L1 logistic regression
        (classifiers) on standardised features, keeping at most ``max_features`` features.
    random_state
        Seed of the split and of the models.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(size=(600, 3))
    >>> model = RandomForestRegressor(n_estimators=20, random_state=0)
    >>> model = model.fit(X, np.where(X[:, 1] > 0.5, 10.0, 0.0))
    >>> s = surrogate(model, X, max_depth=2)
    >>> s.fidelity > 0.95, s.fidelity_metric, "x1 <= 0.5" in s.rules
    (True, 'r2', True)
    """
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    if kind not in ("tree", "linear"):
        raise InputError(f"kind must be 'tree' or 'linear', got {kind!r}")
    if max_depth < 1:
        raise InputError(f"max_depth must be at least 1, got {max_depth}")
    view = ModelView.of(model)
    frame, _ = sample_rows(model_frame(view.native, X), max_rows, random_state)
    if len(frame) < 8:
        raise InputError(f"a surrogate needs at least 8 rows, got {len(frame)}")
    target = _own_target(view, _model_input(view, frame))
    classify = view.is_classifier or not np.issubdtype(target.dtype, np.number)
    encoded = _one_hot(frame)
    stratify = target if classify and np.unique(target).size > 1 else None
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            encoded, target, test_size=test_size, random_state=random_state, stratify=stratify
        )
    except ValueError:  # a class too rare to stratify
        X_train, X_test, y_train, y_test = train_test_split(
            encoded, target, test_size=test_size, random_state=random_state
        )
    with threadpool_limits(1):
        if kind == "tree":
            fitted, rules, importance = _tree(X_train, y_train, classify, max_depth, random_state)
        else:
            fitted, rules, importance = _linear(
                X_train, y_train, classify, max_features, random_state
            )
        predicted = fitted.predict(X_test)
    if classify:
        fidelity, metric = float(np.mean(predicted == y_test)), "accuracy"
    else:
        from sklearn.metrics import r2_score

        fidelity, metric = float(r2_score(y_test, predicted)), "r2"
    return Surrogate(
        kind=kind,
        fidelity=fidelity,
        fidelity_metric=metric,
        rules=rules,
        features=tuple(str(c) for c in frame.columns),
        importance=importance,
        n_train=len(X_train),
        n_test=len(X_test),
        params={"max_depth": max_depth} if kind == "tree" else {"max_features": max_features},
        estimator=fitted,
    )


def _tree(
    X: Any, y: NDArray[Any], classify: bool, max_depth: int, random_state: int
) -> tuple[Any, str, dict[str, float]]:
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, export_text

    cls = DecisionTreeClassifier if classify else DecisionTreeRegressor
    tree = cls(max_depth=max_depth, random_state=random_state).fit(X, y)
    names = [str(c) for c in X.columns]
    rules = export_text(tree, feature_names=names, decimals=3)
    importance = {
        n: float(v) for n, v in zip(names, tree.feature_importances_, strict=True) if v > 0
    }
    return tree, rules, dict(sorted(importance.items(), key=lambda kv: -kv[1]))


def _linear(
    X: Any, y: NDArray[Any], classify: bool, max_features: int, random_state: int
) -> tuple[Any, str, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression, lars_path
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names = [str(c) for c in X.columns]
    scaler = StandardScaler().fit(X)
    Z = scaler.transform(X)
    if classify:
        # The strongest L1 penalty that keeps at most max_features features.
        best = None
        for C in np.logspace(-3, 2, 16):
            model = LogisticRegression(
                C=C, solver="liblinear", random_state=random_state, **_l1()
            ).fit(Z, y)
            if best is not None and np.count_nonzero(model.coef_.any(axis=0)) > max_features:
                break
            best = model
        assert best is not None
        coef = np.abs(best.coef_).max(axis=0)
        fitted: Any = make_pipeline(scaler, best)
        shown = best.coef_[-1]
        intercept = float(best.intercept_[-1])
        what = f"log-odds of {best.classes_[-1]!r}"
    else:
        from sklearn.linear_model import LinearRegression

        target = np.asarray(y, dtype=np.float64)
        _, active, _ = lars_path(Z, target, method="lasso", max_iter=max_features)
        keep = sorted(int(i) for i in active[:max_features])
        shown = np.zeros(len(names))
        intercept = float(target.mean())
        if keep:
            reg = LinearRegression().fit(Z[:, keep], target)
            shown[keep] = reg.coef_
            intercept = float(reg.intercept_)
        fitted = _SparseLinear(scaler, shown, intercept)
        coef, what = np.abs(shown), "prediction"
    terms = [
        f"{'+' if c >= 0 else '-'} {abs(c):.4g} * z({n})"
        for n, c in sorted(zip(names, shown, strict=True), key=lambda t: -abs(t[1]))
        if c != 0
    ]
    rules = f"{what} = {intercept:.4g} " + " ".join(terms) + "\n(z: standardised feature)"
    total = float(coef.sum()) or 1.0
    importance = {n: float(c) / total for n, c in zip(names, coef, strict=True) if c > 0}
    return fitted, rules, dict(sorted(importance.items(), key=lambda kv: -kv[1]))


def _l1() -> dict[str, Any]:
    """The L1 penalty in the spelling of the installed scikit-learn (1.8 renamed it)."""
    import sklearn

    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    return {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}


class _SparseLinear:
    """``intercept + coef @ standardised(x)``: the fitted sparse linear surrogate."""

    def __init__(self, scaler: Any, coef: NDArray[np.float64], intercept: float) -> None:
        self.scaler = scaler
        self.coef = coef
        self.intercept = intercept

    def predict(self, X: Any) -> NDArray[np.float64]:
        return np.asarray(self.scaler.transform(X) @ self.coef + self.intercept)
