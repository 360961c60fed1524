"""`make demo` end to end: what it prints is what its log, registry and reports say."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests._demo_runs import DemoRuns


@pytest.mark.slow
@pytest.mark.timeout(2400)  # the shared demo runs (tests/_demo_runs.py) start here
def test_demo_runs_and_tells_the_truth(demo_runs: DemoRuns) -> None:
    run = demo_runs.quiet
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.out
    text = run.stdout
    lines = text.splitlines()

    # The served months, as printed, are what the prediction log holds.
    served = json.loads((out / "serving-summary.json").read_text())
    assert [m["month"] for m in served] == [f"2011-{m:02d}" for m in range(4, 13)]
    db = sqlite3.connect(out / ".watchkeeper" / "predictions.db")
    live = db.execute("SELECT count(*) FROM predictions WHERE shadow = 0").fetchone()[0]
    shadow = db.execute("SELECT count(*) FROM predictions WHERE shadow = 1").fetchone()[0]
    labelled = db.execute(
        "SELECT count(DISTINCT p.id) FROM predictions p JOIN feedback f ON f.prediction_id = p.id"
        " WHERE p.shadow = 0 AND f.label IS NOT NULL"
    ).fetchone()[0]
    per_version = dict(
        db.execute("SELECT version, count(*) FROM predictions WHERE shadow = 0 GROUP BY version")
    )
    db.close()
    assert live == sum(m["rows"] for m in served) > 6000
    assert labelled < live  # the last days' labels have not arrived
    assert f"{labelled:,} live predictions labelled" in text
    # Read at each month's end, the last 3 days of the month are not labelled yet.
    for month in served:
        assert 0.8 * month["rows"] < month["labelled"] < month["rows"]
    assert f"{live:,} live predictions and {shadow:,} shadow ones" in text
    for month in served:
        row = next(line for line in lines if f"({month['month']})" in line)
        assert f"{month['rows']:,}" in row
        for name in month["drifted_columns"][:2]:
            assert name in row
    # The loop promoted through the registry, as printed, and the registry audited each step.
    from watchkeeper.loop import LoopStore
    from watchkeeper.registry import Registry

    with Registry(root=out / ".watchkeeper") as registry:
        history = registry.history("bikeshare-demand")
        final = registry.get_version("bikeshare-demand", "champion").version
        store = LoopStore(registry)
        rollouts = store.rollouts("bikeshare-demand")
        steps = store.steps(model="bikeshare-demand")
    promoted = [
        e.to_version
        for e in history
        if e.kind == "alias" and e.alias == "champion" and e.from_version is not None
    ]
    by_loop = [r.state["challenger_version"] for r in rollouts if r.stage == "promoted"]
    assert promoted == by_loop
    assert len(promoted) >= 1
    assert text.count("PROMOTE: better") == len(promoted)
    assert final == (promoted[-1] if promoted else 1)
    # every step is one audited registry event of kind loop, and was printed
    loop_events = [e.reason.split(":")[0] for e in history if e.kind == "loop"]
    assert loop_events == [f"loop {s.ref}" for s in steps]
    for s in steps:
        assert s.ref in text
    summary_loop = json.loads((out / "loop-summary.json").read_text())
    figures = summary_loop["figures"]
    # December: the deliberately bad challenger answered a few requests, then was rolled back
    bad = [r for r in rollouts if r.state.get("given_version")]
    assert len(bad) == 1
    assert bad[0].stage == "rolled_back"
    bad_version = bad[0].state["given_version"]
    assert figures["bad_challenger_outcome"] == "rollback"
    assert 0 < figures["bad_challenger_requests_served"] == per_version[bad_version]
    assert f"answered {figures['bad_challenger_requests_served']} requests" in text
    assert figures["first_alert_to_promoted_fix_days"] > 0
    assert "[FIRING critical] loop-rollback" in (out / "alerts.log").read_text()
    # only champions answered, but for the canary's bad challenger; challengers shadowed
    assert set(per_version) == {1, *promoted, bad_version}
    assert served[0]["versions"] == {"1": served[0]["rows"]}
    assert set(served[-1]["versions"]) == {str(final), str(bad_version)}
    assert "shadow: champion answers, challenger shadows" in text
    assert shadow > 0
    # Every retraining was triggered by a realised-performance alert the monitor stored.
    triggered = [s for s in steps if s.step == "trigger" and "performance firing" in s.summary]
    assert len(triggered) == len(rollouts) - 1  # all but the operator's canary
    from watchkeeper.monitor import AlertEvaluator

    evaluator = AlertEvaluator(root=out / ".watchkeeper")
    fired = {
        int(e.version)
        for e in evaluator.events("bikeshare-demand", rule="performance")
        if e.kind == "firing"
    }
    evaluator.close()
    champions_retrained = {int(v) for v in re.findall(r"performance firing on v(\d+)", text)}
    assert champions_retrained
    assert champions_retrained <= fired
    # Summer temperatures drift from the winter reference, in the log as in the reports.
    july = next(m for m in served if m["month"] == "2011-07")
    assert "temp" in july["drifted_columns"]

    # Offline reports: one per later month, consistent with their summary.
    summary = json.loads((out / "drift-summary.json").read_text())
    assert len(summary) == 9  # April to December
    for month in summary:
        report = json.loads((out / f"drift-{month['month']}.json").read_text())
        assert report["dataset"]["drifted"] == month["drifted"]
        drifted = [c["name"] for c in report["columns"] if c["drifted"]]
        assert drifted == month["drifted_columns"]
    # The gate reports exist and agree with what was printed.
    gate1 = json.loads((out / "gate-v1.json").read_text())
    verdict = "PASSED" if gate1["passed"] else "FAILED"
    assert f"gate {verdict} for bikeshare-demand (trained on months 1-3)" in text
    gate2 = json.loads((out / "loop" / "gate-bikeshare-demand-1-entry-point.json").read_text())
    assert gate2["blessed"] is True
    assert (out / "index.html").read_text().count("<a href=") >= 10
    assert "control (random halves of the reference): no drift" in text

    # The monitor on window profiles gives the windows, verdicts and alerts it gave when it
    # re-read every window's rows (captured before that change).
    from tests._demo_monitoring import FIXTURE, differences, outcome

    before = json.loads(FIXTURE.read_text())
    assert differences(before, outcome(out / ".watchkeeper")) == []

    # docs/loop.md's command-line examples run against the demo's project as written (with
    # `watch` stopped after one run); `abort` finds no active rollout once the demo is done.
    _run_loop_doc_commands(out)


def _run_loop_doc_commands(out: Path) -> None:
    import shlex
    import shutil

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "loop.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```bash\n(.*?)```", doc, flags=re.S)
    shutil.copy(root / "src" / "watchkeeper" / "demo" / "loop.toml", out / "loop.toml")
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    assert len(commands) >= 7
    for words in commands:
        assert words[:2] == ["watchkeeper", "loop"], words
        args = words[1:] + (["--iterations", "1"] if words[2] == "watch" else [])
        run = subprocess.run(
            [sys.executable, "-m", "watchkeeper.cli", *args],
            capture_output=True, text=True, timeout=600, cwd=out,
        )  # fmt: skip
        assert "Traceback" not in run.stderr, run.stderr
        if words[2] == "abort":
            assert run.returncode == 2, run.stdout
            assert (
                run.stderr.strip()
                == "error: model 'bikeshare-demand' has no active rollout to abort"
            )
            continue
        assert run.returncode == 0, (words, run.stderr[-2000:])
        if words[2] == "status":
            assert "bikeshare-demand-1/promote" in run.stdout
        if words[2] == "undo":
            assert "undo of bikeshare-demand-1/promote" in run.stdout
