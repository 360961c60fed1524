"""Known truth: CBPE and DLE estimates against the realised metrics over many windows.

Several seeded references, many windows each. Reported (asserted) properties: the mean absolute
estimation error is small, the intervals cover the realised metric near their nominal 95 %
(they are prediction intervals for the window's realised metric), a covariate shift inside
the reference support is tracked, and concept drift is *not* — CBPE cannot see it without
labels, which its documentation states.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from watchkeeper.checks import CBPE, DLE

pytestmark = pytest.mark.slow

WINDOWS = 30
ROWS = 500


def classifier_data(
    n: int, rng: np.random.Generator, shift: float = 0.0, concept: float = 0.0
) -> pd.DataFrame:
    """A miscalibrated score (``p ** 1.5`` of the true probability), so isotonic calibration
    has work to do; ``concept`` moves the true probability away from what the score says."""
    x = rng.normal(shift, 1.0, n)
    p = 1.0 / (1.0 + np.exp(-2.0 * x))
    truth = 1.0 / (1.0 + np.exp(-2.0 * x + concept))
    s = p**1.5
    return pd.DataFrame(
        {"x": x, "s": s, "yhat": (s > 0.4).astype(int), "y": (rng.random(n) < truth).astype(int)}
    )


def realised(w: pd.DataFrame) -> dict[str, float]:
    return {
        "roc_auc": roc_auc_score(w["y"], w["s"]),
        "accuracy": accuracy_score(w["y"], w["yhat"]),
        "f1": f1_score(w["y"], w["yhat"]),
    }


def run_cbpe(shift: float, concept: float) -> dict[str, tuple[float, float]]:
    """Mean absolute error and coverage per metric over 3 references x WINDOWS windows."""
    errors: dict[str, list[float]] = {"roc_auc": [], "accuracy": [], "f1": []}
    covered: dict[str, list[bool]] = {m: [] for m in errors}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        est = CBPE(tuple(errors), score="s", prediction="yhat", target="y", random_state=seed)
        est.fit(classifier_data(3000, rng))
        for _ in range(WINDOWS):
            w = classifier_data(ROWS, rng, shift=shift, concept=concept)
            truth = realised(w)
            for r in est.estimate(w.drop(columns="y")):
                m = r.check.removeprefix("estimated.")
                errors[m].append(abs(r.value - truth[m]))
                covered[m].append(r.lower <= truth[m] <= r.upper)
    return {m: (float(np.mean(errors[m])), float(np.mean(covered[m]))) for m in errors}


@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_cbpe_is_accurate_and_covers_with_and_without_covariate_shift(shift: float) -> None:
    for metric, (mae, coverage) in run_cbpe(shift, 0.0).items():
        assert mae < 0.03, (metric, mae)
        assert 0.86 <= coverage <= 1.0, (metric, coverage)


def test_cbpe_cannot_see_concept_drift() -> None:
    # The chance of a positive given the score falls: the realised accuracy drops, but the
    # scores — all CBPE sees — do not change. A documented limitation, not a bug.
    summary = run_cbpe(0.0, concept=1.5)
    f1_error, f1_coverage = summary["f1"]
    assert f1_error > 0.08
    assert f1_coverage < 0.2
    assert summary["accuracy"][1] < 0.6


def regressor_data(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    x = rng.uniform(0.0, 1.0, n) * (1.0 + shift)
    c = rng.choice(["a", "b", "c"], n, p=[0.2, 0.4, 0.4])
    noise = 0.2 + x + (c == "a")
    return pd.DataFrame({"x": x, "c": c, "pred": 2 * x, "y": 2 * x + rng.normal(0, noise, n)})


def test_dle_is_accurate_and_covers() -> None:
    rel_errors: dict[str, list[float]] = {"mae": [], "rmse": []}
    covered: dict[str, list[bool]] = {"mae": [], "rmse": []}
    for seed in range(2):
        rng = np.random.default_rng(100 + seed)
        est = DLE(prediction="pred", target="y", features=["x", "c"], random_state=seed)
        est.fit(regressor_data(4000, rng))
        for i in range(WINDOWS):
            # Half the windows are squeezed into the noisier upper part of the support.
            w = regressor_data(ROWS, rng)
            if i % 2:
                w["x"] = 0.5 + w["x"] / 2
                w["pred"] = 2 * w["x"]
                w["y"] = w["pred"] + rng.normal(0, 0.2 + w["x"] + (w["c"] == "a"))
            err = w["y"] - w["pred"]
            truth = {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean()))}
            for r in est.estimate(w.drop(columns="y")):
                m = r.check.removeprefix("estimated.")
                rel_errors[m].append(abs(r.value - truth[m]) / truth[m])
                covered[m].append(r.lower <= truth[m] <= r.upper)
    for m in rel_errors:
        assert np.mean(rel_errors[m]) < 0.05, (m, np.mean(rel_errors[m]))
        assert 0.86 <= np.mean(covered[m]) <= 1.0, (m, np.mean(covered[m]))


@pytest.mark.xfail(
    strict=True,
    reason="known (issue 14): with a small reference CBPE's estimate is optimistic by about "
    "0.6 of its sd and its interval covers about 88 %: isotonic calibration's in-sample "
    "optimism, which the bootstrap calibrators do not carry; softening end blocks at exactly "
    "0 or 1 (a tenth of the window's rows here) removed only a sixth of it",
)
def test_cbpe_is_unbiased_when_the_calibrators_error_dominates() -> None:
    """A small reference (800 rows) and large windows (8,000 rows): the calibrator's error
    from the reference is several times the label noise of a window. Each repetition draws a
    new reference and a new window from the process, so the repetitions are independent and
    z = (realised - estimate) / sd should have mean 0 and sd 1 (standard errors about 0.1)."""
    reps, z = 60, []
    for rep in range(reps):
        rng = np.random.default_rng(1000 + rep)
        est = CBPE(["accuracy"], score="s", prediction="yhat", target="y", random_state=rep)
        est.fit(classifier_data(800, rng))
        w = classifier_data(8000, rng)
        [r] = est.estimate(w.drop(columns="y"))
        sd = max(r.upper - r.value, r.value - r.lower) / 1.959964
        z.append((accuracy_score(w["y"], w["yhat"]) - r.value) / sd)
    zs = np.array(z)
    # today: mean about -0.6 (an optimistic estimate), sd about 1.1
    assert abs(zs.mean()) < 0.3, zs.mean()
    assert 0.8 <= zs.std(ddof=1) <= 1.2, zs.std(ddof=1)
