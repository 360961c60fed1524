"""The installed `watchkeeper` console script mounts every command group."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression
from skops.io import dump


def _script() -> str:
    exe = Path(sys.executable).with_name("watchkeeper")
    return str(exe) if exe.exists() else (shutil.which("watchkeeper") or "watchkeeper")


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.skops"
    dump(LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]), path)
    return path


def test_models_commands_through_the_console_script(tmp_path: Path, model_file: Path) -> None:
    root = tmp_path / "project"
    base = [_script(), "models", "--root", str(root)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)

    reg = run("register", "churn", str(model_file), "--json")
    assert reg.returncode == 0, reg.stderr
    assert json.loads(reg.stdout)["version"] == 1
    alias = run("alias", "churn", "champion", "1", "--json")
    assert alias.returncode == 0, alias.stderr
    listed = json.loads(run("list", "--json").stdout)
    assert [m["name"] for m in listed] == ["churn"]
    history = json.loads(run("history", "churn", "--json").stdout)
    assert [e["kind"] for e in history] == ["register", "alias"]
    refused = run("delete", "churn", "1")
    assert refused.returncode == 2
    assert "champion" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_top_level_help_lists_every_command() -> None:
    out = subprocess.run([_script(), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("compare", "profile", "schema", "validate", "models", "serve", "predict"):
        assert command in out.stdout
