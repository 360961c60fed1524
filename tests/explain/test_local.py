"""Local explanations: additivity, known structure, pipelines, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from watchkeeper.exceptions import InputError, NotFittedError
from watchkeeper.explain import Explainer, Explanation, explain

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:shap")


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


def _data(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = 2.0 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 0] + rng.normal(scale=0.1, size=n)
    return X, y


def _truth(model, e: Explanation, X, output: str, k: int = 1) -> np.ndarray:
    if output == "probability":
        return model.predict_proba(X)[:, k]
    if output == "margin":
        return model.decision_function(X)
    return model.predict(X)


REGRESSORS = [
    ("tree", RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0)),
    ("tree", HistGradientBoostingRegressor(max_iter=20, random_state=0)),
    ("linear", LinearRegression()),
    ("permutation", RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0)),
]


@pytest.mark.parametrize(("method", "model"), REGRESSORS, ids=lambda v: type(v).__name__)
def test_regression_attributions_add_up_to_the_prediction(method, model):
    X, y = _data()
    model.fit(X, y)
    rows = X[:8] if method == "permutation" else X[:20]
    e = explain(model, rows, background=X[:50], method=method)
    assert e.method == method
    assert e.output == "prediction"
    np.testing.assert_allclose(e.predictions, model.predict(rows), atol=1e-12)
    gap = e.values.sum(axis=1) + e.base_values - model.predict(rows)
    assert np.max(np.abs(gap)) < 1e-6
    assert e.additivity_error < 1e-6


CLASSIFIERS = [
    # (method, output asked, model, output used)
    ("tree", "auto", RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
     "probability"),
    ("tree", "probability", GradientBoostingClassifier(n_estimators=10, random_state=0),
     "probability"),
    ("tree", "auto", HistGradientBoostingClassifier(max_iter=10, random_state=0), "margin"),
    ("linear", "auto", LogisticRegression(), "margin"),
    ("permutation", "auto", LogisticRegression(), "probability"),
    ("permutation", "auto", HistGradientBoostingClassifier(max_iter=10, random_state=0),
     "probability"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "asked", "model", "used"), CLASSIFIERS, ids=lambda v: str(v)[:30]
)
def test_classifier_attributions_add_up_to_the_explained_output(method, asked, model, used):
    X, y = _data()
    labels = np.where(y > 0, "yes", "no")
    model.fit(X, labels)
    e = explain(model, X[:15], background=X, method=method, output=asked)
    assert (e.method, e.output, e.target_class) == (method, used, "yes")
    truth = _truth(model, e, X[:15], used)
    np.testing.assert_allclose(e.predictions, truth, atol=1e-12)
    assert np.max(np.abs(e.values.sum(axis=1) + e.base_values - truth)) < 1e-6


def test_a_chosen_class_is_explained():
    X, y = _data()
    model = RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0)
    model.fit(X, np.digitize(y, [-1, 1]))  # three classes 0, 1, 2
    e = explain(model, X[:10], background=X, target_class=0)
    assert e.target_class == "0"
    np.testing.assert_allclose(e.predictions, model.predict_proba(X[:10])[:, 0], atol=1e-12)
    assert e.additivity_error < 1e-6
    with pytest.raises(InputError, match="not a class"):
        explain(model, X[:10], target_class="seven")


def test_the_hgb_probability_falls_back_to_permutation():
    X, y = _data(n=200)
    model = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, y > 0)
    e = explain(model, X[:5], background=X, output="probability")
    assert (e.method, e.output) == ("permutation", "probability")
    assert e.additivity_error < 1e-6
    with pytest.raises(InputError, match="cannot explain the probability"):
        explain(model, X[:5], method="tree", output="probability")


def test_linear_attributions_are_coef_times_distance_from_the_background_mean():
    rng = np.random.default_rng(1)
    X = rng.normal(loc=[1.0, -2.0, 0.0], scale=[1.0, 3.0, 0.5], size=(500, 3))
    model = LinearRegression().fit(X, X @ [1.5, -0.7, 4.0] + 2.0)
    explainer = Explainer(model, max_background=200).fit(X)
    e = explainer.explain(X[:50])
    mean = explainer.background_.to_numpy().mean(axis=0)
    np.testing.assert_allclose(e.values, model.coef_ * (X[:50] - mean), atol=1e-8)
    assert e.expected_value == pytest.approx(model.predict(explainer.background_.to_numpy()).mean())
    # The model-agnostic explainer finds the same values on an additive model.
    p = Explainer(model, method="permutation", max_background=200).fit(X).explain(X[:10])
    np.testing.assert_allclose(p.values, model.coef_ * (X[:10] - mean), atol=1e-8)


def test_a_scaled_pipeline_is_explained_in_its_input_features():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(400, 2)) * [10.0, 0.1], columns=["big", "small"])
    model = make_pipeline(StandardScaler(), LinearRegression())
    model.fit(frame, 0.3 * frame["big"] + 20.0 * frame["small"])
    explainer = Explainer(model, max_background=400).fit(frame)
    e = explainer.explain(frame.iloc[:20])
    assert e.method == "linear"
    assert e.feature_names == ("big", "small")
    mean = explainer.background_.to_numpy().mean(axis=0)
    np.testing.assert_allclose(e.values, [0.3, 20.0] * (frame.iloc[:20].to_numpy() - mean),
                               atol=1e-8)  # fmt: skip


def _mixed_frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "plan": rng.choice(["basic", "pro", "team"], size=n),
            "age": rng.integers(18, 80, size=n),
            "usage": rng.gamma(2.0, size=n),
        }
    )
    y = (frame["plan"] == "pro") * 3.0 + frame["usage"] + rng.normal(scale=0.1, size=n)
    return frame, y.to_numpy()


def _encoded(model) -> Pipeline:
    encode = ColumnTransformer(
        [("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"])], remainder="passthrough"
    )
    return Pipeline([("encode", encode), ("model", model)])


def test_a_one_hot_pipeline_gets_tree_shap_per_input_column():
    frame, y = _mixed_frame()
    model = _encoded(HistGradientBoostingRegressor(max_iter=30, random_state=0)).fit(frame, y)
    e = explain(model, frame.iloc[:30], background=frame)
    assert e.method == "tree"
    assert e.feature_names == ("plan", "age", "usage")
    assert e.details["transformed_features"] == 5
    assert e.additivity_error < 1e-6
    assert e.data[0, 0] == frame.iloc[0]["plan"]
    # the same quantity through the model-agnostic explainer on the raw (string) column
    p = explain(model, frame.iloc[:10], background=frame, method="permutation")
    assert p.method == "permutation"
    assert p.additivity_error < 1e-6
    assert set(np.argsort(-p.mean_abs())[:2]) == {0, 2}  # plan and usage matter, age not


def test_an_untraceable_pipeline_uses_the_permutation_explainer():
    X, y = _data(n=200)
    model = make_pipeline(PolynomialFeatures(2), LinearRegression()).fit(X, y)
    e = explain(model, X[:5], background=X)
    assert e.method == "permutation"
    assert e.additivity_error < 1e-6
    with pytest.raises(InputError, match="method='linear' needs a linear model"):
        explain(model, X[:5], method="linear")


def test_a_model_without_predict_proba_is_explained_through_predict():
    X, y = _data(n=200)
    model = SVC().fit(X, (y > 0).astype(int))
    e = explain(model, X[:5], background=X[:50])
    assert (e.method, e.output) == ("permutation", "prediction")
    np.testing.assert_allclose(e.predictions, model.predict(X[:5]))
    assert e.additivity_error < 1e-6
    with pytest.raises(InputError, match="has no predict_proba"):
        explain(model, X[:5], output="probability")


def test_text_labels_without_predict_proba_give_a_clear_error():
    X, y = _data(n=100)
    model = SVC().fit(X, np.where(y > 0, "yes", "no"))
    with pytest.raises(InputError, match="non-numeric values"):
        explain(model, X[:3], background=X[:20])


def test_text_columns_for_a_numeric_model_give_a_clear_error():
    X, y = _data(n=100)
    model = LinearRegression().fit(X[:, :2], y)
    frame = pd.DataFrame({"a": ["x"] * 100, "b": X[:, 1]})
    with pytest.raises(InputError, match="not numeric"):
        explain(model, frame)


def test_bad_arguments_and_order_of_calls():
    X, y = _data(n=100)
    model = LinearRegression().fit(X, y)
    with pytest.raises(NotFittedError, match="call fit"):
        Explainer(model).explain(X)
    with pytest.raises(InputError, match="unknown method"):
        Explainer(model, method="magic").fit(X)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no predict method"):
        explain(object(), X)
    with pytest.raises(InputError, match="2-D"):
        explain(model, X[0])
    with pytest.raises(InputError, match="4 features"):
        Explainer(model).fit(pd.DataFrame(X)).explain(X[:, :3])


def test_lime_is_an_optional_method():
    X, y = _data(n=200)
    model = LinearRegression().fit(X, y)
    e = explain(model, X[:3], background=X, method="lime")
    assert e.method == "lime"
    assert e.details["algorithm"] == "LIME"
    assert int(np.argmax(e.mean_abs())) == 0
    again = explain(model, X[:3], background=X, method="lime")
    np.testing.assert_array_equal(e.values, again.values)  # seeded


def test_explanations_are_deterministic_and_round_trip_through_json():
    frame, y = _mixed_frame(n=200)
    model = _encoded(RandomForestRegressor(n_estimators=5, random_state=0)).fit(frame, y)
    a = explain(model, frame.iloc[:5], method="permutation", random_state=3)
    b = explain(model, frame.iloc[:5], method="permutation", random_state=3)
    np.testing.assert_array_equal(a.values, b.values)
    back = Explanation.from_dict(json.loads(json.dumps(a.to_dict())))
    np.testing.assert_array_equal(back.values, a.values)
    assert back.contributions(0) == a.contributions(0)
    assert back.output_label == a.output_label == "prediction"
    assert not a.values.flags.writeable
