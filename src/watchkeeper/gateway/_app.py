"""The ASGI application: endpoints, error boundary, start-up and shutdown.

``create_app(settings)`` wires the registry, the route table, the served-model state, the
prediction log, metrics and token checks into a FastAPI app. Handlers read raw bodies and
write raw JSON (FastAPI still publishes the OpenAPI document from the declared shapes):
validation happens once, in :mod:`._validation`, with every bad field reported together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match

from watchkeeper import __version__
from watchkeeper.gateway._errors import ApiError, FieldProblem
from watchkeeper.gateway._http import CatchAll, error_response, json_response, read_json
from watchkeeper.gateway._log import PredictionLog, open_log
from watchkeeper.gateway._metrics import GatewayMetrics
from watchkeeper.gateway._models import ServingState
from watchkeeper.gateway._routes_store import RouteStore
from watchkeeper.gateway._schemas import (
    ERROR_RESPONSES,
    FeedbackResponse,
    ModelList,
    ModelName,
    PredictResponse,
    feedback_request_schema,
    predict_request_schema,
)
from watchkeeper.gateway._security import TokenAuth
from watchkeeper.gateway._service import (
    Context,
    current_snapshot,
    ensure_started,
    predict_records,
    served_model,
)
from watchkeeper.gateway._settings import GatewaySettings
from watchkeeper.logstore._records import FeedbackRecord
from watchkeeper.registry import Registry

__all__ = ["app_from_env", "create_app", "readiness"]

logger = logging.getLogger("watchkeeper.gateway")

_MAX_NOTE = 2000
_FEEDBACK_KEYS = frozenset({"id", "label", "flag", "note"})


def create_app(
    settings: GatewaySettings | None = None,
    *,
    registry: Registry | None = None,
    log: PredictionLog | None = None,
) -> FastAPI:
    """The gateway as an ASGI app.

    Parameters
    ----------
    settings
        Gateway settings (default: :meth:`GatewaySettings.from_env`).
    registry
        An open registry (default: opened from ``settings``; closed with the app).
    log
        The prediction log (default: the SQLite log at ``settings.resolved_log_path``
        behind a group-commit writer).

    Examples
    --------
    >>> import asyncio, tempfile
    >>> import httpx
    >>> from sklearn.dummy import DummyRegressor
    >>> from watchkeeper.gateway import GatewaySettings, create_app
    >>> from watchkeeper.registry import Registry
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with Registry(root=tmp.name) as reg:
    ...     _ = reg.register("price", DummyRegressor().fit([[0.0]], [2.5]),
    ...                      schema={"columns": [{"name": "x", "kind": "numeric"}]}, actor="a")
    ...     _ = reg.set_alias("price", "champion", 1, actor="a")
    >>> app = create_app(GatewaySettings(root=tmp.name))
    >>> async def ask():
    ...     async with app.router.lifespan_context(app), httpx.AsyncClient(
    ...         transport=httpx.ASGITransport(app), base_url="http://gateway"
    ...     ) as client:
    ...         return (await client.post("/v1/models/price/predict", json={"x": 1.0})).json()
    >>> answer = asyncio.run(ask())
    >>> answer["predictions"], answer["version"], answer["arm"]
    ([2.5], 1, 'champion')
    >>> tmp.cleanup()
    """
    settings = GatewaySettings.from_env() if settings is None else settings
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
            )
            if log is None
            else log
        ),
        metrics=GatewayMetrics(),
        auth=TokenAuth(
            settings.predict_tokens, settings.admin_tokens, required=settings.auth_required
        ),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ensure_started(ctx)
        try:
            yield
        finally:
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
    app.add_middleware(CatchAll)
    _install_error_handlers(app)
    _add_v1(app, ctx)
    from watchkeeper.gateway._admin import add_admin
    from watchkeeper.gateway._v2 import add_v2

    add_admin(app, ctx)
    add_v2(app, ctx)
    _add_operations(app, ctx)
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` and worker processes: settings from env."""
    return create_app(GatewaySettings.from_env())


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


def _add_v1(app: FastAPI, ctx: Context) -> None:
    settings = ctx.settings
    metrics = ctx.metrics

    @app.post(
        "/v1/models/{name}/predict",
        tags=["predict"],
        summary="Predict one record or a batch",
        response_model=None,
        responses={200: {"model": PredictResponse}, **ERROR_RESPONSES},
        openapi_extra=predict_request_schema(),
    )
    async def predict(name: ModelName, request: Request) -> Response:
        """Predictions for one record (a JSON object keyed by feature name) or a batch (a
        list of them). Send ``X-Request-Id`` or a per-record ``id`` to choose prediction ids;
        send the route's sticky header (default ``X-User-Id``) to keep a user on one arm."""
        started = time.perf_counter()
        labels = ["unknown", "", "", "500"]
        try:
            ctx.auth.check(request.headers.get("authorization"), "predict")
            snapshot = await current_snapshot(ctx)
            served = served_model(snapshot, name)
            labels[0] = name
            body = await read_json(request, settings.max_body_bytes)
            single = isinstance(body, dict)
            records = [body] if single else body
            _require_records(records)
            answer = await predict_records(
                ctx,
                served,
                records,
                request.headers,
                locate=_locate_single if single else _locate_batch,
            )
            labels[1], labels[2], labels[3] = str(answer.version), answer.arm, "200"
            return json_response(answer.to_dict())
        except ApiError as exc:
            labels[3] = str(exc.status)
            raise
        finally:
            metrics.child(metrics.requests, *labels).inc()
            metrics.child(metrics.request_duration, labels[0], "predict").observe(
                time.perf_counter() - started
            )

    @app.post(
        "/v1/models/{name}/feedback",
        tags=["feedback"],
        summary="Labels and flags for earlier predictions",
        response_model=None,
        responses={200: {"model": FeedbackResponse}, **ERROR_RESPONSES},
        openapi_extra=feedback_request_schema(),
    )
    async def feedback(name: ModelName, request: Request) -> Response:
        """Ground-truth ``label`` and/or a user ``flag`` (with an optional ``note``) for
        earlier prediction ids, one object or a list, any time after the prediction."""
        ctx.auth.check(request.headers.get("authorization"), "predict")
        served = served_model(await current_snapshot(ctx), name)
        body = await read_json(request, settings.max_body_bytes)
        single = isinstance(body, dict)
        items = [body] if single else body
        _require_records(items)
        records = _feedback_records(items, _locate_single if single else _locate_batch)
        try:
            result = await ctx.log.feedback(records)
        except Exception as exc:
            logger.exception("the prediction log failed to store feedback")
            raise ApiError(
                "the prediction log is unavailable; the feedback was not stored",
                [FieldProblem("", "retry later")],
                status=503,
            ) from exc
        n_labels = sum(1 for r in records if r.label is not None)
        n_flags = sum(1 for r in records if r.flag is not None)
        if n_labels:
            metrics.child(metrics.feedback, served.name, "label").inc(n_labels)
        if n_flags:
            metrics.child(metrics.feedback, served.name, "flag").inc(n_flags)
        return json_response(
            {
                "received": len(records),
                "matched": result.n_matched,
                "unknown": result.n_unknown,
                "unknown_ids": list(result.unknown_ids),
            }
        )

    @app.get(
        "/v1/models",
        tags=["models"],
        summary="Served models and their routes",
        response_model=None,
        responses={200: {"model": ModelList}, **ERROR_RESPONSES},
    )
    async def list_models(request: Request) -> Response:
        """Every served model with its route and the version behind each arm."""
        ctx.auth.check(request.headers.get("authorization"), "predict")
        snapshot = await current_snapshot(ctx)
        return json_response(
            {
                "models": [snapshot.models[n].describe() for n in sorted(snapshot.models)],
                "not_served": dict(snapshot.unserved),
            }
        )

    @app.get(
        "/v1/models/{name}",
        tags=["models"],
        summary="Versions, aliases, route and inputs of a model",
        response_model=None,
        responses=ERROR_RESPONSES,
    )
    async def model_detail(name: ModelName, request: Request) -> Response:
        """The model's live versions and aliases (from the registry), its current route,
        and the inputs each served version takes."""
        ctx.auth.check(request.headers.get("authorization"), "predict")
        served = served_model(await current_snapshot(ctx), name)
        versions = await asyncio.to_thread(ctx.registry.list_versions, name)
        return json_response(
            {
                **served.describe(),
                "versions": [
                    {
                        "version": v.version,
                        "created_at": v.created_at.isoformat(),
                        "format": v.format,
                        "output_kind": v.output_kind,
                        "aliases": list(v.aliases),
                        "metrics": dict(v.metrics),
                        "description": v.description,
                    }
                    for v in versions
                ],
                "aliases": {a: v.version for v in versions for a in v.aliases},
                "inputs": {alias: sv.spec.describe() for alias, sv in served.versions.items()},
                "schema": {alias: sv.record.schema for alias, sv in served.versions.items()},
            }
        )


def _add_operations(app: FastAPI, ctx: Context) -> None:
    @app.get("/healthz", tags=["operations"], summary="Liveness", response_model=None)
    async def healthz() -> Response:
        """200 while the process serves HTTP."""
        return json_response({"status": "ok"})

    @app.get(
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

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_model=None,
        response_class=PlainTextResponse,
    )
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition (all workers)."""
        ctx.metrics.sample_log(ctx.log.stats())
        body, content_type = await asyncio.to_thread(ctx.metrics.render)
        return Response(body, media_type=content_type)


async def readiness(ctx: Context) -> list[str]:
    """Why the gateway is not ready (empty list when it is)."""
    if ctx.watcher is None:
        await ensure_started(ctx)
    if not ctx.state.loaded:
        return [ctx.state.last_error or "models are still loading"]
    return ctx.state.current.readiness()


def _locate_single(_: int, name: str) -> str:
    return name


def _locate_batch(i: int, name: str) -> str:
    return f"[{i}].{name}"


def _require_records(items: Any) -> None:
    if not isinstance(items, list):
        raise ApiError(
            "expected a JSON object (one record) or a list of objects",
            [FieldProblem("body", f"got {type(items).__name__}")],
        )
    bad = [
        FieldProblem(f"[{i}]", "expected an object")
        for i, r in enumerate(items)
        if not isinstance(r, dict)
    ]
    if bad:
        raise ApiError("every record must be a JSON object keyed by field name", bad)


def _feedback_records(items: list[dict[str, Any]], locate: Any) -> list[FeedbackRecord]:
    from watchkeeper.gateway._validation import check_record_id

    problems: list[FieldProblem] = []
    records = []
    now = time.time()
    for i, item in enumerate(items):
        for key in item:
            if key not in _FEEDBACK_KEYS:
                problems.append(
                    FieldProblem(locate(i, key), "unknown field; use id, label, flag, note")
                )
        if "id" not in item:
            problems.append(FieldProblem(locate(i, "id"), "is required (the prediction id)"))
            continue
        found = check_record_id(item["id"], locate(i, "id"))
        if isinstance(found, FieldProblem):
            problems.append(found)
            continue
        flag = item.get("flag")
        if flag is not None and not isinstance(flag, bool):
            problems.append(FieldProblem(locate(i, "flag"), "expected true or false"))
        note = item.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > _MAX_NOTE):
            problems.append(
                FieldProblem(
                    locate(i, "note"), f"expected a string of at most {_MAX_NOTE} characters"
                )
            )
        label = item.get("label")
        if isinstance(label, dict):
            problems.append(
                FieldProblem(locate(i, "label"), "expected a value or a list, got an object")
            )
        if label is None and flag is None:
            problems.append(FieldProblem(locate(i, "label"), "send a label, a flag, or both"))
        records.append(FeedbackRecord(id=found, ts=now, label=label, flag=flag, note=note))
    if problems:
        raise ApiError("invalid feedback", problems)
    return records
