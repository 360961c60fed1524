"""Hostile input against a real gateway (a ``watchkeeper serve`` subprocess, two workers):
property-based bad payloads across v1 predict, v2 infer, feedback, explain, admin and the
dashboard, plus every HTTP case of the hardening issue, while well-behaved clients keep
predicting and sending feedback. Every bad input gets a 4xx without a traceback, and no valid
request is disturbed (the shared group commit never fails because of another client)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import MODEL, DemoRegistry, GatewayProcess, http

#: Bad inputs sent by the property-based tests of this module (checked at the end).
SENT: list[int] = []
EXAMPLES = 25  # per strategy; 6 strategies + the explicit cases: > 150 bad inputs

SURROGATES = st.sampled_from(["\ud800", "a\udfff", "\udbff", "x\ud834y"])
HUGE = st.one_of(
    st.integers(min_value=10**309, max_value=10**400),
    st.integers(min_value=-(10**400), max_value=-(10**309)),
)
ODD = st.one_of(
    SURROGATES,
    HUGE,
    st.dictionaries(st.text(max_size=3), st.floats(allow_nan=False), max_size=2),
    st.lists(st.integers(), max_size=3),
    st.sampled_from([True, None, "", " ", "1e999", "NaN", "\x00", "<script>"]),
)
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _raw(value: Any) -> bytes:
    # ASCII escapes: a lone surrogate travels as the six characters \ud800, as a client sends it
    return json.dumps(value, ensure_ascii=True).encode()


def _send(
    server: GatewayProcess,
    method: str,
    path: str,
    body: bytes | None,
    *,
    refused: bool = False,
    **headers: str,
) -> tuple[int, bytes]:
    """Send one hostile request: never a 5xx nor a traceback; a 4xx when ``refused``
    (generated inputs may also be harmless, e.g. an ignored unknown field: then 2xx)."""
    all_headers = {**server.headers, "Content-Type": "application/json", **headers}
    status, answer = http(method, server.base_url + path, body=body, headers=all_headers)
    SENT.append(status)
    assert status < 500, (path, body, status, answer[:300])
    assert b"Traceback" not in answer
    assert b'File "' not in answer
    if refused:
        assert 400 <= status < 500, (path, body, status, answer[:300])
    return status, answer


class ValidTraffic:
    """Well-behaved clients predicting and sending feedback in threads until stopped."""

    def __init__(self, server: GatewayProcess, rows: tuple[dict[str, Any], ...]) -> None:
        self.server, self.rows = server, rows
        self.statuses: list[tuple[str, int, bytes]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(6)]

    def _run(self, worker: int) -> None:
        i = 0
        while not self._stop.is_set():
            row = self.rows[(worker * 97 + i) % len(self.rows)]
            rid = f"valid-{worker}-{i}"
            status, body = http(
                "POST",
                f"{self.server.base_url}/v1/models/{MODEL}/predict",
                body=_raw({**row, "id": rid}),
                headers={**self.server.headers, "Content-Type": "application/json"},
            )
            self.statuses.append(("predict", status, body[:200]))
            status, body = http(
                "POST",
                f"{self.server.base_url}/v1/models/{MODEL}/feedback",
                body=_raw({"id": rid, "label": "busy", "note": "ok ✓"}),
                headers={**self.server.headers, "Content-Type": "application/json"},
            )
            self.statuses.append(("feedback", status, body[:200]))
            i += 1

    def __enter__(self) -> ValidTraffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


@pytest.fixture(scope="module")
def traffic(gateway_server: GatewayProcess, demo_registry: DemoRegistry) -> Iterator[ValidTraffic]:
    with ValidTraffic(gateway_server, demo_registry.rows[:200]) as running:
        yield running
    bad = [s for s in running.statuses if s[1] != 200]
    assert running.statuses
    assert not bad, bad[:5]


def _row(demo_registry: DemoRegistry, i: int = 0) -> dict[str, Any]:
    return dict(demo_registry.rows[i])


# -- property-based: one strategy per surface ---------------------------------------------


def test_hostile_predict_values(
    gateway_server: GatewayProcess, demo_registry: DemoRegistry, traffic: ValidTraffic
) -> None:
    names = [*demo_registry.features, "id", "note", "\ud800"]

    @SETTINGS
    @given(field=st.sampled_from(names), value=ODD, batch=st.booleans())
    def check(field: str, value: Any, batch: bool) -> None:
        record = {**_row(demo_registry), field: value}
        if field == "note" and isinstance(value, str) and value.isascii():
            record["hour"] = value  # an unknown field alone is fine: make the record bad
        body = [record, _row(demo_registry, 1)] if batch else record
        _send(gateway_server, "POST", f"/v1/models/{MODEL}/predict", _raw(body))

    check()


def test_hostile_v2_tensors(
    gateway_server: GatewayProcess, demo_registry: DemoRegistry, traffic: ValidTraffic
) -> None:
    feature = demo_registry.features[0]

    @SETTINGS
    @given(
        value=ODD,
        datatype=st.sampled_from(["FP64", "FP32", "INT64", "BYTES", "BOOL", "FP8", 3]),
        shape=st.sampled_from([[1], [2], [1, 1], [-1], "x"]),
    )
    def check(value: Any, datatype: Any, shape: Any) -> None:
        tensor = {"name": feature, "shape": shape, "datatype": datatype, "data": [value]}
        _send(gateway_server, "POST", f"/v2/models/{MODEL}/infer", _raw({"inputs": [tensor]}))

    check()


def test_hostile_feedback(gateway_server: GatewayProcess, traffic: ValidTraffic) -> None:
    @SETTINGS
    @given(
        key=st.sampled_from(["label", "note", "flag", "id", "\ud800", "extra"]),
        value=ODD,
    )
    def check(key: str, value: Any) -> None:
        item = {"id": "fb-1", "label": "busy", key: value}
        if key == "label" and not isinstance(value, str | dict):
            item["note"] = ["not", "a", "note"]  # labels may be lists or numbers: add a fault
        _send(gateway_server, "POST", f"/v1/models/{MODEL}/feedback", _raw(item))

    check()


def test_hostile_explain(
    gateway_server: GatewayProcess, demo_registry: DemoRegistry, traffic: ValidTraffic
) -> None:
    @SETTINGS
    @given(field=st.sampled_from([*demo_registry.features, "prediction_id"]), value=ODD)
    def check(field: str, value: Any) -> None:
        body = (
            {"prediction_id": value}
            if field == "prediction_id"
            else {**_row(demo_registry), field: value}
        )
        if (
            field == "prediction_id"
            and isinstance(value, str)
            and value.isprintable()
            and value.strip()
        ):
            body["records"] = "not a list"
        _send(gateway_server, "POST", f"/v1/models/{MODEL}/explain", _raw(body))

    check()


def test_hostile_admin(gateway_server: GatewayProcess, traffic: ValidTraffic) -> None:
    admin = gateway_server.admin_headers

    @SETTINGS
    @given(
        path=st.sampled_from(["promote", "rollback", "route"]),
        key=st.sampled_from(["alias", "version", "mode", "from", "\ud800"]),
        value=ODD,
    )
    def check(path: str, key: str, value: Any) -> None:
        method = "PUT" if path == "route" else "POST"
        body = _raw({key: value, "version": 10**400} if key != "version" else {key: value})
        _send(gateway_server, method, f"/v1/admin/models/{MODEL}/{path}", body, **admin)

    check()


def test_hostile_dashboard(gateway_server: GatewayProcess, traffic: ValidTraffic) -> None:
    @SETTINGS
    @given(
        token=st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.hex())),
        junk=st.sampled_from([b"", b"token=%ff%fe", b"token=%ED%A0%80", b"\xff\xfe", b"a=b&c"]),
    )
    def check(token: str, junk: bytes) -> None:
        from urllib.parse import quote

        body = junk or f"token={quote(token)}".encode()
        status, answer = http(
            "POST",
            gateway_server.base_url + "/dashboard/login",
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        SENT.append(status)
        assert 400 <= status < 500, (body, status, answer[:200])
        assert b"Traceback" not in answer

    check()


# -- every HTTP case of the issue --------------------------------------------------------


def test_cases_of_the_issue(
    gateway_server: GatewayProcess, demo_registry: DemoRegistry, traffic: ValidTraffic
) -> None:
    row = _row(demo_registry)
    numeric = next(f for f in demo_registry.features if f != "weathersit")
    huge = b"1" + b"0" * 400
    base = _raw(row)
    body = base.replace(
        f'"{numeric}": {json.dumps(row[numeric])}'.encode(), f'"{numeric}": '.encode() + huge
    )
    assert huge in body
    cases: list[tuple[str, bytes, str]] = [
        (f"/v1/models/{MODEL}/predict", body, numeric),
        (f"/v1/models/{MODEL}/explain", body, numeric),
        (f"/v1/models/{MODEL}/predict", _raw({**row, "weathersit": "\ud800"}), "weathersit"),
        (f"/v1/models/{MODEL}/feedback", _raw({"id": "x", "\ud800": 1}), ""),
        (f"/v1/models/{MODEL}/feedback", _raw({"id": "x", "label": "\ud800"}), "label"),
        (f"/v1/models/{MODEL}/feedback", _raw({"id": "x", "label": 1, "note": "\ud800"}), "note"),
    ]
    tensor = {"name": numeric, "shape": [1], "datatype": "FP64", "data": ["HUGE"]}
    v2 = _raw({"inputs": [tensor]}).replace(b'"HUGE"', huge)
    cases.append((f"/v2/models/{MODEL}/infer", v2, "inputs[0].data[0]"))
    for path, raw, field in cases:
        status, answer = _send(gateway_server, "POST", path, raw, refused=True)
        detail = json.loads(answer)["detail"]
        assert any(field in d["field"] for d in detail), (path, answer)
        assert status in (400, 422), (path, status, answer)


def test_a_reused_id_is_idempotent_or_a_409(
    gateway_server: GatewayProcess, demo_registry: DemoRegistry
) -> None:
    row = {**_row(demo_registry, 5), "id": "dup-hostile-1"}
    url = f"{gateway_server.base_url}/v1/models/{MODEL}/predict"
    headers = {**gateway_server.headers, "Content-Type": "application/json"}
    first = http("POST", url, body=_raw(row), headers=headers)
    retry = http("POST", url, body=_raw(row), headers=headers)
    other = dict(row)
    numeric = next(f for f in demo_registry.features if f != "weathersit")
    other[numeric] = row[numeric] + 1
    clash = http("POST", url, body=_raw(other), headers=headers)
    assert first[0] == retry[0] == 200
    assert clash[0] == 409, clash
    assert b"already logged" in clash[1]
    import sqlite3

    conn = sqlite3.connect(f"file:{gateway_server.log_path}?mode=ro", uri=True)
    try:
        n = conn.execute(
            "SELECT count(*) FROM predictions WHERE id = ? AND shadow = 0", ("dup-hostile-1",)
        ).fetchone()[0]
    finally:
        conn.close()
    assert n == 1
    _, metrics = http("GET", gateway_server.base_url + "/metrics")
    text = metrics.decode()
    conflicts = [
        line for line in text.splitlines() if line.startswith("watchkeeper_log_id_conflicts_total")
    ]
    assert conflicts
    assert float(conflicts[0].split()[-1]) >= 1


def test_cross_site_requests_are_refused(gateway_server: GatewayProcess) -> None:
    admin = gateway_server.admin_headers
    promote = f"/v1/admin/models/{MODEL}/promote"
    body = _raw({"version": 2})
    # text/plain: what a cross-site form or fetch sends without asking
    status, _ = _send(
        gateway_server, "POST", promote, body, **{**admin, "Content-Type": "text/plain"}
    )
    assert status == 415
    status, _ = _send(gateway_server, "POST", promote, body, **admin, Origin="http://evil.example")
    assert status == 403
    # DNS rebinding: the browser believes it talks to evil.example
    status, _ = _send(gateway_server, "POST", promote, body, **admin, Host="evil.example")
    assert status == 421
    status, _ = _send(
        gateway_server, "GET", "/v1/models", None, Host=f"evil.example:{gateway_server.port}"
    )
    assert status == 421
    # the gateway's own origin is fine for reads and writes; no CORS headers by default
    req = {**gateway_server.headers, "Origin": gateway_server.base_url}
    import urllib.request

    with urllib.request.urlopen(
        urllib.request.Request(gateway_server.base_url + "/v1/models", headers=req), timeout=10
    ) as resp:
        assert resp.status == 200
        assert resp.headers.get("access-control-allow-origin") is None


def test_enough_bad_inputs_were_sent() -> None:
    assert len(SENT) >= 150, len(SENT)
