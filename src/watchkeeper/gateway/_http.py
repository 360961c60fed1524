"""Request bodies in (size-limited, strict JSON) and JSON responses out, without frameworks.

Bodies are read by hand so that the size limit holds for chunked uploads too (the
``Content-Length`` header is checked first, the running total while streaming) and so that
``NaN`` and ``Infinity``, which Python's parser accepts but JSON does not, are refused.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from watchkeeper.gateway._errors import ApiError, FieldProblem

__all__ = ["CatchAll", "error_response", "json_response", "read_json"]

logger = logging.getLogger("watchkeeper.gateway")

try:  # installed with the serve extra; the standard library is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send finite numbers (or null)")


async def read_json(request: Request, limit: int) -> Any:
    """The parsed JSON body, or 400 (malformed) / 413 (too large)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(
                "invalid Content-Length header",
                [FieldProblem("header.content-length", "must be a number of bytes")],
                status=400,
            )
        if int(declared) > limit:
            raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    if not body.strip():
        raise ApiError("empty body", [FieldProblem("body", "send a JSON document")], status=400)
    if _orjson is not None:
        # Fast path for valid documents; anything orjson refuses (NaN, bad UTF-8, integers
        # beyond 64 bits, ...) is parsed again below, which accepts or explains it.
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError:
            pass
    try:
        # RFC 8259: JSON between systems is UTF-8 (json.loads would also guess UTF-16/32).
        return json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ApiError(
            "the body is not UTF-8 text",
            [FieldProblem("body", "send UTF-8 encoded JSON")],
            status=400,
        ) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ApiError(
            "the body is not valid JSON", [FieldProblem("body", f"{exc.msg} ({where})")], status=400
        ) from None
    except ValueError as exc:
        raise ApiError(
            "the body is not valid JSON", [FieldProblem("body", str(exc))], status=400
        ) from None
    except RecursionError:
        raise ApiError(
            "the body is nested too deeply",
            [FieldProblem("body", "flatten the document")],
            status=400,
        ) from None


def _too_large(limit: int) -> ApiError:
    return ApiError(
        f"request body larger than {limit} bytes",
        [FieldProblem("body", "send smaller batches (or raise --max-body-bytes)")],
        status=413,
    )


def dumps(payload: Any) -> bytes:
    """Compact JSON; NaN and infinities (not JSON) become ``null``."""
    if _orjson is not None:
        try:  # orjson writes NaN and infinities as null, like the fallback below
            return _orjson.dumps(payload, option=_orjson.OPT_SERIALIZE_NUMPY)
        except TypeError:
            pass
    try:
        return json.dumps(
            payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False
        ).encode()
    except ValueError:
        from watchkeeper.gateway._service import finite_or_none

        return json.dumps(
            finite_or_none(payload),
            separators=(",", ":"),
            allow_nan=False,
            ensure_ascii=False,
            default=str,
        ).encode()
    except TypeError:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response built without any validation layer."""
    return Response(dumps(payload), status, headers=headers, media_type="application/json")


def error_response(exc: ApiError) -> Response:
    """The JSON response of an :class:`ApiError`."""
    return json_response(exc.to_dict(), exc.status, exc.headers)


class CatchAll:
    """Last line of defence: any unhandled exception becomes a 500 with an error id.

    The traceback goes to the server log under that id; the client sees no internals.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            error_id = uuid.uuid4().hex[:16]
            logger.exception(
                "internal error %s on %s %s", error_id, scope.get("method"), scope.get("path")
            )
            if started:
                raise
            body = dumps(
                {
                    "error": f"internal error; the server log has the details under id {error_id}",
                    "detail": [],
                    "error_id": error_id,
                }
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
