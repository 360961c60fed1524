"""Cross-validation, overfitting gap and learning curve against scikit-learn references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from watchkeeper.checks import Status
from watchkeeper.lifecycle import (
    GeneralisationConfig,
    cross_validation_checks,
    learning_curve_check,
)
from watchkeeper.lifecycle._common import corrected_interval, make_cv, record_warnings


def test_corrected_interval_is_a_t_interval_with_inflated_variance() -> None:
    v = np.array([0.81, 0.79, 0.84, 0.80, 0.78])
    k, ratio = len(v), 1 / 4
    mean, se, lo, hi = corrected_interval(v, ratio, 0.9)
    assert mean == pytest.approx(v.mean())
    want_se = np.sqrt((1 / k + ratio) * v.var(ddof=1))
    assert se == pytest.approx(want_se)
    assert (lo, hi) == pytest.approx(sps.t.interval(0.9, k - 1, loc=v.mean(), scale=want_se))
    # wider than the naive interval that treats folds as independent
    naive = sps.t.interval(0.9, k - 1, loc=v.mean(), scale=sps.sem(v))
    assert lo < naive[0]
    assert hi > naive[1]
    assert np.isnan(corrected_interval(np.array([0.8]), 0.25, 0.95)[1])


def test_fold_scores_equal_cross_val_score() -> None:
    X, y = make_classification(300, 5, random_state=0)
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    res = cross_validation_checks(
        LogisticRegression(), X, y, task="binary", metrics=("roc_auc", "log_loss"), cv=cv
    )
    auc, loss, gap = res
    want_auc = cross_val_score(LogisticRegression(), X, y, cv=cv, scoring="roc_auc")
    want_loss = -cross_val_score(LogisticRegression(), X, y, cv=cv, scoring="neg_log_loss")
    np.testing.assert_allclose(auc.details["folds"], want_auc, rtol=1e-12)
    np.testing.assert_allclose(loss.details["folds"], want_loss, rtol=1e-12)
    assert auc.value == pytest.approx(want_auc.mean())
    assert loss.value == pytest.approx(want_loss.mean())  # a loss, in its own (positive) units
    assert auc.lower is not None
    assert auc.upper is not None
    assert auc.lower < auc.value < auc.upper <= 1.0
    assert gap.check == "gate.overfitting"
    assert gap.subject == "roc_auc"


def test_required_scores() -> None:
    X, y = make_classification(300, 5, flip_y=0.2, random_state=1)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)

    def status(required: dict[str, float], metric: str = "accuracy") -> Status:
        cfg = GeneralisationConfig(required=required)
        res = cross_validation_checks(
            LogisticRegression(), X, y, task="binary", metrics=(metric,), cv=cv, config=cfg
        )
        return res[0].status

    assert status({"accuracy": 0.5}) is Status.OK
    assert status({"accuracy": 0.95}) is Status.ALERT  # impossible with 20% label noise
    assert status({"accuracy": 0.81}) is Status.WARN  # mean below, interval reaches it
    assert status({"log_loss": 0.05}, "log_loss") is Status.ALERT  # losses: at most
    assert status({"log_loss": 5.0}, "log_loss") is Status.OK


def test_overfitting_is_flagged_with_evidence() -> None:
    X, y = make_classification(400, 8, flip_y=0.3, random_state=2)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    tree = DecisionTreeClassifier(random_state=0)  # unlimited depth memorises the noise
    *_, gap = cross_validation_checks(tree, X, y, task="binary", metrics=("accuracy",), cv=cv)
    assert gap.status is Status.WARN
    assert gap.value is not None
    assert gap.value > 0.2
    assert gap.details["train_folds"] == pytest.approx([1.0, 1.0, 1.0])
    assert "overfitting" in gap.reason
    cfg = GeneralisationConfig(overfit_status="alert")
    *_, gap = cross_validation_checks(
        tree, X, y, task="binary", metrics=("accuracy",), cv=cv, config=cfg
    )
    assert gap.status is Status.ALERT
    *_, gap = cross_validation_checks(
        LogisticRegression(), X, y, task="binary", metrics=("accuracy",), cv=cv
    )
    assert gap.status is Status.OK


def test_gap_of_unbounded_loss_is_relative() -> None:
    X, y = make_regression(200, 30, noise=20.0, random_state=3)
    cv = KFold(3, shuffle=True, random_state=0)
    *_, gap = cross_validation_checks(
        LinearRegression(), X, y, task="regression", metrics=("mse",), cv=cv
    )
    assert gap.details["relative"] is True
    train_mse, val_mse = [], []
    for tr, te in cv.split(X):
        m = LinearRegression().fit(X[tr], y[tr])
        train_mse.append(mean_squared_error(y[tr], m.predict(X[tr])))
        val_mse.append(mean_squared_error(y[te], m.predict(X[te])))
    want = np.mean((np.array(val_mse) - train_mse) / np.array(val_mse))
    assert gap.value == pytest.approx(want)


def test_model_warnings_are_reported_not_raised() -> None:
    # pytest turns warnings into errors; the gate must record a model's ConvergenceWarning.
    X, y = make_classification(200, 5, random_state=4)
    res = cross_validation_checks(
        LogisticRegression(max_iter=1), X, y, task="binary", metrics=("accuracy",),
        cv=StratifiedKFold(3),
    )  # fmt: skip
    assert any("ConvergenceWarning" in w for w in res[0].details["warnings"])


def test_a_model_that_cannot_fit_is_an_error_result() -> None:
    X = np.array([["a"], ["b"]] * 20)
    y = np.array([0, 1] * 20)
    res = cross_validation_checks(
        LogisticRegression(), X, y, task="binary", metrics=("accuracy",), cv=StratifiedKFold(2)
    )
    assert res[0].status is Status.ERROR
    assert "ValueError" in res[0].reason


def test_learning_curve_tells_saturated_from_data_hungry() -> None:
    cfg = GeneralisationConfig(train_sizes=(0.2, 0.5, 1.0))
    # Linear problem, plenty of rows: a logistic regression has levelled off.
    X, y = make_classification(3000, 4, n_informative=2, n_redundant=0, random_state=5)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    flat = learning_curve_check(
        LogisticRegression(), X, y, task="binary", metric="accuracy", cv=cv, config=cfg
    )
    assert flat.details["still_improving"] is False
    assert flat.details["train_sizes"] == [400, 1000, 2000]
    # Twisted boundary, few rows: nearest neighbours keep improving with more data.
    rng = np.random.default_rng(6)
    Xc = rng.uniform(-3, 3, size=(400, 2))
    yc = (np.sin(2 * Xc[:, 0]) + np.cos(2 * Xc[:, 1]) > 0).astype(int)
    hungry = learning_curve_check(
        KNeighborsClassifier(3), Xc, yc, task="binary", metric="accuracy",
        cv=StratifiedKFold(3, shuffle=True, random_state=0), config=cfg,
    )  # fmt: skip
    assert hungry.details["still_improving"] is True
    assert "more training data" in hungry.reason
    means = hungry.details["validation_mean"]
    assert means[-1] > means[0]


def test_time_ordered_data_uses_a_forward_split() -> None:
    y = np.array([0, 1] * 30)
    cv, name = make_cv("binary", 4, y, time_ordered=True, random_state=0)
    assert isinstance(cv, TimeSeriesSplit)
    assert "time-series" in name
    for tr, te in cv.split(np.zeros((60, 1))):
        assert tr.max() < te.min()  # never trains on the future
    # classes too rare for stratification fall back to plain k-fold
    cv, name = make_cv("binary", 5, np.array([0] * 30 + [1] * 3), time_ordered=False,
                       random_state=0)  # fmt: skip
    assert isinstance(cv, KFold)


def test_record_warnings_keeps_unique_messages() -> None:
    import warnings

    with record_warnings() as seen:
        for _ in range(3):
            warnings.warn("again", RuntimeWarning, stacklevel=1)
    assert seen == ["RuntimeWarning: again"]


def test_dataframes_with_string_labels() -> None:
    X, y = make_classification(300, 4, random_state=7)
    df = pd.DataFrame(X, columns=list("abcd"))
    labels = np.where(y == 1, "churn", "stay")
    res = cross_validation_checks(
        LogisticRegression(), df, labels, task="binary", metrics=("f1", "brier"),
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    )  # fmt: skip
    assert [r.status for r in res[:2]] == [Status.OK, Status.OK]
    assert all(np.isfinite(res[0].details["folds"]))
