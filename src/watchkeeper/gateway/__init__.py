"""The serving gateway: registered models behind HTTP, routed, validated and logged.

Needs the ``serve`` extra (``pip install "watchkeeper[serve]"``): FastAPI, uvicorn and
prometheus-client are imported here, never by ``import watchkeeper``.

Examples
--------
>>> from watchkeeper.gateway import GatewayConfig, Route
>>> Route.canary(5).describe()
'canary: champion 95%, challenger 5% (sticky on x-user-id)'
>>> GatewayConfig(host="0.0.0.0", predict_tokens=("p" * 32,)).auth_required
True
"""

from __future__ import annotations

from typing import Any

from watchkeeper._extras import require

for _module in ("fastapi", "prometheus_client"):
    require(_module, extra="serve", purpose="The serving gateway")

from watchkeeper.gateway._app import app_from_env, create_app  # noqa: E402
from watchkeeper.gateway._errors import ApiError, FieldProblem  # noqa: E402
from watchkeeper.gateway._models import ServedVersion  # noqa: E402
from watchkeeper.gateway._routes_store import RouteStore  # noqa: E402
from watchkeeper.gateway._routing import Arm, Route, choose  # noqa: E402
from watchkeeper.gateway._settings import (  # noqa: E402
    GatewayConfig,
    is_loopback,
)

__all__ = [
    "ApiError",
    "Arm",
    "FieldProblem",
    "GatewayConfig",
    "Route",
    "RouteStore",
    "ServedVersion",
    "app_from_env",
    "choose",
    "create_app",
    "is_loopback",
]

_RENAMED = {"GatewaySettings": "GatewayConfig"}


def __getattr__(name: str) -> Any:
    new = _RENAMED.get(name)
    if new is None:
        raise AttributeError(f"module 'watchkeeper.gateway' has no attribute {name!r}")
    from watchkeeper._extras import renamed

    return renamed(__name__, name, new, globals()[new])
