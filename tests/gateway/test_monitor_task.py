"""The monitor on the gateway's schedule: a real ``watchkeeper serve`` with two workers serves
shifted traffic, exactly one worker runs the monitor (it holds ``<root>/monitor.lock``), and
the drift it finds shows on every worker's ``/metrics`` as ``watchkeeper_monitor_status`` 3."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from tests.gateway.conftest import MODEL, DemoRegistry, GatewayProcess, http

from watchkeeper.app._monitor_task import MonitorTask
from watchkeeper.gateway import GatewayConfig

WINDOW_ROWS = 100
DRIFT_STATUS = re.compile(
    r'^watchkeeper_monitor_status\{[^}]*check="drift\.[^"]+"[^}]*\} 3\.0$', re.MULTILINE
)


def _serve_shifted(server: GatewayProcess, demo: DemoRegistry, n: int) -> None:
    headers = {**server.headers, "Content-Type": "application/json"}
    rows = list(demo.rows)
    for start in range(0, n, 50):
        batch = [
            {**rows[(start + i) % len(rows)], "temp": 0.97, "atemp": 0.99, "hum": 0.05}
            for i in range(50)
        ]
        status, body = http(
            "POST",
            f"{server.base_url}/v1/models/{MODEL}/predict",
            body=json.dumps(batch).encode(),
            headers=headers,
        )
        assert status == 200, body[:500]


def test_scheduled_monitor_exports_drift_on_every_worker(
    start_gateway: Any, demo_registry: DemoRegistry
) -> None:
    server: GatewayProcess = start_gateway(
        workers=2,
        env={
            "WATCHKEEPER_GATEWAY_MONITOR_EVERY": "1",
            "WATCHKEEPER_GATEWAY_MONITOR_WINDOW": str(WINDOW_ROWS),
        },
    )
    _serve_shifted(server, demo_registry, 3 * WINDOW_ROWS)
    deadline = time.monotonic() + 120
    text = ""
    while time.monotonic() < deadline:
        text = server.metrics()
        if DRIFT_STATUS.search(text):
            break
        time.sleep(1.0)
    assert DRIFT_STATUS.search(text), (
        f"no drift status 3 on /metrics:\n{text[-3000:]}\n{server.log_tail()}"
    )
    # whichever worker answers, it reads the same history (once its cached read, at most
    # MonitorCollector.max_age = 5 s old, has expired)
    time.sleep(6.0)
    for _ in range(6):
        assert DRIFT_STATUS.search(server.metrics())
    # exactly one worker holds the lock and ran the monitor
    holder = int((server.root / "monitor.lock").read_text().strip())
    assert holder in server.pids()[1:]
    from watchkeeper.monitor import MonitorStore

    with MonitorStore(root=server.root) as store:
        runs = store.runs(limit=1000)
        windows = store.windows(MODEL)
    assert runs
    assert all(r["status"] == "done" for r in runs)
    # one writer: every closed count window is stored once, with its full row count
    assert [w.n_rows for w in windows] == [WINDOW_ROWS] * len(windows)
    assert len({(w.window_start, w.window_end) for w in windows}) == len(windows) >= 3


def test_only_the_lock_holder_runs_and_failures_are_retried(tmp_path: Path) -> None:
    # a registry nobody listens for: every cycle fails until it is reachable
    unreachable = "postgresql+psycopg://wk@127.0.0.1:9/none?connect_timeout=1"
    settings = GatewayConfig(root=str(tmp_path), registry_url=unreachable, monitor_every=3600)
    first, second = MonitorTask(settings), MonitorTask(settings)
    try:
        assert first.try_lock()
        assert not second.try_lock()
        assert first.holder
        assert not second.holder
        # the cycle fails, is recorded, and the next period tries again
        assert first.run_once() is None
        assert first.last_error is not None
        assert first.runs == 0
        assert first.run_once() is None
    finally:
        first.stop()
    assert second.try_lock()
    second.stop()


def test_off_by_default_and_no_history_created(tmp_path: Path) -> None:
    task = MonitorTask(GatewayConfig(root=str(tmp_path)))
    task.start()
    assert task.exposition() == b""
    task.stop()
    assert not (tmp_path / "monitor.db").exists()
    assert not (tmp_path / "monitor.lock").exists()
