"""Validation curve over the regularisation parameter, and early-stopping advice."""

from __future__ import annotations

import lightgbm
import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, SGDClassifier
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split, validation_curve
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from watchkeeper.checks import Status
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle import (
    GeneralisationConfig,
    early_stopping_check,
    validation_curve_check,
)
from watchkeeper.lifecycle._iterations import early_stopping_point
from watchkeeper.lifecycle._regularisation import regularisation_param


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (LogisticRegression(), "C"),
        (SVC(), "C"),
        (Ridge(), "alpha"),
        (SGDClassifier(), "alpha"),
        (DecisionTreeClassifier(), "max_depth"),
        (RandomForestClassifier(), "max_depth"),
        (HistGradientBoostingClassifier(), "min_samples_leaf"),
        (lightgbm.LGBMClassifier(), "min_child_samples"),
        (KNeighborsRegressor(), "n_neighbors"),
        (make_pipeline(StandardScaler(), Ridge()), "ridge__alpha"),
    ],
)
def test_main_regularisation_parameter(model: object, name: str) -> None:
    found = regularisation_param(model)
    assert found is not None
    assert found[0] == name
    assert name in model.get_params()  # type: ignore[attr-defined]


def test_no_known_parameter_means_no_curve() -> None:
    X, y = make_regression(100, 3, random_state=0)
    assert regularisation_param(LinearRegression()) is None
    assert (
        validation_curve_check(
            LinearRegression(), X, y, task="regression", metric="r2", cv=_kfold()
        )
        is None
    )


def test_unlimited_tree_on_noisy_data_gets_a_recommendation() -> None:
    X, y = make_classification(500, 8, flip_y=0.3, random_state=0)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    r = validation_curve_check(
        DecisionTreeClassifier(random_state=0), X, y, task="binary", metric="accuracy", cv=cv
    )
    assert r is not None
    assert r.status is Status.WARN
    d = r.details
    assert d["current"] is None
    assert d["recommended"] is not None
    assert d["recommended"] <= 6
    # curves agree with scikit-learn's validation_curve on the same grid
    train, test = validation_curve(
        DecisionTreeClassifier(random_state=0), X, y, param_name="max_depth",
        param_range=d["values"], cv=cv, scoring="accuracy",
    )  # fmt: skip
    np.testing.assert_allclose(d["validation_mean"], test.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(d["train_mean"], train.mean(axis=1), rtol=1e-12)
    # the recommendation is within one standard error of the best
    i_best = int(np.argmax(d["validation_mean"]))
    i_rec = d["values"].index(d["recommended"])
    assert d["validation_mean"][i_rec] >= d["validation_mean"][i_best] - d["validation_se"][i_best]


def test_well_set_parameter_is_kept() -> None:
    X, y = make_classification(400, 5, random_state=1)
    r = validation_curve_check(
        make_pipeline(StandardScaler(), LogisticRegression()), X, y, task="binary",
        metric="roc_auc", cv=StratifiedKFold(3, shuffle=True, random_state=0),
    )  # fmt: skip
    assert r is not None
    assert r.status is Status.OK
    assert r.details["recommended"] == 1.0
    assert r.details["values"] == pytest.approx([0.01, 0.1, 1.0, 10.0, 100.0])


def test_configured_parameter_and_range() -> None:
    X, y = make_regression(200, 4, noise=5, random_state=2)
    cfg = GeneralisationConfig(param="n_neighbors", param_range=(2, 8, 32))
    r = validation_curve_check(
        KNeighborsRegressor(), X, y, task="regression", metric="mae",
        cv=_kfold(), config=cfg,
    )  # fmt: skip
    assert r is not None
    assert r.details["values"] == [2, 8, 32, 5]  # the current value is always tried
    with pytest.raises(InputError, match="not a parameter"):
        validation_curve_check(
            Ridge(), X, y, task="regression", metric="r2", cv=_kfold(),
            config=GeneralisationConfig(param="C"),
        )  # fmt: skip


def _kfold() -> KFold:
    return KFold(3, shuffle=True, random_state=0)


def test_early_stopping_point_replays_lightgbm() -> None:
    # Our replay of the patience rule on the full validation curve must stop where
    # LightGBM's own early_stopping callback stops.
    X, y = make_classification(800, 10, flip_y=0.1, random_state=3)
    Xt, Xv, yt, yv = train_test_split(X, y, test_size=0.25, random_state=0)
    params = {
        "n_estimators": 300,
        "learning_rate": 0.2,
        "verbose": -1,
        "random_state": 0,
        "n_jobs": 1,  # LightGBM's threads crawl on a busy shared machine
    }
    rounds = 15
    stopped = lightgbm.LGBMClassifier(**params).fit(
        Xt, yt, eval_X=(Xv,), eval_y=(yv,),
        callbacks=[lightgbm.early_stopping(rounds, verbose=False)],
    )  # fmt: skip
    record: dict[str, dict[str, list[float]]] = {}
    lightgbm.LGBMClassifier(**params).fit(
        Xt, yt, eval_X=(Xv,), eval_y=(yv,), callbacks=[lightgbm.record_evaluation(record)]
    )
    curve = np.asarray(record["valid_0"]["binary_logloss"])
    assert early_stopping_point(curve, rounds) == stopped.best_iteration_


def test_lightgbm_with_too_many_rounds_is_warned() -> None:
    X, y = make_classification(600, 10, flip_y=0.15, random_state=4)
    model = lightgbm.LGBMClassifier(n_estimators=400, learning_rate=0.3, verbose=-1, n_jobs=1)
    r = early_stopping_check(model, X, y, task="binary")
    assert r is not None
    assert r.status is Status.WARN
    d = r.details
    assert d["configured_iterations"] == 400
    assert d["best_iteration"] < 400 / 1.5
    assert d["final_loss"] > d["best_loss"]
    assert len(d["validation_loss"]) == 400
    assert f"about {d['best_iteration']} iterations" in r.reason


def test_gradient_boosting_staged_curve() -> None:
    X, y = make_regression(300, 5, noise=30, random_state=5)
    overdone = GradientBoostingRegressor(
        n_estimators=300, learning_rate=0.5, max_depth=4, random_state=0
    )
    r = early_stopping_check(overdone, X, y, task="regression")
    assert r is not None
    assert r.status is Status.WARN
    gentle = GradientBoostingRegressor(n_estimators=30, learning_rate=0.05, random_state=0)
    r = early_stopping_check(gentle, X, y, task="regression")
    assert r is not None
    assert r.status is Status.OK
    assert "more iterations may help" in r.reason


def test_hist_gradient_boosting_and_sgd() -> None:
    X, y = make_classification(600, 8, flip_y=0.2, random_state=6)
    r = early_stopping_check(
        HistGradientBoostingClassifier(max_iter=60, learning_rate=0.5, random_state=0),
        X, y, task="binary",
    )  # fmt: skip
    assert r is not None
    assert r.details["iterations_run"] == 60  # the whole curve was watched
    assert 1 <= r.details["best_iteration"] <= 60
    r = early_stopping_check(SGDClassifier(random_state=0), X, y, task="binary")
    assert r is not None
    assert r.details["validation_metric"] == "score"
    assert r.details["iterations_run"] < r.details["configured_iterations"]


def test_pipelines_are_unwrapped_and_others_skipped() -> None:
    X, y = make_classification(400, 6, random_state=7)
    pipe = make_pipeline(
        StandardScaler(), lightgbm.LGBMClassifier(n_estimators=50, verbose=-1, n_jobs=1)
    )
    r = early_stopping_check(pipe, X, y, task="binary")
    assert r is not None
    assert r.subject == "LGBMClassifier"
    assert early_stopping_check(LogisticRegression(), X, y, task="binary") is None
