"""Two runs of ``python -m watchkeeper.demo``, shared by the demo tests.

One run beside CPU-burning processes (one per core), one beside it: ``tests/test_demo.py``
checks what the first one printed against its log, registry and reports, and
``tests/test_demo_determinism.py`` checks that both took the README's decisions. Running the
demo once for both saves one full demo (about a minute and a half) per suite. The decision
trails are read right after the runs, before any test works on the projects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class DemoRun:
    out: Path
    stdout: str
    stderr: str
    returncode: int
    #: The registry's decision trail, read before any test touched the project.
    registry_trail: list[tuple[object, ...]]


@dataclass(frozen=True)
class DemoRuns:
    quiet: DemoRun
    busy: DemoRun
    burners: int
    seconds: float


def registry_trail(root: Path) -> list[tuple[object, ...]]:
    from watchkeeper.registry import Registry

    with Registry(root=root) as registry:
        return [
            (e.kind, e.version, e.alias, e.from_version, e.to_version, e.actor, e.reason)
            for e in registry.history("bikeshare-demand")
        ]


def _burn() -> list[subprocess.Popen[bytes]]:
    """One CPU-bound process per core, until stopped."""
    code = "while True:\n    pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 2)]


def run_demos(base: Path) -> DemoRuns:
    env = {**os.environ, "COLUMNS": "200"}
    runs: dict[str, subprocess.Popen[str]] = {}
    burners: list[subprocess.Popen[bytes]] = []
    started = time.perf_counter()
    outputs: dict[str, tuple[str, str]] = {}
    try:
        for name in ("quiet", "busy"):
            if name == "busy":
                burners = _burn()
            argv = [sys.executable, "-m", "watchkeeper.demo", "--out", str(base / name)]
            runs[name] = subprocess.Popen(
                argv, cwd=base, env=env, text=True,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
        for name, run in runs.items():
            outputs[name] = run.communicate(timeout=2300)
    finally:
        for process in [*burners, *runs.values()]:
            if process.poll() is None:
                process.kill()
            process.communicate()
    seconds = time.perf_counter() - started
    done = {}
    for name, run in runs.items():
        out = base / name
        project = out / ".watchkeeper"
        trail = registry_trail(project) if run.returncode == 0 else []
        done[name] = DemoRun(out, *outputs[name], run.returncode, trail)
    return DemoRuns(done["quiet"], done["busy"], len(burners), seconds)


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    return run_demos(tmp_path_factory.mktemp("demo-runs"))
