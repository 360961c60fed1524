"""One request-metrics dependency shared by the serving routers.

Every endpoint that serves a model (v1 predict, v2 infer, explain) declares
:func:`request_observer`'s dependency; it times the handler, reads the status from the
outcome (200, the :class:`~watchkeeper.gateway._errors.ApiError`'s status, or 500) and records
``watchkeeper_request_duration_seconds`` and, for prediction endpoints,
``watchkeeper_requests_total``, in one place. Handlers only name what they learned: the model
once it is known to be served, then the version and arm that answered. A model name is
recorded only after the handler resolved it, so unknown names in URLs never become label
values.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from watchkeeper.gateway._errors import ApiError
from watchkeeper.gateway._metrics import GatewayMetrics

__all__ = ["RequestObservation", "observation_dependency", "request_observer"]


@dataclass(slots=True)
class RequestObservation:
    """What a handler learned about its request, for the metrics."""

    model: str = "unknown"
    version: str = ""
    arm: str = ""

    def answered(self, version: int | str, arm: str) -> None:
        """The version and route arm that answered."""
        self.version, self.arm = str(version), arm


def request_observer(
    metrics: GatewayMetrics, endpoint: str, *, count: bool
) -> Callable[[], AsyncIterator[RequestObservation]]:
    """A FastAPI dependency (declare it with ``Depends(..., scope="function")``) observing
    one ``endpoint``; ``count`` adds the request to the prediction-request counter.

    Examples
    --------
    >>> import asyncio, contextlib
    >>> m = GatewayMetrics()
    >>> observe = contextlib.asynccontextmanager(request_observer(m, "predict", count=True))
    >>> async def handle() -> None:  # what FastAPI does around the handler
    ...     async with observe() as obs:
    ...         obs.model = "churn"
    ...         obs.answered(3, "champion")
    >>> asyncio.run(handle())
    >>> body = m.render()[0].decode()
    >>> [l for l in body.splitlines() if l.startswith("watchkeeper_requests_total")]
    ['watchkeeper_requests_total{arm="champion",code="200",model="churn",version="3"} 1.0']
    """
    duration = metrics.request_duration
    requests = metrics.requests

    async def observe() -> AsyncIterator[RequestObservation]:
        started = time.perf_counter()
        obs = RequestObservation()
        status = "500"
        try:
            yield obs
            status = "200"
        except ApiError as exc:
            status = str(exc.status)
            raise
        finally:
            elapsed = time.perf_counter() - started
            if count:
                metrics.child(requests, obs.model, obs.version, obs.arm, status).inc()
            metrics.child(duration, obs.model, endpoint).observe(elapsed)

    return observe


def observation_dependency(observe: Callable[[], AsyncIterator[RequestObservation]]) -> Any:
    """``Depends(observe, scope="function")``: run around the handler, before the answer."""
    from fastapi import Depends

    return Depends(observe, scope="function")
