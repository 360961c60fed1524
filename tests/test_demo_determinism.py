"""Same data, same decisions: the demo takes the README's decisions on a quiet and a busy machine.

Two runs of ``python -m watchkeeper.demo`` (its public entry point) go in parallel, one of
them while every core is kept busy by CPU-burning processes (``tests/_demo_runs.py``, shared
with ``tests/test_demo.py``). Both must leave the same decision
trail — the registry's history without times and hashes: registrations, alias moves and route
changes with their reasons — and it must be the trail the README's recorded run shows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests._demo_runs import DemoRuns

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


@pytest.mark.slow
@pytest.mark.timeout(2400)  # the shared demo runs start here when this test runs alone
def test_the_demo_takes_the_readmes_decisions_on_a_quiet_and_on_a_busy_machine(
    demo_runs: DemoRuns,
) -> None:
    expected = readme_trail()
    assert len(expected) >= 5
    assert expected[0].startswith("register v1")
    for run in (demo_runs.quiet, demo_runs.busy):
        assert run.returncode == 0, run.stderr[-3000:]
    print(f"two demo runs, one beside {demo_runs.burners} CPU burners: {demo_runs.seconds:.0f} s")
    quiet, busy = demo_runs.quiet.registry_trail, demo_runs.busy.registry_trail
    assert quiet == busy
    assert any(kind == "alias" and alias == "champion" for kind, _, alias, *_ in quiet[2:])
    assert trail(demo_runs.quiet.stdout) == expected
    assert trail(demo_runs.busy.stdout) == expected
