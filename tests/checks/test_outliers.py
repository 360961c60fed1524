"""Outlier detector: scores against scikit-learn and scipy, the stated false-positive rate on
reference-like data over seeded repetitions, injected outliers flagged, safe storage, and the
window check's exact test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from watchkeeper.checks import OutlierDetector, Status, check_outlier_rate
from watchkeeper.exceptions import InputError, NotFittedError
from watchkeeper.stats import conformal_exceedance

METHODS = ("mahalanobis", "isolation_forest")


def _correlated(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Four correlated numeric features, a boolean and a categorical one."""
    z = rng.normal(size=(n, 4))
    a = z[:, 0]
    b = 0.8 * a + 0.6 * z[:, 1]
    return pd.DataFrame(
        {
            "a": a,
            "b": b,
            "c": np.exp(z[:, 2]),  # skewed
            "d": 10.0 + 3.0 * z[:, 3],
            "flag": rng.random(n) < 0.3,
            "plan": rng.choice(["x", "y"], size=n),
        }
    )


def test_isolation_forest_scores_equal_scikit_learn() -> None:
    from sklearn.ensemble import IsolationForest

    from watchkeeper.checks._outlier_scores import fit_forest, forest_scores

    rng = np.random.default_rng(3)
    X = rng.normal(size=(1500, 3)) * [1.0, 5.0, 0.1]
    probe = np.vstack([X[:300], rng.normal(size=(200, 3)) * 4])
    for n_estimators, max_samples, seed in ((50, 128, 0), (20, 256, 7)):
        forest = IsolationForest(
            n_estimators=n_estimators, max_samples=max_samples, random_state=seed
        ).fit(X)
        state = fit_forest(X, n_estimators, max_samples, seed)
        ours = forest_scores(probe, state)
        np.testing.assert_allclose(ours, -forest.score_samples(probe), rtol=0, atol=1e-12)


def test_mahalanobis_score_is_scipys_squared_distance() -> None:
    from scipy.spatial.distance import mahalanobis

    rng = np.random.default_rng(4)
    data = _correlated(rng, 1000)
    d = OutlierDetector(method="mahalanobis", rate=0.05).fit(data)
    assert d.columns_ == ("a", "b", "c", "d", "flag")  # categorical "plan" ignored
    st = d.state_
    probe = _correlated(np.random.default_rng(5), 20)
    X = probe[list(d.columns_)].to_numpy(dtype=float)
    z = (X - st["center"]) / st["scale"]
    expected = [mahalanobis(row, st["location"], st["precision"]) ** 2 for row in z]
    np.testing.assert_allclose(d.score(probe), expected, rtol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_threshold_is_the_conformal_order_statistic(method: str) -> None:
    rng = np.random.default_rng(6)
    data = _correlated(rng, 1001)
    d = OutlierDetector(method=method, rate=0.02, n_estimators=20).fit(data)
    n_cal = d.n_calibration_
    assert n_cal == 500
    k = math.ceil((n_cal + 1) * (1 - 0.02))
    order = np.random.default_rng(0).permutation(1001)
    calibration = data.iloc[order[:n_cal]]
    scores = np.sort(d.score(calibration))
    assert d.threshold_ == scores[k - 1]
    assert d.n_above_ == int(np.sum(scores > d.threshold_)) == n_cal - k
    assert d.reference_flagged_share_ == pytest.approx((n_cal - k) / n_cal)
    assert d.false_positive_rate_ == pytest.approx((n_cal - k + 1) / (n_cal + 1))
    assert d.false_positive_rate_ <= 0.02


@pytest.mark.parametrize("method", METHODS)
def test_flagged_share_on_reference_like_data_is_within_the_stated_rate(method: str) -> None:
    """Over seeded repetitions (a fresh reference, detector and window each time) the mean
    flagged share matches the detector's rate, never above the stated rate beyond noise, and
    the window check's exact test exceeds its level no more often than its level allows."""
    rate, alpha, reps = 0.02, 0.05, 60
    shares, expected, rejections = [], [], 0
    for seed in range(reps):
        rng = np.random.default_rng(1000 + seed)
        d = OutlierDetector(method=method, rate=rate, n_estimators=25, random_state=seed).fit(
            _correlated(rng, 1200)
        )
        flags = d.predict(_correlated(rng, 2000))
        shares.append(flags.mean())
        expected.append(d.false_positive_rate_)
        test = conformal_exceedance(d.n_above_, d.n_calibration_, int(flags.sum()), flags.size)
        rejections += test.p_value is not None and test.p_value < alpha
    mean = float(np.mean(shares))
    # the share's spread over repetitions is mostly the calibration's: Beta(n_above+1, k)
    se = math.sqrt(rate * (1 - rate) / 600 / reps + rate * (1 - rate) / 2000 / reps)
    assert mean <= rate + 3 * se, (mean, rate)
    assert abs(mean - float(np.mean(expected))) < 3 * se
    bound = alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)
    assert rejections / reps <= bound, rejections


@pytest.mark.slow
def test_flagged_share_simulation_with_many_repetitions() -> None:
    """400 repetitions with the Mahalanobis score: the mean share is the conformal rate
    ``(n_above + 1) / (n_calibration + 1)`` within 3 standard errors, and a binomial upper
    bound at the stated rate is exceeded about as often as the calibration's noise allows."""
    rate, reps = 0.01, 400
    shares, rejections = [], 0
    for seed in range(reps):
        rng = np.random.default_rng(50_000 + seed)
        d = OutlierDetector(rate=rate, random_state=seed).fit(_correlated(rng, 2000))
        flags = d.predict(_correlated(rng, 1000))
        shares.append(flags.mean())
        test = conformal_exceedance(d.n_above_, d.n_calibration_, int(flags.sum()), flags.size)
        rejections += test.p_value is not None and test.p_value < 0.01
    mean = float(np.mean(shares))
    expected = (9 + 1) / (1000 + 1)  # n_above = n_cal - ceil((n_cal + 1)(1 - rate))
    se = float(np.std(shares)) / math.sqrt(reps)
    assert abs(mean - expected) < 3 * se
    assert mean <= rate + 3 * se
    assert rejections / reps <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / reps)


@pytest.mark.parametrize("method", METHODS)
def test_injected_outliers_are_flagged(method: str) -> None:
    rng = np.random.default_rng(8)
    reference = _correlated(rng, 2000)
    d = OutlierDetector(method=method, rate=0.01).fit(reference)
    clean = _correlated(rng, 500)
    far = _correlated(rng, 200)
    far["a"] += rng.choice([-1, 1], size=200) * 8.0
    far["d"] += 40.0
    assert d.predict(far).mean() >= 0.99
    assert d.predict(clean).mean() <= 0.05
    assert d.score(far).min() > np.quantile(d.score(clean), 0.99)


def test_mahalanobis_flags_broken_correlation_inside_the_marginal_ranges() -> None:
    rng = np.random.default_rng(9)
    # the roughly elliptical columns: a heavy tail (``c``) sets the threshold far out
    d = OutlierDetector(rate=0.01, columns=("a", "b", "d")).fit(_correlated(rng, 3000))
    odd = _correlated(rng, 100)
    odd["a"], odd["b"] = 1.8, -1.8  # each within its range, together impossible (corr 0.8)
    assert d.predict(odd).mean() >= 0.95


def test_missing_values_take_the_median_and_mappings_score_like_frames() -> None:
    rng = np.random.default_rng(10)
    reference = pd.DataFrame({"x": rng.normal(size=600), "y": rng.normal(size=600)})
    d = OutlierDetector(rate=0.05).fit(reference)
    frame = pd.DataFrame({"x": [0.5, np.nan], "y": [None, 1.0]})
    mapping = {"x": [0.5, None], "y": [None, 1.0]}
    np.testing.assert_array_equal(d.score(frame), d.score(mapping))
    filled = {"x": [0.5, d.state_["median"][0]], "y": [d.state_["median"][1], 1.0]}
    np.testing.assert_allclose(d.score(mapping), d.score(filled))


@pytest.mark.parametrize("method", METHODS)
def test_stored_form_is_plain_json_and_scores_the_same(method: str) -> None:
    import json

    rng = np.random.default_rng(11)
    data = _correlated(rng, 800)
    d = OutlierDetector(method=method, rate=0.05, n_estimators=10).fit(data)
    text = d.to_bytes()
    again = OutlierDetector.from_bytes(text)
    assert json.loads(text)["format"] == "watchkeeper.outliers/1"
    np.testing.assert_array_equal(again.score(data), d.score(data))
    assert again.threshold_ == d.threshold_
    assert again.describe() == d.describe()


def test_tampered_or_foreign_payloads_are_refused() -> None:
    rng = np.random.default_rng(12)
    d = OutlierDetector(method="isolation_forest", n_estimators=3, rate=0.05).fit(
        {"x": rng.normal(size=400).tolist()}
    )
    good = d.to_dict()
    bad_index = {
        **good,
        "state": {**good["state"], "left": [[5_000] * 3, *good["state"]["left"][1:]]},
    }
    bad_feature = {
        **good,
        "state": {**good["state"], "feature": [[9] * len(good["state"]["feature"][0])] * 3},
    }
    for payload in (
        {**good, "format": "pickle"},
        bad_index,
        bad_feature,
        {**good, "n_above": good["n_calibration"]},
        {**good, "params": {**good["params"], "method": "exec"}},
    ):
        with pytest.raises(InputError):
            OutlierDetector.from_dict(payload)
    for data in (b"\x80\x04pickle", b"[1, 2]"):
        with pytest.raises(InputError):
            OutlierDetector.from_bytes(data)


def test_errors_say_what_to_do() -> None:
    with pytest.raises(NotFittedError, match="call fit"):
        OutlierDetector().score({"x": [1.0]})
    with pytest.raises(InputError, match="more reference rows"):
        OutlierDetector(rate=0.001).fit({"x": list(range(300))})
    with pytest.raises(InputError, match="numeric or boolean"):
        OutlierDetector().fit({"plan": ["a", "b"] * 200})
    with pytest.raises(InputError, match="rate"):
        OutlierDetector(rate=1.5).fit({"x": list(range(300))})
    with pytest.raises(InputError, match="unknown outlier method"):
        OutlierDetector(method="lof").fit({"x": list(range(300))})
    d = OutlierDetector(rate=0.05).fit({"x": [float(i) for i in range(300)]})
    with pytest.raises(InputError, match="missing"):
        d.score({"y": [1.0]})


def test_conformal_exceedance_is_scipys_beta_binomial_tail() -> None:
    from scipy.stats import betabinom

    r = conformal_exceedance(9, 999, 25, 1000)
    assert r.p_value == pytest.approx(float(betabinom.sf(24, 1000, 10, 990)), rel=1e-12)
    assert r.details["expected_rate"] == pytest.approx(10 / 1000)
    assert conformal_exceedance(9, 999, 0, 1000).p_value == 1.0
    with pytest.raises(InputError):
        conformal_exceedance(999, 999, 1, 10)
    with pytest.raises(InputError):
        conformal_exceedance(9, 999, 11, 10)


def test_window_check_fires_on_many_outliers_and_not_on_a_clean_window() -> None:
    rng = np.random.default_rng(13)
    d = OutlierDetector(rate=0.01).fit(_correlated(rng, 4000))
    clean = d.predict(_correlated(rng, 1000))
    dirty_rows = _correlated(rng, 1000)
    dirty_rows.loc[:99, "d"] += 60.0  # 10% injected outliers
    dirty = d.predict(dirty_rows)
    quiet = check_outlier_rate(
        int(clean.sum()), clean.size, d.n_above_, d.n_calibration_, rate=d.rate
    )
    loud = check_outlier_rate(
        int(dirty.sum()), dirty.size, d.n_above_, d.n_calibration_, rate=d.rate
    )
    assert quiet.status is Status.OK, quiet.reason
    assert loud.status is Status.ALERT, loud.reason
    assert loud.details["flagged"] == int(dirty.sum()) >= 100
    assert loud.value == pytest.approx(dirty.mean())
    assert loud.p_value is not None
    assert loud.p_value < 1e-10
    assert loud.upper is not None
    assert loud.lower is not None
    assert loud.lower > d.rate
    assert loud.threshold == pytest.approx(d.false_positive_rate_)
    few = check_outlier_rate(5, 50, d.n_above_, d.n_calibration_, rate=d.rate)
    assert few.status is Status.INSUFFICIENT_DATA
    # a significant but trivial rise on a huge window stays ok (effect-size floor)
    big = check_outlier_rate(13_000, 1_000_000, 999, 99_999, rate=0.01)
    assert big.p_value is not None
    assert big.p_value < 0.01
    assert big.status is Status.OK
