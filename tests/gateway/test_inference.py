"""Served predictions equal the model's own: labels read off the probabilities only where
``predict`` is the most probable class, and the model's ``predict`` everywhere else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from watchkeeper.gateway._models import ServedVersion, argmax_labels
from watchkeeper.registry import Registry

MODELS = {
    "hgb": lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
    "forest": lambda: RandomForestClassifier(n_estimators=15, random_state=0),
    "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
    "calibrated": lambda: CalibratedClassifierCV(LogisticRegression(), cv=3),
    "threshold": lambda: FixedThresholdClassifier(LogisticRegression(), threshold=0.8),
}
CASES = [(kind, k) for kind in sorted(MODELS) for k in (2, 3) if (kind, k) != ("threshold", 3)]


def _data(seed: int, n_classes: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    score = X[:, 0] + 0.7 * X[:, 1] + rng.normal(scale=0.8, size=n)
    edges = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
    return X, np.array(["c0", "c1", "c2"])[np.searchsorted(edges, score)]


@pytest.mark.parametrize(("kind", "n_classes"), CASES)
def test_served_labels_and_scores_equal_the_models(
    kind: str, n_classes: int, tmp_path: Path
) -> None:
    X, y = _data(0, n_classes)
    with threadpool_limits(1):
        model = MODELS[kind]().fit(X, y)
    with Registry(root=tmp_path) as registry:
        registry.register("m", model, actor="t", trusted=True)
        served = ServedVersion(registry.load_model("m", 1))
    # Points around the decision boundary included: ties are where shortcuts go wrong.
    test, _ = _data(1, n_classes, n=2_000)
    labels, scores = served.infer(test)
    assert labels == model.predict(test).tolist()
    assert scores is not None
    proba = np.array([[row[str(c)] for c in model.classes_] for row in scores])
    np.testing.assert_array_equal(proba, model.predict_proba(test))


def test_the_shortcut_is_only_taken_for_argmax_models() -> None:
    X, y = _data(0, 2)
    with threadpool_limits(1):
        assert argmax_labels(MODELS["hgb"]().fit(X, y)) is not None
    assert argmax_labels(MODELS["logistic"]().fit(X, y)) is not None
    assert argmax_labels(MODELS["threshold"]().fit(X, y)) is None
    assert argmax_labels(KNeighborsClassifier().fit(X, y)) is None


class _Tied:
    """A stand-in model whose probabilities tie exactly on every row."""

    classes_ = np.array(["a", "b"])

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.full((len(X), 2), 0.5)

    def predict(self, X: Any) -> np.ndarray:
        return np.array(["b"] * len(X))


def test_near_ties_defer_to_the_models_predict() -> None:
    class Loaded:
        def __init__(self) -> None:
            self.native = _Tied()
            self.classes = ("a", "b")
            self.version = type("V", (), {"schema": None, "name": "m", "version": 1})()

        def predict(self, X: Any) -> np.ndarray:
            return self.native.predict(X)

        def predict_proba(self, X: Any) -> np.ndarray:
            return self.native.predict_proba(X)

    served = ServedVersion(Loaded())  # type: ignore[arg-type]
    served._labels = np.array(["a", "b"])  # force the shortcut on: ties must still defer
    labels, _ = served.infer(np.zeros((3, 1)))
    assert labels == ["b", "b", "b"]
