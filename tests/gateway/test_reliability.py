"""Reliability of the served gateway, against real ``watchkeeper serve`` processes.

- kill -9 under load, then restart: every prediction id a client received is in the log,
  with the answer it received, and no id is logged twice (client retries included);
- a stalled log sink: memory stays bounded, the queue never exceeds its bound, back-pressure
  shows in the metrics, and every request still answers once the sink recovers;
- route changes, promotion and rollback under load: zero failed requests;
- malformed and hostile input: a clear 4xx in the documented error shape, never a 5xx or a
  traceback.

Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from tests.gateway.conftest import (
    MODEL,
    DemoRegistry,
    GatewayProcess,
    Outcome,
    StartGateway,
    http,
    load_in_background,
    run_load,
)

from watchkeeper.logstore import SQLiteLogSink

PREDICT = f"/v1/models/{MODEL}/predict"
ROUNDS = 2  # kill -9 and restart this many times


def _batch_bodies(
    rows: Sequence[Mapping[str, Any]], server: GatewayProcess, prefix: str, size: int
) -> Callable[[int], tuple[bytes, Mapping[str, str]]]:
    """Request ``i``: ``size`` records with client-chosen ids ``<prefix>-<i>-<j>``."""

    def body(i: int) -> tuple[bytes, Mapping[str, str]]:
        records = [
            {**rows[(i * size + j) % len(rows)], "id": f"{prefix}-{i}-{j}"} for j in range(size)
        ]
        headers = {**server.headers, "Content-Type": "application/json"}
        return json.dumps(records).encode(), headers

    return body


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _answered(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Prediction id -> prediction, over every 200 response a client received."""
    found: dict[str, Any] = {}
    for outcome in outcomes:
        if outcome.status != 200:
            continue
        body = outcome.body
        for pid, prediction in zip(body["ids"], body["predictions"], strict=True):
            found[pid] = prediction
    return found


def _logged(server: GatewayProcess) -> tuple[list[str], dict[str, Any]]:
    """Ids of the live (non-shadow) rows in the log, in order, and id -> logged prediction."""
    sink = SQLiteLogSink(server.log_path)
    try:
        table = sink.read_window(MODEL)
    finally:
        sink.close()
    ids = table.column("id").to_pylist()
    predictions = table.column("prediction").to_pylist()
    return ids, dict(zip(ids, predictions, strict=True))


# ---------------------------------------------------------------------------------------------
# kill -9
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_under_load_loses_no_answered_prediction(
    start_gateway: StartGateway, demo_registry: DemoRegistry
) -> None:
    server = start_gateway(workers=2)
    outcomes: list[Outcome] = []
    interrupted: list[tuple[int, int]] = []  # (round, request index) of unanswered requests
    for round_ in range(ROUNDS):
        bodies = _batch_bodies(demo_registry.rows, server, f"k{round_}", size=5)
        with load_in_background(
            server.base_url + PREDICT, bodies, concurrency=8, max_requests=3_000, max_seconds=30
        ) as run:
            # Kill at a different point each round, while requests are in flight.
            target = 60 + 120 * round_
            _wait_for(lambda run=run, n=target: len(run.ok()) >= n, 30, f"{target} answers")
            server.kill()
        round_outcomes = run.snapshot()
        outcomes += round_outcomes
        interrupted += [(round_, o.index) for o in round_outcomes if o.status != 200]
        server.start()
    assert interrupted, "the kills interrupted no request; the test did not test anything"

    # Clients retry with the same ids: the requests the kills interrupted (some of which
    # may have been logged before the kill) and a few that were answered already.
    answered_first = [(0, o.index) for o in outcomes[:10] if o.status == 200]  # round 0
    retries = interrupted[:30] + answered_first
    retried: list[Outcome] = []
    for round_, i in retries:
        body, headers = _batch_bodies(demo_registry.rows, server, f"k{round_}", size=5)(i)
        status, raw = http("POST", server.base_url + PREDICT, body=body, headers=headers)
        assert status == 200, raw[:500]
        retried.append(Outcome(status, json.loads(raw), 0.0, None, i))
    server.stop()

    answered = _answered(outcomes)
    logged_ids, logged = _logged(server)
    assert len(answered) >= ROUNDS * 60 * 5
    missing = sorted(set(answered) - set(logged))
    assert not missing, f"{len(missing)} answered predictions are not in the log: {missing[:5]}"
    assert len(logged_ids) == len(set(logged_ids)), "an id is logged twice"
    answered_again = _answered(retried)
    assert set(answered_again) <= set(logged)
    wrong = [pid for pid, p in {**answered, **answered_again}.items() if logged[pid] != p]
    assert not wrong, f"logged predictions differ from the answers for {wrong[:5]}"
    # Nothing was logged that no client sent.
    sent = {f"k{r}-{i}-{j}" for r in range(ROUNDS) for i in range(3_000) for j in range(5)}
    assert set(logged_ids) <= sent


# ---------------------------------------------------------------------------------------------
# A stalled sink
# ---------------------------------------------------------------------------------------------


def _metric(text: str, name: str) -> float:
    """Sum of the samples of ``name`` (any labels) in a Prometheus exposition text."""
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, f"metric {name} not exported"
    return total


@pytest.mark.slow
def test_stalled_log_keeps_memory_bounded_and_shows_back_pressure(
    start_gateway: StartGateway, demo_registry: DemoRegistry
) -> None:
    """A second connection holds the log's write lock for 3 s (a stalled disk, a long
    checkpoint): the writer cannot commit, its bounded queue fills, handlers wait."""
    server = start_gateway(workers=1)
    # Warm up (model loaded, first commit done) and take the memory baseline.
    warm = _batch_bodies(demo_registry.rows, server, "warm", size=200)
    for i in range(10):
        body, headers = warm(i)
        assert http("POST", server.base_url + PREDICT, body=body, headers=headers)[0] == 200
    baseline_rss = server.rss_bytes()
    queue_bound = 10_000  # GroupCommitWriter's default max_pending

    depth_seen: list[float] = []
    peak_rss = baseline_rss
    blocker = sqlite3.connect(server.log_path, timeout=10, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # the write lock: the gateway's writer now waits
        stalled_until = time.monotonic() + 3.0
        bodies = _batch_bodies(demo_registry.rows, server, "stall", size=200)
        # 64 clients x 200 records = 12,800 records in flight: more than the queue holds.
        # Generous client bounds: after the stall, 80,000 records drain through one writer, and
        # on a busy machine the last requests wait longer than the default 30 s.
        with load_in_background(
            server.base_url + PREDICT,
            bodies,
            concurrency=64,
            max_requests=400,
            max_seconds=120,
            timeout=120.0,
        ) as run:
            while time.monotonic() < stalled_until:
                text = server.metrics()
                depth_seen.append(_metric(text, "watchkeeper_log_queue_depth"))
                peak_rss = max(peak_rss, server.rss_bytes())
                time.sleep(0.2)
            answered_during_stall = len(run.ok())
            blocker.execute("ROLLBACK")
            _wait_for(lambda: len(run.snapshot()) >= 400, 180, "every request to answer")
    finally:
        blocker.close()
    outcomes = run.snapshot()
    server_text = server.metrics()
    server.stop()

    # Nobody got an answer while nothing could be made durable.
    assert answered_during_stall == 0
    # Back-pressure, visible: the queue filled up to its bound and never beyond.
    assert max(depth_seen) == queue_bound, depth_seen
    # Memory bound: 12,800 records held by waiting requests (the request bodies, the parsed
    # records, their log records) stay under 5 KB each: 64 MB. (Measured: about 20 MB.)
    growth_mb = (peak_rss - baseline_rss) / 2**20
    assert growth_mb < 64, f"RSS grew by {growth_mb:.0f} MB while the log was stalled"
    # The stall ended: every request answered, and every answer is in the log.
    assert [o.status for o in outcomes] == [200] * 400, {(o.status, o.error) for o in outcomes}
    _, logged = _logged(server)
    answered = _answered(outcomes)
    assert len(answered) == 400 * 200
    assert set(answered) <= set(logged)
    assert _metric(server_text, "watchkeeper_log_dropped_records_total") == 0
    # The stall shows in the write-latency histogram: some writes waited over a second.
    slow = _metric(server_text, "watchkeeper_log_write_duration_seconds_count") - _bucket(
        server_text, "watchkeeper_log_write_duration_seconds_bucket", "1.0"
    )
    assert slow >= 1


def _bucket(text: str, name: str, le: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and f'le="{le}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no bucket le={le} for {name}")


# ---------------------------------------------------------------------------------------------
# Route changes under load
# ---------------------------------------------------------------------------------------------


def _admin(server: GatewayProcess, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {**server.admin_headers, "Content-Type": "application/json"}
    status, raw = http(method, server.base_url + path, body=data, headers=headers)
    assert status == 200, f"{method} {path}: {status} {raw[:500]!r}"
    return json.loads(raw)


@pytest.mark.slow
def test_route_changes_promotion_and_rollback_under_load_fail_no_request(
    start_gateway: StartGateway, demo_registry: DemoRegistry
) -> None:
    server = start_gateway(workers=2)
    route = f"/v1/admin/models/{MODEL}/route"
    changes: list[tuple[str, str, Any]] = [
        ("PUT", route, {"mode": "canary", "percent": 50, "reason": "try v2"}),
        ("PUT", route, {"mode": "split", "weights": {"champion": 1, "challenger": 1}}),
        ("PUT", route, {"mode": "shadow", "shadow": "challenger", "fraction": 1.0}),
        ("POST", f"/v1/admin/models/{MODEL}/promote", {"to": "challenger", "reason": "v2 wins"}),
        ("POST", f"/v1/admin/models/{MODEL}/rollback", {"reason": "v2 misbehaves"}),
        ("DELETE", route, None),
    ]
    bodies = _batch_bodies(demo_registry.rows, server, "r", size=3)
    with load_in_background(
        server.base_url + PREDICT, bodies, concurrency=6, max_requests=20_000, max_seconds=60
    ) as run:
        _wait_for(lambda: len(run.ok()) >= 30, 20, "the first answers")
        for method, path, body in changes:
            _admin(server, method, path, body)
            # Longer than the workers' refresh interval (0.5 s): every worker applies it.
            time.sleep(1.2)
        settled = time.monotonic()
        time.sleep(1.5)
    outcomes = run.snapshot()
    server.stop()

    failed = [(o.status, o.error or o.body) for o in outcomes if o.status != 200]
    assert not failed, f"{len(failed)} of {len(outcomes)} requests failed: {failed[:3]}"
    versions = {(o.body["version"], o.body["arm"]) for o in outcomes}
    # Canary and split answered from both versions; after promotion champion was v2.
    assert {(1, "champion"), (2, "challenger"), (2, "champion")} <= versions
    # After the rollback and the route's removal only v1 (champion) answers.
    late = [o.body for o in outcomes if o.started > settled + 0.5]
    assert late
    assert {(b["version"], b["arm"]) for b in late} == {(1, "champion")}

    # Shadow copies of the challenger were logged, never returned.
    sink = SQLiteLogSink(server.log_path)
    try:
        shadows = sink.read_window(MODEL, include_shadow=True, arm="challenger")
    finally:
        sink.close()
    shadow_flags = shadows.column("shadow").to_pylist()
    assert any(shadow_flags)
    returned_ids = set(_answered(outcomes))
    shadow_ids = {
        i for i, s in zip(shadows.column("id").to_pylist(), shadow_flags, strict=True) if s
    }
    # Shadow copies carry the ids of answered requests (never an id of their own).
    assert shadow_ids <= returned_ids

    # Every change is an audited registry event.
    from watchkeeper.registry import Registry

    with Registry(root=server.root) as registry:
        kinds = [e.kind for e in registry.history(MODEL)]
    assert kinds.count("route") >= 4
    assert "rollback" in kinds


# ---------------------------------------------------------------------------------------------
# Hostile input: a clear 4xx, never a 5xx or a traceback
# ---------------------------------------------------------------------------------------------


def _post(server: GatewayProcess, path: str, raw: bytes, **headers: str) -> tuple[int, Any]:
    all_headers = {**server.headers, "Content-Type": "application/json", **headers}
    status, body = http("POST", server.base_url + path, body=raw, headers=all_headers)
    text = body.decode("utf-8", errors="replace")
    assert "Traceback" not in text
    assert 'File "' not in text
    payload = json.loads(body)
    if status >= 400:
        # The documented error shape, with something to act on.
        assert isinstance(payload["error"], str)
        assert payload["error"]
        assert isinstance(payload["detail"], list)
        for item in payload["detail"]:
            assert set(item) == {"field", "problem"}
    return status, payload


def _fields(payload: Any) -> set[str]:
    return {item["field"] for item in payload["detail"]}


def _record(demo_registry: DemoRegistry, **changes: Any) -> dict[str, Any]:
    return {**demo_registry.rows[0], **changes}


def test_idle_keep_alive_connection_is_still_served(gateway_server: GatewayProcess) -> None:
    """A pooled connection reused after 6 s idle (httpx keeps them 5 s, cloud balancers 60 s)
    gets its answer: the server must not close an idle connection before its clients do, or
    the next request on it races the close and fails with a reset instead of a status."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", gateway_server.port, timeout=10)
    try:
        for pause in (0.0, 6.0):
            time.sleep(pause)
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            # One socket for both requests: http.client reconnects silently only after a
            # close it has seen, which it reports as a missing socket here.
            assert conn.sock is not None, "the server closed the idle connection"
    finally:
        conn.close()


def test_malformed_json_is_a_400(gateway_server: GatewayProcess) -> None:
    for raw in (b'{"hr": 3,', b"not json", b"[{]", b"\xff\xfe\x00", b""):
        status, payload = _post(gateway_server, PREDICT, raw)
        assert status == 400, (raw, payload)


def test_non_finite_numbers_are_refused(
    gateway_server: GatewayProcess, demo_registry: DemoRegistry
) -> None:
    good = json.dumps(_record(demo_registry, temp=0.25))
    for token in ("NaN", "Infinity", "-Infinity"):
        raw = good.replace('"temp": 0.25', f'"temp": {token}')
        assert token in raw
        status, payload = _post(gateway_server, PREDICT, raw.encode())
        assert status == 400, payload
        assert token in json.dumps(payload) or "finite" in json.dumps(payload)
    # A literal that overflows to infinity is a number JSON allows; the gateway must still
    # refuse it, naming the field.
    raw = json.dumps(_record(demo_registry, temp=0.25)).replace('"temp": 0.25', '"temp": 1e999')
    assert "1e999" in raw
    status, payload = _post(gateway_server, PREDICT, raw.encode())
    assert status in (400, 422), payload
    assert status == 400 or "temp" in _fields(payload)


def test_wrong_types_list_every_bad_field(
    gateway_server: GatewayProcess, demo_registry: DemoRegistry
) -> None:
    bad = _record(demo_registry, hr="noon", temp=[0.5], weathersit=["clear"], workingday={"a": 1})
    status, payload = _post(gateway_server, PREDICT, json.dumps(bad).encode())
    assert status == 422, payload
    assert {"hr", "temp", "weathersit", "workingday"} <= _fields(payload)
    # In a batch, the problems say which record.
    batch = [_record(demo_registry), _record(demo_registry, hum="wet")]
    status, payload = _post(gateway_server, PREDICT, json.dumps(batch).encode())
    assert status == 422, payload
    assert "[1].hum" in _fields(payload)
    # A missing input is named too (default policy: reject).
    partial = dict(demo_registry.rows[0])
    del partial["atemp"]
    status, payload = _post(gateway_server, PREDICT, json.dumps(partial).encode())
    assert status == 422, payload
    assert "atemp" in _fields(payload)
    # Bodies that are JSON but not records.
    for raw in (b"3", b'"text"', b"[1, 2]", b"[]", b"null"):
        status, payload = _post(gateway_server, PREDICT, raw)
        assert 400 <= status < 500, (raw, payload)


def test_huge_batches_and_bodies_are_refused(
    gateway_server: GatewayProcess, demo_registry: DemoRegistry
) -> None:
    # More records than max_batch (10,000 by default), in a small body.
    status, payload = _post(gateway_server, PREDICT, json.dumps([{}] * 10_001).encode())
    assert status == 413, payload
    # A body over max_body_bytes (1 MiB by default), declared by Content-Length, then the
    # same body streamed in chunks without Content-Length: refused as it arrives. (httpx
    # keeps the connection alive; a client sending `Connection: close`, like urllib, may see
    # the connection closed before its upload ends instead of the 413.)
    import httpx

    rows = [_record(demo_registry)] * 8_000
    raw = json.dumps(rows).encode()
    assert len(raw) > 2**20
    headers = {**gateway_server.headers, "Content-Type": "application/json"}

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 65_536):
            yield raw[start : start + 65_536]

    url = gateway_server.base_url + PREDICT
    with httpx.Client(timeout=30) as client:
        for content in (raw, chunks()):
            response = client.post(url, content=content, headers=headers)
            assert response.status_code == 413, response.text[:300]
            payload = response.json()
            assert "larger than" in payload["error"]
            assert payload["detail"] == [
                {"field": "body", "problem": payload["detail"][0]["problem"]}
            ]


def test_unknown_model_version_and_alias_are_4xx(
    gateway_server: GatewayProcess, demo_registry: DemoRegistry
) -> None:
    raw = json.dumps(_record(demo_registry)).encode()
    status, payload = _post(gateway_server, "/v1/models/no-such-model/predict", raw)
    assert status == 404, payload
    assert MODEL in json.dumps(payload)  # says what is served
    status, payload = _post(gateway_server, "/v1/models/bad name!/predict".replace(" ", "%20"), raw)
    assert status in (404, 422), payload
    v2 = {"inputs": [{"name": "hr", "shape": [1], "datatype": "INT64", "data": [8]}]}
    status, payload = _post(
        gateway_server, f"/v2/models/{MODEL}/versions/99/infer", json.dumps(v2).encode()
    )
    assert status == 404, payload
    # Admin: routes and promotions naming an alias that does not exist.
    route = f"/v1/admin/models/{MODEL}/route"
    admin = gateway_server.admin_headers
    for method, path, body in (
        ("PUT", route, {"mode": "single", "alias": "ghost"}),
        ("PUT", route, {"mode": "canary", "percent": 10, "challenger": "ghost"}),
        ("POST", f"/v1/admin/models/{MODEL}/promote", {"to": "ghost"}),
    ):
        status, raw_body = http(
            method,
            gateway_server.base_url + path,
            body=json.dumps(body).encode(),
            headers={**admin, "Content-Type": "application/json"},
        )
        assert 400 <= status < 500, (path, body, status, raw_body[:300])
        assert "ghost" in raw_body.decode()
    # The model still answers from its champion afterwards.
    status, payload = _post(gateway_server, PREDICT, raw)
    assert status == 200
    assert (payload["version"], payload["arm"]) == (1, "champion")


def test_tokens_and_scopes(gateway_server: GatewayProcess, demo_registry: DemoRegistry) -> None:
    raw = json.dumps(_record(demo_registry)).encode()
    url = gateway_server.base_url + PREDICT
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
        status, body = http("POST", url, body=raw, headers=headers)
        assert status == 401, body[:300]
        assert gateway_server.predict_token not in body.decode()
    # A predict token cannot change routes.
    status, _ = http(
        "PUT",
        gateway_server.base_url + f"/v1/admin/models/{MODEL}/route",
        body=b'{"mode": "single"}',
        headers={**gateway_server.headers, "Content-Type": "application/json"},
    )
    assert status == 403
    # Tokens never reach the server log.
    log_text = gateway_server.log_file.read_text(errors="replace")
    assert gateway_server.predict_token not in log_text
    assert gateway_server.admin_token not in log_text


def test_concurrent_bad_and_good_requests_do_not_interfere(
    gateway_server: GatewayProcess, demo_registry: DemoRegistry
) -> None:
    """Refused requests leave no trace in the log and do not disturb good ones."""
    good = _record(demo_registry)
    kinds = [
        (json.dumps({**good, "id": "mix-good-{i}"}), 200),
        (json.dumps({**good, "hr": "x", "id": "mix-bad-{i}"}), 422),
        ('{"hr": NaN, "id": "mix-nan-{i}"}', 400),
    ]

    def body(i: int) -> tuple[bytes, Mapping[str, str]]:
        template, _ = kinds[i % 3]
        headers = {**gateway_server.headers, "Content-Type": "application/json"}
        return template.replace("{i}", str(i)).encode(), headers

    run = run_load(
        gateway_server.base_url + PREDICT, body, concurrency=8, max_requests=300, max_seconds=30
    )
    outcomes = run.snapshot()
    assert len(outcomes) == 300
    statuses = sorted(o.status for o in outcomes)
    assert statuses.count(200) == 100
    assert statuses.count(422) == 100
    assert statuses.count(400) == 100
    _, logged = _logged(gateway_server)
    assert not any(pid.startswith(("mix-bad", "mix-nan")) for pid in logged)
    assert sum(1 for pid in logged if pid.startswith("mix-good")) == 100
