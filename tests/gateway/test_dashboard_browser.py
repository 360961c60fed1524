"""The dashboard of a real gateway process, loaded by headless Chromium.

The project folder holds the demo registry (``busy-hour``: v1 ``champion``, v2
``challenger``) under a canary route, predictions logged through the gateway, a monitor
history written through ``MonitorStore`` with a drift planted in the champion's last windows,
and the alerts the default rules raise from it. Chromium renders the page with every host
name but 127.0.0.1 unresolvable; the DOM must show the model, its versions and aliases, the
route, and exactly the drift statuses stored; the screenshot must be a full-size picture.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.checks import CheckResult, Status

from .conftest import MODEL, DemoRegistry, StartGateway, http

pytestmark = pytest.mark.service

_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions",
    # Any request to a host other than the gateway fails instead of leaving the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]  # fmt: skip
WIDTH, HEIGHT = 1280, 2400
T0 = datetime(2011, 7, 1, tzinfo=UTC)
#: Drift status of ``temp`` in the champion's five hourly windows.
CHAMPION_DRIFT = ["ok", "ok", "ok", "alert", "alert"]


def _chromium(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _window(
    i: int, drift: str, accuracy: tuple[float, float, float], *, n_labels: int
) -> list[CheckResult]:
    value, lower, upper = accuracy
    return [
        CheckResult("drift.ks", "temp", Status(drift), f"temp is {drift}",
                    value=0.35 if drift == "alert" else 0.03, threshold=0.1, p_value=0.001),
        CheckResult("drift.ks", "hum", Status.OK, "no drift", value=0.02, threshold=0.1),
        CheckResult("quality.missing_share", "temp", Status.OK, "no missing values", value=0.0),
        CheckResult("performance.accuracy", "model", Status.OK if value > 0.8 else Status.WARN,
                    f"accuracy {value}", value=value, lower=lower, upper=upper),
        CheckResult("estimated.accuracy", "model", Status.OK, "estimated",
                    value=value + 0.01, lower=value - 0.05, upper=value + 0.06),
        CheckResult("serving.latency_p99", "model", Status.OK, "fast", value=0.004 + i / 1000),
        CheckResult("serving.error_rate", "model", Status.OK, "no errors", value=0.0),
    ]  # fmt: skip


def populate(root: Path) -> list[Any]:
    """Canary route, monitor history and alerts under ``root``; the stored drift rows."""
    from watchkeeper.gateway import Route, RouteStore
    from watchkeeper.monitor import AlertEvaluator, MonitorStore
    from watchkeeper.registry import Registry

    with Registry(root=root) as registry:
        RouteStore(registry).set(MODEL, Route.canary(20), actor="tests", reason="try v2")
    with MonitorStore(root=root) as store:
        for i, drift in enumerate(CHAMPION_DRIFT):
            start = T0 + timedelta(hours=i)
            accuracy = (0.9, 0.86, 0.94) if drift == "ok" else (0.74, 0.69, 0.79)
            store.write_window(MODEL, 1, "champion", start, start + timedelta(hours=1), "time",
                               400, 300, _window(i, drift, accuracy, n_labels=300),
                               run_id="tests")  # fmt: skip
            store.write_window(MODEL, 2, "challenger", start, start + timedelta(hours=1), "time",
                               100, 60, _window(i, "ok", (0.92, 0.85, 0.97), n_labels=60),
                               run_id="tests")  # fmt: skip
        rows = store.results(MODEL, check="drift.ks", subject="temp")
        with AlertEvaluator(root=root) as alerts:
            outcome = alerts.evaluate(store.results(MODEL))
    assert [e.rule for e in outcome.events if e.kind == "firing"] == ["drift"]
    return rows


@pytest.fixture
def dashboard_gateway(
    demo_registry: DemoRegistry, start_gateway: StartGateway, tmp_path: Path
) -> Any:
    root = demo_registry.copy_to(tmp_path / "dashboard-root")
    stored = populate(root)
    # No tokens: a loopback gateway without them needs none, so the browser can load pages.
    server = start_gateway(
        workers=1, root=root, env={"WATCHKEEPER_PREDICT_TOKENS": "", "WATCHKEEPER_ADMIN_TOKENS": ""}
    )
    body = json.dumps(list(demo_registry.rows[:40])).encode()
    status, answer = http(
        "POST", server.base_url + f"/v1/models/{MODEL}/predict", body=body,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 200, answer[:300]
    return server, stored


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR comes first
    return int(width), int(height)


def test_dashboard_renders_in_chromium(
    chromium: str, dashboard_gateway: Any, demo_registry: DemoRegistry, tmp_path: Path
) -> None:
    from .test_dashboard import assert_offline

    server, stored = dashboard_gateway
    url = f"{server.base_url}/dashboard/models/{MODEL}?refresh=0"
    status, raw = http("GET", url)
    assert status == 200, raw[:300]
    assert_offline(raw.decode())

    dom = _chromium(chromium, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    expected = [
        f"<title>{MODEL} — watchkeeper</title>",
        "canary: champion 80%, challenger 20%",  # the route, with its weights
        'data-route-mode="canary"',
        '<span class="alias">champion</span>',  # versions and their aliases
        '<span class="alias">challenger</span>',
        "champion: — → v1",  # the audit trail
        "version 1 · champion",  # one history per version and arm
        "version 2 · challenger",
        "Performance estimated without labels",
        "serving.latency_p99",
        "Firing (1)",
    ]
    assert [e for e in expected if e not in text] == []
    # The heat strip shows exactly the stored statuses, champion first, window by window.
    champion = [r.status.value for r in stored if r.arm == "champion"]
    challenger = [r.status.value for r in stored if r.arm == "challenger"]
    assert champion == CHAMPION_DRIFT
    cells = re.findall(r'data-check="drift\.ks" data-subject="temp" data-status="(\w+)"', text)
    assert cells == champion + challenger
    assert text.count("<svg") >= 6

    overview = _chromium(chromium, tmp_path, "--dump-dom", f"{server.base_url}/dashboard")
    assert overview.returncode == 0, overview.stderr[-2000:]
    assert f'href="/dashboard/models/{MODEL}"' in overview.stdout
    assert "champion → v1" in overview.stdout

    shot = tmp_path / "dashboard.png"
    run = _chromium(
        chromium, tmp_path, f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", url
    )
    assert run.returncode == 0, run.stderr[-2000:]
    data = shot.read_bytes()
    assert _png_size(data) == (WIDTH, HEIGHT)
    # A blank page of this size compresses to a few kilobytes; tables and charts do not.
    assert len(data) > 60_000, f"screenshot of {len(data)} bytes looks blank"
