"""kill -9 of the loop runner (a real subprocess) at every stage boundary, while a real
gateway (uvicorn subprocess) serves the same registry: on restart the runner resumes at the
same stage, no step is done twice, no audit event is lost, and the gateway answers every
request throughout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.gateway.conftest import GatewayProcess, gateway_env, http, load_in_background
from tests.loop._traffic import MODEL, register_champion

from watchkeeper.loop import LoopStore
from watchkeeper.registry import Registry

SCRIPT = Path(__file__).with_name("_kill_runner.py")
REPO = Path(__file__).resolve().parents[2]
# Each entry is one process: it dies at that boundary, the next one resumes.
CHAIN = [
    "before:1",  # inside the trigger's transaction
    "after:1",  # trigger committed, training not started
    "after:register",  # challenger registered, gate step not recorded
    "before:1",  # inside the gate step's transaction (alias + canary route)
    "after:1",  # gate step committed: canary at 10 %
    "before:1",  # inside canary-50
    "after:1",  # canary-50 committed
    "before:1",  # inside the final verdict (promote or roll back)
    "after:1",  # verdict committed
    "none",
]


def _run(*links: tuple[Path, str]) -> list[dict]:
    """Run runner processes one after the other (see ``_kill_runner.py``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *(f"{root}={kill}" for root, kill in links)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = [json.loads(line[5:]) for line in done.stdout.splitlines() if line.startswith("LINK ")]
    assert len(out) == len(links), done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _steps(root: Path) -> tuple[list[tuple[str, float, str, str]], list[str], list[int]]:
    registry = Registry(root=root)
    try:
        store = LoopStore(registry)
        steps = [(s.step, s.at, s.stage, s.summary) for s in store.steps(model=MODEL)]
        loop_events = [e.reason.split(":")[0] for e in registry.history(MODEL) if e.kind == "loop"]
        versions = [v.version for v in registry.list_versions(MODEL)]
    finally:
        registry.close()
    return steps, loop_events, versions


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill_9_at_every_stage_boundary(tmp_path: Path) -> None:
    # The same run without kills is the reference the interrupted one must reproduce.
    clean = tmp_path / "clean"
    with Registry(root=clean) as registry:
        register_champion(registry)
    assert _run((clean, "none"))[0]["code"] == 0
    reference, ref_events, ref_versions = _steps(clean)
    assert [s[0] for s in reference][:3] == ["trigger", "gate", "canary-50"]
    assert reference[-1][0] in ("promote", "rollback")
    assert ref_versions == [1, 2]

    root = tmp_path / "killed"
    with Registry(root=root) as registry:
        register_champion(registry)
    server = GatewayProcess(
        root=root, workers=1, log_file=tmp_path / "gateway.log",
        env=gateway_env("p-" + "x" * 32, "a-" + "y" * 32), predict_token="p-" + "x" * 32,
        admin_token="a-" + "y" * 32,
    ).start()  # fmt: skip
    try:
        body = json.dumps({"x1": 0.3, "x2": -1.2}).encode()
        headers = {**server.headers, "Content-Type": "application/json"}
        url = f"{server.base_url}/v1/models/{MODEL}/predict"
        status, _ = http("POST", url, body=body, headers=headers)
        assert status == 200
        with load_in_background(
            url, lambda i: (body, {**headers, "X-User-Id": f"u{i}"}), concurrency=2,
            max_requests=1_000_000, max_seconds=600,
        ) as run:  # fmt: skip
            links = _run(*((root, kill) for kill in CHAIN))
            time.sleep(1.0)  # the gateway picks up the last route change
        outcomes = run.snapshot()
    finally:
        server.stop()
    for link in links:
        assert link["code"] == (0 if link["kill"] == "none" else -9), link
    stages_seen = [link["steps"] for link in links]
    steps, events, versions = _steps(root)
    # every committed step has its audit event, and nothing else was recorded
    assert events == [f"loop {MODEL}-1/{s[0]}" for s in steps]
    assert steps == reference  # same steps, same event times, same evidence summaries
    assert events == ref_events
    assert versions == [1, 2]  # the challenger was registered once
    assert sum(1 for s in steps if s[0] == "promote") <= 1
    # each kill left the loop at a stage boundary the next process resumed from
    assert stages_seen[0] == []
    assert stages_seen[1] == ["trigger"]
    assert stages_seen[-1] == [s[0] for s in reference]
    failed = [o for o in outcomes if o.status != 200]
    assert len(outcomes) > 50
    assert not failed, failed[:3]
    arms = {o.body.get("arm") for o in outcomes if isinstance(o.body, dict)}
    assert "challenger" in arms  # the canary really went live on the served gateway
