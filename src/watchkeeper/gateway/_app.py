"""The ASGI application: wiring, error boundary, start-up and shutdown, operations.

``create_app(settings)`` wires the registry, the route table, the served-model state, the
prediction log, metrics and token checks into a FastAPI app, and mounts the v1 API
(:mod:`._v1`), the admin API (:mod:`._admin`) and the Open Inference Protocol
(:mod:`._v2`), then lets extensions (:mod:`.extension`; by default the application shell
:mod:`watchkeeper.app`, with the dashboard and the scheduled monitor) add theirs. The core
knows nothing of monitoring or rendering. Handlers read raw bodies and write raw JSON
(FastAPI still publishes the OpenAPI document from the declared shapes): validation happens
once, in :mod:`._validation`, with every bad field reported together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match

from watchkeeper import __version__
from watchkeeper._extras import resolve
from watchkeeper.gateway._errors import ApiError
from watchkeeper.gateway._http import CatchAll, error_response, json_response, mount_router
from watchkeeper.gateway._log import PredictionLog, open_log, writable_problem
from watchkeeper.gateway._metrics import GatewayMetrics
from watchkeeper.gateway._models import ServingState, without_paths
from watchkeeper.gateway._origin import OriginGuard
from watchkeeper.gateway._routes_store import RouteStore
from watchkeeper.gateway._security import TokenAuth
from watchkeeper.gateway._service import (
    Context,
    ensure_started,
)
from watchkeeper.gateway._settings import GatewayConfig
from watchkeeper.gateway.extension import Extension, Service
from watchkeeper.registry import Registry

__all__ = ["app_from_env", "create_app", "readiness"]

logger = logging.getLogger("watchkeeper.gateway")


def create_app(
    settings: GatewayConfig | None = None,
    *,
    registry: Registry | None = None,
    log: PredictionLog | None = None,
    extensions: Sequence[Extension] | None = None,
) -> FastAPI:
    """The gateway as an ASGI app.

    Parameters
    ----------
    settings
        Gateway settings (default: :meth:`GatewayConfig.from_env`).
    registry
        An open registry (default: opened from ``settings``; closed with the app).
    log
        The prediction log (default: the SQLite log at ``settings.resolved_log_path``
        behind a group-commit writer).
    extensions
        Callables ``install(app, ctx)`` that add routes and return background services
        (:mod:`watchkeeper.gateway.extension`). Default: the registered application shell
        (:func:`watchkeeper.app.install`: the dashboard and the scheduled monitor); ``()``
        gives the bare serving core.

    Examples
    --------
    >>> import asyncio, tempfile
    >>> import httpx
    >>> from sklearn.dummy import DummyRegressor
    >>> from watchkeeper.gateway import GatewayConfig, create_app
    >>> from watchkeeper.registry import Registry
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with Registry(root=tmp.name) as reg:
    ...     _ = reg.register("price", DummyRegressor().fit([[0.0]], [2.5]),
    ...                      schema={"columns": [{"name": "x", "kind": "numeric"}]}, actor="a")
    ...     _ = reg.set_alias("price", "champion", 1, actor="a")
    >>> app = create_app(GatewayConfig(root=tmp.name))
    >>> async def ask():
    ...     async with app.router.lifespan_context(app), httpx.AsyncClient(
    ...         transport=httpx.ASGITransport(app), base_url="http://localhost"
    ...     ) as client:
    ...         return (await client.post("/v1/models/price/predict", json={"x": 1.0})).json()
    >>> answer = asyncio.run(ask())
    >>> answer["predictions"], answer["version"], answer["arm"]
    ([2.5], 1, 'champion')
    >>> tmp.cleanup()
    """
    settings = GatewayConfig.from_env() if settings is None else settings
    own_registry = registry is None
    if registry is None:
        registry = Registry(settings.registry_url, artifacts=settings.artifacts, root=settings.root)
    routes = RouteStore(registry)
    state = ServingState(
        registry,
        routes,
        default_alias=settings.default_alias,
        models=settings.models,
        refresh_interval=settings.refresh_interval,
    )
    auth = TokenAuth(
        settings.predict_tokens, settings.admin_tokens, required=settings.auth_required
    )
    # Only the digests (in ``auth``) outlive start-up: the settings the app keeps hold no token.
    settings = replace(
        settings, predict_tokens=(), admin_tokens=(), require_auth=settings.auth_required
    )
    own_log = log is None
    ctx = Context(
        settings=settings,
        registry=registry,
        routes=routes,
        state=state,
        log=(
            open_log(
                settings.resolved_log_path,
                on_full=settings.log_on_full,
                synchronous=settings.log_synchronous,
                reference=registry.load_profile,
            )
            if log is None
            else log
        ),
        metrics=GatewayMetrics(),
        auth=auth,
    )

    if extensions is None:
        shell = resolve("gateway.extension")
        extensions = () if shell is None else (shell,)
    services: list[Service] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ensure_started(ctx)
        for service in services:
            service.start()
        try:
            yield
        finally:
            for service in reversed(services):
                await asyncio.to_thread(service.stop)
            if ctx.watcher is not None:
                ctx.watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ctx.watcher
            await _drain_shadows(ctx, timeout=5.0)
            if own_log:
                await asyncio.to_thread(ctx.log.close)
            if own_registry:
                ctx.registry.close()

    app = FastAPI(
        title="watchkeeper gateway",
        version=__version__,
        description=(
            "Serves registered models by alias with routing (single, split, canary, shadow), "
            "validates inputs against each version's schema, and logs every prediction "
            "durably before answering. Also speaks the Open Inference Protocol (v2)."
        ),
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["authorization", "content-type", "x-request-id", "x-event-time"],
        )
    app.add_middleware(
        OriginGuard,
        allowed_hosts=settings.resolved_allowed_hosts,
        cors_origins=settings.cors_origins,
    )
    app.add_middleware(CatchAll)
    _install_error_handlers(app)
    from watchkeeper.gateway._admin import admin_router
    from watchkeeper.gateway._explain import explain_router
    from watchkeeper.gateway._v1 import v1_router
    from watchkeeper.gateway._v2 import v2_router

    # Predict, infer and explain share one request-metrics dependency (:mod:`._observe`).
    for router in (v1_router(ctx), admin_router(ctx), v2_router(ctx), explain_router(ctx)):
        mount_router(app, router)
    for install in extensions:
        services.extend(install(app, ctx) or ())
    mount_router(app, _operations_router(ctx, services))
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` and worker processes: settings from env."""
    return create_app(GatewayConfig.from_env())


async def _drain_shadows(ctx: Context, timeout: float) -> None:
    pending = list(ctx.shadow_tasks)
    if pending:
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()


def _allowed_methods(request: Request) -> list[str]:
    allowed: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            allowed |= set(getattr(route, "methods", None) or ())
    return sorted(allowed)


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the first route matching the path; list them all.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return json_response({"error": detail, "detail": []}, exc.status_code, headers)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"field": ".".join(str(p) for p in err.get("loc", ())), "problem": err.get("msg", "")}
            for err in exc.errors()
        ]
        return json_response({"error": "invalid request", "detail": problems}, 422)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _operations_router(ctx: Context, services: Sequence[Service]) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["operations"], summary="Liveness", response_model=None)
    async def healthz() -> Response:
        """200 while the process serves HTTP."""
        return json_response({"status": "ok"})

    @router.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: every served model loaded",
        response_model=None,
        responses={503: {"description": "Not ready, with the reasons."}},
    )
    async def readyz() -> Response:
        """200 when every served model's arms are loaded; 503 with the reasons otherwise."""
        problems = await readiness(ctx)
        if problems:
            return json_response({"status": "not ready", "problems": problems}, 503)
        return json_response({"status": "ready", "models": sorted(ctx.state.current.models)})

    @router.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_model=None,
        response_class=PlainTextResponse,
    )
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition (all workers), with the extensions' (the monitor gauges)."""
        ctx.metrics.sample_log(ctx.log.stats())
        body, content_type = await asyncio.to_thread(ctx.metrics.render)
        for service in services:
            body += await asyncio.to_thread(service.exposition)
        body += await asyncio.to_thread(_loop_exposition, ctx)
        return Response(body, media_type=content_type)

    return router


def _loop_exposition(ctx: Context) -> bytes:
    """The loop's stage and decision series (from the registry database)."""
    from watchkeeper.gateway._loop_metrics import render_loop_metrics

    try:
        return render_loop_metrics(ctx.registry).encode()
    except Exception as exc:
        logging.getLogger(__name__).warning("loop metrics unavailable: %s", exc)
        return b""


#: Seconds a log probe's verdict is reused (readiness probes may come often).
_LOG_PROBE_TTL = 1.0


async def readiness(ctx: Context) -> list[str]:
    """Why the gateway is not ready (empty list when it is): models not loaded, or a
    prediction log that cannot be written (then every predict would answer 503).

    Anyone may ask (``/readyz`` takes no token), so file paths are cut out of the reasons;
    the gateway's log has them in full.
    """
    if ctx.watcher is None:
        await ensure_started(ctx)
    problems = await _log_problems(ctx)
    if not ctx.state.loaded:
        return [without_paths(ctx.state.last_error or "models are still loading"), *problems]
    return [without_paths(problem) for problem in [*ctx.state.current.readiness(), *problems]]


async def _log_problems(ctx: Context) -> list[str]:
    now = time.monotonic()
    cached = ctx.log_probe
    if cached is None or now - cached[0] > _LOG_PROBE_TTL:
        problem = await asyncio.to_thread(writable_problem, ctx.log)
        ctx.log_probe = cached = (time.monotonic(), problem)
    if cached[1] is None:
        return []
    return [without_paths(f"the prediction log cannot be written: {cached[1]}")]
