"""``watchkeeper validate`` as a pipeline runs it: files in, reports out, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pandas as pd
import pytest
import skops.io as sio
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import watchkeeper.cli._validate  # noqa: F401  (registers the command until the lead mounts it)
from watchkeeper.cli import main

FAST_TOML = """
[generalisation]
folds = 3
learning_curve = false
[calibration]
n_resamples = 50
[comparison]
n_resamples = 300
[robustness]
large_batch_rows = 1000
n_rows = 40
[serving]
batch_sizes = [1, 20]
repeats = 3
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("validate")
    X, y = make_classification(500, 4, random_state=0)
    df = pd.DataFrame(X, columns=list("abcd")).assign(y=y)
    df.iloc[:400].to_csv(d / "train.csv", index=False)
    df.iloc[400:].to_csv(d / "holdout.csv", index=False)
    model = LogisticRegression().fit(df[list("abcd")].iloc[:400], y[:400])
    sio.dump(model, d / "model.skops")
    joblib.dump(model, d / "model.joblib")
    (d / "gate.toml").write_text(FAST_TOML, encoding="utf-8")
    (d / "strict.toml").write_text(
        FAST_TOML.replace("[serving]\n", "[serving]\nenforce = true\n")
        + '[serving.p99_budget_ms]\n"1" = 1e-9\n',
        encoding="utf-8",
    )
    return {p.name: p for p in d.iterdir()} | {"dir": d}


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", *args])
    code = exit_info.value.code
    return int(code) if code is not None else 0


def test_passing_gate_writes_reports(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = files["dir"] / "report.json"
    html = files["dir"] / "report.html"
    code = run(
        str(files["model.skops"]), str(files["train.csv"]), "--target", "y",
        "--holdout", str(files["holdout.csv"]), "--config", str(files["gate.toml"]),
        "--json", str(out), "--html", str(html),
    )  # fmt: skip
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert code == report["exit_code"]
    assert report["candidate"] == "model.skops"
    assert report["n_holdout"] == 100
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert "gate PASSED" in printed or "gate FAILED" in printed
    assert f"JSON report: {out}" in printed


def test_budget_failure_exits_1(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        str(files["model.skops"]), str(files["train.csv"]), "-t", "y",
        "--config", str(files["strict.toml"]), "--quiet",
    )  # fmt: skip
    assert code == 1
    assert capsys.readouterr().out == ""


def test_pickles_need_explicit_trust(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(files["model.joblib"]), str(files["train.csv"]), "-t", "y",
            "-c", str(files["gate.toml"]), "-q"]  # fmt: skip
    assert run(*args) == 2
    err = capsys.readouterr().err
    assert "--trust-pickle" in err
    assert "Traceback" not in err
    assert run(*args, "--trust-pickle") in (0, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "label"], "target column 'label'"),
        (["--target", "y", "--task", "ranking"], "--task must be"),
        (["--target", "y", "--config", "missing.toml"], "does not exist"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(str(files["model.skops"]), str(files["train.csv"]), *args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("error: ")


def test_unknown_model_reference(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("no-such-model", str(files["train.csv"]), "-t", "y") == 2
    assert "neither a file nor a registry reference" in capsys.readouterr().err


def test_registry_references(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from watchkeeper.registry import Registry

    root = files["dir"] / "project"
    train = pd.read_csv(files["train.csv"])
    X, y = train[list("abcd")], train["y"]
    with Registry(root=root) as reg:
        reg.register("churn", LogisticRegression(C=0.01).fit(X, y), actor="ci")
        reg.set_alias("churn", "champion", 1, actor="ci", reason="first")
        reg.register("churn", LogisticRegression().fit(X, y), actor="ci")
    out = files["dir"] / "registry.json"
    code = run(
        "churn@2", str(files["train.csv"]), "-t", "y", "--holdout", str(files["holdout.csv"]),
        "--champion", "churn@champion", "--root", str(root), "-c", str(files["gate.toml"]),
        "--json", str(out), "-q",
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert code == report["exit_code"]
    assert report["candidate"] == "churn@2 (version 2)"
    assert report["champion"] == "churn@champion (version 1)"
    assert report["blessed"] is not None
    # the registry held scikit-learn estimators, so cross-validation could refit them
    assert any(r["check"] == "gate.cv" for r in report["results"])
    assert run("churn@9", str(files["train.csv"]), "-t", "y", "--root", str(root)) == 2
    assert "error:" in capsys.readouterr().err


def test_registry_models_that_are_not_estimators(files: dict[str, Path]) -> None:
    import lightgbm

    from watchkeeper.registry import Registry

    root = files["dir"] / "boosters"
    train = pd.read_csv(files["train.csv"])
    booster = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1)
    with Registry(root=root) as reg:
        v = reg.register("gbm", booster.fit(train[list("abcd")], train["y"]), actor="ci")
    assert v.format == "lightgbm"  # loaded back as a native booster, not an estimator
    out = files["dir"] / "booster.json"
    code = run(
        "gbm@latest", str(files["train.csv"]), "-t", "y", "--holdout", str(files["holdout.csv"]),
        "--root", str(root), "-c", str(files["gate.toml"]), "--json", str(out), "-q",
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert code == report["exit_code"]
    assert report["task"] == "binary"
    assert any("cannot be refitted" in n for n in report["notes"])
    checks = {r["check"] for r in report["results"]}
    assert "gate.cv" not in checks
    assert {"gate.calibration", "gate.robustness", "gate.latency"} <= checks
