"""`make demo` end to end: what it prints is what its reports say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_and_tells_the_truth(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "COLUMNS": "200"}
    run = subprocess.run(
        [sys.executable, "-m", "watchkeeper.demo", "--out", str(out)],
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    text = run.stdout
    summary = json.loads((out / "drift-summary.json").read_text())
    assert len(summary) == 9  # April to December
    for month in summary:
        report = json.loads((out / f"drift-{month['month']}.json").read_text())
        assert report["dataset"]["drifted"] == month["drifted"]
        drifted = [c["name"] for c in report["columns"] if c["drifted"]]
        assert drifted == month["drifted_columns"]
        # the printed table lists the same columns for that month
        line = next(line for line in text.splitlines() if line.lstrip().startswith(month["month"]))
        for name in drifted[:2]:
            assert name in line
    # Temperature really changes with the seasons: July must drift on temp.
    july = next(m for m in summary if m["month"] == "2011-07")
    assert "temp" in july["drifted_columns"]
    # The gate reports exist and agree with what was printed.
    gate1 = json.loads((out / "gate-v1.json").read_text())
    verdict = "PASSED" if gate1["passed"] else "FAILED"
    assert f"gate {verdict} for bikeshare-demand (trained on months 1-3)" in text
    assert (out / "index.html").read_text().count("<a href=") >= 10
    assert "control (random halves of the reference): no drift" in text
