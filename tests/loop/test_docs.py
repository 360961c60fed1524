"""The loop's examples in README.md and docs/loop.md run, and its policy files parse (the
page's command lines run in tests/test_demo.py, against the demo's project)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from tests.loop._traffic import DAY, MODEL, T0, Traffic, register_champion

from watchkeeper.logstore import SQLiteLogSink
from watchkeeper.loop import LoopConfig
from watchkeeper.registry import Registry

ROOT = Path(__file__).resolve().parents[2]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / ".watchkeeper"
    registry = Registry(root=root)
    register_champion(registry)
    sink = SQLiteLogSink(root / "predictions.db")
    Traffic(registry, sink).serve(T0, T0 + 10 * DAY)
    sink.close()
    registry.close()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_example_wires_the_loop_in_under_20_lines(project: Path, capsys) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- loop-example:start -->")[1].split("<!-- loop-example:end -->")[0]
    (code,) = _blocks(section, "python")
    assert len([line for line in code.splitlines() if line.strip()]) < 20
    assert code in (ROOT / "docs" / "loop.md").read_text(encoding="utf-8")  # the same example
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert f"loop plan for {MODEL}" in out
    assert f"['{MODEL}-1/trigger', '{MODEL}-1/gate']" in out
    namespace["registry"].close()  # type: ignore[attr-defined]


def test_the_policy_files_parse() -> None:
    for path in (ROOT / "src/watchkeeper/demo").glob("*.toml"):
        assert LoopConfig.from_toml(path).model == "bikeshare-demand"
    for block in _blocks((ROOT / "docs" / "loop.md").read_text(encoding="utf-8"), "toml"):
        LoopConfig.from_dict(tomllib.loads(block))
