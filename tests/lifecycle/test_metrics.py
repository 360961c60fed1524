"""Every gate metric agrees with scikit-learn, in its full and its per-row form."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle import Predictions, available_metrics, predict
from watchkeeper.lifecycle._metrics import get_metric


def _binary(labels: tuple[str, str] = ("no", "yes")) -> Predictions:
    rng = np.random.default_rng(1)
    p1 = rng.random(400)
    y_idx = (rng.random(400) < p1).astype(int)
    classes = np.array(labels)
    return Predictions(
        y=classes[y_idx],
        label=classes[(p1 > 0.4).astype(int)],
        proba=np.column_stack([1 - p1, p1]),
        classes=classes,
    )


def _multiclass() -> Predictions:
    rng = np.random.default_rng(2)
    proba = rng.dirichlet([1.0, 1.0, 1.0], size=500)
    classes = np.array([3, 5, 7])
    y = classes[[rng.choice(3, p=row) for row in proba]]
    return Predictions(y=y, label=classes[np.argmax(proba, 1)], proba=proba, classes=classes)


def test_binary_metrics_match_sklearn() -> None:
    p = _binary()
    pos = p.y == "yes"
    assert get_metric("accuracy").compute(p) == pytest.approx(skm.accuracy_score(p.y, p.label))
    assert get_metric("balanced_accuracy").compute(p) == pytest.approx(
        skm.balanced_accuracy_score(p.y, p.label)
    )
    assert get_metric("f1").compute(p) == pytest.approx(skm.f1_score(p.y, p.label, pos_label="yes"))
    assert get_metric("roc_auc").compute(p) == pytest.approx(skm.roc_auc_score(pos, p.proba[:, 1]))
    assert get_metric("log_loss").compute(p) == pytest.approx(
        skm.log_loss(p.y, p.proba, labels=p.classes)
    )
    assert get_metric("brier").compute(p) == pytest.approx(skm.brier_score_loss(pos, p.proba[:, 1]))


def test_multiclass_metrics_match_sklearn() -> None:
    p = _multiclass()
    assert get_metric("roc_auc").compute(p) == pytest.approx(
        skm.roc_auc_score(p.y, p.proba, multi_class="ovr", labels=p.classes)
    )
    assert get_metric("log_loss").compute(p) == pytest.approx(
        skm.log_loss(p.y, p.proba, labels=p.classes)
    )
    assert get_metric("f1").compute(p) == pytest.approx(skm.f1_score(p.y, p.label, average="macro"))
    onehot = (p.y[:, None] == p.classes[None, :]).astype(float)
    assert get_metric("brier").compute(p) == pytest.approx(
        np.mean(np.sum((p.proba - onehot) ** 2, axis=1))
    )


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=300)
    pred = y + rng.normal(scale=0.5, size=300)
    p = Predictions(y=y, label=pred)
    assert get_metric("mse").compute(p) == pytest.approx(skm.mean_squared_error(y, pred))
    assert get_metric("mae").compute(p) == pytest.approx(skm.mean_absolute_error(y, pred))
    assert get_metric("r2").compute(p) == pytest.approx(skm.r2_score(y, pred))


@pytest.mark.parametrize("name", ["accuracy", "log_loss", "brier", "mse", "mae"])
def test_per_row_form_averages_to_the_metric(name: str) -> None:
    m = get_metric(name)
    assert m.per_row is not None
    p = (
        _binary()
        if name not in ("mse", "mae")
        else Predictions(y=np.arange(10.0), label=np.arange(10.0) ** 1.1)
    )
    assert float(np.mean(m.per_row(p))) == pytest.approx(m.compute(p))


@pytest.mark.parametrize("name", ["accuracy", "roc_auc", "log_loss", "f1", "brier"])
def test_scorer_matches_metric_on_held_out_folds(name: str) -> None:
    X, y01 = make_classification(300, 4, random_state=0)
    y = np.where(y01 == 1, "b", "a")  # string labels catch pos_label mistakes
    m = get_metric(name)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    model = LogisticRegression()
    got = m.from_scorer(cross_val_score(model, X, y, cv=cv, scoring=m.scorer("binary", ["a", "b"])))
    want = []
    for tr, te in cv.split(X, y):
        fitted = LogisticRegression().fit(X[tr], y[tr])
        want.append(m.compute(predict(fitted, X[te], y[te], "binary")))
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_unknown_and_misapplied_metrics() -> None:
    with pytest.raises(InputError, match="unknown metric 'auc'"):
        get_metric("auc")
    with pytest.raises(InputError, match="does not apply to a regression"):
        get_metric("roc_auc", "regression")
    assert "r2" in available_metrics()
    p = Predictions(y=np.array([0, 1]), label=np.array([0, 1]))
    with pytest.raises(InputError, match="predict_proba"):
        get_metric("log_loss").compute(p)


def test_unseen_holdout_class_is_a_clear_error() -> None:
    p = Predictions(
        y=np.array([0, 2]),
        label=np.array([0, 1]),
        proba=np.array([[0.9, 0.1], [0.2, 0.8]]),
        classes=np.array([0, 1]),
    )
    with pytest.raises(InputError, match="never saw"):
        get_metric("log_loss").compute(p)


@pytest.mark.parametrize("name", ["accuracy", "roc_auc", "log_loss", "f1", "brier"])
def test_scorer_matches_metric_multiclass(name: str) -> None:
    X, y = make_classification(450, 6, n_informative=4, n_classes=3, random_state=1)
    m = get_metric(name)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    got = m.from_scorer(
        cross_val_score(LogisticRegression(), X, y, cv=cv, scoring=m.scorer("multiclass"))
    )
    want = [
        m.compute(predict(LogisticRegression().fit(X[tr], y[tr]), X[te], y[te], "multiclass"))
        for tr, te in cv.split(X, y)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-9)
