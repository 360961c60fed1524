"""``watchkeeper loop``: dry run, run, status, undo, abort, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.loop._traffic import DAY, GATE, MODEL, T0, Traffic, register_champion

from watchkeeper.logstore import SQLiteLogSink
from watchkeeper.registry import Registry


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _cli(*args: str, cwd: Path) -> _Result:
    """The command in this process (as the other CLI tests do), from ``cwd``."""
    import os

    from typer.testing import CliRunner

    from watchkeeper.cli._app import _register_commands, app

    _register_commands()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        out = CliRunner().invoke(app, ["loop", *args], catch_exceptions=False)
    finally:
        os.chdir(here)
    return _Result(out.exit_code, out.stdout, out.stderr)


def test_loop_commands(tmp_path: Path) -> None:
    root = tmp_path / ".watchkeeper"
    registry = Registry(root=root)
    register_champion(registry)
    sink = SQLiteLogSink(root / "predictions.db")
    traffic = Traffic(registry, sink)
    traffic.serve(T0, T0 + 10 * DAY)
    gate = "\n".join(
        f"[gate.config.{k}]\n" + "\n".join(f"{a} = {json.dumps(b)}" for a, b in v.items())
        for k, v in GATE.items()
    )
    policy = tmp_path / "loop.toml"
    policy.write_text(
        f'model = "{MODEL}"\n[triggers]\nevery_days = 5\n[training]\nholdout_days = 2\n'
        f"[rollout]\nt_opt = 300\nmin_exposure = 300\n{gate}\n",
        encoding="utf-8",
    )
    plan = _cli("run", str(policy), "--dry-run", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "trigger schedule: FIRES" in plan.stdout
    assert "next: start a rollout" in plan.stdout
    assert _cli("status", cwd=tmp_path).stdout.strip() == "no loop rollouts yet"
    run = _cli("run", str(policy), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "passed the gate" in run.stdout
    assert "shadowing the champion" in run.stdout
    for d in range(10, 16):
        traffic.serve(T0 + d * DAY, T0 + (d + 1) * DAY)
    sink.close()
    registry.close()
    run = _cli("run", str(policy), cwd=tmp_path)
    assert "PROMOTE" in run.stdout, run.stdout + run.stderr
    status = _cli("status", MODEL, "--steps", cwd=tmp_path)
    assert f"{MODEL}-1: promoted (ended)" in status.stdout
    assert f"{MODEL}-1/promote at" in status.stdout
    undo = _cli("undo", f"{MODEL}-1/promote", "--reason", "roll back by hand", cwd=tmp_path)
    assert undo.returncode == 0, undo.stderr
    with Registry(root=root) as registry:
        assert registry.get_version(MODEL, "champion").version == 1
    status = _cli("status", MODEL, "--steps", cwd=tmp_path)
    assert f"{MODEL}-1: undone (ended)" in status.stdout
    assert f"{MODEL}-1/promote [undone]" in status.stdout
    # errors: one line on stderr, exit code 2 (the real console script, as users run it)
    again = subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli", "loop", "abort", MODEL],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1
    assert "no active rollout" in again.stderr
    bad = _cli("run", str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: cannot read the loop policy")
