"""The fairness gate check, Fairlearn mitigations and the trade-off table."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from watchkeeper.checks import Status
from watchkeeper.data import Schema
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle import GateConfig, mitigate, tradeoff_table, validate

OFF = {"enabled": False}


def _config(**fairness: Any) -> GateConfig:
    return GateConfig.from_dict(
        {
            "generalisation": OFF,
            "calibration": OFF,
            "robustness": OFF,
            "serving": OFF,
            "extra_checks": {"fairness": fairness},
        }
    )


def _data(seed: int = 0, n: int = 2000, bias: float = 1.0) -> pd.DataFrame:
    """``sex`` is not a feature, but ``proxy`` carries it: a model learns the bias."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["f", "m"], n)
    proxy = (sex == "m") + rng.normal(0, 0.3, n)
    x = rng.normal(size=n)
    y = (x + bias * (sex == "m") + rng.normal(size=n) > 0.5).astype(int)
    return pd.DataFrame({"x": x, "proxy": proxy, "sex": sex, "y": y})


def _results(report: Any, check: str) -> list[Any]:
    return list(report.by_check(f"fairness.{check}"))


def test_the_gate_fails_a_biased_model_and_says_who_is_disadvantaged() -> None:
    report = validate(
        LogisticRegression(), _data(), target="y", features=["x", "proxy"],
        config=_config(attributes=["sex"]),
    )  # fmt: skip
    (gap,) = _results(report, "demographic_parity_difference")
    assert gap.status is Status.ALERT
    assert gap.details["lowest"]["group"] == "sex=f"
    assert not report.passed
    assert any(r.check == "fairness.demographic_parity_difference" for r in report.failures)
    payload = json.loads(report.to_json())
    assert any(r["check"] == "fairness.selection_rate" for r in payload["results"])
    assert "demographic_parity_difference" in report.to_html()


def test_a_fair_model_passes_and_attributes_default_to_the_schema() -> None:
    df = _data(1, bias=0.0)
    schema = Schema.infer(df, roles={"sex": "sensitive", "y": "target"})
    report = validate(
        LogisticRegression(), df, schema=schema, features=["x", "proxy"], config=_config()
    )
    statuses = {r.status for r in report.results if r.check.startswith("fairness.")}
    assert Status.ALERT not in statuses
    assert report.passed
    assert _results(report, "roc_auc")  # probabilities were there, so AUC by group is too


def test_the_tradeoff_table_shows_mitigations_before_deployment() -> None:
    cfg = _config(
        attributes=["sex"], mitigation=["threshold_optimizer", "exponentiated_gradient"],
        max_iter=10,
    )  # fmt: skip
    report = validate(LogisticRegression(), _data(2, n=4000), target="y",
                      features=["x", "proxy"], config=cfg)  # fmt: skip
    rows = {r.subject: r for r in _results(report, "tradeoff")}
    assert set(rows) == {
        "unmitigated",
        "threshold_optimizer (demographic_parity)",
        "exponentiated_gradient (demographic_parity)",
    }

    def gap(label: str) -> float:
        return float(rows[label].details["gaps"]["sex"]["demographic_parity_difference"]["value"])

    assert gap("threshold_optimizer (demographic_parity)") < gap("unmitigated") / 2
    assert gap("exponentiated_gradient (demographic_parity)") < gap("unmitigated") / 2
    for r in rows.values():
        assert r.status is Status.OK
        assert r.lower is not None
        assert r.lower <= r.value <= r.upper  # accuracy with its interval
    # seeded: the same gate gives the same table
    again = validate(LogisticRegression(), _data(2, n=4000), target="y",
                     features=["x", "proxy"], config=cfg)  # fmt: skip
    assert [r.to_dict() for r in _results(again, "tradeoff")] == [
        r.to_dict() for r in _results(report, "tradeoff")
    ]


def test_mitigate_with_equalized_odds_and_predict_needs_sensitive_features() -> None:
    df = _data(3)
    X, y = df[["x", "proxy"]], df["y"]
    model = LogisticRegression().fit(X, y)
    fair = mitigate(model, X, y, df[["sex"]], constraint="equalized_odds")
    assert fair.needs_sensitive_features
    with pytest.raises(InputError, match="sensitive_features"):
        fair.predict(X)
    table = tradeoff_table({"as is": model, "fair": fair}, X, y, df[["sex"]])
    eo = [r.details["gaps"]["sex"]["equalized_odds_difference"]["value"] for r in table]
    assert eo[1] < eo[0]
    with pytest.raises(InputError, match="unknown mitigation"):
        mitigate(model, X, y, df[["sex"]], method="reweighing")  # type: ignore[arg-type]


def test_a_model_without_predict_proba_skips_score_metrics_with_a_reason() -> None:
    report = validate(LinearSVC(), _data(4), target="y", features=["x", "proxy"],
                      config=_config(attributes=["sex"]))  # fmt: skip
    (auc,) = _results(report, "roc_auc")
    assert auc.status is Status.INSUFFICIENT_DATA
    assert "no predict_proba" in auc.reason
    assert _results(report, "selection_rate")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"attributes": ["race"]}, "not in the holdout"),
        ({"attributes": ["sex"], "max_disparity": 0.1}, "unknown fairness gate settings"),
        ({}, "name the sensitive attributes"),
    ],
)
def test_bad_settings_are_error_results_that_say_what_to_fix(
    settings: dict[str, Any], message: str
) -> None:
    report = validate(LogisticRegression(), _data(5, n=400), target="y", features=["x", "proxy"],
                      config=_config(**settings))  # fmt: skip
    (error,) = report.by_check("gate.fairness")
    assert error.status is Status.ERROR
    assert message in error.reason
    assert report.exit_code == 2


def test_a_failed_optional_mitigation_is_its_own_error_and_does_not_decide_the_gate() -> None:
    # Group "c" has only positive labels: ThresholdOptimizer refuses it ("Degenerate labels
    # for sensitive feature value c"). Every check of the gate passes otherwise.
    rng = np.random.default_rng(7)
    n = 3000
    group = rng.choice(["a", "b", "c"], n, p=[0.45, 0.45, 0.10])
    x = rng.normal(size=n)
    y = (x + rng.normal(size=n) > 0).astype(int)
    y[group == "c"] = 1
    df = pd.DataFrame({"x": x, "g": group, "y": y})
    cfg = _config(attributes=["g"], mitigation=["threshold_optimizer"], max_difference=1.0,
                  thresholds={"demographic_parity_difference": 1.0,
                              "equalized_odds_difference": 1.0,
                              "equal_opportunity_difference": 1.0})  # fmt: skip
    report = validate(LogisticRegression(), df, target="y", features=["x"], config=cfg)
    (failed,) = [r for r in _results(report, "tradeoff") if r.status is Status.ERROR]
    assert failed.subject == "threshold_optimizer (demographic_parity)"
    assert "Degenerate labels" in failed.reason
    assert failed.details["optional"] is True
    assert report.passed, report.failures
    assert report.errors == ()
    assert report.exit_code == 0
    payload = json.loads(report.to_json())
    assert payload["passed"] is True
    assert payload["exit_code"] == 0
    assert any(r["status"] == "error" for r in payload["results"])
    # The same failure in a required check still decides: a configured check that raises.
    broken = _config(attributes=["no_such_column"])
    assert validate(LogisticRegression(), df, target="y", features=["x"],
                    config=broken).exit_code == 2  # fmt: skip
