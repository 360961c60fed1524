"""Prometheus metrics of the gateway, correct with one worker or several.

With several workers, ``watchkeeper serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
folder before any worker starts; prometheus-client then keeps every value in per-process
files and ``/metrics`` (answered by whichever worker) sums them with its
``MultiProcessCollector``. Gauges say how to combine workers: the log queue depth is summed
over live workers, model info is the maximum.

Names follow Prometheus conventions: prefix ``watchkeeper_``, base units (seconds),
``_total`` for counters.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["GatewayMetrics", "multiprocess_dir"]

#: Latency buckets (seconds) fine enough to read a p99 around a few milliseconds.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    """The multiprocess folder of prometheus-client, if this process runs in that mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class GatewayMetrics:
    """The gateway's metrics, registered in a registry of their own.

    A private registry per app keeps several apps in one process (tests) from colliding in
    prometheus-client's global one.

    Examples
    --------
    >>> m = GatewayMetrics()
    >>> m.requests.labels(model="churn", version="3", arm="champion", code="200").inc()
    >>> body, content_type = m.render()
    >>> [l for l in body.decode().splitlines() if l.startswith("watchkeeper_requests_total")]
    ['watchkeeper_requests_total{arm="champion",code="200",model="churn",version="3"} 1.0']
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "watchkeeper_requests",
            "Prediction requests by model, version, route arm and HTTP status code.",
            ["model", "version", "arm", "code"],
            registry=reg,
        )
        self.request_duration = Histogram(
            "watchkeeper_request_duration_seconds",
            "Time to answer a prediction request, from parsed headers to response body.",
            ["model", "endpoint"],
            buckets=_BUCKETS,
            registry=reg,
        )
        self.model_duration = Histogram(
            "watchkeeper_model_duration_seconds",
            "Time the model took to predict one request's records.",
            ["model", "version", "arm"],
            buckets=_BUCKETS,
            registry=reg,
        )
        self.predictions = Counter(
            "watchkeeper_predictions",
            "Records predicted, by model, version, arm and whether it was a shadow copy.",
            ["model", "version", "arm", "shadow"],
            registry=reg,
        )
        self.feedback = Counter(
            "watchkeeper_feedback",
            "Feedback records received, by model and kind (label or flag).",
            ["model", "kind"],
            registry=reg,
        )
        self.log_queue_depth = Gauge(
            "watchkeeper_log_queue_depth",
            "Records waiting to be written to the prediction log.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.log_write_duration = Histogram(
            "watchkeeper_log_write_duration_seconds",
            "Time from handing records to the log until they are durable.",
            buckets=_BUCKETS,
            registry=reg,
        )
        self.log_dropped = Counter(
            "watchkeeper_log_dropped_records",
            "Records the prediction log dropped because its queue was full (on_full=drop).",
            registry=reg,
        )
        self.log_duplicates = Counter(
            "watchkeeper_log_duplicate_records",
            "Predictions not logged again because the same id was already logged for the model "
            "with the same features (idempotent retries).",
            registry=reg,
        )
        self.log_conflicts = Counter(
            "watchkeeper_log_id_conflicts",
            "Predictions refused (409) because their id was already logged for the model with "
            "other features.",
            registry=reg,
        )
        self._duplicates_seen = 0
        self.shadow_skipped = Counter(
            "watchkeeper_shadow_skipped",
            "Shadow copies skipped because too many shadow predictions were in flight.",
            ["model"],
            registry=reg,
        )
        self.model_info = Gauge(
            "watchkeeper_model_info",
            "1 for every model version currently served, with its arm (alias) and format.",
            ["model", "version", "arm", "format"],
            registry=reg,
            multiprocess_mode="livemax",
        )
        self._info_labels: set[tuple[str, str, str, str]] = set()
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: the hot path skips prometheus-client's
        label checks and lock after the first request of each label set."""
        key = (metric._name, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def set_served(self, labels: Iterable[tuple[str, str, str, str]]) -> None:
        """Mark exactly these ``(model, version, arm, format)`` as served."""
        new = set(labels)
        for gone in self._info_labels - new:
            # Set to 0 rather than removed: removal does not reach multiprocess files.
            self.model_info.labels(*gone).set(0)
        for label in new:
            self.model_info.labels(*label).set(1)
        self._info_labels = new

    def sample_log(self, stats: dict[str, Any]) -> None:
        """Copy the log writer's queue depth into the gauge."""
        depth = stats.get("queue_depth")
        if isinstance(depth, int | float):
            self.log_queue_depth.set(depth)
        duplicates = stats.get("duplicates_total")
        if isinstance(duplicates, int) and duplicates > self._duplicates_seen:
            self.log_duplicates.inc(duplicates - self._duplicates_seen)
            self._duplicates_seen = duplicates

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (all workers in multiprocess mode)."""
        if multiprocess_dir() is not None:
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
