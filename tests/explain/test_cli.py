"""``watchkeeper explain MODEL[@ALIAS] DATA`` on a registered model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

import watchkeeper.cli._explain  # noqa: F401  (registers the command on the app)
from watchkeeper.cli._app import app
from watchkeeper.registry import Registry

runner = CliRunner()


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "plan": rng.choice(["basic", "pro", "team"], size=n),
            "usage": rng.gamma(2.0, size=n),
            "age": rng.integers(18, 80, size=n),
        }
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("explain-cli")
    train = _frame(400, 0)
    labels = np.where((train["plan"] == "pro") | (train["usage"] > 3), "churn", "stay")
    encode = ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough")
    model = Pipeline([("encode", encode), ("model", HistGradientBoostingClassifier(max_iter=20))])
    with threadpool_limits(1):
        model.fit(train, labels)
    root = tmp / "root"
    with Registry(root=root) as registry:
        registry.register("churn", model, reference=train, actor="tests")
        registry.set_alias("churn", "champion", 1, actor="tests")
    data = tmp / "rows.csv"
    _frame(300, 1).to_csv(data, index=False)
    return root, data


def test_explain_writes_html_and_json(project: tuple[Path, Path], tmp_path: Path) -> None:
    root, data = project
    html, out = tmp_path / "explain.html", tmp_path / "explain.json"
    options = ["--rows", "120", "--backgrounds", "2", "--show", "2"]
    args = ["explain", "churn", str(data), "--root", str(root), "--html", str(html),
            "--json", str(out), *options]  # fmt: skip
    with threadpool_limits(1):
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "churn version 1 (champion)" in result.stdout
    assert "margin (log-odds) of class 'stay'" in result.stdout
    assert "surrogate tree (depth 3)" in result.stdout
    report = json.loads(out.read_text())
    importance = report["importance"]
    assert importance["features"] == ["plan", "usage", "age"]
    assert importance["n_rows"] == 120
    assert importance["method"] == "tree"
    assert len(report["local"]["values"]) == 2
    assert report["surrogate"]["fidelity"] > 0.8
    assert report["meta"]["version"] == 1
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('class="column waterfall"') == 2
    assert "Permutation importance" in page


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "magic"], "--method must be one of"),
        (["--rows", "0"], "--rows must be at least 1"),
        (["--class", "maybe"], "not a class of the model"),
    ],
)
def test_explain_refuses_bad_options(project: tuple[Path, Path], extra, message) -> None:
    root, data = project
    result = runner.invoke(app, ["explain", "churn", str(data), "--root", str(root), *extra])
    assert result.exit_code == 2
    assert message in result.stderr


def test_explain_names_missing_inputs(project: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = project
    data = tmp_path / "partial.csv"
    _frame(20, 2).drop(columns=["usage"]).to_csv(data, index=False)
    result = runner.invoke(app, ["explain", "churn@1", str(data), "--root", str(root)])
    assert result.exit_code == 2
    assert "lacks the model's features ['usage']" in result.stderr
    ghost = runner.invoke(app, ["explain", "ghost", str(data), "--root", str(root)])
    assert ghost.exit_code == 2
    assert "ghost" in ghost.stderr
