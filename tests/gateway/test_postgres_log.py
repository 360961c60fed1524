"""Four gateway workers sharing one PostgreSQL log: kill -9 of one worker under load loses no
answered prediction and logs none twice (a real ``watchkeeper serve --workers 4`` and a real
PostgreSQL server)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests._postgres import serve_postgres
from tests.gateway.conftest import (
    MODEL,
    DemoRegistry,
    GatewayProcess,
    Outcome,
    gateway_env,
    load_in_background,
)

from watchkeeper.logstore import PostgresLogSink

PREDICT = f"/v1/models/{MODEL}/predict"


@pytest.fixture(scope="module")
def gateway_postgres() -> Iterator[Any]:
    yield from serve_postgres()


def _is_worker(pid: int) -> bool:
    """A uvicorn worker (spawned), not multiprocessing's resource tracker."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _answered(outcomes: list[Outcome]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for outcome in outcomes:
        if outcome.status == 200:
            found.update(zip(outcome.body["ids"], outcome.body["predictions"], strict=True))
    return found


@pytest.mark.slow
@pytest.mark.service
def test_kill_9_of_one_worker_of_four_loses_no_answered_prediction(
    demo_registry: DemoRegistry, gateway_postgres: Any, tmp_path: Path
) -> None:
    url = gateway_postgres.create_schema()
    server = GatewayProcess(
        root=demo_registry.copy_to(tmp_path / "root"),
        workers=4,
        log_file=tmp_path / "gateway.log",
        env=gateway_env("p-" + "x" * 32, "a-" + "y" * 32, {"WATCHKEEPER_LOG": url}),
        predict_token="p-" + "x" * 32,
        admin_token="a-" + "y" * 32,
    )
    try:
        # four workers load the models on a shared 2-core machine: give them time
        server.start(timeout=300)
        _check_and_kill(server, demo_registry, url)
    finally:
        server.stop()


def _check_and_kill(server: GatewayProcess, demo_registry: DemoRegistry, url: str) -> None:
    workers = [pid for pid in server.pids()[1:] if _is_worker(pid)]
    assert len(workers) == 4, f"expected 4 workers, found {workers}"
    rows = demo_registry.rows

    def body(i: int) -> tuple[bytes, dict[str, str]]:
        records = [{**rows[(i * 3 + j) % len(rows)], "id": f"w-{i}-{j}"} for j in range(3)]
        return json.dumps(records).encode(), {**server.headers, "Content-Type": "application/json"}

    with load_in_background(
        server.base_url + PREDICT, body, concurrency=8, max_requests=1_500, max_seconds=40
    ) as run:
        deadline = time.monotonic() + 30
        while len(run.ok()) < 150 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(workers[0], signal.SIGKILL)  # one worker dies mid-load; the others go on
        killed_at = len(run.snapshot())
        deadline = time.monotonic() + 30
        while len(run.ok()) < killed_at + 150 and time.monotonic() < deadline:
            time.sleep(0.02)
    outcomes = run.snapshot()
    server.stop()
    assert any(o.status != 200 for o in outcomes) or len(outcomes) > killed_at, "no load"

    answered = _answered(outcomes)
    assert len(answered) >= 300 * 3, f"only {len(answered)} predictions answered"
    with PostgresLogSink(url) as sink:
        table = sink.read_window(MODEL)
    ids = table.column("id").to_pylist()
    logged = dict(zip(ids, table.column("prediction").to_pylist(), strict=True))
    missing = sorted(set(answered) - set(logged))
    assert not missing, f"{len(missing)} answered predictions are not in the log: {missing[:5]}"
    assert len(ids) == len(set(ids)), "an id is logged twice"
    wrong = [pid for pid, p in answered.items() if logged[pid] != p]
    assert not wrong, f"logged predictions differ from the answers for {wrong[:5]}"
