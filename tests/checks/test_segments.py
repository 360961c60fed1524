"""Weak segments: planted weak slices are found; homogeneous errors give few false findings."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from watchkeeper.checks import CheckResult, Status, check_weak_segments
from watchkeeper.data import Profile
from watchkeeper.exceptions import InputError

N = 2_000


def _frame(seed: int, n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "hour": rng.integers(0, 24, n),
            "temp": rng.normal(15.0, 6.0, n),
            "weather": rng.choice(["clear", "mist", "rain"], n, p=[0.6, 0.3, 0.1]),
        }
    )


def _weak(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status is Status.WARN]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_weak_category_is_found_first(seed: int) -> None:
    df = _frame(seed)
    rng = np.random.default_rng(seed + 100)
    wrong = rng.random(N) < np.where(df["weather"] == "rain", 0.35, 0.1)
    results = check_weak_segments(df, errors=wrong.astype(int))
    weak = _weak(results)
    assert [r.subject for r in weak] == ["weather = rain"]
    top = results[0]
    assert top is weak[0]
    assert top.details["rank"] == 1
    assert top.value is not None
    assert top.value > top.details["rest_error"]
    assert top.lower is not None
    assert top.upper is not None
    assert top.lower < top.value < top.upper
    assert top.details["test"] == "two-proportion z (one-sided)"
    assert top.details["difference_interval"][0] > 0
    assert top.threshold == pytest.approx(1.25 * top.details["rest_error"])


def test_planted_weak_hours_in_a_regression() -> None:
    df = _frame(3)
    rng = np.random.default_rng(3)
    y = rng.normal(100.0, 20.0, N)
    noise = rng.normal(0.0, 1.0, N) * np.where(df["hour"] >= 19, 12.0, 4.0)
    results = check_weak_segments(df.assign(y=y, pred=y + noise), y_true="y", y_pred="pred")
    assert {r.details["features"][0] for r in results} == {"hour", "temp", "weather"}
    weak = _weak(results)
    assert [r.subject for r in weak] == ["hour >= 19"]
    assert weak[0].details["metric"] == "mean absolute error"
    assert weak[0].details["slice"] == {"hour": {"lower": pytest.approx(18, abs=1), "upper": None}}
    mw = check_weak_segments(df, y_true=y, y_pred=y + noise, test="mann_whitney", loss="squared")
    assert _weak(mw)[0].subject == "hour >= 19"
    assert _weak(mw)[0].details["test"] == "Mann-Whitney U (one-sided)"


def test_task_inference_and_labels() -> None:
    df = _frame(4, 600).assign(hour=np.arange(600) % 24)  # bins cut at 4.6, 9.2, ...
    y = np.random.default_rng(4).integers(0, 3, 600)
    pred = np.where(df["hour"] < 5, (y + 1) % 3, y)
    results = check_weak_segments(df, y_true=y, y_pred=pred)
    assert results[0].subject == "hour <= 4"
    assert results[0].value == 1.0
    assert results[0].details["metric"] == "error rate"
    labels = np.array(["a", "b", "c"])[y]
    same = check_weak_segments(df, y_true=labels, y_pred=np.array(["a", "b", "c"])[pred])
    assert [r.to_dict() for r in same] == [r.to_dict() for r in results]
    with pytest.raises(InputError, match="0 \\(right\\) or 1 \\(wrong\\)"):
        check_weak_segments(df, errors=np.abs(pred - y) * 0.5, task="classification")


def test_interaction_needs_pairs_and_is_not_explained_by_its_slices() -> None:
    df = _frame(5, 4_000)
    rng = np.random.default_rng(5)
    hit = (df["hour"] >= 20) & (df["weather"] == "mist")
    p = np.where(hit, 0.45, np.where(df["weather"] == "rain", 0.35, 0.1))
    wrong = (rng.random(4_000) < p).astype(int)
    single = check_weak_segments(df, errors=wrong, features=["hour", "weather"])
    paired = check_weak_segments(df, errors=wrong, features=["hour", "weather"], pairs=True)
    assert "hour >= 20 & weather = mist" not in {r.subject for r in single}
    weak = {r.subject: r for r in _weak(paired)}
    assert {"weather = rain", "hour >= 20 & weather = mist"} <= set(weak)
    pair = weak["hour >= 20 & weather = mist"]
    assert set(pair.details["slice_errors"]) == {"hour >= 20", "weather = mist"}
    # A pair inside the weak slice "weather = rain" is explained by it, not a finding.
    explained = [r for r in paired if "explained by weather = rain" in r.reason]
    assert explained
    assert all(r.status is Status.OK for r in explained)


def test_small_slices_are_reported_not_dropped_and_rare_categories_pooled() -> None:
    rng = np.random.default_rng(6)
    n = 1_000
    city = rng.choice(np.array(["A", "B"], dtype=object), n)
    city[:30] = [f"rare{i % 3}" for i in range(30)]
    city[30:40] = "tiny"
    temp = rng.normal(size=n)
    temp[40:60] = np.nan
    df = pd.DataFrame({"city": city, "temp": temp})
    results = check_weak_segments(df, errors=(rng.random(n) < 0.2).astype(int), min_size=50)
    by = {r.subject: r for r in results}
    pooled = by["city in {rare0, rare1, rare2, tiny}"]
    assert pooled.status is Status.INSUFFICIENT_DATA
    assert pooled.details["size"] == 40
    assert pooled.details["slice"] == {"city": {"pooled": ["rare0", "rare1", "rare2", "tiny"]}}
    assert "40 rows, fewer than min_size=50" in pooled.reason
    assert by["temp is missing"].status is Status.INSUFFICIENT_DATA
    assert by["temp is missing"].details["size"] == 20
    assert results[-1].status is Status.INSUFFICIENT_DATA  # ranked last
    assert {"city = A", "city = B"} <= set(by)


def test_reference_profile_fixes_the_cut_points() -> None:
    ref = pd.DataFrame({"x": np.random.default_rng(7).uniform(0, 100, 5_000)})
    profile = Profile.from_data(ref)
    cur = pd.DataFrame({"x": np.random.default_rng(8).uniform(50, 150, 1_000)})
    errors = np.zeros(1_000, dtype=int)
    results = check_weak_segments(cur, errors=errors, reference=profile, min_size=1)
    uppers = sorted(
        r.details["slice"]["x"]["upper"]
        for r in results
        if r.details["slice"]["x"]["upper"] is not None
    )
    assert uppers == pytest.approx([20, 40, 60, 80], abs=2.5)
    empty = [r for r in results if r.details["size"] == 0]
    assert len(empty) == 2
    assert all(r.status is Status.INSUFFICIENT_DATA for r in empty)
    with pytest.raises(InputError, match="not in the reference profile"):
        check_weak_segments(cur.assign(z=1.0), errors=errors, reference=profile)


def test_results_serialize_and_bad_input_is_refused() -> None:
    df = _frame(9, 500)
    errors = (np.random.default_rng(9).random(500) < 0.3).astype(float)
    errors[:10] = np.nan  # unlabelled rows are left out
    results = check_weak_segments(df, errors=errors, pairs=True)
    json.dumps([r.to_dict() for r in results])
    assert all(r.details["rows_without_error"] == 10 for r in results)
    assert all(r.check == "segments.weak" for r in results)
    assert [r.details["rank"] for r in results] == list(range(1, len(results) + 1))
    with pytest.raises(InputError, match="errors="):
        check_weak_segments(df)
    with pytest.raises(InputError, match="not both"):
        check_weak_segments(df, errors=errors, y_true=errors, y_pred=errors)
    with pytest.raises(InputError, match="500 rows"):
        check_weak_segments(df, errors=errors[:10])
    with pytest.raises(InputError, match="not in the frame"):
        check_weak_segments(df, errors=errors, features=["nope"])
    one = check_weak_segments(df, errors=errors, features="hour")
    assert {r.details["features"][0] for r in one} == {"hour"}
    with pytest.raises(InputError, match="mann_whitney"):
        check_weak_segments(df, errors=errors, test="t")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="max_bins"):
        check_weak_segments(df, errors=errors, max_bins=1)


def _false_findings(seed: int, *, regression: bool, pairs: bool) -> int:
    df = _frame(seed, 800)
    rng = np.random.default_rng(seed + 10_000)
    errors = rng.exponential(1.0, 800) if regression else (rng.random(800) < 0.2).astype(int)
    found = check_weak_segments(df, errors=errors, pairs=pairs, effect_floor=0.0)
    return len(_weak(found))


@pytest.mark.slow
@pytest.mark.parametrize(("regression", "pairs"), [(False, False), (True, False), (False, True)])
def test_homogeneous_errors_rarely_give_findings(regression: bool, pairs: bool) -> None:
    """With no weak slice at all, every finding is false: BH at alpha=0.05 then bounds the
    chance of *any* finding by about 0.05 (no effect floor, to test the p-values alone)."""
    seeds = 200 if not pairs else 60
    runs = [_false_findings(s, regression=regression, pairs=pairs) for s in range(seeds)]
    rate = sum(r > 0 for r in runs) / seeds
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / seeds)
