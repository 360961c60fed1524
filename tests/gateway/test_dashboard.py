"""The dashboard in process: pages and JSON API from the registry, the served route and a
monitor history; auth by bearer header or login-form cookie; nothing fetched off the host."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from watchkeeper.app import _dashboard
from watchkeeper.registry import Registry

from ._apps import fresh_root, gateway

pytestmark = pytest.mark.anyio

PREDICT = "p-dashboard-token-0123456789"
ADMIN = "a-dashboard-token-0123456789"
T0 = datetime(2024, 5, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    """A check result of one window, shaped like the monitor history's ``WindowCheck``."""

    window: int
    check: str
    subject: str
    status: str
    value: float | None = None
    lower: float | None = None
    upper: float | None = None
    version: int = 1
    arm: str = "champion"
    n_rows: int = 200
    n_labels: int = 120
    reason: str = ""
    threshold: float | None = None
    p_value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def window_start(self) -> datetime:
        return T0 + timedelta(hours=self.window)

    @property
    def window_end(self) -> datetime:
        return T0 + timedelta(hours=self.window + 1)

    window_kind = "time"


def history_rows() -> list[Row]:
    rows = []
    for w in range(6):
        drifted = w >= 4
        rows += [
            Row(w, "drift.ks", "x1", "alert" if drifted else "ok", 0.4 if drifted else 0.03,
                reason="KS distance 0.4 above the floor" if drifted else "no drift"),
            Row(w, "quality.missing_share", "x2", "ok", 0.0),
            Row(w, "performance.accuracy", "model", "warn" if drifted else "ok",
                0.71 if drifted else 0.9, 0.65 if drifted else 0.86, 0.77 if drifted else 0.94),
            Row(w, "estimated.accuracy", "model", "ok", 0.88, 0.84, 0.92),
            Row(w, "serving.latency_p99", "model", "ok", 12.5 + w),
        ]  # fmt: skip
    rows.append(Row(5, "drift.ks", "x1", "ok", 0.02, version=2, arm="challenger"))
    return rows


class FakeHistory:
    """The reading API of ``watchkeeper.monitor.MonitorStore`` over fixed rows."""

    queries: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, url: str | None = None, *, root: str = ".watchkeeper") -> None:
        self.rows = history_rows()

    def windows(self, model: str, **filters: Any) -> list[Row]:
        self.queries.append({"what": "windows", "model": model, **filters})
        seen: dict[tuple[Any, ...], Row] = {}
        for r in self._select(model, filters):
            seen.setdefault((r.version, r.arm, r.window), r)
        return list(seen.values())

    def results(self, model: str, **filters: Any) -> list[Row]:
        self.queries.append({"what": "results", "model": model, **filters})
        return self._select(model, filters)

    def _select(self, model: str, filters: dict[str, Any]) -> list[Row]:
        if model != "churn":
            return []
        out = []
        for r in self.rows:
            if filters.get("since") is not None and r.window_start < filters["since"]:
                continue
            if filters.get("version") is not None and r.version != filters["version"]:
                continue
            if filters.get("arm") is not None and r.arm != filters["arm"]:
                continue
            out.append(r)
        return out

    def close(self) -> None:
        pass


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


@pytest.fixture
def with_history(root: Path, monkeypatch: pytest.MonkeyPatch) -> type[FakeHistory]:
    """The gateway reads ``FakeHistory`` as its monitor history (no alert store)."""
    (root / "monitor.db").touch()
    classes = {"MonitorStore": FakeHistory}
    monkeypatch.setattr(_dashboard, "_monitor_class", classes.get)
    FakeHistory.queries = []
    return FakeHistory


def assert_offline(html: str) -> None:
    """Every URL the page could load or follow stays on this host."""
    for attr, url in re.findall(r'\b(src|href|action|srcset|poster)="([^"]*)"', html):
        assert url.startswith(("/", "#")), f"{attr}={url!r} leaves the host"
    for url in re.findall(r"\b(?:https?:)?//[^\s\"'<>)]+", html):
        assert url == "http://www.w3.org/2000/svg", f"external URL {url!r} in the page"
    assert "@import" not in html
    assert "url(" not in html


async def test_overview_lists_models_with_aliases_route_and_latest_status(
    root: Path, with_history: type[FakeHistory]
) -> None:
    async with gateway(root) as client:
        api = (await client.get("/dashboard/api/models")).json()
        page = await client.get("/dashboard")
    by_name = {m["name"]: m for m in api["models"]}
    assert set(by_name) == {"churn", "price"}
    assert by_name["churn"]["aliases"] == {"champion": 1, "challenger": 2}
    assert by_name["churn"]["status"] == "alert"  # latest champion window drifted
    assert by_name["price"]["status"] is None
    assert by_name["churn"]["route"]["route"]["description"] == "single: champion"
    assert api["monitoring"] is True
    assert api["alerting"] is False
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert '<a href="/dashboard/models/churn">churn</a>' in html
    assert "champion → v1" in html
    assert "challenger → v2" in html
    assert_offline(html)


async def test_model_page_and_api_show_the_same_history(
    root: Path, with_history: type[FakeHistory]
) -> None:
    async with gateway(root) as client:
        api = (await client.get("/dashboard/api/models/churn")).json()
        html = (await client.get("/dashboard/models/churn?refresh=0")).text
    assert [v["version"] for v in api["versions"]] == [1, 2]
    assert api["aliases"] == {"champion": 1, "challenger": 2}
    assert [e["kind"] for e in api["history"]][:2] == ["alias", "alias"]  # newest first
    streams = {(s["version"], s["arm"]): s for s in api["monitoring"]["streams"]}
    assert set(streams) == {(1, "champion"), (2, "challenger")}
    champion = streams[(1, "champion")]
    assert len(champion["windows"]) == 6
    strips = {(s["check"], s["subject"]): s["statuses"] for s in champion["strips"]}
    assert strips[("drift.ks", "x1")] == ["ok"] * 4 + ["alert"] * 2
    accuracy = next(s for s in champion["series"] if s["check"] == "performance.accuracy")
    assert accuracy["values"] == [0.9] * 4 + [0.71] * 2
    assert accuracy["lower"][-1] == 0.65
    assert champion["windows"][0]["label_coverage"] == pytest.approx(0.6)
    # The page draws exactly these statuses: one heat-strip cell per window.
    cells = re.findall(r'data-check="drift\.ks" data-subject="x1" data-status="(\w+)"', html)
    assert cells == ["ok"] * 4 + ["alert"] * 2 + ["ok"]  # champion, then challenger
    assert "Performance with labels" in html
    assert "Performance estimated without labels" in html
    assert "Serving health" in html
    assert "Label coverage" in html
    assert "single: champion" in html
    assert "Alerting is not set up" in html
    assert "<script>" not in html  # refresh=0
    assert_offline(html)


async def test_history_queries_are_bounded_by_last(
    root: Path, with_history: type[FakeHistory]
) -> None:
    async with gateway(root) as client:
        api = (await client.get("/dashboard/api/models/churn?last=2&arm=champion")).json()
    (stream,) = api["monitoring"]["streams"]
    assert [w["end"] for w in stream["windows"]] == [
        (T0 + timedelta(hours=h)).isoformat() for h in (5, 6)
    ]
    results = [q for q in with_history.queries if q["what"] == "results"]
    assert results[-1]["since"] == T0 + timedelta(hours=4)
    assert results[-1]["arm"] == "champion"


async def test_without_history_the_page_says_how_to_get_one(root: Path) -> None:
    async with gateway(root) as client:
        api = (await client.get("/dashboard/api/models/price")).json()
        html = (await client.get("/dashboard/models/price")).text
    assert api["monitoring"] is None
    assert api["alerts"] is None
    assert "watchkeeper monitor run" in html
    assert not (root / "monitor.db").exists()  # reading never creates the database


async def test_unknown_model_and_bad_parameters(root: Path) -> None:
    async with gateway(root) as client:
        missing = await client.get("/dashboard/api/models/nope")
        page = await client.get("/dashboard/models/nope")
        bad = await client.get("/dashboard/api/models/churn?last=0")
        doc = (await client.get("/openapi.json")).json()
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"][0]["problem"]
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert bad.status_code == 422
    assert {"/dashboard/api/models", "/dashboard/api/models/{name}"} <= set(doc["paths"])
    assert "/dashboard" not in doc["paths"]  # pages are for browsers, not API clients


async def test_tokens_header_or_login_cookie(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = {"predict_tokens": (PREDICT,), "admin_tokens": (ADMIN,)}
    async with gateway(root, **tokens) as client:
        anonymous_api = await client.get("/dashboard/api/models")
        anonymous_page = await client.get("/dashboard")
        with_header = await client.get(
            "/dashboard/api/models", headers={"Authorization": f"Bearer {PREDICT}"}
        )
        admin = await client.get(
            "/dashboard/api/models/churn", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        wrong = await client.post("/dashboard/login", data={"token": "x" * 30})
        login = await client.post("/dashboard/login", data={"token": PREDICT})
        cookie = login.headers["set-cookie"]
        page = await client.get("/dashboard/models/churn")  # the client keeps the cookie
        client.cookies.clear()
        after = await client.get("/dashboard")
    assert anonymous_api.status_code == 401
    assert anonymous_page.status_code == 401
    assert '<form method="post" action="/dashboard/login">' in anonymous_page.text
    assert with_header.status_code == 200
    assert admin.status_code == 200
    assert wrong.status_code == 401
    assert "set-cookie" not in wrong.headers
    assert login.status_code == 303
    assert login.headers["location"] == "/dashboard"
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/dashboard" in cookie
    assert page.status_code == 200
    assert "churn" in page.text
    assert PREDICT not in page.text
    assert after.status_code == 401
    assert PREDICT not in caplog.text
    assert ADMIN not in caplog.text


async def test_registry_changes_show_up(root: Path) -> None:
    async with gateway(root) as client:
        with Registry(root=root) as registry:
            registry.set_alias("churn", "champion", 2, actor="ops", reason="better recall")
        api = (await client.get("/dashboard/api/models/churn")).json()
        html = (await client.get("/dashboard/models/churn")).text
    newest = api["history"][0]
    assert (newest["kind"], newest["actor"], newest["reason"]) == ("alias", "ops", "better recall")
    assert api["aliases"]["champion"] == 2
    assert "champion: v1 → v2" in html
    assert "better recall" in html


def _reachable_strings(obj: Any, seen: set[int] | None = None, depth: int = 0) -> list[str]:
    """Every str and bytes reachable from ``obj`` through attributes and containers."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 6:
        return []
    seen.add(id(obj))
    if isinstance(obj, str | bytes):
        return [obj.decode("latin-1") if isinstance(obj, bytes) else obj]
    found: list[str] = []
    if isinstance(obj, dict):
        items: Any = [*obj.keys(), *obj.values()]
    elif isinstance(obj, list | tuple | set | frozenset):
        items = list(obj)
    elif hasattr(obj, "__dict__") or hasattr(obj, "__slots__"):
        items = list(getattr(obj, "__dict__", {}).values()) + [
            getattr(obj, slot, None) for slot in getattr(obj, "__slots__", ())
        ]
    else:
        return []
    for item in items:
        found += _reachable_strings(item, seen, depth + 1)
    return found


async def test_the_app_keeps_token_digests_only(root: Path) -> None:
    import hashlib

    from watchkeeper.gateway import create_app

    from ._apps import serve, settings_for

    app = create_app(settings_for(root, predict_tokens=(PREDICT,), admin_tokens=(ADMIN,)))
    async with serve(app) as client:
        ok = await client.get("/dashboard/api/models", headers={"Authorization": f"Bearer {ADMIN}"})
    ctx = app.state.ctx
    assert ok.status_code == 200
    assert ctx.settings.auth_required
    assert ctx.settings.predict_tokens == ()
    assert ctx.settings.admin_tokens == ()
    strings = _reachable_strings(ctx.settings) + _reachable_strings(ctx.auth)
    assert not [s for s in strings if PREDICT in s or ADMIN in s]
    assert hashlib.sha256(PREDICT.encode()).digest() in [
        d for digests in ctx.auth._scopes.values() for d in digests
    ]


async def test_the_login_cookie_is_a_signed_expiring_session(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import hashlib
    import time as time_module

    from watchkeeper.gateway import _security

    tokens = {"predict_tokens": (PREDICT,), "admin_tokens": (ADMIN,)}
    async with gateway(root, **tokens) as client:
        login = await client.post("/dashboard/login", data={"token": ADMIN})
        value = client.cookies.get(_dashboard.COOKIE)
        ok = await client.get("/dashboard/api/models")
        payload, _, signature = value.partition(".")
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        # Forged: the payload altered (longer life, other scope) or a signature made up.
        forged_payload = decoded.replace(b'"e":', b'"e":9')
        forgeries = [
            base64.urlsafe_b64encode(forged_payload).decode().rstrip("=") + "." + signature,
            payload + "." + base64.urlsafe_b64encode(b"x" * 32).decode().rstrip("="),
            ADMIN,  # the old form of the cookie: the raw token
            "garbage",
        ]
        refused = []
        for forged in forgeries:
            client.cookies.clear()
            client.cookies.set(_dashboard.COOKIE, forged, path="/dashboard")
            refused.append((await client.get("/dashboard/api/models")).status_code)
        # Expired: the same value, later than its lifetime.
        client.cookies.clear()
        client.cookies.set(_dashboard.COOKIE, value, path="/dashboard")
        later = time_module.time() + _security.SESSION_SECONDS + 60
        monkeypatch.setattr(_security.time, "time", lambda: later)
        expired = await client.get("/dashboard/api/models")
        expired_page = await client.get("/dashboard")
    assert login.status_code == 303
    assert ok.status_code == 200
    set_cookie = login.headers["set-cookie"]
    for secret in (ADMIN, hashlib.sha256(ADMIN.encode()).hexdigest()):
        assert secret not in set_cookie
        assert secret not in value
    digest = hashlib.sha256(ADMIN.encode()).digest()
    assert digest not in decoded
    assert base64.urlsafe_b64encode(digest).decode().rstrip("=") not in value
    assert f"Max-Age={_security.SESSION_SECONDS}" in set_cookie
    assert refused == [401, 401, 401, 401]
    assert expired.status_code == 401
    assert "sign in again" in expired.json()["error"]
    assert expired_page.status_code == 401
    assert '<form method="post" action="/dashboard/login">' in expired_page.text
