"""Champion versus challenger: paired intervals agree with references, blessing is honest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from watchkeeper.checks import Status
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle import (
    ComparisonConfig,
    GateConfig,
    Predictions,
    compare_models,
    mcnemar_test,
    paired_bootstrap,
    validate,
)
from watchkeeper.lifecycle._comparison import resampled_auc


def _labels(n: int, acc_old: float, acc_new: float, seed: int) -> tuple[Predictions, Predictions]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    old = np.where(rng.random(n) < acc_old, y, 1 - y)
    new = np.where(rng.random(n) < acc_new, y, 1 - y)
    return Predictions(y, old), Predictions(y, new)


def test_bootstrap_matches_the_t_interval_of_paired_differences() -> None:
    # For a mean metric the paired bootstrap estimates the same thing as a t-interval on the
    # per-row differences; with many rows they agree closely.
    old, new = _labels(4000, 0.80, 0.83, seed=0)
    d = (new.label == new.y).astype(float) - (old.label == old.y).astype(float)
    lo_t, hi_t = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    got = paired_bootstrap(old, new, "accuracy", n_resamples=4000, random_state=1)
    assert got.improvement == pytest.approx(d.mean())
    assert got.lower == pytest.approx(lo_t, abs=0.003)
    assert got.upper == pytest.approx(hi_t, abs=0.003)


def test_loss_improvement_is_signed_so_positive_is_better() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=1000)
    old = Predictions(y, y + rng.normal(scale=1.0, size=1000))
    new = Predictions(y, y + rng.normal(scale=0.5, size=1000))
    d = paired_bootstrap(old, new, "mse", n_resamples=500)
    assert d.challenger < d.champion
    assert d.improvement == pytest.approx(d.champion - d.challenger)
    assert d.lower > 0


def test_resampled_auc_equals_sklearn_on_every_resample() -> None:
    rng = np.random.default_rng(3)
    pos = rng.random(500) < 0.3
    score = np.round(rng.normal(size=500) + pos, 1)  # rounding makes ties
    idx = rng.integers(0, 500, size=(20, 500))
    want = [skm.roc_auc_score(pos[i], score[i]) for i in idx]
    np.testing.assert_allclose(resampled_auc(pos, score, idx), want, rtol=0, atol=1e-12)


def test_fast_global_metrics_equal_slow_recomputation() -> None:
    # roc_auc and r2 take vectorised paths; the interval must be what recomputing the
    # metric on each resample with scikit-learn gives, with the same seed.
    rng = np.random.default_rng(4)
    y = rng.normal(size=300)
    old = Predictions(y, y + rng.normal(size=300))
    new = Predictions(y, y + rng.normal(scale=0.8, size=300))
    fast = paired_bootstrap(old, new, "r2", n_resamples=300, random_state=9)
    gen = np.random.default_rng(9)
    idx = gen.integers(0, 300, size=(300, 300))
    slow = [skm.r2_score(y[i], new.label[i]) - skm.r2_score(y[i], old.label[i]) for i in idx]
    lo, hi = np.quantile(slow, [0.025, 0.975])
    assert fast.lower == pytest.approx(lo, abs=1e-12)
    assert fast.upper == pytest.approx(hi, abs=1e-12)


def test_mcnemar_matches_scipy_binomial_test() -> None:
    old, new = _labels(600, 0.8, 0.84, seed=5)
    a, b = old.label == old.y, new.label == new.y
    res = mcnemar_test(a, b)
    n01, n10 = int(np.sum(a & ~b)), int(np.sum(~a & b))
    assert (res["champion_only"], res["challenger_only"]) == (n01, n10)
    assert res["p_value"] == pytest.approx(sps.binomtest(n10, n01 + n10).pvalue)
    assert mcnemar_test(a, a)["p_value"] == 1.0


@pytest.mark.slow
def test_interval_covers_the_true_difference_at_its_level() -> None:
    # Accuracies 0.80 vs 0.83, independent errors: true improvement 0.03.
    reps, covered = 200, 0
    for seed in range(reps):
        old, new = _labels(500, 0.80, 0.83, seed=100 + seed)
        d = paired_bootstrap(old, new, "accuracy", n_resamples=400, random_state=seed)
        covered += d.lower <= 0.03 <= d.upper
    # 95% nominal; binomial sd over 200 reps is 1.5 points
    assert 0.90 <= covered / reps <= 0.99


@pytest.mark.slow
def test_equal_models_are_rarely_blessed() -> None:
    # Under equal accuracy the superiority rule blesses with probability ~2.5% (one side of
    # a 95% interval); a broken rule blessing on point estimates would bless ~50%.
    reps, blessed = 300, 0
    cfg = ComparisonConfig(n_resamples=400)
    for seed in range(reps):
        old, new = _labels(500, 0.8, 0.8, seed=1000 + seed)
        (r,) = compare_models(old, new, ("accuracy",), cfg, random_state=seed)
        blessed += r.status is Status.OK
    assert blessed / reps <= 0.06


def test_point_estimate_ahead_by_noise_does_not_bless() -> None:
    cfg = ComparisonConfig(n_resamples=1000)
    for seed in range(50):
        old, new = _labels(2000, 0.8, 0.8, seed=seed)
        (r,) = compare_models(old, new, ("accuracy",), cfg, random_state=0)
        if r.value is not None and r.value > 0:
            break
    else:
        pytest.fail("no seed put the challenger ahead by chance")
    assert r.status is Status.ALERT
    assert "may be noise" in r.reason
    assert r.lower is not None
    assert r.lower <= 0 < r.value


def test_modes_and_margins() -> None:
    # The challenger is 0.5 point worse on a big holdout.
    old, new = _labels(40_000, 0.850, 0.845, seed=6)
    sup = compare_models(old, new, ("accuracy",), ComparisonConfig(n_resamples=500))
    assert sup[0].status is Status.ALERT
    ni = ComparisonConfig(mode="non_inferiority", margin=0.02, n_resamples=500)
    (r,) = compare_models(old, new, ("accuracy",), ni)
    assert r.status is Status.OK
    assert r.threshold == -0.02
    assert r.lower is not None
    assert r.lower > -0.02
    tight = ComparisonConfig(mode="non_inferiority", margin=0.001, n_resamples=500)
    assert compare_models(old, new, ("accuracy",), tight)[0].status is Status.ALERT


def test_superiority_margin_requires_a_big_enough_gain() -> None:
    old, new = _labels(20_000, 0.80, 0.83, seed=7)
    (small,) = compare_models(old, new, ("accuracy",), ComparisonConfig(margin=0.01))
    (large,) = compare_models(old, new, ("accuracy",), ComparisonConfig(margin=0.05))
    assert small.status is Status.OK
    assert large.status is Status.ALERT


def test_every_metric_must_clear_and_small_holdouts_never_bless() -> None:
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 5000)
    p_old = np.clip(0.5 + (y - 0.5) * 0.3 + rng.normal(0, 0.2, 5000), 0.01, 0.99)
    p_new = np.clip(0.5 + (y - 0.5) * 0.5 + rng.normal(0, 0.2, 5000), 0.01, 0.99)
    classes = np.array([0, 1])

    def preds(p: np.ndarray) -> Predictions:
        return Predictions(y, (p > 0.5).astype(int), np.column_stack([1 - p, p]), classes)

    res = compare_models(preds(p_old), preds(p_new), ("roc_auc", "accuracy"))
    assert [r.status for r in res] == [Status.OK, Status.OK]
    # same predictions on both sides: no improvement, not blessed
    res = compare_models(preds(p_new), preds(p_new), ("roc_auc",))
    assert res[0].status is Status.ALERT
    few = compare_models(_first(preds(p_old), 50), _first(preds(p_new), 50), ("accuracy",))
    assert few[0].status is Status.INSUFFICIENT_DATA


def _first(p: Predictions, n: int) -> Predictions:
    return p.take(np.arange(n))


def test_mismatched_holdouts_are_refused() -> None:
    old, new = _labels(100, 0.8, 0.8, seed=9)
    with pytest.raises(InputError, match="same holdout"):
        paired_bootstrap(old, _first(new, 50), "accuracy")


def _blessing_data(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    # Six equally strong features in a logistic model: a model seeing all six is truly far
    # more accurate than one seeing two (about 0.83 against 0.67).
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(22_000, 6))
    y = (X.sum(axis=1) + rng.logistic(size=22_000) > 0).astype(int)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]).assign(y=y)
    return df.iloc[:2000], df.iloc[2000:]


def _gate_only_comparison(margin: float) -> dict[str, object]:
    return {
        "metrics": ["accuracy"],
        "generalisation": {"enabled": False},
        "calibration": {"enabled": False},
        "robustness": {"enabled": False},
        "serving": {"enabled": False},
        "comparison": {"margin": margin, "n_resamples": 1000},
    }


def test_gate_blesses_a_truly_better_challenger_on_a_large_holdout() -> None:
    train, hold = _blessing_data(0)
    feats = [f"x{i}" for i in range(6)]
    # The champion sees two of six informative features: truly worse by a wide margin.
    two = ColumnTransformer([("keep", "passthrough", ["x0", "x1"])])
    champion = make_pipeline(two, LogisticRegression()).fit(train[feats], train["y"])
    challenger = LogisticRegression().fit(train[feats], train["y"])
    report = validate(
        challenger, train, target="y", holdout=hold, champion=champion,
        config=GateConfig.from_dict(_gate_only_comparison(margin=0.05)),
    )  # fmt: skip
    (r,) = report.by_check("gate.comparison")
    assert r.status is Status.OK, r.reason
    assert r.lower is not None
    assert r.lower > 0.05
    assert report.passed
    assert report.blessed is True
    assert report.exit_code == 0


class _SignOf:
    """Predicts ``y = 1`` when one feature is positive; no fitting needed."""

    def __init__(self, column: str) -> None:
        self.column = column

    def fit(self, X: pd.DataFrame, y: object = None) -> _SignOf:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-X[self.column].to_numpy()))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (X[self.column].to_numpy() > 0).astype(int)


def test_gate_fails_a_challenger_better_only_by_noise() -> None:
    # y depends on x0 and x1 symmetrically, so "sign of x0" and "sign of x1" are exactly
    # equally accurate in truth; on any holdout one of them is ahead by chance. Take a holdout
    # on which the challenger is ahead.
    for seed in range(20):
        train, hold = _blessing_data(seed)
        champion, challenger = _SignOf("x0").fit(train), _SignOf("x1").fit(train)
        if np.mean(challenger.predict(hold) == hold["y"]) > np.mean(
            champion.predict(hold) == hold["y"]
        ):
            break
    else:
        pytest.fail("no holdout put the challenger ahead by chance")
    report = validate(
        challenger, train, target="y", holdout=hold, champion=champion,
        config=GateConfig.from_dict(_gate_only_comparison(margin=0.0)),
    )  # fmt: skip
    (r,) = report.by_check("gate.comparison")
    assert r.value is not None
    assert r.value > 0  # ahead on the point estimate...
    assert r.status is Status.ALERT  # ...but not blessed
    assert not report.passed
    assert report.blessed is False
    assert report.exit_code == 1
