"""CBPE and DLE: exact expectations, verdicts, assumption flags and bad input."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error

from watchkeeper.checks import CBPE, DLE, CheckResult, Status, check_estimate_consistency
from watchkeeper.exceptions import InputError, NotFittedError


def binary(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Calibrated scores ``p = sigmoid(2x)``, labels drawn from them, prediction ``p > 0.5``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    p = 1.0 / (1.0 + np.exp(-2.0 * x))
    return pd.DataFrame(
        {"x": x, "p": p, "yhat": (p > 0.5).astype(int), "y": (rng.random(n) < p).astype(int)}
    )


def multiclass(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 3)) * 1.5
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    names = np.array(["cat", "dog", "owl"])
    return pd.DataFrame(
        {"s_cat": p[:, 0], "s_dog": p[:, 1], "s_owl": p[:, 2],
         "yhat": names[p.argmax(axis=1)], "y": names[y]}
    )  # fmt: skip


def regression(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Noise grows with ``x`` and is larger for category ``a``: the loss is learnable."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n) + shift
    c = rng.choice(["a", "b", "c"], n)
    noise = 0.1 + x + (c == "a")
    return pd.DataFrame({"x": x, "c": c, "pred": 2 * x, "y": 2 * x + rng.normal(0, noise, n)})


def by_check(results: list) -> dict:  # type: ignore[type-arg]
    return {(r.check, r.subject): r for r in results}


@pytest.fixture(scope="module")
def cbpe() -> CBPE:
    return CBPE(score="p", prediction="yhat", target="y", features=["x"]).fit(binary(4000, 0))


# -- exact expectations ---------------------------------------------------------------------


def test_expected_confusion_matrix_is_the_bernoulli_expectation_and_sums_to_n() -> None:
    ref = binary(500, 1)
    est = CBPE(score="p", prediction="yhat", target="y", calibration="none").fit(ref)
    window = binary(300, 2)
    p, pred = window["p"].to_numpy(), window["yhat"].to_numpy() == 1
    expected = np.array(
        [[(1 - p)[~pred].sum(), (1 - p)[pred].sum()], [p[~pred].sum(), p[pred].sum()]]
    )
    got = est.expected_confusion_matrix(window)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert got.sum() == pytest.approx(300, abs=1e-9)
    results = by_check(est.estimate(window))
    tn, fp, fn, tp = expected.ravel()
    assert results[("estimated.accuracy", "model")].value == pytest.approx((tp + tn) / 300)
    assert results[("estimated.precision", "model")].value == pytest.approx(tp / (tp + fp))
    assert results[("estimated.recall", "model")].value == pytest.approx(tp / (tp + fn))
    assert results[("estimated.f1", "model")].value == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_expected_roc_auc_is_the_pairwise_expectation_ratio() -> None:
    ref = binary(200, 3)
    est = CBPE(
        ["roc_auc"], score="p", prediction="yhat", target="y", calibration="none", min_rows=5
    )
    est.fit(ref)
    window = binary(40, 4)
    window.loc[:5, "p"] = 0.5  # ties count one half
    p = window["p"].to_numpy()
    num = den = 0.0
    for i, j in itertools.permutations(range(p.size), 2):
        weight = p[i] * (1 - p[j])
        num += weight * ((p[i] > p[j]) + 0.5 * (p[i] == p[j]))
        den += weight
    [r] = est.estimate(window)
    assert r.value == pytest.approx(num / den, abs=1e-12)


def test_reference_performance_is_the_realised_one(cbpe: CBPE) -> None:
    ref = binary(4000, 0)
    assert cbpe.reference_[("accuracy", "model")] == pytest.approx(
        accuracy_score(ref["y"], ref["yhat"])
    )


def test_multiclass_reports_macro_and_per_class_and_sums_to_n() -> None:
    ref = multiclass(3000, 5)
    est = CBPE(
        score=["s_cat", "s_dog", "s_owl"], classes=["cat", "dog", "owl"],
        prediction="yhat", target="y",
    ).fit(ref)  # fmt: skip
    window = multiclass(2000, 6)
    assert est.expected_confusion_matrix(window).sum() == pytest.approx(2000)
    results = by_check(est.estimate(window))
    assert ("estimated.f1", "owl") in results
    assert ("estimated.accuracy", "cat") not in results
    macro = np.mean([results[("estimated.recall", c)].value for c in ("cat", "dog", "owl")])
    assert results[("estimated.recall", "model")].value == pytest.approx(macro)
    realised = accuracy_score(window["y"], window["yhat"])
    acc = results[("estimated.accuracy", "model")]
    assert abs(acc.value - realised) < 0.03
    assert acc.details["classes"] == ["cat", "dog", "owl"]


# -- verdicts and assumptions ---------------------------------------------------------------


def test_window_like_the_reference_is_ok_and_states_its_assumptions(cbpe: CBPE) -> None:
    results = cbpe.estimate(binary(1500, 7).drop(columns="y"))
    assert {r.status for r in results} == {Status.OK}
    for r in results:
        assert r.lower is not None
        assert r.upper is not None
        assert r.lower <= r.value <= r.upper
        assert r.rule == "estimated_vs_reference"
        assert any("concept drift" in a for a in r.details["assumptions"])
        assert "prediction interval" in r.details["interval"]
        assert "assumption_warning" not in r.details
        json.dumps(r.to_dict())


def test_drop_inside_the_support_is_alerted(cbpe: CBPE) -> None:
    # Scores near 0.5 (x near 0) are the hardest rows: accuracy falls, the support holds.
    window = binary(20000, 8)
    window = window[np.abs(window["x"]) < 0.4].iloc[:1500]
    results = by_check(cbpe.estimate(window))
    acc = results[("estimated.accuracy", "model")]
    assert acc.status is Status.ALERT
    assert acc.upper < acc.threshold
    assert "assumption_warning" not in acc.details


def test_out_of_support_shift_raises_the_assumption_flag(cbpe: CBPE) -> None:
    results = cbpe.estimate(binary(1000, 9, shift=6.0))
    for r in results:
        assert r.status.severity >= Status.WARN.severity
        assert "outside the reference's support" in r.details["assumption_warning"]
        assert r.details["unsupported_share"] > 0.5


def test_small_window_is_insufficient_data(cbpe: CBPE) -> None:
    results = cbpe.estimate(binary(20, 10))
    assert len(results) == 5
    assert {r.status for r in results} == {Status.INSUFFICIENT_DATA}
    assert cbpe.estimate(binary(1, 10).iloc[:0])[0].status is Status.INSUFFICIENT_DATA


def test_same_numbers_from_pandas_polars_and_arrow(cbpe: CBPE) -> None:
    pl = pytest.importorskip("polars")
    window = binary(500, 11)
    want = [r.to_dict() for r in cbpe.estimate(window)]
    assert [r.to_dict() for r in cbpe.estimate(pa.Table.from_pandas(window))] == want
    assert [r.to_dict() for r in cbpe.estimate(pl.from_pandas(window))] == want


def test_chunks_cover_the_data_in_order(cbpe: CBPE) -> None:
    est = CBPE(["accuracy"], score="p", prediction="yhat", target="y", chunk_size=400)
    est.fit(binary(2000, 12))
    chunks = est.estimate_chunks(binary(1000, 13))
    assert [(c.start, c.stop) for c in chunks] == [(0, 400), (400, 800), (800, 1000)]
    assert all(c.results[0].check == "estimated.accuracy" for c in chunks)
    with pytest.raises(InputError, match="chunk_size"):
        cbpe.estimate_chunks(binary(1000, 13))


# -- bad input ------------------------------------------------------------------------------


def test_missing_score_column_is_named() -> None:
    with pytest.raises(InputError, match="'score'"):
        CBPE(score="score", prediction="yhat", target="y").fit(binary(100, 14))


def test_single_class_reference_is_refused() -> None:
    ref = binary(200, 15)
    ref["y"] = 1
    with pytest.raises(InputError, match=r"single class|both classes"):
        CBPE(score="p", prediction="yhat", target="y").fit(ref)


def test_nan_scores_are_refused_in_fit_and_estimate(cbpe: CBPE) -> None:
    bad = binary(300, 16)
    bad.loc[3, "p"] = np.nan
    with pytest.raises(InputError, match="missing or non-finite"):
        CBPE(score="p", prediction="yhat", target="y").fit(bad)
    with pytest.raises(InputError, match="missing or non-finite"):
        cbpe.estimate(bad)


def test_other_bad_options_and_calls() -> None:
    ref = binary(300, 17)
    with pytest.raises(NotFittedError, match="fit"):
        CBPE(score="p", prediction="yhat", target="y").estimate(ref)
    with pytest.raises(InputError, match="unknown metrics"):
        CBPE(["auc"], score="p", prediction="yhat", target="y").fit(ref)
    with pytest.raises(InputError, match="classes"):
        CBPE(score=["a", "b", "c"], prediction="yhat", target="y").fit(ref)
    ref["p"] *= 3
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        CBPE(score="p", prediction="yhat", target="y", calibration="none").fit(ref)
    ref["yhat"] = 5
    with pytest.raises(InputError, match="not among"):
        CBPE(score="p", prediction="yhat", target="y").fit(ref)


# -- DLE --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dle() -> DLE:
    return DLE(prediction="pred", target="y", features=["x", "c"]).fit(regression(4000, 20))


def test_dle_estimates_mae_and_rmse_of_a_similar_window(dle: DLE) -> None:
    window = regression(3000, 21)
    results = by_check(dle.estimate(window.drop(columns="y")))
    mae, rmse = results[("estimated.mae", "model")], results[("estimated.rmse", "model")]
    realised = mean_absolute_error(window["y"], window["pred"])
    assert mae.status is Status.OK
    assert abs(mae.value - realised) < 0.05
    assert mae.lower < realised < mae.upper
    assert rmse.value > mae.value
    assert mae.details["method"] == "dle"


def test_dle_alerts_when_rows_move_to_where_the_model_errs_more(dle: DLE) -> None:
    window = regression(6000, 22)
    noisy = window[(window["c"] == "a") & (window["x"] > 0.5)]
    results = by_check(dle.estimate(noisy))
    assert results[("estimated.mae", "model")].status is Status.ALERT
    assert "assumption_warning" not in results[("estimated.mae", "model")].details


def test_dle_flags_out_of_support_rows(dle: DLE) -> None:
    results = dle.estimate(regression(500, 23, shift=3.0))
    assert all("assumption_warning" in r.details for r in results)
    assert all(r.status.severity >= Status.WARN.severity for r in results)


def test_dle_bad_input() -> None:
    ref = regression(300, 24)
    with pytest.raises(InputError, match="features"):
        DLE(prediction="pred", target="y", features=[]).fit(ref)
    bad = ref.copy()
    bad.loc[0, "y"] = np.nan
    with pytest.raises(InputError, match="target"):
        DLE(prediction="pred", target="y", features=["x"]).fit(bad)
    with pytest.raises(InputError, match="'missing'"):
        DLE(prediction="pred", target="y", features=["missing"]).fit(ref)


def test_binary_interval_matches_a_label_simulation() -> None:
    # The binary interval uses exact Poisson-binomial moments and the delta method; the
    # multiclass path simulates labels. On the same binary window the two must agree.
    est = CBPE(score="p", prediction="yhat", target="y", n_simulations=3000)
    est.fit(binary(3000, 30))
    window = binary(800, 31)
    table = pa.Table.from_pandas(window)
    s = est._scores(table)
    yhat = est._indices(table, "yhat", "prediction")
    _, sd, _ = est._binary(s[:, 0], yhat)
    p = est._calibrated(s)
    draws = est._simulate(p[1:], yhat, est._ranks(s))
    for key, spread in sd.items():
        assert np.std(draws[key], ddof=1) == pytest.approx(spread, rel=0.1), key


def test_dle_chunks_equal_per_window_estimates(dle: DLE) -> None:
    window = regression(650, 25)
    chunked = DLE(prediction="pred", target="y", features=["x", "c"], chunk_size=300)
    chunked.fit(regression(4000, 20))
    chunks = chunked.estimate_chunks(window)
    assert [(c.start, c.stop) for c in chunks] == [(0, 300), (300, 600), (600, 650)]
    assert chunks[2].results[0].status is Status.INSUFFICIENT_DATA
    alone = dle.estimate(window.iloc[300:600])
    assert [r.to_dict() for r in chunks[1].results] == [r.to_dict() for r in alone]


# -- check_estimate_consistency: the no-concept-drift assumption, once labels arrive --------


def test_consistency_passes_an_unchanged_window_and_fails_a_concept_shift(cbpe: CBPE) -> None:
    same = binary(3000, 31)
    [est] = [r for r in cbpe.estimate(same.drop(columns="y")) if r.check == "estimated.accuracy"]
    ok = check_estimate_consistency(est, accuracy_score(same["y"], same["yhat"]))
    assert ok.check == "estimated.accuracy.assumption"
    assert ok.status is Status.OK
    assert "assumption_warning" not in ok.details
    # Concept shift: the same inputs and scores, but the outcome now goes against the score
    # in a quarter of the rows. The inputs look like the reference's, so the support check
    # cannot see it; the labels can.
    shifted = binary(3000, 32)
    flip = np.random.default_rng(33).random(len(shifted)) < 0.25
    shifted.loc[flip, "y"] = 1 - shifted.loc[flip, "y"]
    [est] = [r for r in cbpe.estimate(shifted.drop(columns="y")) if r.check == "estimated.accuracy"]
    assert "assumption_warning" not in est.details
    bad = check_estimate_consistency(est, accuracy_score(shifted["y"], shifted["yhat"]))
    assert bad.status is Status.WARN
    assert "no-concept-drift assumption failed" in bad.details["assumption_warning"]
    assert bad.p_value < 0.05


def test_consistency_p_value_is_the_normal_one_and_bonferroni_divides_the_level() -> None:
    from scipy.stats import norm

    est = CheckResult(
        check="estimated.mae", subject="model", status=Status.OK, reason="r", value=10.0,
        lower=10.0 - 1.959964 * 2.0, upper=10.0 + 1.959964 * 2.0, details={"confidence": 0.95},
    )  # fmt: skip
    r = check_estimate_consistency(est, 14.5)
    assert r.p_value == pytest.approx(2 * norm.sf(2.25), rel=1e-5)
    assert r.status is Status.WARN
    assert r.threshold == pytest.approx(0.05)
    # The same deviation judged as one of five comparisons: p 0.024 > 0.05 / 5.
    r5 = check_estimate_consistency(est, 14.5, tests=5)
    assert r5.status is Status.OK
    assert r5.threshold == pytest.approx(0.01)
    # Under the assumption (realised ~ N(estimate, sd)) the failure rate is the level's.
    realised = np.random.default_rng(34).normal(10.0, 2.0, 4000)
    failed = np.array([check_estimate_consistency(est, v).status is Status.WARN for v in realised])
    assert abs(failed.mean() - 0.05) < 0.012  # binomial sd 0.0034
    assert r.to_dict()["details"]["tests"] == 1


def test_consistency_one_sided_clipped_interval_uses_its_wider_side() -> None:
    est = CheckResult(
        check="estimated.roc_auc", subject="model", status=Status.OK, reason="r", value=0.99,
        lower=0.97, upper=1.0, details={"confidence": 0.95},
    )  # fmt: skip
    assert check_estimate_consistency(est, 1.0).status is Status.OK
    assert check_estimate_consistency(est, 0.96).status is Status.WARN


def test_consistency_without_interval_or_value_and_bad_input() -> None:
    est = CheckResult(
        check="estimated.precision", subject="model", status=Status.INSUFFICIENT_DATA, reason="r"
    )
    assert check_estimate_consistency(est, 0.5).status is Status.INSUFFICIENT_DATA
    full = CheckResult(
        check="estimated.precision", subject="model", status=Status.OK, reason="r", value=0.5,
        lower=0.4, upper=0.6,
    )  # fmt: skip
    assert check_estimate_consistency(full, float("nan")).status is Status.INSUFFICIENT_DATA
    with pytest.raises(InputError, match=r"estimated\.<metric>"):
        check_estimate_consistency(
            CheckResult(check="quality.missing_share", subject="a", status=Status.OK, reason="r"),
            0.1,
        )
    with pytest.raises(InputError, match="tests must be"):
        check_estimate_consistency(full, 0.5, tests=0)
