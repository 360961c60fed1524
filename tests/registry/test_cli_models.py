"""``watchkeeper models ...`` through typer's runner, with --json output parsed."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from watchkeeper.cli._models import app


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    y = (frame["a"] > 0).astype(int)
    paths = {
        "skops1": folder / "one.skops",
        "skops2": folder / "two.skops",
        "pickle": folder / "three.pkl",
        "reference": folder / "reference.csv",
    }
    sio.dump(LogisticRegression(C=1.0).fit(frame, y), paths["skops1"])
    sio.dump(LogisticRegression(C=0.1).fit(frame, y), paths["skops2"])
    paths["pickle"].write_bytes(pickle.dumps(LogisticRegression().fit(frame, y)))
    frame.to_csv(paths["reference"], index=False)
    return paths


class Cli:
    def __init__(self, db_url: str, artifacts: Path) -> None:
        self.base = ["--registry", db_url, "--artifacts", str(artifacts)]
        self.runner = CliRunner()

    def run(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, [*self.base, *args])
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self.run(*args, "--json", code=code).stdout)


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path / "artifacts")


def test_register_list_show(cli: Cli, files: dict[str, Path]) -> None:
    first = cli.json(
        "register", "churn", str(files["skops1"]),
        "--metric", "auc=0.9", "--param", "C=1.0", "--param", "solver=lbfgs",
        "--tag", "team=risk", "-d", "baseline", "--actor", "ana@ci",
        "--reference", str(files["reference"]), "--training-data", str(files["reference"]),
    )  # fmt: skip
    assert (first["name"], first["version"], first["format"]) == ("churn", 1, "skops")
    assert first["metrics"] == {"auc": 0.9}
    assert first["params"] == {"C": 1.0, "solver": "lbfgs"}
    assert first["tags"] == {"team": "risk"}
    assert first["actor"] == "ana@ci"
    assert first["profile_sha256"] is not None
    assert first["data_fingerprint"].startswith("sha256:")
    assert cli.json("register", "churn", str(files["skops2"]), "--actor", "a")["version"] == 2
    ranker = cli.json("register", "rank", str(files["skops1"]), "--output-kind", "ranking")
    assert (ranker["output_kind"], first["output_kind"]) == ("ranking", "classification")
    unknown = cli.json("register", "rank", str(files["skops1"]), "--output-kind", "x", code=2)
    assert "output_kind must be one of" in unknown["error"]

    models = cli.json("list")
    assert [(m["name"], m["n_versions"], m["latest_version"]) for m in models] == [
        ("churn", 2, 2),
        ("rank", 1, 1),
    ]
    assert [v["version"] for v in cli.json("list", "churn")] == [1, 2]
    shown = cli.json("show", "churn", "1")
    assert shown["artifact_sha256"] == first["artifact_sha256"]
    assert Path(shown["artifact_location"]).is_file()
    assert cli.json("show", "churn")["version"] == 2  # latest by default
    assert "churn" in cli.run("list").stdout
    assert "baseline" in cli.run("show", "churn", "1").stdout


def test_alias_history_rollback_delete(cli: Cli, files: dict[str, Path]) -> None:
    for path in (files["skops1"], files["skops2"]):
        cli.json("register", "m", str(path), "--actor", "a")
    before = datetime.now(UTC).isoformat()
    moved = cli.json("alias", "m", "champion", "1", "-m", "first", "--actor", "ana")
    assert (moved["changed"], moved["to_version"], moved["reason"]) == (True, 1, "first")
    between = datetime.now(UTC).isoformat()
    cli.json("alias", "m", "champion", "2", "--actor", "bob")
    assert cli.json("alias", "m", "champion", "2")["changed"] is False
    assert cli.json("alias", "m", "champion", "--at", before)["version"] is None
    assert cli.json("alias", "m", "champion", "--at", between)["version"] == 1
    assert cli.json("show", "m", "champion")["version"] == 2

    rolled = cli.json("rollback", "m", "--reason", "regression", "--actor", "ops")
    assert (rolled["kind"], rolled["from_version"], rolled["to_version"]) == ("rollback", 2, 1)

    refused = cli.json("delete", "m", "1", code=2)
    assert refused["type"] == "AliasInUseError"
    assert "--force" in refused["error"]
    assert [v["version"] for v in cli.json("list", "m")] == [1, 2]
    deleted = cli.json("delete", "m", "1", "--force", "--reason", "bad")
    assert [e["kind"] for e in deleted] == ["unalias", "delete"]
    assert [v["version"] for v in cli.json("list", "m")] == [2]

    history = cli.json("history", "m")
    assert [e["kind"] for e in history] == [
        "register", "register", "alias", "alias", "rollback", "unalias", "delete",
    ]  # fmt: skip
    assert [e["kind"] for e in cli.json("history", "m", "--alias", "champion")] == [
        "alias", "alias", "rollback", "unalias",
    ]  # fmt: skip
    assert "rolled back champion: 2 -> 1" in cli.run("history", "m").stdout
    removed = cli.json("alias", "m", "champion", "--remove", code=2)  # already gone
    assert removed["type"] == "VersionNotFoundError"


def test_errors_are_one_line_and_exit_2(cli: Cli, files: dict[str, Path]) -> None:
    result = cli.run("show", "nope", code=2)
    assert result.stderr.startswith("error: no model named 'nope'")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr + result.stdout

    bad = cli.json("register", "../x", str(files["skops1"]), code=2)
    assert bad["type"] == "InvalidNameError"
    unsafe = cli.json("register", "p", str(files["pickle"]), code=2)
    assert unsafe["type"] == "UnsafeFormatError"
    assert "--trusted" in unsafe["error"]
    assert cli.json("register", "p", str(files["pickle"]), "--trusted")["format"] == "pickle"
    metric = cli.json("register", "p", str(files["skops1"]), "--metric", "auc", code=2)
    assert "KEY=VALUE" in metric["error"]
    naive = cli.json("alias", "p", "champion", "--at", "2024-05-01T12:00", code=2)
    assert "time zone" in naive["error"]
    both = cli.json("alias", "p", "champion", "1", "--remove", code=2)
    assert "exactly one" in both["error"]
    assert [v["version"] for v in cli.json("list", "p")] == [1]


def test_unreachable_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["--registry", "postgresql://u:pw@127.0.0.1:9/x", "list", "--json"]
    )
    assert result.exit_code == 2
    assert json.loads(result.stdout)["type"] == "RegistryUnavailableError"
    assert "pw" not in result.stdout


def test_default_project_folder(project_dir: Path, files: dict[str, Path]) -> None:
    result = CliRunner().invoke(app, ["register", "m", str(files["skops1"]), "--json"])
    assert result.exit_code == 0, result.stderr
    assert (project_dir / ".watchkeeper" / "registry.db").is_file()
