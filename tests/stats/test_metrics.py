"""The one home of ROC AUC and F1 (watchkeeper.stats) against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from watchkeeper.stats import (
    f1_from_counts,
    macro_f1,
    resampled_auc,
    roc_auc,
    weighted_roc_auc,
    wilson_interval,
)


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_scikit_learn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    positive = rng.random(400) < 0.3
    score = np.round(rng.random(400) + 0.7 * positive, 1)  # rounding makes many ties
    assert roc_auc(score, positive) == pytest.approx(skm.roc_auc_score(positive, score), abs=1e-12)


def test_weighted_and_resampled_auc_are_the_auc_of_the_resample() -> None:
    rng = np.random.default_rng(1)
    n = 300
    positive = rng.random(n) < 0.4
    score = np.round(rng.random(n) + positive, 1)
    idx = rng.integers(0, n, size=(4, n))
    weights = np.stack([np.bincount(i, minlength=n) for i in idx]).astype(float)
    want = [skm.roc_auc_score(positive[i], score[i]) for i in idx]
    np.testing.assert_allclose(weighted_roc_auc(score, positive, weights), want, atol=1e-12)
    np.testing.assert_allclose(resampled_auc(positive, score, idx), want, atol=1e-12)


def test_auc_of_one_class_is_nan() -> None:
    assert np.isnan(roc_auc([0.1, 0.2], [True, True]))


@pytest.mark.parametrize("seed", range(5))
def test_f1_matches_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.choice(["a", "b", "c", "d"], size=200, p=[0.5, 0.3, 0.15, 0.05])
    pred = np.where(rng.random(200) < 0.6, y, rng.choice(["a", "b", "c"], size=200))
    assert macro_f1(y, pred) == pytest.approx(
        skm.f1_score(y, pred, average="macro", zero_division=0.0), abs=1e-12
    )
    t, s = y == "b", pred == "b"
    got = float(f1_from_counts(np.sum(t & s), np.sum(~t & s), np.sum(t & ~s)))
    assert got == pytest.approx(skm.f1_score(t, s, zero_division=0.0), abs=1e-12)


def test_wilson_interval_matches_the_closed_form_reference() -> None:
    from scipy.stats import binomtest

    lo, hi = wilson_interval(37, 120, 0.9)
    ci = binomtest(37, 120).proportion_ci(confidence_level=0.9, method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-12)
