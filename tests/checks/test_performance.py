"""Realised performance: scikit-learn's values, interval coverage, the drop rule."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from watchkeeper.checks import PerformanceRule, Status, check_realised_performance


def _by(results: list) -> dict[tuple[str, str], object]:  # type: ignore[type-arg]
    return {(r.check.removeprefix("performance."), r.subject): r for r in results}


def test_multiclass_values_equal_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    n = 600
    proba = rng.dirichlet([2, 2, 2], n)
    y = np.array([rng.choice(3, p=p) for p in proba])
    pred = proba.argmax(axis=1)
    got = _by(
        check_realised_performance(y, pred, task="classification", scores=proba, classes=[0, 1, 2])
    )
    ys, ps = y.astype(str), pred.astype(str)
    assert got[("accuracy", "model")].value == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert got[("f1", "model")].value == pytest.approx(
        skm.f1_score(y, pred, average="macro"), abs=1e-12
    )
    assert got[("log_loss", "model")].value == pytest.approx(skm.log_loss(y, proba), abs=1e-12)
    assert got[("roc_auc", "model")].value == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr"), abs=1e-12
    )
    for c in ("0", "1", "2"):
        assert got[("precision", c)].value == pytest.approx(
            skm.precision_score(ys, ps, labels=[c], average="macro"), abs=1e-12
        )
        assert got[("recall", c)].value == pytest.approx(
            skm.recall_score(ys, ps, labels=[c], average="macro"), abs=1e-12
        )
        assert got[("roc_auc", c)].value == pytest.approx(
            skm.roc_auc_score(ys == c, proba[:, int(c)]), abs=1e-12
        )


def test_regression_values_equal_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(10, 2, 500)
    pred = y + rng.normal(0, 1, 500)
    got = _by(check_realised_performance(y, pred, task="regression"))
    assert got[("mae", "model")].value == pytest.approx(skm.mean_absolute_error(y, pred), abs=1e-12)
    assert got[("rmse", "model")].value == pytest.approx(
        np.sqrt(skm.mean_squared_error(y, pred)), abs=1e-12
    )
    assert got[("mape", "model")].value == pytest.approx(
        skm.mean_absolute_percentage_error(y, pred), abs=1e-12
    )
    assert got[("r2", "model")].value == pytest.approx(skm.r2_score(y, pred), abs=1e-12)


def test_too_few_labels_is_insufficient_data() -> None:
    found = check_realised_performance([1, 0, 1], [1, 1, 1], task="classification")
    assert {r.status for r in found} == {Status.INSUFFICIENT_DATA}
    assert (
        check_realised_performance([], [], task="regression")[0].status is Status.INSUFFICIENT_DATA
    )


def test_drop_is_judged_with_the_interval() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 2000)
    pred = np.where(rng.random(2000) < 0.85, y, 1 - y)  # accuracy about 0.85
    rule = PerformanceRule(tolerance=0.02)

    def status(reference: float) -> Status:
        found = _by(
            check_realised_performance(
                y,
                pred,
                task="classification",
                rule=rule,
                reference={("accuracy", "model"): reference},
            )
        )
        return found[("accuracy", "model")].status  # type: ignore[attr-defined,no-any-return]

    assert status(0.86) is Status.OK  # within the tolerance
    assert status(0.875) is Status.WARN  # point beyond 0.855, interval not
    assert status(0.95) is Status.ALERT  # whole interval below 0.93


@pytest.mark.slow
def test_interval_coverage_by_simulation() -> None:
    """95 % intervals cover the true value in about 95 % of repetitions (within 3 SE)."""
    rng = np.random.default_rng(3)
    reps, n = 200, 300
    rule = PerformanceRule(n_bootstrap=200)
    hits = {"accuracy": 0, "mae": 0}
    for rep in range(reps):
        y = rng.integers(0, 2, n)
        pred = np.where(rng.random(n) < 0.8, y, 1 - y)  # true accuracy 0.8
        acc = _by(check_realised_performance(y, pred, task="classification", rule=rule))
        a = acc[("accuracy", "model")]
        hits["accuracy"] += a.lower <= 0.8 <= a.upper  # type: ignore[attr-defined,operator]
        yr = rng.normal(size=n)
        err = rng.exponential(1.0, n)  # true MAE 1
        reg = _by(
            check_realised_performance(
                yr,
                yr + err,
                task="regression",
                rule=PerformanceRule(n_bootstrap=200, random_state=rep),
            )
        )
        m = reg[("mae", "model")]
        hits["mae"] += m.lower <= 1.0 <= m.upper  # type: ignore[attr-defined,operator]
    se = np.sqrt(0.95 * 0.05 / reps)
    for name, hit in hits.items():
        assert abs(hit / reps - 0.95) < 3 * se + 0.01, (name, hit / reps)
