"""Permutation importance and global surrogates."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from threadpoolctl import threadpool_limits

from watchkeeper.exceptions import InputError
from watchkeeper.explain import permutation_importance, surrogate


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _frame(n: int = 800, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.uniform(size=(n, 5)), columns=[f"f{i}" for i in range(5)])


def test_a_depth_two_regression_teacher_is_recovered_with_its_features():
    X = _frame()
    y = np.where(X["f1"] > 0.5, 10.0, 0.0) + np.where(X["f3"] > 0.3, 5.0, 0.0)
    teacher = DecisionTreeRegressor(max_depth=2, random_state=0).fit(X, y)
    s = surrogate(teacher, X)
    assert s.fidelity_metric == "r2"
    assert s.fidelity > 0.99
    assert set(s.importance) == {"f1", "f3"}
    assert "f1 <= 0.5" in s.rules
    assert "f3 <=" in s.rules
    for other in ("f0", "f2", "f4"):
        assert other not in s.rules
    assert s.n_test == 200
    assert json.loads(json.dumps(s.to_dict()))["fidelity"] == s.fidelity


def test_a_depth_two_classification_teacher_is_recovered():
    X = _frame(seed=1)
    labels = np.where((X["f0"] > 0.4) & (X["f4"] < 0.7), "churn", "stay")
    teacher = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, labels)
    s = surrogate(teacher, X, max_depth=2)
    assert s.fidelity_metric == "accuracy"
    assert s.fidelity > 0.99
    assert set(s.importance) == {"f0", "f4"}


def test_a_sparse_linear_surrogate_keeps_the_strongest_features():
    X = _frame(seed=2)
    model = LinearRegression().fit(X, 4 * X["f2"] - 2 * X["f0"] + 0.01 * X["f1"])
    s = surrogate(model, X, kind="linear", max_features=2)
    assert s.kind == "linear"
    assert s.fidelity > 0.99
    assert list(s.importance) == ["f2", "f0"]
    assert s.rules.startswith("prediction = ")
    labels = surrogate(DecisionTreeClassifier(max_depth=1).fit(X, X["f3"] > 0.5), X, kind="linear")
    assert labels.fidelity > 0.9
    assert next(iter(labels.importance)) == "f3"


def test_surrogate_rules_name_the_categories_of_text_columns():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"plan": rng.choice(["basic", "pro"], 600), "x": rng.uniform(size=600)})
    y = np.where(frame["plan"] == "pro", 1, 0)
    encode = ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough")
    model = Pipeline([("encode", encode), ("model", DecisionTreeRegressor(max_depth=2))])
    model.fit(frame, y)
    s = surrogate(model, frame, max_depth=1)
    assert "plan=" in s.rules
    assert s.fidelity > 0.99


def test_permutation_importance_has_an_interval_and_defaults_to_the_model_output():
    X = _frame(n=400, seed=4)
    model = LinearRegression().fit(X, 3 * X["f0"] + X["f1"])
    pi = permutation_importance(model, X, n_repeats=4)
    assert pi.target == "model predictions"
    assert pi.scoring == "r2"
    assert pi.baseline_score == pytest.approx(1.0)
    assert pi.ranking()[:2] == ["f0", "f1"]
    assert np.all(pi.lower <= pi.importance)
    assert np.all(pi.importance <= pi.upper)
    assert pi.upper[2] < pi.lower[1]  # an unused feature is below the used ones
    with_labels = permutation_importance(model, X, 3 * X["f0"], n_repeats=3)
    assert with_labels.target == "labels"
    assert json.dumps(pi.to_dict())


def test_permutation_importance_of_a_classifier_pipeline_with_text():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"plan": rng.choice(["a", "b", "c"], 300), "x": rng.normal(size=300)})
    labels = np.where((frame["plan"] == "a") | (frame["x"] > 1), "yes", "no")
    encode = ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough")
    model = Pipeline(
        [("encode", encode), ("model", HistGradientBoostingClassifier(max_iter=20))]
    ).fit(frame, labels)
    pi = permutation_importance(model, frame, n_repeats=3)
    assert pi.scoring == "accuracy"
    assert pi.ranking()[0] == "plan"


def test_bad_arguments():
    X = _frame(n=50)
    model = LinearRegression().fit(X, X["f0"])
    with pytest.raises(InputError, match="at least 2"):
        permutation_importance(model, X, n_repeats=1)
    with pytest.raises(InputError, match="'tree' or 'linear'"):
        surrogate(model, X, kind="forest")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="at least 8 rows"):
        surrogate(model, X.iloc[:5])
