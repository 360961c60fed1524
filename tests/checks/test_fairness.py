"""Fairness checks: agreement with Fairlearn, planted bias, bad input, profiles."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    mean_prediction,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import mean_absolute_error, precision_score, zero_one_loss
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from watchkeeper.checks import (
    CheckResult,
    FairnessConfig,
    Status,
    check_fairness,
    check_fairness_counts,
    check_profile_fairness,
)
from watchkeeper.data import GroupCounts, Profile, Schema
from watchkeeper.datasets import ACS_FEATURES, load_acs_employment
from watchkeeper.exceptions import InputError

EVERY_GROUP = FairnessConfig(min_group_size=1)


def _by(results: list[CheckResult], check: str) -> dict[str, CheckResult]:
    return {r.subject: r for r in results if r.check == f"fairness.{check}"}


@pytest.fixture(scope="module")
def acs() -> dict[str, Any]:
    """A depth-6 tree trained on 2015, predicting 2016-2018."""
    df = load_acs_employment()
    train, test = df[df["year"] == 2015], df[df["year"] > 2015]

    def codes(d: pd.DataFrame) -> pd.DataFrame:
        return d[list(ACS_FEATURES)].apply(lambda c: c.cat.codes if hasattr(c, "cat") else c)

    with threadpool_limits(1):
        model = DecisionTreeClassifier(max_depth=6, random_state=0)
        model.fit(codes(train), train["employed"])
        proba = model.predict_proba(codes(test))[:, 1]
    return {
        "y": test["employed"].to_numpy(),
        "pred": (proba >= 0.5).astype(int),
        "score": proba,
        "sensitive": test[["SEX", "RAC1P"]].astype(str).reset_index(drop=True),
    }


def _metric_frame(y: Any, pred: Any, sensitive: Any) -> pd.DataFrame:
    def precision(a: Any, b: Any) -> float:
        return float(precision_score(a, b, zero_division=np.nan))

    with warnings.catch_warnings():
        # Fairlearn warns about groups without positives or negatives (their rates are NaN),
        # which the tiniest RAC1P intersections are.
        warnings.simplefilter("ignore")
        frame = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "true_positive_rate": true_positive_rate,
                "false_positive_rate": false_positive_rate,
                "precision": precision,
                "error_rate": zero_one_loss,
                "count": count,
            },
            y_true=y,
            y_pred=pred,
            sensitive_features=sensitive,
        )
    return frame.by_group


@pytest.mark.parametrize("attributes", [["SEX"], ["RAC1P"], ["SEX", "RAC1P"]])
def test_per_group_metrics_agree_with_fairlearn_metricframe(
    acs: dict[str, Any], attributes: list[str]
) -> None:
    results = check_fairness(acs["y"], acs["pred"], acs["sensitive"], config=EVERY_GROUP)
    expected = _metric_frame(acs["y"], acs["pred"], acs["sensitive"][attributes])
    compared = 0
    for key, row in expected.iterrows():
        values = key if isinstance(key, tuple) else (key,)
        subject = " & ".join(f"{a}={v}" for a, v in zip(attributes, values, strict=True))
        for metric, want in row.items():
            got = _by(results, str(metric)).get(subject)
            if isinstance(want, float) and math.isnan(want):
                # Fairlearn: undefined (no positives, negatives or predicted positives);
                # watchkeeper: a group with an empty denominator, insufficient_data.
                assert got is not None
                assert got.status is Status.INSUFFICIENT_DATA
                continue
            assert got is not None, (metric, subject)
            assert got.value == pytest.approx(float(want), abs=1e-9), (metric, subject)
            compared += 1
    assert compared >= 6 * len(expected) - 12


@pytest.mark.parametrize("attributes", [["SEX"], ["SEX", "RAC1P"]])
def test_gaps_agree_with_fairlearn_functions(acs: dict[str, Any], attributes: list[str]) -> None:
    sensitive = acs["sensitive"]
    # Fairlearn takes every group, including those without positives; keep the race groups
    # where every rate is defined so that both sides judge the same groups.
    keep = sensitive["RAC1P"].isin(["1", "2", "6", "8", "9"]).to_numpy()
    y, pred, sf = acs["y"][keep], acs["pred"][keep], sensitive[keep].reset_index(drop=True)
    results = check_fairness(y, pred, sf, config=EVERY_GROUP)
    name = " & ".join(attributes)
    features = sf[attributes] if len(attributes) > 1 else sf[attributes[0]]
    for gap, function in (
        ("demographic_parity_difference", demographic_parity_difference),
        ("demographic_parity_ratio", demographic_parity_ratio),
        ("equalized_odds_difference", equalized_odds_difference),
        ("equal_opportunity_difference", equal_opportunity_difference),
    ):
        want = function(y, pred, sensitive_features=features)
        got = _by(results, gap)[name]
        assert got.value == pytest.approx(want, abs=1e-9), gap
        assert got.lower is not None
        assert got.upper is not None
        assert got.lower <= got.value <= got.upper


def test_acs_small_race_groups_are_insufficient_data_with_their_counts(
    acs: dict[str, Any],
) -> None:
    results = check_fairness(acs["y"], acs["pred"], acs["sensitive"], y_score=acs["score"])
    counts = acs["sensitive"]["RAC1P"].value_counts()
    small = {f"RAC1P={g}" for g, n in counts.items() if n < 30}
    assert small  # races 3, 4, 5, 7 have fewer than 30 rows in 2016-2018
    by_count = _by(results, "count")
    for subject in small:
        assert by_count[subject].status is Status.INSUFFICIENT_DATA
        assert by_count[subject].value == counts[subject.removeprefix("RAC1P=")]
        sel = _by(results, "selection_rate")[subject]
        assert sel.status is Status.INSUFFICIENT_DATA
        assert "fewer than min_group_size=30" in sel.reason
    gap = _by(results, "demographic_parity_difference")["RAC1P"]
    assert set(gap.details["excluded_groups"]["selection_rate"]) == small
    assert _by(results, "roc_auc")["SEX=1"].status is Status.OK
    assert _by(results, "roc_auc")["RAC1P=4"].status is Status.INSUFFICIENT_DATA


def test_acs_group_counts_by_sex_and_race_match_the_rows(acs: dict[str, Any]) -> None:
    df = load_acs_employment()
    df = df.assign(prediction=np.where(df["AGEP"] > 25, 1, 0))
    schema = Schema.infer(df).with_roles(
        {"SEX": "sensitive", "RAC1P": "sensitive", "employed": "target", "prediction": "prediction"}
    )
    counts = Profile.from_data(df, schema, sample_size=0).group_counts
    assert counts is not None
    for attribute in ("SEX", "RAC1P"):
        rolled = counts.rollup([attribute])
        sizes = df[attribute].astype(str).value_counts()
        for (group,) in rolled.keys:
            cell = rolled.cell((group,))
            assert cell["tp"] + cell["fp"] + cell["fn"] + cell["tn"] == sizes[group]
            rows = df[df[attribute].astype(str) == group]
            assert cell["tp"] == int(((rows["employed"] == 1) & (rows["prediction"] == 1)).sum())


def _biased(seed: int, n: int = 4000, bias: float = 0.0) -> tuple[Any, Any, dict[str, Any]]:
    """Equal base rates; the model approves group b less often by ``bias``."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], n, p=[0.6, 0.4])
    region = rng.choice(["n", "s", "e"], n)
    y = rng.integers(0, 2, n)
    p_approve = np.where(y == 1, 0.8, 0.2) - np.where(group == "b", bias, 0.0)
    pred = (rng.random(n) < p_approve).astype(int)
    return y, pred, {"group": group, "region": region}


def test_planted_bias_is_found_with_the_right_direction() -> None:
    y, pred, sensitive = _biased(0, bias=0.15)
    results = check_fairness(y, pred, sensitive)
    gap = _by(results, "demographic_parity_difference")["group"]
    assert gap.status is Status.ALERT
    assert gap.details["lowest"]["group"] == "group=b"
    assert gap.details["highest"]["group"] == "group=a"
    assert gap.lower is not None
    assert 0.05 < gap.lower < 0.15 < gap.upper  # type: ignore[operator]
    assert _by(results, "demographic_parity_ratio")["group"].status is Status.ALERT
    eo = _by(results, "equalized_odds_difference")["group"]
    assert eo.status is Status.ALERT
    assert eo.details["lowest"]["group"] == "group=b"
    assert _by(results, "selection_rate")["group=b"].status is Status.WARN
    assert "lower than the rest" in _by(results, "selection_rate")["group=b"].reason
    # Region carries no bias. Benjamini-Hochberg controls the false discovery *rate*, so among
    # many true findings a chance one may pass; Holm controls the family-wise error.
    holm = check_fairness(y, pred, sensitive, config=FairnessConfig(correction="holm"))
    assert _by(holm, "demographic_parity_difference")["region"].status is Status.OK
    assert _by(holm, "demographic_parity_difference")["group"].status is Status.ALERT


def test_a_small_planted_bias_warns_below_the_threshold_and_floor_silences_trivia() -> None:
    y, pred, sensitive = _biased(1, n=40_000, bias=0.05)
    gap = _by(check_fairness(y, pred, sensitive), "demographic_parity_difference")["group"]
    assert gap.status is Status.WARN
    y, pred, sensitive = _biased(2, n=200_000, bias=0.01)
    gap = _by(check_fairness(y, pred, sensitive), "demographic_parity_difference")["group"]
    assert gap.p_value is not None
    assert gap.p_value < 0.05  # significant, but below the 0.02 floor
    assert gap.status is Status.OK
    assert "effect floor" in gap.reason


@pytest.mark.slow
def test_fair_control_reports_no_bias_at_the_stated_error_rate() -> None:
    repetitions, alpha = 200, 0.05
    flagged = 0
    for seed in range(repetitions):
        y, pred, sensitive = _biased(1000 + seed, n=2000)
        results = check_fairness(y, pred, sensitive, config=FairnessConfig(floor=0.0))
        flagged += any(r.status in (Status.WARN, Status.ALERT) for r in results)
    rate = flagged / repetitions
    assert rate <= alpha + 2 * math.sqrt(alpha * (1 - alpha) / repetitions), rate


def test_regression_error_by_group_agrees_with_fairlearn_and_finds_planted_bias() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    group = rng.choice(["a", "b", "c"], n)
    y = rng.normal(10, 2, n)
    pred = y + rng.normal(0, np.where(group == "c", 2.0, 1.0), n)
    results = check_fairness(y, pred, {"group": group})
    frame = MetricFrame(
        metrics={"mean_absolute_error": mean_absolute_error, "mean_prediction": mean_prediction},
        y_true=y,
        y_pred=pred,
        sensitive_features=group,
    ).by_group
    for g, row in frame.iterrows():
        for metric, want in row.items():
            assert _by(results, str(metric))[f"group={g}"].value == pytest.approx(want, abs=1e-9)
    rmse = _by(results, "root_mean_squared_error")["group=c"].value
    assert rmse == pytest.approx(np.sqrt(np.mean((pred - y)[group == "c"] ** 2)), abs=1e-9)
    gap = _by(results, "mean_absolute_error_difference")["group"]
    assert gap.status is Status.ALERT
    assert gap.details["highest"]["group"] == "group=c"
    assert _by(results, "mean_prediction_difference")["group"].status is Status.OK


def test_merged_profiles_give_the_fairness_of_the_concatenated_rows() -> None:
    y, pred, sensitive = _biased(4, n=6000, bias=0.1)
    df = pd.DataFrame({**sensitive, "y": y, "p": pred})
    schema = Schema.infer(
        df, roles={"group": "sensitive", "region": "sensitive", "y": "target", "p": "prediction"}
    )
    ref = Profile.from_data(df[:1000], schema, sample_size=0)
    parts = [
        Profile.from_data(df[a:b], schema, reference=ref, sample_size=0)
        for a, b in ((0, 2500), (2500, 6000))
    ]
    from_profiles = check_profile_fairness(parts[0].merge(parts[1]))
    from_rows = check_fairness(y, pred, sensitive)
    rows = {(r.check, r.subject): r for r in from_rows if r.check != "fairness.roc_auc"}
    assert len(from_profiles) == len(rows)
    for r in from_profiles:
        twin = rows[(r.check, r.subject)]
        assert (r.status, r.value, r.lower, r.upper, r.p_value) == (
            twin.status,
            twin.value,
            twin.lower,
            twin.upper,
            twin.p_value,
        )
    with pytest.raises(InputError, match="no per-group counts"):
        check_profile_fairness(Profile.from_data(df, sample_size=0))


def test_one_group_missing_values_and_a_group_of_one() -> None:
    rng = np.random.default_rng(5)
    n = 500
    y, pred = rng.integers(0, 2, n), rng.integers(0, 2, n)
    one = check_fairness(y, pred, {"country": ["NO"] * n})
    gap = _by(one, "demographic_parity_difference")["country"]
    assert gap.status is Status.INSUFFICIENT_DATA
    assert "1 group(s)" in gap.reason
    sex = rng.choice(["f", "m"], n).astype(object)
    sex[:40] = None
    sex[40] = "x"  # a group of one
    results = check_fairness(y, pred, pd.DataFrame({"sex": sex}))
    counts = _by(results, "count")
    assert counts["sex=missing"].value == 40
    assert counts["sex=missing"].status is Status.OK
    assert counts["sex=x"].value == 1
    assert counts["sex=x"].status is Status.INSUFFICIENT_DATA
    assert (
        counts["sex=x"].details["counts"]["tp"]
        + counts["sex=x"].details["counts"]["fp"]
        + (counts["sex=x"].details["counts"]["fn"] + counts["sex=x"].details["counts"]["tn"])
        == 1
    )
    gap = _by(results, "demographic_parity_difference")["sex"]
    assert "sex=x" in gap.details["excluded_groups"]["selection_rate"]
    assert "sex=missing" in gap.details["by_group"]["selection_rate"]


def test_without_scores_the_score_based_metrics_are_skipped_with_a_reason() -> None:
    y, pred, sensitive = _biased(6, n=300)
    auc = _by(check_fairness(y, pred, sensitive), "roc_auc")
    (only,) = auc.values()
    assert only.status is Status.INSUFFICIENT_DATA
    assert "no predict_proba" in only.reason


def test_bad_configuration_and_inputs_raise_clear_errors() -> None:
    with pytest.raises(InputError, match="unknown fairness gaps"):
        FairnessConfig(gaps=("demographic_parity",))
    with pytest.raises(InputError, match="min_group_size"):
        FairnessConfig(min_group_size=0)
    with pytest.raises(InputError, match="align"):
        check_fairness([1, 0], [1, 0, 1], {"g": ["a", "b", "a"]})
    with pytest.raises(InputError, match="positive_label"):
        check_fairness(["u", "v", "w"], ["u", "u", "w"], {"g": ["a", "b", "c"]})


def test_holm_and_gap_selection_are_honoured() -> None:
    y, pred, sensitive = _biased(7, bias=0.15)
    counts = GroupCounts.from_arrays(sensitive, y, pred)
    cfg = FairnessConfig(gaps=("equal_opportunity_difference",), correction="holm")
    results = check_fairness_counts(counts, cfg)
    gaps = {r.check for r in results if "=" not in r.subject}
    assert gaps == {"fairness.equal_opportunity_difference"}
    assert all("holm" in (r.rule or "") for r in results if r.p_value is not None)
