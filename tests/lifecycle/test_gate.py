"""``validate`` end to end: inputs, the report, exit codes, extra checks, renderings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle import (
    GateConfig,
    GateContext,
    GateReport,
    available_gate_checks,
    gate_check,
    get_gate_check,
    validate,
)
from watchkeeper.lifecycle._report import GATE_REPORT_FORMAT


def _checks(report: GateReport) -> set[str]:
    return {r.check for r in report.results}


def test_binary_gate_runs_every_check(clf_frame: pd.DataFrame, fast: Any) -> None:
    champion = LogisticRegression(C=0.001)
    report = validate(
        LogisticRegression(), clf_frame, target="y", champion=champion, config=fast(),
        name="churn@candidate", champion_name="churn@champion",
    )  # fmt: skip
    assert _checks(report) == {
        "gate.holdout", "gate.cv", "gate.overfitting", "gate.learning_curve",
        "gate.validation_curve", "gate.calibration", "gate.comparison", "gate.robustness",
        "gate.stability", "gate.latency", "gate.memory",
    }  # fmt: skip
    assert report.task == "binary"
    assert report.metrics == ("roc_auc", "accuracy")
    assert (report.n_train, report.n_holdout) == (450, 150)
    assert report.candidate == "churn@candidate"
    assert any("unfitted" in n for n in report.notes)
    assert report.exit_code in (0, 1)
    assert report.passed == (not report.failures)


def test_regression_and_multiclass(reg_frame: pd.DataFrame, fast: Any) -> None:
    cfg = fast(generalisation={"learning_curve": False})
    report = validate(
        RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0),
        reg_frame, target="y", config=cfg,
    )  # fmt: skip
    assert report.task == "regression"
    assert report.metrics == ("r2", "mae")
    assert "gate.calibration" not in _checks(report)
    assert "gate.validation_curve" in _checks(report)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(450, 3))
    y = np.array(["a", "b", "c"])[np.argmax(X + rng.normal(scale=0.5, size=X.shape), axis=1)]
    df = pd.DataFrame(X, columns=["p", "q", "r"]).assign(y=y)
    report = validate(LogisticRegression(), df, target="y", config=fast())
    assert report.task == "multiclass"
    assert report.metrics == ("accuracy", "log_loss")
    (cal,) = report.by_check("gate.calibration")
    assert cal.details["curve"] == "top label"


def test_exit_codes(clf_frame: pd.DataFrame, fast: Any) -> None:
    lenient = fast(
        calibration={"enabled": False},
        serving={"p50_budget_ms": {}, "p99_budget_ms": {}, "max_memory_mb": None},
    )
    ok = validate(LogisticRegression(), clf_frame, target="y", config=lenient)
    assert ok.passed, ok.summary()
    assert ok.exit_code == 0
    # A budget exceeded is reported apart from the statistical verdict: a warning by
    # default, the exit code 1 only when enforced; `passed` stays the statistical verdict.
    tight = {"calibration": {"enabled": False}, "serving": {"p99_budget_ms": {"1": 1e-9}}}
    warned = validate(LogisticRegression(), clf_frame, target="y", config=fast(**tight))
    assert warned.passed
    assert not warned.budgets_passed
    assert warned.exit_code == 0
    (over,) = [r for r in warned.budget_failures if r.subject == "batch 1"]
    assert over.status.value == "warn"
    assert not any(r.check == "gate.latency" for r in warned.failures)
    assert "budgets EXCEEDED (reported only" in warned.summary()
    tight["serving"]["enforce"] = True  # type: ignore[index]
    failed = validate(LogisticRegression(), clf_frame, target="y", config=fast(**tight))
    assert failed.passed
    assert failed.exit_code == 1
    assert [r.status.value for r in failed.budget_failures] == ["alert"]
    assert failed.to_dict()["budgets"]["enforced"] is True
    assert "budgets EXCEEDED (enforced" in failed.summary()


@gate_check("test_min_holdout")
def _min_holdout(ctx: GateContext, params: Mapping[str, Any]) -> CheckResult:
    n = len(ctx.y_holdout)
    need = int(params.get("rows", 1))
    return CheckResult(
        check="gate.test_min_holdout",
        subject="holdout",
        status=Status.OK if n >= need else Status.ALERT,
        reason=f"{n} holdout rows, {need} needed",
        value=float(n),
        details={"group_column_seen": "group" in ctx.holdout_frame.columns},
    )


_SEEN: list[GateContext] = []


@gate_check("test_capture")
def _capture(ctx: GateContext, params: Mapping[str, Any]) -> CheckResult:
    _SEEN.append(ctx)
    return CheckResult(check="gate.test_capture", subject="ctx", status=Status.OK, reason="seen")


@gate_check("test_explodes")
def _explodes(ctx: GateContext, params: Mapping[str, Any]) -> list[CheckResult]:
    raise RuntimeError("fairness data missing")


def test_extra_checks_run_when_configured(clf_frame: pd.DataFrame, fast: Any) -> None:
    assert {"test_min_holdout", "test_explodes"} <= set(available_gate_checks())
    assert get_gate_check("test_min_holdout") is _min_holdout
    frame = clf_frame.assign(group=np.arange(len(clf_frame)) % 2)
    base = validate(LogisticRegression(), frame, target="y", features=[f"x{i}" for i in range(6)],
                    config=fast())  # fmt: skip
    assert "gate.test_min_holdout" not in _checks(base)
    cfg = fast(extra_checks={"test_min_holdout": {"rows": 10_000}})
    report = validate(LogisticRegression(), frame, target="y",
                      features=[f"x{i}" for i in range(6)], config=cfg)  # fmt: skip
    (r,) = report.by_check("gate.test_min_holdout")
    assert r.status is Status.ALERT
    assert r.details["group_column_seen"] is True  # non-feature columns reach the check
    assert report.exit_code == 1
    boom = validate(LogisticRegression(), frame, target="y", config=fast(
        extra_checks={"test_explodes": {}}))  # fmt: skip
    (r,) = boom.by_check("gate.test_explodes")
    assert r.status is Status.ERROR
    assert "fairness data missing" in r.reason
    assert boom.exit_code == 2
    with pytest.raises(InputError, match="no gate check named 'nope'"):
        validate(LogisticRegression(), frame, target="y", config=fast(extra_checks={"nope": {}}))


def test_gate_check_names_are_unique() -> None:
    with pytest.raises(InputError, match="already registered"):
        gate_check("test_min_holdout")(lambda ctx, params: [])
    with pytest.raises(InputError, match="must be letters"):
        gate_check("../evil")


def test_a_fitted_candidate_is_left_untouched(clf_frame: pd.DataFrame, fast: Any) -> None:
    X, y = clf_frame.drop(columns="y"), clf_frame["y"]
    model = LogisticRegression(C=0.5).fit(X, y)
    params, coef, pred = model.get_params(), model.coef_.copy(), model.predict_proba(X)
    report = validate(model, clf_frame, target="y", config=fast())
    assert model.get_params() == params
    np.testing.assert_array_equal(model.coef_, coef)
    np.testing.assert_array_equal(model.predict_proba(X), pred)
    assert any("optimistic" in n for n in report.notes)


def test_separate_holdout_and_time_order(clf_frame: pd.DataFrame, fast: Any) -> None:
    train, hold = clf_frame.iloc[:400], clf_frame.iloc[400:]
    report = validate(LogisticRegression(), train, target="y", holdout=hold, config=fast())
    assert (report.n_train, report.n_holdout) == (400, 200)
    assert not any("optimistic" in n for n in report.notes)
    stamped = clf_frame.assign(ts=pd.date_range("2024-01-01", periods=600, freq="h"))
    shuffled = stamped.sample(frac=1.0, random_state=0)
    _SEEN.clear()
    report = validate(
        LogisticRegression(), shuffled, target="y", timestamp="ts",
        config=fast(extra_checks={"test_capture": {}}),
    )  # fmt: skip
    assert any("last 25%" in n for n in report.notes)
    (cv,) = [r for r in report.by_check("gate.cv") if r.subject == "roc_auc"]
    assert "time-series" in cv.details["cv"]
    (ctx,) = _SEEN
    assert ctx.holdout_frame["ts"].min() == stamped["ts"].iloc[450]  # the latest 150 rows
    assert "ts" not in ctx.X_train.columns  # the timestamp is not a feature
    (missing,) = [r for r in report.by_check("gate.robustness") if r.subject == "missing"]
    assert missing.details["cases"] == 6


def test_schema_roles_arrow_and_files(clf_frame: pd.DataFrame, fast: Any, tmp_path: Path) -> None:
    from watchkeeper.data import Schema

    frame = clf_frame.assign(customer_id=np.arange(len(clf_frame)))
    schema = Schema.infer(frame, roles={"y": "target", "customer_id": "id"})
    cfg = fast(generalisation={"enabled": False}, robustness={"enabled": False})
    report = validate(LogisticRegression(), frame, schema=schema, config=cfg)
    assert report.n_train == 450
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    from_file = validate(LogisticRegression(), str(path), schema=schema, config=cfg)
    from_arrow = validate(LogisticRegression(), pa.Table.from_pandas(frame), schema=schema,
                          config=cfg)  # fmt: skip
    assert [r.value for r in from_file.by_check("gate.holdout")] == [
        r.value for r in from_arrow.by_check("gate.holdout")
    ]


def test_bad_inputs_say_what_to_do(clf_frame: pd.DataFrame, fast: Any) -> None:
    with pytest.raises(InputError, match="target column 'label' is not in the data"):
        validate(LogisticRegression(), clf_frame, target="label")
    with pytest.raises(InputError, match="pass target="):
        validate(LogisticRegression(), clf_frame)
    broken = clf_frame.astype({"y": float})
    broken.loc[3, "y"] = np.nan
    with pytest.raises(InputError, match="missing values"):
        validate(LogisticRegression(), broken, target="y")
    with pytest.raises(InputError, match="holdout has no column 'x0'"):
        validate(LogisticRegression(), clf_frame, target="y",
                 holdout=clf_frame.drop(columns="x0"))  # fmt: skip
    with pytest.raises(InputError, match="unknown metric"):
        validate(LogisticRegression(), clf_frame, target="y", config=fast(metrics=["auc"]))


class _Frozen:
    """A model that can predict but not be refitted (as from ONNX)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.classes_ = inner.classes_

    def predict(self, X: Any) -> np.ndarray:
        return self.inner.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.inner.predict_proba(X)


def test_models_that_cannot_be_refitted_skip_generalisation(
    clf_frame: pd.DataFrame, fast: Any
) -> None:
    X, y = clf_frame.drop(columns="y"), clf_frame["y"]
    frozen = _Frozen(LogisticRegression().fit(X, y))
    report = validate(frozen, clf_frame, target="y", config=fast())
    assert "gate.cv" not in _checks(report)
    assert "gate.calibration" in _checks(report)
    assert any("cannot be refitted" in n for n in report.notes)


def test_json_round_trip_and_html(clf_frame: pd.DataFrame, fast: Any, tmp_path: Path) -> None:
    report = validate(
        Ridge(), clf_frame.assign(y=clf_frame["y"] * 1.0), target="y", task="regression",
        champion=clone(Ridge(alpha=10.0)), config=fast(), name="<script>alert(1)</script>",
    )  # fmt: skip
    text = report.to_json(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data == json.loads(text)
    assert data["format"] == GATE_REPORT_FORMAT
    assert data["exit_code"] == report.exit_code
    assert data["passed"] == report.passed
    assert len(data["results"]) == len(report.results)
    assert GateConfig.from_dict(data["config"]) == report.config
    page = report.to_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text() == page
    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page  # names are escaped
    assert "&lt;script&gt;" in page
    assert page.count("<svg") >= 3  # comparison, learning and validation curves


def test_report_verdict_rules() -> None:
    def res(check: str, status: Status) -> CheckResult:
        return CheckResult(check=check, subject="s", status=status, reason="r")

    def report(*results: CheckResult) -> GateReport:
        return GateReport(candidate="m", champion=None, task="binary", metrics=("accuracy",),
                          n_train=10, n_holdout=10, results=results)  # fmt: skip

    assert report(res("gate.cv", Status.OK), res("gate.cv", Status.WARN)).exit_code == 0
    assert report(res("gate.cv", Status.ALERT)).exit_code == 1
    # an error wins: the report is incomplete
    assert report(res("gate.cv", Status.ALERT), res("gate.x", Status.ERROR)).exit_code == 2
    # missing evidence blocks for the comparison, not for calibration
    assert report(res("gate.comparison", Status.INSUFFICIENT_DATA)).exit_code == 1
    assert report(res("gate.calibration", Status.INSUFFICIENT_DATA)).exit_code == 0
    assert report(res("gate.comparison", Status.OK)).blessed is True
    assert report(res("gate.cv", Status.OK)).blessed is None
