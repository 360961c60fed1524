"""The application shell: what ``watchkeeper serve`` runs on top of the serving core.

The shell sits above ``monitor`` and ``report`` and holds the web dashboard (``/dashboard``)
and the scheduled monitor (one cycle per ``monitor_every`` in exactly one worker, gauges on
every worker's ``/metrics``). It plugs into :func:`watchkeeper.gateway.create_app` as an
extension (:mod:`watchkeeper.gateway.extension`); the top-level package registers it, so
``gateway.create_app`` builds the full app unless it is given ``extensions=()``.

Examples
--------
>>> import tempfile
>>> from watchkeeper.app import create_app
>>> from watchkeeper.gateway import GatewayConfig
>>> tmp = tempfile.TemporaryDirectory()
>>> app = create_app(GatewayConfig(root=tmp.name))
>>> sorted(r.path for r in app.routes if r.path.startswith("/dashboard"))[:2]
['/dashboard', '/dashboard/api/models']
>>> tmp.cleanup()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from watchkeeper.gateway import GatewayConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

    from watchkeeper.gateway.extension import Context, Service
    from watchkeeper.registry import Registry

__all__ = ["app_from_env", "create_app", "install"]


def install(app: FastAPI, ctx: Context) -> Sequence[Service]:
    """Add the dashboard to ``app`` and return the scheduled monitor (a service)."""
    from watchkeeper.app._dashboard import dashboard_router
    from watchkeeper.app._monitor_task import MonitorTask
    from watchkeeper.gateway.extension import mount_router

    task = MonitorTask(ctx.settings)
    app.state.monitor_task = task
    mount_router(app, dashboard_router(ctx))
    return [task]


def create_app(
    settings: GatewayConfig | None = None,
    *,
    registry: Registry | None = None,
    log: Any = None,
) -> FastAPI:
    """The full app: the serving core with the dashboard and the scheduled monitor."""
    from watchkeeper.gateway import create_app as core

    return core(settings, registry=registry, log=log, extensions=(install,))


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory``: settings from the environment."""
    return create_app(GatewayConfig.from_env())
