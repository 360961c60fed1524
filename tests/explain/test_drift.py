"""Global importance, its noise floor, attribution drift and degradation causes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from threadpoolctl import threadpool_limits

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.explain import (
    GlobalExplanation,
    attribution_drift,
    global_importance,
    rank_changes,
    rank_degradation_causes,
)


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


COEF = np.array([2.0, 1.0, 0.5, 0.0])


def _sample(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4))


def _fit(X: np.ndarray, coef: np.ndarray, seed: int = 0, kind: str = "linear"):
    y = X @ coef + np.random.default_rng(seed).normal(scale=0.2, size=len(X))
    if kind == "tree":
        return HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(X, y)
    return LinearRegression().fit(X, y)


def test_the_noise_floor_has_row_and_background_parts():
    X = _sample(300, 0)
    model = _fit(X, COEF)
    g = global_importance(model, X, n_backgrounds=4, max_background=50)
    assert g.n_backgrounds == 4
    assert g.method == "linear"
    assert g.ranking()[:3] == ["x0", "x1", "x2"]
    assert np.all(g.background_std[:3] > 0)  # the background mean moves the attributions
    np.testing.assert_allclose(g.std_error, np.sqrt(g.row_std_error**2 + g.background_std**2 / 4))
    assert np.all(g.lower <= g.importance)
    assert np.all(g.importance <= g.upper)
    back = GlobalExplanation.from_dict(json.loads(json.dumps(g.to_dict())))
    np.testing.assert_array_equal(back.importance, g.importance)
    np.testing.assert_array_equal(back.std_error, g.std_error)
    assert back.ranking() == g.ranking()


def test_path_dependent_tree_shap_has_no_background_noise():
    X = _sample(300, 1)
    g = global_importance(_fit(X, COEF, kind="tree"), X, n_backgrounds=5)
    assert g.details["feature_perturbation"] == "tree_path_dependent"
    assert g.n_backgrounds == 1
    assert np.all(g.background_std == 0)
    assert np.all(g.row_std_error > 0)


@pytest.mark.parametrize("kind", ["linear", "tree"])
def test_the_same_model_on_fresh_data_does_not_drift(kind):
    reference_rows = _sample(400, 100)
    model = _fit(reference_rows, COEF, kind=kind)
    reference = global_importance(model, reference_rows, n_backgrounds=3, max_background=60)
    statuses = []
    for seed in range(8):
        window = global_importance(
            model, _sample(400, 200 + seed), background=reference_rows, n_backgrounds=3,
            max_background=60, random_state=seed,
        )  # fmt: skip
        results = attribution_drift(reference, window)
        assert [r.subject for r in results] == ["x0", "x1", "x2", "x3"]
        assert all(r.check == "attribution.drift" for r in results)
        statuses += [r.status for r in results]
    assert statuses.count(Status.ALERT) == 0


def test_two_identical_models_do_not_drift_across_seeds():
    X = _sample(400, 5)
    first, second = _fit(X, COEF, seed=1), _fit(X, COEF, seed=1)
    for seed in range(5):
        rows = _sample(300, 50 + seed)
        a = global_importance(first, rows, background=X, n_backgrounds=3, random_state=seed)
        b = global_importance(second, rows, background=X, n_backgrounds=3, random_state=seed + 7)
        assert all(r.status is Status.OK for r in attribution_drift(a, b))


def test_a_removed_effect_is_detected_and_falls_to_noise():
    X = _sample(400, 7)
    reference = global_importance(_fit(X, COEF), X, n_backgrounds=3)
    window_rows = _sample(400, 8)
    without_x0 = _fit(window_rows, np.array([0.0, 1.0, 0.5, 0.0]))
    window = global_importance(without_x0, window_rows, background=X, n_backgrounds=3)
    results = {r.subject: r for r in attribution_drift(reference, window)}
    x0 = results["x0"]
    assert x0.status is Status.ALERT
    assert x0.value < 0
    assert x0.upper < 0
    assert x0.details["fell_to_noise"] is True
    assert x0.details["adjusted_p_value"] < 0.05
    assert "fell to noise" in x0.reason
    assert results["x1"].status is Status.OK
    assert results["x2"].status is Status.OK
    assert json.dumps([r.to_dict() for r in results.values()])


def test_a_feature_stuck_in_the_window_data_loses_its_attribution():
    X = _sample(400, 9)
    model = _fit(X, COEF)
    reference = global_importance(model, X, n_backgrounds=3)
    stuck = _sample(400, 10)
    stuck[:, 1] = X[:, 1].mean()  # a sensor stuck at the average
    window = global_importance(model, stuck, background=X, n_backgrounds=3)
    results = {r.subject: r for r in attribution_drift(reference, window)}
    assert results["x1"].status is Status.ALERT
    assert results["x0"].status is Status.OK


def _global(importance, se=0.01, n=500, features=("a", "b", "c")):
    k = len(features)
    return GlobalExplanation(
        features=tuple(features),
        importance=np.asarray(importance, dtype=float),
        row_std_error=np.full(k, se),
        background_std=np.zeros(k),
        mean_attribution=np.zeros(k),
        n_rows=n,
        n_backgrounds=1,
        method="tree",
        output="prediction",
        output_label="prediction",
        expected_value=0.0,
    )


def test_a_significant_change_below_the_practical_floor_is_ok():
    results = attribution_drift(_global([1.0, 0.5, 0.5]), _global([1.0, 0.5, 0.6]))
    c = results[2]
    assert c.status is Status.OK
    assert c.details["significant"] is True
    assert c.threshold == pytest.approx(0.1)
    assert "below the practical floor" in c.reason
    strict = attribution_drift(_global([1.0, 0.5, 0.5]), _global([1.0, 0.5, 0.6]), min_change=0)
    assert strict[2].status is Status.ALERT


def test_too_few_rows_and_missing_features_are_insufficient():
    few = attribution_drift(_global([1.0, 0.5, 0.5], n=20), _global([0.0, 0.5, 0.5]))
    assert {r.status for r in few} == {Status.INSUFFICIENT_DATA}
    other = _global([1.0, 0.5, 0.5], features=("a", "b", "d"))
    mixed = {r.subject: r.status for r in attribution_drift(_global([1.0, 0.5, 0.5]), other)}
    assert mixed == {
        "a": Status.OK,
        "b": Status.OK,
        "c": Status.INSUFFICIENT_DATA,
        "d": Status.INSUFFICIENT_DATA,
    }
    margin = GlobalExplanation.from_dict({**_global([1, 1, 1]).to_dict(), "output": "margin"})
    with pytest.raises(InputError, match="same output"):
        attribution_drift(_global([1.0, 0.5, 0.5]), margin)


def test_rank_changes_need_both_orders_beyond_the_noise():
    assert rank_changes(_global([1.0, 0.5, 0.1]), _global([0.5, 1.0, 0.1]))[0].above_now == "b"
    assert rank_changes(_global([1.0, 0.99, 0.1]), _global([0.99, 1.0, 0.1])) == []


def _r(check: str, subject: str, status: str, **details) -> CheckResult:
    return CheckResult(check, subject, Status(status), "test", details=details)


def test_degradation_causes_rank_coinciding_important_features_first():
    def attribution(feature, share, fell=False):
        return _r("attribution.drift", feature, "alert" if fell else "ok",
                  reference_share=share, fell_to_noise=fell)  # fmt: skip

    windows = {
        "2024-01": [_r("performance.mae", "model", "ok"), _r("drift.ks", "temp", "alert"),
                    attribution("temp", 0.5), attribution("hum", 0.3), attribution("wind", 0.2)],
        "2024-02": [_r("estimated.mae", "model", "warn"), _r("drift.ks", "temp", "alert"),
                    _r("drift.ks", "wind", "alert"),
                    attribution("temp", 0.5), attribution("hum", 0.3, fell=True),
                    attribution("wind", 0.2)],
        "2024-03": [_r("performance.mae", "model", "alert"), _r("drift.ks", "wind", "alert"),
                    attribution("temp", 0.5), attribution("hum", 0.3, fell=True),
                    attribution("wind", 0.2)],
    }  # fmt: skip
    causes = rank_degradation_causes(windows)
    assert [c.feature for c in causes] == ["hum", "wind", "temp"]
    hum, wind, temp = causes
    assert hum.score == pytest.approx(0.3)  # lost relevance exactly when it degraded
    assert wind.score == pytest.approx(0.2)
    assert temp.score == pytest.approx(0.5 * 0.5 * 0.5)  # drifted also while healthy
    assert hum.fell_to_noise_in == ("2024-02", "2024-03")
    assert temp.degraded_windows == ("2024-02", "2024-03")
    assert "1 of 2 degraded" in temp.reason
    assert json.dumps([c.to_dict() for c in causes])


def test_without_a_drop_there_is_no_cause():
    causes = rank_degradation_causes([[_r("performance.mae", "model", "ok"),
                                       _r("drift.ks", "x", "alert")]])  # fmt: skip
    assert [(c.feature, c.score) for c in causes] == [("x", 0.0)]
    assert rank_degradation_causes([]) == []


@pytest.mark.slow
def test_the_drift_p_values_hold_their_level_without_the_practical_floor():
    # Same model, reference and window drawn from one distribution, the practical floor
    # off: BH at 0.05 under the global null allows an alert in at most 5% of comparisons.
    rows = _sample(400, 11)
    model = _fit(rows, COEF)
    runs, alerts, p_values = 100, 0, []
    for seed in range(runs):
        a = global_importance(
            model,
            _sample(300, 1000 + seed),
            background=rows,
            n_backgrounds=3,
            max_background=60,
            random_state=seed,
        )
        b = global_importance(
            model,
            _sample(300, 5000 + seed),
            background=rows,
            n_backgrounds=3,
            max_background=60,
            random_state=seed + runs,
        )
        results = attribution_drift(a, b, min_change=0)  # fmt: skip
        alerts += any(r.status is Status.ALERT for r in results)
        p_values += [r.p_value for r in results[:3]]
    assert alerts <= 12  # P(Binomial(100, 0.05) > 12) < 0.002
    assert 0.01 <= np.mean(np.asarray(p_values) < 0.05) <= 0.10
