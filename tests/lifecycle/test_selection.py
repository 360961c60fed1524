"""A suggested feature drop through the gate: noise is blessed, the strong feature fails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from watchkeeper.checks import Status, feature_suggestions
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle import GateReport, validate_feature_drop

from .conftest import fast_config

LEAN = {
    "generalisation": {"enabled": False},
    "calibration": {"enabled": False},
    "robustness": {"enabled": False},
    "serving": {"enabled": False},
}


@pytest.fixture
def data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 800
    df = pd.DataFrame(
        {
            "strong": rng.normal(size=n),
            "weak": rng.normal(size=n),
            "noise": rng.normal(size=n),
            "plan": rng.choice(np.array(["free", "pro", "team"], dtype=object), n),
        }
    )
    df["y"] = 3 * df["strong"] + 0.3 * df["weak"] + rng.normal(size=n)
    return df


def _pipeline() -> Pipeline:
    prep = ColumnTransformer(
        [("plan", OneHotEncoder(), ["plan"]), ("num", StandardScaler(), ["strong", "noise"])],
        remainder="passthrough",
    )
    return Pipeline([("prep", prep), ("model", LinearRegression())])


def _comparison(report: GateReport) -> Status:
    (result,) = [r for r in report.results if r.check == "gate.comparison"]
    return result.status


def test_dropping_noise_is_blessed_and_dropping_the_strong_feature_fails(
    data: pd.DataFrame,
) -> None:
    cfg = fast_config(**LEAN)
    noise = validate_feature_drop(_pipeline(), data, "y", drop=["noise"], config=cfg)
    assert noise.passed
    assert noise.exit_code == 0
    assert _comparison(noise) is Status.OK
    assert noise.candidate == "without noise"
    assert noise.champion == "all 4 features"
    assert noise.config.comparison.mode == "non_inferiority"
    assert any("feature drop" in n for n in noise.notes)
    assert not noise.errors

    strong = validate_feature_drop(_pipeline(), data, "y", drop=["strong"], config=cfg)
    assert not strong.passed
    assert strong.exit_code == 1
    assert _comparison(strong) is Status.ALERT


def test_the_full_gate_runs_on_the_reduced_pipeline(data: pd.DataFrame) -> None:
    """Cross-validation refits clones of the reduced model: the column step must survive."""
    cfg = fast_config(robustness={"enabled": False}, serving={"enabled": False})
    report = validate_feature_drop(_pipeline(), data, "y", drop=["plan", "noise"], config=cfg)
    assert not report.errors, [r.reason for r in report.errors]
    assert _comparison(report) is Status.OK
    assert any(r.check.startswith("gate.cv") for r in report.results)


def test_a_factory_and_a_column_selector(data: pd.DataFrame) -> None:
    numeric = data.drop(columns="plan")

    def factory(features: list[str]) -> Pipeline:
        assert "y" not in features
        return make_pipeline(StandardScaler(), LinearRegression())

    cfg = fast_config(**LEAN)
    assert validate_feature_drop(factory, numeric, "y", drop="noise", config=cfg).passed
    assert not validate_feature_drop(factory, numeric, "y", drop=["strong"], config=cfg).passed
    selected = Pipeline(
        [
            ("prep", ColumnTransformer([
                ("plan", OneHotEncoder(), make_column_selector(dtype_include=object)),
            ], remainder="passthrough")),
            ("model", LinearRegression()),
        ]
    )  # fmt: skip
    assert validate_feature_drop(selected, data, "y", drop=["plan"], config=cfg).passed


def test_suggestions_feed_the_gate_for_a_classifier() -> None:
    rng = np.random.default_rng(1)
    n = 1_000
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    df["y"] = (df["a"] + 0.5 * df["b"] + rng.normal(size=n) > 0).astype(int)
    model = LogisticRegression().fit(df[["a", "b", "c"]][:500], df["y"][:500])
    suggested = feature_suggestions(model, df[["a", "b", "c"]][500:], df["y"][500:])
    assert suggested.drop == ("c",)
    cfg = fast_config(**LEAN)
    report = validate_feature_drop(model, df, "y", drop=suggested.drop, config=cfg, margin=0.02)
    assert report.passed
    assert report.config.comparison.margin == 0.02
    assert model.coef_.shape == (1, 3)  # the given model is untouched


def test_bad_input(data: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="not features: \\['nope'\\]"):
        validate_feature_drop(_pipeline(), data, "y", drop=["nope"])
    with pytest.raises(InputError, match="it is empty"):
        validate_feature_drop(_pipeline(), data, "y", drop=[])
    with pytest.raises(InputError, match="every feature"):
        validate_feature_drop(_pipeline(), data, "y", drop=["strong", "weak", "noise", "plan"])
    positional = Pipeline(
        [("prep", ColumnTransformer([("s", StandardScaler(), [0, 1])])), ("m", LinearRegression())]
    )
    with pytest.raises(InputError, match="by position"):
        validate_feature_drop(positional, data, "y", drop=["noise"])
    with pytest.raises(InputError, match="factory"):
        validate_feature_drop(42, data, "y", drop=["noise"])
    with pytest.raises(InputError, match="not an estimator"):
        validate_feature_drop(lambda feats: "model", data, "y", drop=["noise"])
