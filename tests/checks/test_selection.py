"""Feature-selection suggestions: noise is dropped, signal kept, deterministically."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from watchkeeper.checks import Status, feature_suggestions
from watchkeeper.exceptions import InputError


def _regression(seed: int, n: int = 1_000) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "strong": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "twin": np.zeros(n),
        }
    )
    X["twin"] = X["strong"] + 0.05 * rng.normal(size=n)  # redundant but informative
    y = 3 * X["strong"].to_numpy() + rng.normal(size=n)
    return X, y


@pytest.mark.parametrize("model", [LinearRegression(), RandomForestRegressor(30, random_state=0)])
def test_noise_is_dropped_strong_and_redundant_kept(model: object) -> None:
    X, y = _regression(0)
    with threadpool_limits(1):
        fitted = model.fit(X[:500], y[:500])  # type: ignore[attr-defined]
    before = pickle.dumps(fitted)
    s = feature_suggestions(fitted, X[500:], y[500:], random_state=0)
    assert pickle.dumps(fitted) == before  # only scored, never changed
    assert s.drop == ("noise",)
    assert set(s.keep) == {"strong", "twin"}
    by = {x.feature: x for x in s.suggestions}
    assert by["strong"].importance_lower > 0
    assert by["noise"].importance_lower <= 0  # not clearly positive
    assert by["noise"].mutual_information <= by["noise"].mutual_information_null
    assert by["twin"].mutual_information > by["twin"].mutual_information_null
    assert "drop suggested" in by["noise"].reason


def test_classifier_pipeline_with_a_categorical_feature() -> None:
    rng = np.random.default_rng(1)
    n = 1_200
    X = pd.DataFrame(
        {
            "plan": rng.choice(np.array(["free", "pro", "team"], dtype=object), n),
            "usage": rng.normal(size=n),
            "noise": rng.normal(size=n),
        }
    )
    logit = np.where(X["plan"] == "pro", 1.5, -0.5) + 1.5 * X["usage"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    model = Pipeline(
        [
            ("prep", ColumnTransformer([("plan", OneHotEncoder(), ["plan"])],
                                       remainder="passthrough")),
            ("model", LogisticRegression()),
        ]
    )  # fmt: skip
    with threadpool_limits(1):
        model.fit(X[:600], y[:600])
    s = feature_suggestions(model, X[600:], y[600:], random_state=3)
    assert s.scoring == "accuracy"
    assert s.drop == ("noise",)
    assert s.keep == ("plan", "usage")


def test_deterministic_with_a_seed_and_serializable() -> None:
    X, y = _regression(2, 600)
    with threadpool_limits(1):
        model = LinearRegression().fit(X[:300], y[:300])
    a = feature_suggestions(model, X[300:], y[300:], random_state=5)
    b = feature_suggestions(model, X[300:], y[300:], random_state=5)
    assert a == b
    json.dumps(a.to_dict())
    checks = a.to_checks()
    assert [c.subject for c in checks] == ["strong", "noise", "twin"]
    assert {c.check for c in checks} == {"selection.suggestion"}
    status = {c.subject: c.status for c in checks}
    assert status == {"strong": Status.OK, "noise": Status.WARN, "twin": Status.OK}
    assert checks[1].details["suggestion"] == "drop"
    json.dumps([c.to_dict() for c in checks])
    # numpy input: features named as the model saw them
    with threadpool_limits(1):
        plain = LinearRegression().fit(X[:300].to_numpy(), y[:300])
    s = feature_suggestions(plain, X[300:].to_numpy(), y[300:], n_repeats=3, n_null=5)
    assert [x.feature for x in s.suggestions] == ["x0", "x1", "x2"]


def test_bad_input() -> None:
    X, y = _regression(3, 200)
    with threadpool_limits(1):
        model = LinearRegression().fit(X, y)
    with pytest.raises(InputError, match="n_repeats"):
        feature_suggestions(model, X, y, n_repeats=1)
    with pytest.raises(InputError, match="one target per row"):
        feature_suggestions(model, X, y[:10])
    with pytest.raises(InputError, match="null_quantile"):
        feature_suggestions(model, X, y, null_quantile=1.0)
