"""Admin endpoints (``admin`` scope): set a route, promote, roll back, reload.

Every change goes through the registry, which audits it (kind ``route``, ``alias`` or
``rollback``) with the actor and reason given. The worker that handled the call refreshes
at once; the others see the change within their refresh interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from starlette.responses import Response

from watchkeeper.exceptions import InputError
from watchkeeper.gateway._errors import ApiError, FieldProblem
from watchkeeper.gateway._http import json_response, read_json
from watchkeeper.gateway._routing import Route
from watchkeeper.gateway._schemas import ERROR_RESPONSES, ModelName
from watchkeeper.gateway._service import Context, refresh
from watchkeeper.registry import (
    InvalidNameError,
    ModelNotFoundError,
    RegistryError,
    RegistryUnavailableError,
    RollbackError,
    VersionNotFoundError,
    validate_name,
)

__all__ = ["admin_router", "registry_error"]

T = TypeVar("T")

_DEFAULT_ACTOR = "gateway-admin"
_ALIAS = {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"}
_COMMON = {
    "sticky_header": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"},
    "reason": {"type": "string", "maxLength": 2000},
    "actor": {"type": "string", "maxLength": 256},
}


def _variant(mode: str, required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["mode", *required],
        "additionalProperties": False,
        "properties": {"mode": {"const": mode}, **properties, **_COMMON},
    }


_ROUTE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _variant("single", [], alias=_ALIAS),
                        _variant(
                            "split",
                            ["weights"],
                            weights={
                                "type": "object",
                                "minProperties": 2,
                                "propertyNames": _ALIAS,
                                "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
                            },
                        ),
                        _variant(
                            "canary",
                            ["percent"],
                            percent={"type": "number", "minimum": 0, "maximum": 100},
                            champion=_ALIAS,
                            challenger=_ALIAS,
                        ),
                        _variant(
                            "shadow",
                            [],
                            alias=_ALIAS,
                            shadow=_ALIAS,
                            fraction={"type": "number", "minimum": 0, "maximum": 1},
                        ),
                    ]
                },
                "examples": {
                    "canary": {"value": {"mode": "canary", "percent": 10, "reason": "try v7"}},
                    "shadow": {
                        "value": {"mode": "shadow", "shadow": "challenger", "fraction": 0.5}
                    },
                },
            }
        },
    }
}


def registry_error(exc: Exception) -> ApiError:
    """The HTTP answer to a registry or input error.

    Examples
    --------
    >>> registry_error(RollbackError("nothing to roll back to")).status
    409
    """
    message = str(exc)
    problems = [FieldProblem("", message)]
    if isinstance(exc, ModelNotFoundError):
        return ApiError("unknown model", problems, status=404)
    if isinstance(exc, RollbackError):
        return ApiError("cannot roll back", problems, status=409)
    if isinstance(exc, RegistryUnavailableError):
        return ApiError("the registry is unavailable", problems, status=503)
    if isinstance(exc, VersionNotFoundError):
        # A well-formed request that the registry's current state does not allow (an alias
        # that is not set): a conflict with the state, not a malformed request.
        return ApiError("the registry does not allow this now", problems, status=409)
    if isinstance(exc, InvalidNameError | InputError):
        return ApiError("invalid request", problems, status=422)
    return ApiError("the registry refused the change", problems, status=409)


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except (RegistryError, InputError) as exc:
        raise registry_error(exc) from None


def _text(body: dict[str, Any], key: str, default: str, limit: int) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError(
            f"invalid {key}",
            [FieldProblem(key, f"expected a string of at most {limit} characters")],
        )
    return value


async def _object(request: Request, ctx: Context, *, required: bool = True) -> dict[str, Any]:
    if not required and not await _has_body(request):
        return {}
    body = await read_json(request, ctx.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise ApiError("expected a JSON object", [FieldProblem("body", "send a JSON object")])
    return body


async def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return length not in (None, "0") or "chunked" in request.headers.get("transfer-encoding", "")


def _name(name: str) -> str:
    try:
        return validate_name(name)
    except InvalidNameError as exc:
        raise ApiError(
            "invalid model name", [FieldProblem("path.name", str(exc))], status=404
        ) from None


def admin_router(ctx: Context) -> APIRouter:
    """The admin endpoints: routes, promotion, rollback, reload (admin scope)."""
    router = APIRouter()

    def check(request: Request) -> None:
        ctx.auth.check(request.headers.get("authorization"), "admin")

    @router.put(
        "/v1/admin/models/{name}/route",
        tags=["admin"],
        summary="Set a model's route",
        response_model=None,
        responses=ERROR_RESPONSES,
        openapi_extra=_ROUTE_BODY,
    )
    async def set_route(name: ModelName, request: Request) -> Response:
        """Store a new route (audited) and apply it; the aliases it names must be set."""
        check(request)
        name = _name(name)
        body = await _object(request, ctx)
        reason = _text(body, "reason", "", 2000)
        actor = _text(body, "actor", _DEFAULT_ACTOR, 256)
        spec = {k: v for k, v in body.items() if k not in ("reason", "actor")}
        try:
            route = Route.from_dict(spec)
        except InputError as exc:
            raise ApiError("invalid route", [FieldProblem("body", str(exc))]) from None
        event = await _call(ctx.routes.set, name, route, actor=actor, reason=reason)
        await refresh(ctx, force=True)
        return json_response(
            {"route": route.to_dict(), "description": route.describe(), "event": event.to_dict()}
        )

    @router.delete(
        "/v1/admin/models/{name}/route",
        tags=["admin"],
        summary="Remove a model's stored route (back to the default alias)",
        response_model=None,
        responses=ERROR_RESPONSES,
    )
    async def remove_route(name: ModelName, request: Request) -> Response:
        """Forget the stored route; the model is served by the default alias again."""
        check(request)
        name = _name(name)
        body = await _object(request, ctx, required=False)
        event = await _call(
            ctx.routes.remove,
            name,
            actor=_text(body, "actor", _DEFAULT_ACTOR, 256),
            reason=_text(body, "reason", "", 2000),
        )
        await refresh(ctx, force=True)
        return json_response({"event": None if event is None else event.to_dict()})

    @router.post(
        "/v1/admin/models/{name}/promote",
        tags=["admin"],
        summary="Point an alias (champion) at another version (the challenger's)",
        response_model=None,
        responses=ERROR_RESPONSES,
    )
    async def promote(name: ModelName, request: Request) -> Response:
        """Move ``alias`` (default ``champion``) to ``to`` (a version number or another
        alias, default ``challenger``). With ``reset_route`` (default true) a stored route is
        replaced by a single route on ``alias``, ending a canary or shadow."""
        check(request)
        name = _name(name)
        body = await _object(request, ctx, required=False)
        alias = _text(body, "alias", "champion", 64)
        target = body.get("to", "challenger")
        if isinstance(target, bool) or not isinstance(target, int | str):
            raise ApiError("invalid target", [FieldProblem("to", "a version number or an alias")])
        reset = body.get("reset_route", True)
        if not isinstance(reset, bool):
            raise ApiError("invalid reset_route", [FieldProblem("reset_route", "true or false")])
        actor = _text(body, "actor", _DEFAULT_ACTOR, 256)
        reason = _text(body, "reason", "", 2000)
        event = await _call(ctx.registry.set_alias, name, alias, target, actor=actor, reason=reason)
        events = [] if event is None else [event.to_dict()]
        if reset and await _call(ctx.routes.get, name) is not None:
            route_event = await _call(
                ctx.routes.set,
                name,
                Route.single(alias),
                actor=actor,
                reason=f"promotion; {reason}".rstrip("; "),
            )
            events.append(route_event.to_dict())
        await refresh(ctx, force=True)
        version = await _call(ctx.registry.get_version, name, alias)
        return json_response({"alias": alias, "version": version.version, "events": events})

    @router.post(
        "/v1/admin/models/{name}/rollback",
        tags=["admin"],
        summary="Point an alias back at its previous version",
        response_model=None,
        responses={409: {"description": "Nothing to roll back to."}, **ERROR_RESPONSES},
    )
    async def rollback(name: ModelName, request: Request) -> Response:
        """Roll ``alias`` (default ``champion``) back to its previous live holder."""
        check(request)
        name = _name(name)
        body = await _object(request, ctx, required=False)
        event = await _call(
            ctx.registry.rollback,
            name,
            _text(body, "alias", "champion", 64),
            actor=_text(body, "actor", _DEFAULT_ACTOR, 256),
            reason=_text(body, "reason", "", 2000),
        )
        await refresh(ctx, force=True)
        return json_response({"event": event.to_dict()})

    @router.post(
        "/v1/admin/reload",
        tags=["admin"],
        summary="Re-read routes and aliases now",
        response_model=None,
        responses=ERROR_RESPONSES,
    )
    async def reload(request: Request) -> Response:
        """Rebuild the served state at once (other workers follow within their refresh
        interval). With ``{"models": true}``, artifacts are verified and loaded again."""
        check(request)
        body = await _object(request, ctx, required=False)
        again = body.get("models", False)
        if not isinstance(again, bool):
            raise ApiError("invalid models flag", [FieldProblem("models", "true or false")])
        if again:
            ctx.state.forget_models()
        await refresh(ctx, force=True)
        snapshot = ctx.state.current
        if ctx.state.last_error is not None:
            raise ApiError(
                "reload failed; still serving the previous state",
                [FieldProblem("", ctx.state.last_error)],
                status=503,
            )
        # A served artifact that no longer matches its registered sha256 is reported, and
        # the copy loaded before keeps serving.
        failures = (
            dict(ctx.state.reload_failures)
            if again
            else await asyncio.to_thread(ctx.state.verify_artifacts)
        )
        if failures:
            raise ApiError(
                "reload found artifacts that fail verification; still serving the versions "
                "loaded before. Restore the files or register the models again",
                [
                    FieldProblem(f"models.{name}.versions.{version}", why)
                    for (name, version), why in sorted(failures.items())
                ],
                status=409,
            )
        return json_response(
            {
                "token": snapshot.token,
                "models": {n: m.describe() for n, m in sorted(snapshot.models.items())},
                "not_served": dict(snapshot.unserved),
            }
        )

    return router
