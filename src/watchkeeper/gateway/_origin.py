"""Cross-site and DNS-rebinding guard: which hosts and origins may talk to the gateway.

A browser on any web page can send simple requests (``text/plain`` or form bodies, no
custom headers) to a loopback server, and a DNS-rebinding page can even read the answers,
because the browser believes it talks to the page's own host. Three checks close this, before
any route runs:

- the ``Host`` header must name an allowed host (by default, when bound to loopback, only the
  loopback names: a rebound name such as ``evil.example`` is refused with 421);
- a state-changing request (``POST``, ``PUT``, ``PATCH``, ``DELETE``) that carries an
  ``Origin`` (browsers always send it on cross-origin writes) must come from the gateway's
  own origin or a configured CORS origin (403 otherwise; ``Origin: null`` is refused);
- JSON routes require a JSON ``Content-Type`` (415, see :func:`._http.check_json_type`).

CORS stays off (no ``Access-Control-*`` headers) unless origins are configured.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from watchkeeper.gateway._errors import ApiError, FieldProblem
from watchkeeper.gateway._http import error_response

__all__ = ["LOOPBACK_NAMES", "OriginGuard", "host_allowed", "host_of"]

#: The names a loopback-bound gateway answers to by default.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_of(value: str) -> str:
    """The host part of a ``Host`` header or an origin's authority, lower-case, without port.

    Examples
    --------
    >>> host_of("LocalHost:8080"), host_of("[::1]:9000"), host_of("127.0.0.1")
    ('localhost', '::1', '127.0.0.1')
    """
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Whether the ``Host`` header ``host`` names one of ``allowed`` (``"*"``: any;
    ``".example.com"``: that domain and its subdomains).

    Examples
    --------
    >>> host_allowed("localhost:8080", LOOPBACK_NAMES), host_allowed("evil.example", LOOPBACK_NAMES)
    (True, False)
    >>> host_allowed("api.example.com", (".example.com",))
    True
    """
    name = host_of(host)
    for entry in allowed:
        entry = entry.strip().lower()
        if entry == "*" or name == host_of(entry):
            return True
        if entry.startswith(".") and (name.endswith(entry) or name == entry[1:]):
            return True
    return False


def _same_origin(origin: str, host: str) -> bool:
    scheme, sep, authority = origin.partition("://")
    if not sep or scheme not in ("http", "https"):
        return False
    authority = authority.rstrip("/").lower()
    host = host.strip().lower()
    if authority == host:
        return True
    default = "80" if scheme == "http" else "443"
    return authority == f"{host}:{default}" or f"{authority}:{default}" == host


class OriginGuard:
    """ASGI middleware holding the ``Host`` and ``Origin`` checks of the module docstring."""

    def __init__(
        self, app: ASGIApp, *, allowed_hosts: Sequence[str], cors_origins: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)
        self.any_host = "*" in self.allowed_hosts
        self.cors_origins = frozenset(o.rstrip("/").lower() for o in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is not None:
            await error_response(problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _problem(self, scope: Scope) -> ApiError | None:
        host = origin = fetch_site = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value.decode("latin-1")
            elif key == b"origin":
                origin = value.decode("latin-1")
            elif key == b"sec-fetch-site":
                fetch_site = value.decode("latin-1")
        if not self.any_host and (host is None or not host_allowed(host, self.allowed_hosts)):
            return ApiError(
                "this gateway does not serve that host name",
                [
                    FieldProblem(
                        "header.host",
                        f"{host!r} is not an allowed host; add it with --allowed-host (or "
                        "WATCHKEEPER_GATEWAY_ALLOWED_HOSTS) if this name is meant to reach "
                        "the gateway",
                    )
                ],
                status=421,
            )
        if scope["method"] in _SAFE_METHODS:
            return None
        if origin is not None:
            known = origin.rstrip("/").lower() in self.cors_origins
            if not known and (host is None or not _same_origin(origin, host)):
                return _cross_site(f"requests from the origin {origin!r} may not change state")
        elif fetch_site == "cross-site" and not self.cors_origins:
            return _cross_site("cross-site requests may not change state")
        return None


def _cross_site(problem: str) -> ApiError:
    return ApiError(
        "cross-origin request refused",
        [
            FieldProblem(
                "header.origin",
                f"{problem}; call the gateway from its own origin or a server, or allow the "
                "origin with --cors-origin (WATCHKEEPER_GATEWAY_CORS_ORIGINS)",
            )
        ],
        status=403,
    )
