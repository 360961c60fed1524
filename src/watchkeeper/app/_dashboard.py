"""The web dashboard: ``/dashboard`` pages and the JSON API they are drawn from.

Pages are HTML generated on the server from the registry (versions, aliases, audit trail),
the served state (routes) and the monitor history (windows, check results, alerts), with
inline CSS and SVG only: nothing is fetched from another host, and the responses carry a
Content-Security-Policy that forbids it. A few lines of inline JavaScript reload the page
every ``refresh`` seconds (``?refresh=0`` turns that off).

The JSON API (``/dashboard/api/models`` and ``/dashboard/api/models/{name}``) returns the
same numbers, is in the OpenAPI document and takes the same bearer tokens as the v1 API.
Browsers cannot send a bearer header on navigation, so when tokens are required the pages
also accept a cookie set by ``POST /dashboard/login`` from a form: the token travels in the
request body, never in a URL, so it never reaches an access log or the browser history, and
the cookie holds a signed session value that expires, never the token.
Any predict or admin token opens the dashboard (it only reads).

This is part of the application shell (:mod:`watchkeeper.app`), above ``monitor`` and
``report``; it plugs into the serving core through :mod:`watchkeeper.gateway.extension`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import HTMLResponse, RedirectResponse, Response

from watchkeeper.app._dashboard_pages import detail_page, login_page, nav, overview_page
from watchkeeper.gateway.extension import (
    ERROR_RESPONSES,
    SESSION_SECONDS,
    ApiError,
    Context,
    FieldProblem,
    ModelName,
    current_snapshot,
    json_response,
    registry_error,
)
from watchkeeper.registry import RegistryError, validate_name
from watchkeeper.report.html import esc, page

__all__ = ["COOKIE", "dashboard_router"]

#: Name of the cookie holding a signed, expiring dashboard session (never a token; HttpOnly,
#: SameSite=Strict, /dashboard only).
COOKIE = "watchkeeper_dashboard"
_HISTORY_EVENTS = 50
_ALERT_EVENTS = 50
_MAX_LOGIN_BYTES = 4096
_HEADERS = {
    # Inline style and script only; no request may leave for any host, this one included
    # (the page needs none), and no other site may frame it.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

Last = Annotated[int, Query(ge=1, le=500, description="Windows shown per version and arm.")]
VersionFilter = Annotated[
    int | None, Query(ge=1, le=2_147_483_647, description="Only this version.")
]
ArmFilter = Annotated[
    str | None,
    Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Only this arm (alias)."),
]
Refresh = Annotated[int, Query(ge=0, le=86_400, description="Reload every N s (0: never).")]


class DashboardModel(BaseModel):
    """One model in the dashboard overview."""

    model_config = ConfigDict(extra="allow")

    name: str
    n_versions: int
    aliases: dict[str, int]
    served: bool
    status: str | None
    firing_alerts: int | None


class DashboardOverview(BaseModel):
    """Every registered model at a glance."""

    models: list[DashboardModel]
    monitoring: bool
    alerting: bool


class DashboardDetail(BaseModel):
    """One model: registry, route, monitoring history and alerts."""

    model_config = ConfigDict(extra="allow")

    model: str
    versions: list[dict[str, Any]]
    aliases: dict[str, int]
    route: dict[str, Any] | None
    history: list[dict[str, Any]]
    monitoring: dict[str, Any] | None
    alerts: dict[str, Any] | None


def _monitor_class(name: str) -> Any:
    """A class of ``watchkeeper.monitor`` (imported here: the monitor sits above the gateway),
    or ``None`` when that layer is not installed."""
    try:
        module = importlib.import_module("watchkeeper.monitor")
    except ImportError:
        return None
    return getattr(module, name, None)


class Sources:
    """Where the dashboard reads the monitor history and the alert events.

    Both live in the monitor database, opened on first use and only once it exists (a
    dashboard must not create an empty one); until then every read answers "no history".
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._opened: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _open(self, name: str) -> Any:
        with self._lock:  # requests read from worker threads; open each store once
            return self._open_locked(name)

    def _open_locked(self, name: str) -> Any:
        found = self._opened.get(name)
        if found is not None:
            return found
        settings = self.ctx.settings
        url = getattr(settings, "monitor_url", None) or os.environ.get("WATCHKEEPER_MONITOR_URL")
        if url is None and not (Path(settings.root) / "monitor.db").exists():
            return None
        cls = _monitor_class(name)
        if cls is None:
            return None
        found = self._opened[name] = cls(url=url, root=settings.root)
        return found

    def history(self) -> Any:
        """The monitor history (``MonitorStore``), or ``None`` when there is none (yet)."""
        return self._open("MonitorStore")

    def alerting(self) -> bool:
        """Whether alert events can be read."""
        return self._open("AlertEvaluator") is not None

    def alerts(self, model: str, limit: int) -> dict[str, Any] | None:
        """Firing alerts and the newest ``limit`` alert events of ``model``, or ``None``."""
        from watchkeeper.report import alert_view

        evaluator = self._open("AlertEvaluator")
        if evaluator is None:
            return None
        return alert_view(evaluator.events(model, limit=limit), firing=evaluator.firing(model))

    def close(self) -> None:
        """Release the databases."""
        for opened in self._opened.values():
            opened.close()
        self._opened.clear()


def _route(ctx: Context, snapshot: Any, name: str) -> dict[str, Any] | None:
    served = snapshot.models.get(name)
    if served is not None:
        info: dict[str, Any] = served.describe()
        return info
    why = snapshot.unserved.get(name)
    return None if why is None else {"not_served": why}


def _overview(ctx: Context, sources: Sources, snapshot: Any) -> dict[str, Any]:
    from watchkeeper.report import monitor_view

    store = sources.history()
    models = []
    for summary in ctx.registry.list_models():
        item = summary.to_dict()
        route = _route(ctx, snapshot, summary.name)
        view = None if store is None else monitor_view(store, summary.name, last=1)
        alerts = sources.alerts(summary.name, 1)
        latest_end = None
        if view is not None:
            ends = [s["windows"][-1]["end"] for s in view["streams"] if s["windows"]]
            latest_end = max(ends, default=None)
        item.update(
            route=route,
            served=route is not None and "not_served" not in route,
            status=None if view is None else view["status"],
            latest_window_end=latest_end,
            firing_alerts=None if alerts is None else len(alerts["firing"]),
        )
        models.append(item)
    return {
        "models": models,
        "monitoring": store is not None,
        "alerting": sources.alerting(),
    }


def _detail(
    ctx: Context,
    sources: Sources,
    snapshot: Any,
    name: str,
    *,
    last: int,
    version: int | None,
    arm: str | None,
) -> dict[str, Any]:
    from watchkeeper.report import monitor_view

    versions = ctx.registry.list_versions(name)
    history = ctx.registry.history(name)[-_HISTORY_EVENTS:]
    store = sources.history()
    alerts = sources.alerts(name, _ALERT_EVENTS)
    return {
        "model": name,
        "versions": [
            {
                "version": v.version,
                "created_at": v.created_at.isoformat(),
                "actor": v.actor,
                "format": v.format,
                "output_kind": v.output_kind,
                "aliases": list(v.aliases),
                "metrics": dict(v.metrics),
                "description": v.description,
                "artifact_sha256": v.artifact_sha256,
            }
            for v in versions
        ],
        "aliases": {a: v.version for v in versions for a in v.aliases},
        "route": _route(ctx, snapshot, name),
        "history": [e.to_dict() for e in reversed(history)],
        "monitoring": None
        if store is None
        else monitor_view(store, name, last=last, version=version, arm=arm),
        "alerts": alerts,
    }


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return HTMLResponse(body, status, headers={**_HEADERS, **(headers or {})})


# -- wiring --------------------------------------------------------------------------------------


def dashboard_router(ctx: Context) -> APIRouter:
    """The dashboard pages and their JSON API."""
    router = APIRouter()
    sources = Sources(ctx)

    def authorize(request: Request) -> None:
        header = request.headers.get("authorization")
        cookie = request.cookies.get(COOKIE)
        if not header and cookie and ctx.auth.required:
            # A signed session value from the login form, never a token.
            if ctx.auth.check_session(cookie) is not None:
                return
            raise ApiError(
                "your dashboard session expired or is not valid; sign in again",
                [FieldProblem("cookie", "sign in at /dashboard/login")],
                status=401,
            )
        try:
            ctx.auth.check(header, "predict")
        except ApiError as exc:
            if exc.status != 403:  # 403: an admin token, which may read too
                raise

    def model_name(name: str) -> str:
        try:
            return validate_name(name)
        except ValueError as exc:
            raise ApiError(
                "invalid model name", [FieldProblem("path.name", str(exc))], status=404
            ) from None

    async def detail(name: str, last: int, version: int | None, arm: str | None) -> dict[str, Any]:
        snapshot = await current_snapshot(ctx)
        try:
            return await asyncio.to_thread(
                _detail, ctx, sources, snapshot, name, last=last, version=version, arm=arm
            )
        except RegistryError as exc:
            raise registry_error(exc) from None

    @router.get(
        "/dashboard/api/models",
        tags=["dashboard"],
        summary="Every registered model with its route, latest monitoring status and alerts",
        response_model=None,
        responses={200: {"model": DashboardOverview}, **ERROR_RESPONSES},
    )
    async def api_overview(request: Request) -> Response:
        """The numbers of the dashboard's overview page."""
        authorize(request)
        snapshot = await current_snapshot(ctx)
        data = await asyncio.to_thread(_overview, ctx, sources, snapshot)
        return json_response(data, headers={"Cache-Control": "no-store"})

    @router.get(
        "/dashboard/api/models/{name}",
        tags=["dashboard"],
        summary="One model: versions, aliases, audit history, route, monitoring, alerts",
        response_model=None,
        responses={200: {"model": DashboardDetail}, **ERROR_RESPONSES},
    )
    async def api_detail(
        name: ModelName,
        request: Request,
        last: Last = 48,
        version: VersionFilter = None,
        arm: ArmFilter = None,
    ) -> Response:
        """The numbers of the dashboard's model page: the last ``last`` monitor windows of
        each version and arm (status of every check, performance realised and estimated
        with intervals, serving health, label coverage) and the model's alerts."""
        authorize(request)
        data = await detail(model_name(name), last, version, arm)
        return json_response(data, headers={"Cache-Control": "no-store"})

    @router.get("/dashboard", include_in_schema=False, response_model=None)
    async def show_overview(request: Request, refresh: Refresh = 60) -> Response:
        try:
            authorize(request)
        except ApiError as exc:
            return _html(login_page(exc.error), 401)
        snapshot = await current_snapshot(ctx)
        data = await asyncio.to_thread(_overview, ctx, sources, snapshot)
        return _html(overview_page(data, refresh))

    @router.get("/dashboard/models/{name}", include_in_schema=False, response_model=None)
    async def show_detail(
        name: ModelName,
        request: Request,
        last: Last = 48,
        version: VersionFilter = None,
        arm: ArmFilter = None,
        refresh: Refresh = 60,
    ) -> Response:
        try:
            authorize(request)
        except ApiError as exc:
            return _html(login_page(exc.error), 401)
        try:
            data = await detail(model_name(name), last, version, arm)
        except ApiError as exc:
            message = "; ".join([exc.error, *(p.problem for p in exc.problems)])
            return _html(page("watchkeeper dashboard", nav() + f"<p>{esc(message)}</p>"), 404)
        return _html(detail_page(data, refresh))

    @router.get("/dashboard/loop", include_in_schema=False, response_model=None)
    async def show_loop(request: Request, refresh: Refresh = 60) -> Response:
        """Each model's loop stage and the evidence of its latest rollout."""
        try:
            authorize(request)
        except ApiError as exc:
            return _html(login_page(exc.error), 401)
        from watchkeeper.report import loop_view, render_loop_dashboard

        data = await asyncio.to_thread(loop_view, ctx.registry)
        return _html(render_loop_dashboard(data, refresh=refresh))

    @router.get("/dashboard/login", include_in_schema=False, response_model=None)
    async def login_form() -> Response:
        return _html(login_page("Sign in with a gateway token."))

    @router.post("/dashboard/login", include_in_schema=False, response_model=None)
    async def login(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_LOGIN_BYTES:
                return _html(login_page("The form is too large."), 413)
        if not ctx.auth.required:
            return RedirectResponse("/dashboard", status_code=303, headers=_HEADERS)
        try:
            fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
        except ValueError:
            fields = {}
        token = (fields.get("token") or [""])[0].strip()
        try:
            ctx.auth.check(f"Bearer {token}" if token else None, "predict")
        except ApiError as exc:
            if exc.status != 403:
                return _html(login_page(exc.error), 401)
        scope = ctx.auth.scope_of(token) or "predict"
        response = RedirectResponse("/dashboard", status_code=303, headers=_HEADERS)
        response.set_cookie(
            COOKIE,
            ctx.auth.issue_session(scope),
            max_age=SESSION_SECONDS,
            path="/dashboard",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/dashboard/logout", include_in_schema=False, response_model=None)
    async def logout() -> Response:
        response = RedirectResponse("/dashboard/login", status_code=303, headers=_HEADERS)
        response.delete_cookie(COOKIE, path="/dashboard")
        return response

    return router
