"""End to end: shifted traffic through a real gateway, the monitor over its log, and the
generated drift rule firing in a real Prometheus that scrapes the gateway.

The gateway (a ``watchkeeper serve`` subprocess on a copy of the gateway tests' demo registry)
serves three past hours of traffic whose temperatures are far above anything in the model's
reference (``X-Event-Time`` places each batch in its hour). The monitor then runs in this
process against the same root, writing its history to ``<root>/monitor.db``. The gateway's
``/metrics`` exports the latest results as ``watchkeeper_monitor_*`` gauges; Prometheus
scrapes them every second with the rules generated from the shipped rules file, and the
``WatchkeeperDrift`` alert must show up as firing in ``/api/v1/alerts``. The built-in
evaluator must reach the same verdict on the same history.
"""

from __future__ import annotations

import json
import time
import urllib.error
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.gateway.conftest import (
    MODEL,
    PROMETHEUS_BIN,
    DemoRegistry,
    GatewayProcess,
    Prometheus,
    _die_with_parent,
    demo_registry,
    free_port,
    http,
    service_unavailable,
    start_gateway,
    stop_process_group,
)

from watchkeeper.monitor import AlertConfig, AlertEvaluator, Monitor, MonitorConfig, MonitorStore
from watchkeeper.monitor._promrules import render_prometheus_rules

pytestmark = pytest.mark.service

__all__ = ["demo_registry", "start_gateway"]  # fixtures re-used from the gateway tests

HOURS = 3
ROWS_PER_HOUR = 150
BATCH = 50


@pytest.fixture
def prometheus_with_rules(tmp_path: Path) -> Iterator[Any]:
    """Factory: a Prometheus on 127.0.0.1 scraping ``target`` every second with ``rules``."""
    import subprocess

    started: list[Prometheus] = []

    def start(target: str, bearer: str, rules: str) -> Prometheus:
        if not Path(PROMETHEUS_BIN).exists():
            service_unavailable(f"{PROMETHEUS_BIN} is not installed (apt-get install prometheus)")
        (tmp_path / "rules.yml").write_text(rules)
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {tmp_path / 'rules.yml'}\n"
            "scrape_configs:\n  - job_name: watchkeeper\n"
            f"    authorization:\n      credentials: {bearer}\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        port = free_port()
        log_file = tmp_path / "prometheus.log"
        with open(log_file, "ab") as out:
            proc = subprocess.Popen(
                [
                    PROMETHEUS_BIN,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        server = Prometheus(port, proc, log_file)
        started.append(server)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                service_unavailable(f"prometheus exited: {log_file.read_text()[-2000:]}")
            try:
                if http("GET", server.base_url + "/-/ready", timeout=2.0)[0] == 200:
                    return server
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        service_unavailable("prometheus not ready after 90 s")
        raise AssertionError("unreachable")

    yield start
    for server in started:
        stop_process_group(server.proc)


def _serve_shifted_hours(server: GatewayProcess, demo: DemoRegistry, first_hour: int) -> None:
    """``HOURS`` hours of traffic with temperatures outside the reference, in the past."""
    headers = {**server.headers, "Content-Type": "application/json"}
    url = f"{server.base_url}/v1/models/{MODEL}/predict"
    rows = list(demo.rows)
    sent = 0
    for h in range(HOURS):
        for start in range(0, ROWS_PER_HOUR, BATCH):
            batch = [
                {**rows[(sent + i) % len(rows)], "temp": 0.97, "atemp": 0.99, "hum": 0.05}
                for i in range(BATCH)
            ]
            sent += BATCH
            at = first_hour + h * 3600 + start * 10  # inside hour h
            status, body = http(
                "POST",
                url,
                body=json.dumps(batch).encode(),
                headers={**headers, "X-Event-Time": str(at)},
            )
            assert status == 200, body[:500]


def _firing(prometheus: Prometheus, alertname: str) -> list[dict[str, Any]]:
    status, body = http("GET", prometheus.base_url + "/api/v1/alerts")
    assert status == 200, body[:500]
    alerts: list[dict[str, Any]] = json.loads(body)["data"]["alerts"]
    return [
        a for a in alerts if a["labels"].get("alertname") == alertname and a["state"] == "firing"
    ]


def test_injected_drift_fires_the_generated_prometheus_alert(
    start_gateway: Any, demo_registry: DemoRegistry, prometheus_with_rules: Any
) -> None:
    from watchkeeper.logstore import SQLiteLogSink
    from watchkeeper.registry import Registry

    server: GatewayProcess = start_gateway(workers=1)
    first_hour = (int(time.time()) // 3600 - HOURS - 1) * 3600
    _serve_shifted_hours(server, demo_registry, first_hour)

    # The monitor, in this process, over the gateway's root while it keeps serving.
    root = server.root
    with (
        SQLiteLogSink(str(server.log_path)) as sink,
        Registry(root=root) as registry,
        MonitorStore(root=root) as store,
    ):
        summary = Monitor(MonitorConfig(every="1h", detectors=())).run(sink, registry, store)
        drifted = [(key, r) for key, r in summary.alerts if r.check.startswith("drift.")]
        assert drifted, f"no drift alert in {len(summary.windows)} windows"
        # The built-in evaluator reaches the same verdict on the same history.
        with AlertEvaluator(AlertConfig.default(), root=root) as alerts:
            fired = [e for e in alerts.evaluate_store(store).events if e.rule == "drift"]
        assert fired
        assert {e.kind for e in fired} == {"firing"}
        assert {e.model for e in fired} == {MODEL}

    # The gateway exports the monitor's latest results as gauges (the shared contract).
    deadline = time.monotonic() + 30
    exported = ""
    while time.monotonic() < deadline:
        exported = server.metrics()
        if "watchkeeper_monitor_status{" in exported:
            break
        time.sleep(1.0)
    assert "watchkeeper_monitor_status{" in exported, (
        "the gateway's /metrics does not export watchkeeper_monitor_status from "
        f"{root / 'monitor.db'}"
    )

    # Prometheus, with the rules generated from the shipped rules file: monitor windows are
    # replaced at each scrape here, so a 1 s window keeps `for 2` windows to a second.
    rules = render_prometheus_rules(AlertConfig.default(), window=timedelta(seconds=1))
    prometheus = prometheus_with_rules(f"127.0.0.1:{server.port}", server.predict_token, rules)
    deadline = time.monotonic() + 60
    firing: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not firing:
        firing = _firing(prometheus, "WatchkeeperDrift")
        time.sleep(1.0)
    assert firing, f"WatchkeeperDrift never fired; prometheus log: {prometheus.log_file}"
    labels = firing[0]["labels"]
    assert labels["model"] == MODEL
    assert labels["severity"] == "warning"
    assert labels["watchkeeper_rule"] == "drift"
    assert labels["subject"] in {s for _, r in drifted for s in [r.subject]}
