"""Every example of docs/spark.md runs: Python blocks in order in one namespace, shell blocks
through the command line (in this process, so that it uses the test's Spark session)."""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests._moto import serve_s3

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "spark.md"
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.DOTALL)


def _entry_points_dir(tmp: Path) -> Path:
    """A distribution on sys.path declaring the engines of pyproject.toml, as an installed
    watchkeeper does (the development install may predate the entry points)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    engines = project["project"]["entry-points"]["watchkeeper.engines"]
    dist = tmp / "site" / "watchkeeper_engines_decl-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: watchkeeper-engines-decl\nVersion: 0\n"
    )
    lines = "".join(f"{k} = {v}\n" for k, v in engines.items())
    (dist / "entry_points.txt").write_text(f"[watchkeeper.engines]\n{lines}")
    return dist.parent


def _run_cli(line: str) -> None:
    from typer.testing import CliRunner

    from watchkeeper.cli._app import _register_commands, app

    argv = shlex.split(line)
    assert argv[0] == "watchkeeper", line
    _register_commands()
    result = CliRunner().invoke(app, argv[1:])
    assert result.exit_code == 0, (line, result.output, result.exception)


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    yield from serve_s3()


def test_docs_examples_run(
    spark: Any, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in s3.env.items():  # the S3-compatible server the examples write to
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(_entry_points_dir(tmp_path)))
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert [kind for kind, _ in blocks].count("python") >= 3
    namespace: dict[str, Any] = {"__name__": "docs_spark"}
    for kind, code in blocks:
        if kind == "python":
            exec(compile(code, "<docs/spark.md>", "exec"), namespace)
        else:
            for line in code.strip().splitlines():
                _run_cli(line)
    assert (tmp_path / "drift.json").exists()
    assert (tmp_path / "log-profile.wkp").exists()
    assert sys.modules.get("pyspark") is not None
