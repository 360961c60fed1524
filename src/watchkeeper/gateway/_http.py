"""Request bodies in (size-limited, strict JSON) and JSON responses out, without frameworks.

Bodies are read by hand so that the size limit holds for chunked uploads too (the
``Content-Length`` header is checked first, the running total while streaming) and so that
``NaN`` and ``Infinity``, which Python's parser accepts but JSON does not, are refused.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from watchkeeper.gateway._errors import ApiError, FieldProblem

__all__ = [
    "CatchAll",
    "check_json_type",
    "error_response",
    "json_response",
    "mount_router",
    "parse_json",
    "read_body",
    "read_json",
]

logger = logging.getLogger("watchkeeper.gateway")


def mount_router(app: Any, router: Any) -> None:
    """Add ``router``'s routes to ``app`` as routes of the app itself.

    FastAPI's ``include_router`` keeps each router as one nested route whose matching is
    resolved on every request (measured here: about 0.25 ms more per request, 60 % of a
    trivial route's cost); the routes, their dependencies and the OpenAPI document are the
    same either way.
    """
    app.router.routes.extend(router.routes)


try:  # installed with the serve extra; the standard library is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send finite numbers (or null)")


def check_json_type(request: Request, *, optional: bool = False) -> None:
    """415 unless the body is declared JSON (``application/json`` or ``application/*+json``).

    A browser can send a cross-site ``text/plain`` or form body without asking first; a
    JSON content type needs its permission (a CORS preflight), so requiring it closes that
    door. ``optional`` accepts a request without a ``Content-Type`` header (clients of the
    Open Inference Protocol, such as ``tritonclient``, send none).
    """
    declared = request.headers.get("content-type")
    if declared is None and optional:
        return
    media = (declared or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise ApiError(
        "unsupported media type",
        [
            FieldProblem(
                "header.content-type",
                f"send the body as application/json (got {declared or 'no Content-Type'})",
            )
        ],
        status=415,
    )


async def read_json(request: Request, limit: int) -> Any:
    """The parsed JSON body, or 415 (not declared JSON) / 400 (malformed) / 413 (too large)
    / 422 (a value no JSON consumer can take: a lone surrogate, an integer beyond 64 bits)."""
    check_json_type(request)
    return parse_json(await read_body(request, limit))


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, or 400 (bad ``Content-Length``) / 413 (larger than ``limit``)."""
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
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """Strict JSON from bytes (see :func:`read_json` for the answers to bad bodies).

    Examples
    --------
    >>> parse_json(b'{"a": [1, 2.5, "x"]}')
    {'a': [1, 2.5, 'x']}
    >>> def problem(body: bytes) -> list[dict[str, str]]:
    ...     try:
    ...         parse_json(body)
    ...     except ApiError as exc:
    ...         return exc.to_dict()["detail"]
    ...     return []
    >>> problem(b'[{"x": 1e999999}]')
    [{'field': '[0].x', 'problem': 'is beyond the range of a 64-bit float (about 1.8e308)'}]
    >>> problem(rb'{"note": "\\ud800"}')[0]["field"]
    'note'
    """
    if not body.strip():
        raise ApiError("empty body", [FieldProblem("body", "send a JSON document")], status=400)
    if _orjson is not None:
        # Fast path for valid documents; anything orjson refuses (NaN, bad UTF-8, lone
        # surrogates, integers beyond 64 bits, ...) is parsed again below, which accepts or
        # explains it.
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError:
            pass
    try:
        # RFC 8259: JSON between systems is UTF-8 (json.loads would also guess UTF-16/32).
        value = json.loads(
            body.decode("utf-8"), parse_constant=_refuse_constant, parse_int=_parse_int
        )
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
    problem = _unusable(value)
    if problem is not None:
        raise ApiError("the body holds a value that cannot be processed", [problem])
    return value


#: Integers JSON consumers agree on (orjson's range: signed and unsigned 64 bits).
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _parse_int(text: str) -> int | float:
    """Integers beyond 64 bits become floats, as orjson parses them (1e400 is infinite,
    and refused with the field named)."""
    if len(text) < 20:
        return int(text)
    value = int(text) if len(text) < 22 else None
    return value if value is not None and _INT_MIN <= value <= _INT_MAX else float(text)


def _bad_text(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _unusable(document: Any) -> FieldProblem | None:
    """The first value of a parsed document that nothing downstream can take, named by its
    path (``[0].label``, ``inputs[1].data[3]``): a string or key holding a lone UTF-16
    surrogate (not Unicode; it cannot be logged nor even echoed in an error) or a number
    beyond the range of a 64-bit float (``10**400``; no model input holds it)."""
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        value, where = stack.pop()
        kind = type(value)
        if kind is str:
            if _bad_text(value):
                return FieldProblem(
                    where or "body",
                    "holds a lone UTF-16 surrogate (e.g. \\ud800), which is not valid Unicode; "
                    "send valid UTF-8 text",
                )
        elif kind is float:
            if not math.isfinite(value):  # only an overflowing literal: NaN is refused
                return FieldProblem(
                    where or "body", "is beyond the range of a 64-bit float (about 1.8e308)"
                )
        elif kind is dict:
            for key, item in value.items():
                if _bad_text(key):
                    return FieldProblem(
                        where or "body",
                        f"has the key {key!a}, which holds a lone UTF-16 surrogate: not "
                        "valid Unicode; send valid UTF-8 text",
                    )
                stack.append((item, f"{where}.{key}" if where else key))
        elif kind is list:
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))
    return None


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
        # ASCII escapes: a lone surrogate that reaches an answer is escaped, not an error
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        from watchkeeper.gateway._service import finite_or_none

        return json.dumps(
            finite_or_none(payload),
            separators=(",", ":"),
            allow_nan=False,
            default=str,
        ).encode()
    except TypeError:
        return json.dumps(payload, separators=(",", ":"), default=str).encode()


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
