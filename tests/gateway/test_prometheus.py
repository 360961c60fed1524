"""A real Prometheus scrapes a two-worker gateway and reads back exactly what was sent.

With several uvicorn workers every request lands on one of them, and each scrape of
``/metrics`` is answered by one of them; only prometheus-client's multiprocess mode makes
every scrape report the sum over workers. Known traffic goes in (successes, refused
records, an unknown model, batches), and the counts must come back exact through
Prometheus' query API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest
from tests.gateway.conftest import MODEL, DemoRegistry, GatewayProcess, Prometheus, http

pytestmark = pytest.mark.service

PREDICT = f"/v1/models/{MODEL}/predict"

N_SINGLE = 40  # one record each, answered
N_BATCH = 10  # 7 records each, answered
BATCH = 7
N_INVALID = 15  # a wrong type: 422
N_UNKNOWN = 5  # no such model: 404


def _send_known_traffic(server: GatewayProcess, demo_registry: DemoRegistry) -> None:
    # urllib opens a new connection per request, so the kernel spreads them over both
    # workers: a per-process count would come back short.
    headers = {**server.headers, "Content-Type": "application/json"}
    rows = demo_registry.rows
    for i in range(N_SINGLE):
        body = json.dumps(rows[i]).encode()
        assert http("POST", server.base_url + PREDICT, body=body, headers=headers)[0] == 200
    for i in range(N_BATCH):
        body = json.dumps(list(rows[i * BATCH : (i + 1) * BATCH])).encode()
        assert http("POST", server.base_url + PREDICT, body=body, headers=headers)[0] == 200
    for i in range(N_INVALID):
        body = json.dumps({**rows[i], "hr": "noon"}).encode()
        assert http("POST", server.base_url + PREDICT, body=body, headers=headers)[0] == 422
    for i in range(N_UNKNOWN):
        body = json.dumps(rows[i]).encode()
        url = server.base_url + "/v1/models/nope/predict"
        assert http("POST", url, body=body, headers=headers)[0] == 404


def _value(prometheus: Prometheus, promql: str) -> float | None:
    result = prometheus.query(promql)
    if not result:
        return None
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def _eventually(read: Callable[[], float | None], expected: float, timeout: float = 30.0) -> None:
    """Poll until ``read()`` equals ``expected`` (scrapes run every second)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = read()
        if last == expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"expected {expected}, Prometheus still says {last} after {timeout} s")


def test_counts_through_prometheus_are_exact_with_two_workers(
    gateway_server: GatewayProcess, prometheus: Prometheus, demo_registry: DemoRegistry
) -> None:
    assert gateway_server.workers == 2
    assert len(gateway_server.pids()) >= 3  # supervisor and two workers
    _eventually(lambda: 1.0 if prometheus.targets_up() else 0.0, 1.0)
    _send_known_traffic(gateway_server, demo_registry)
    answered = N_SINGLE + N_BATCH

    def q(promql: str) -> Callable[[], float | None]:
        return lambda: _value(prometheus, promql)

    _eventually(
        q(f'sum(watchkeeper_requests_total{{model="{MODEL}",code="200"}})'), float(answered)
    )
    _eventually(
        q(f'sum(watchkeeper_requests_total{{model="{MODEL}",code="422"}})'), float(N_INVALID)
    )
    _eventually(q('sum(watchkeeper_requests_total{code="404"})'), float(N_UNKNOWN))
    # Answered requests carry the version and arm that answered.
    _eventually(
        q(
            f'sum(watchkeeper_requests_total{{model="{MODEL}",version="1",'
            'arm="champion",code="200"})'
        ),
        float(answered),
    )
    _eventually(
        q(f'sum(watchkeeper_predictions_total{{model="{MODEL}",shadow="false"}})'),
        float(N_SINGLE + N_BATCH * BATCH),
    )
    # Every request, answered or refused, is timed once.
    _eventually(
        q('sum(watchkeeper_request_duration_seconds_count{endpoint="predict"})'),
        float(answered + N_INVALID + N_UNKNOWN),
    )
    # The model ran once per answered request (refused records never reach it).
    _eventually(
        q(f'sum(watchkeeper_model_duration_seconds_count{{model="{MODEL}"}})'), float(answered)
    )
    # Every answered request waited for one durable log write.
    _eventually(q("sum(watchkeeper_log_write_duration_seconds_count)"), float(answered))
    _eventually(q("sum(watchkeeper_log_dropped_records_total)"), 0.0)
    _eventually(q("sum(watchkeeper_log_queue_depth)"), 0.0)
    # The default route serves the champion alone: one model-info series, version 1.
    _eventually(
        q(f'max(watchkeeper_model_info{{model="{MODEL}",version="1",arm="champion"}})'), 1.0
    )
    _eventually(q(f'count(watchkeeper_model_info{{model="{MODEL}"}} == 1)'), 1.0)


def test_every_scrape_reports_all_workers(
    gateway_server: GatewayProcess, demo_registry: DemoRegistry
) -> None:
    """Whichever worker answers ``/metrics``, the totals are the same (multiprocess mode)."""
    from prometheus_client.parser import text_string_to_metric_families

    def total() -> float:
        families = text_string_to_metric_families(gateway_server.metrics())
        return sum(
            s.value
            for f in families
            if f.name == "watchkeeper_requests"
            for s in f.samples
            if s.name == "watchkeeper_requests_total"
        )

    before = total()
    headers = {**gateway_server.headers, "Content-Type": "application/json"}
    body = json.dumps(demo_registry.rows[0]).encode()
    for _ in range(12):
        assert http("POST", gateway_server.base_url + PREDICT, body=body, headers=headers)[0] == 200
    # 20 scrapes over fresh connections reach both workers; all must agree.
    seen = {total() for _ in range(20)}
    assert seen == {before + 12}


def test_metric_names_pass_promtool(gateway_server: GatewayProcess) -> None:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not shutil.which(promtool):
        from tests.gateway.conftest import service_unavailable

        service_unavailable("promtool is not installed (apt-get install prometheus)")
    proc = subprocess.run(
        [promtool, "check", "metrics"],
        input=gateway_server.metrics(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
