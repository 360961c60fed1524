"""Same data, same decisions: the demo takes the README's decisions on a quiet and a busy machine.

Two runs of ``python -m watchkeeper.demo`` (its public entry point) go in parallel, one of
them while every core is kept busy by CPU-burning processes. Both must leave the same decision
trail — the registry's history without times and hashes: registrations, alias moves and route
changes with their reasons — and it must be the trail the README's recorded run shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_ENTRY = re.compile(r"^\s+\d\d:\d\d:\d\d\s+(\S.*)$")


def trail(text: str) -> list[str]:
    """The registry history printed by the demo, one entry per event, clock times removed
    (entries wrapped over several lines by the terminal width are joined)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("registry history of"))
    entries: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        match = _ENTRY.match(line)
        if match:
            entries.append(match.group(1))
        else:
            entries[-1] += " " + line.strip()
    return [" ".join(e.split()) for e in entries]


def readme_trail() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- demo-output:start -->", 1)[1].split("<!-- demo-output:end -->")[0]
    return trail(block)


def registry_trail(root: Path) -> list[tuple[object, ...]]:
    from watchkeeper.registry import Registry

    with Registry(root=root) as registry:
        return [
            (e.kind, e.version, e.alias, e.from_version, e.to_version, e.actor, e.reason)
            for e in registry.history("bikeshare-demand")
        ]


def burn() -> list[subprocess.Popen[bytes]]:
    """One CPU-bound process per core, until stopped."""
    code = "while True:\n    pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 2)]


@pytest.mark.slow
@pytest.mark.timeout(2400)  # two demos beside CPU burners on a shared machine
def test_the_demo_takes_the_readmes_decisions_on_a_quiet_and_on_a_busy_machine(
    tmp_path: Path,
) -> None:
    expected = readme_trail()
    assert len(expected) >= 5
    assert expected[0].startswith("register v1")
    env = {**os.environ, "COLUMNS": "200"}
    runs = {}
    burners: list[subprocess.Popen[bytes]] = []
    started = time.perf_counter()
    try:
        for name in ("quiet", "busy"):
            if name == "busy":
                burners = burn()
            argv = [sys.executable, "-m", "watchkeeper.demo", "--out", str(tmp_path / name)]
            runs[name] = subprocess.Popen(
                argv, cwd=tmp_path, env=env, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
        outputs = {}
        for name, run in runs.items():
            out, err = run.communicate(timeout=2300)
            assert run.returncode == 0, err[-3000:]
            outputs[name] = out
    finally:
        for process in [*burners, *runs.values()]:
            if process.poll() is None:
                process.kill()
            process.communicate()
    seconds = time.perf_counter() - started
    print(f"two demo runs, one beside {len(burners)} CPU burners: {seconds:.0f} s")
    quiet, busy = (registry_trail(tmp_path / n / ".watchkeeper") for n in ("quiet", "busy"))
    assert quiet == busy
    assert any(kind == "alias" and alias == "champion" for kind, _, alias, *_ in quiet[2:])
    assert trail(outputs["quiet"]) == expected
    assert trail(outputs["busy"]) == expected
