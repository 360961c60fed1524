"""What an application shell uses to extend the serving core.

The core (:func:`watchkeeper.gateway.create_app`) serves predict, feedback, explain, health and
admin routes and knows nothing of monitoring or rendering. An *extension* is a callable
``install(app, ctx)`` that adds routes to the FastAPI ``app`` (build an ``APIRouter`` and
add it with :func:`mount_router`) and returns the background
services it runs (objects with ``start()``, ``stop()`` and ``exposition()``, the last giving
extra Prometheus text for ``/metrics``). The application shell :mod:`watchkeeper.app` is the
extension that ``watchkeeper serve`` runs: the dashboard and the scheduled monitor.

The names below are the parts of the core an extension may use.

Examples
--------
>>> from watchkeeper.gateway.extension import json_response
>>> json_response({"status": "ok"}).status_code
200
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from watchkeeper.gateway._admin import registry_error
from watchkeeper.gateway._errors import ApiError, FieldProblem
from watchkeeper.gateway._http import json_response, mount_router
from watchkeeper.gateway._schemas import ERROR_RESPONSES, ModelName
from watchkeeper.gateway._security import SESSION_SECONDS
from watchkeeper.gateway._service import Context, current_snapshot

__all__ = [
    "ERROR_RESPONSES",
    "SESSION_SECONDS",
    "ApiError",
    "Context",
    "Extension",
    "FieldProblem",
    "ModelName",
    "Service",
    "current_snapshot",
    "json_response",
    "mount_router",
    "registry_error",
]


class Service(Protocol):
    """A background service an extension runs for the app's lifetime."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def exposition(self) -> bytes: ...


#: ``install(app, ctx)``: add routes to ``app``; return the services to start and stop.
Extension = Callable[[Any, Context], Sequence[Service]]
