"""Prometheus gauges of the monitor history, read from the store at scrape time.

The exported series (the shared contract, read by the generated alerting rules and the
Grafana dashboard):

- ``watchkeeper_monitor_value{model,version,arm,check,subject}``: the result's value, and
  ``watchkeeper_monitor_lower`` / ``_upper`` its bounds (only where the result has them);
- ``watchkeeper_monitor_status{model,version,arm,check,subject}``: 0 ok, 1 insufficient
  data, 2 warn, 3 alert, 4 error (:attr:`Status.severity <watchkeeper.checks.Status>`);
- ``watchkeeper_monitor_window_end_timestamp_seconds{model,version,arm}``: end of the
  stream's newest window (``time() -`` it is the monitor's lag);
- ``watchkeeper_monitor_label_coverage_ratio{model,version,arm}``: labelled share of that
  window's rows.

Which result a series shows: the newest window's, unless that window could not judge it
(``insufficient_data``, e.g. its labels have not arrived yet); then the newest judged result
of the ``lookback`` before the model's newest window. Performance measured on late labels
therefore stays visible while newer windows wait for theirs. A stream (version, arm) with no
window in that span is no longer exported, so a retired version cannot keep an alert firing.

Why a collector rather than gauges set by the monitor: the store is the one source of truth
shared by every writer (``watchkeeper monitor run`` from cron, ``watch``, the gateway's
schedule) and every reader. Each gateway worker answers ``/metrics`` from it, so all
workers agree without prometheus-client's multiprocess files, where a gauge cannot be
removed (a retired series would stay forever) and ``livemax``/``mostrecent`` would have to
choose between values written by processes that may have died.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from watchkeeper.checks import Status
from watchkeeper.monitor._records import WindowCheck

__all__ = ["MONITOR_GAUGES", "MonitorCollector", "monitor_families", "render_monitor_metrics"]

logger = logging.getLogger("watchkeeper.monitor")

_RESULT = ("model", "version", "arm", "check", "subject")
_STREAM = ("model", "version", "arm")

#: name -> (help, label names) of every exported gauge.
MONITOR_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "watchkeeper_monitor_value": ("Value of the newest monitor result of a check.", _RESULT),
    "watchkeeper_monitor_lower": ("Lower confidence bound of that result.", _RESULT),
    "watchkeeper_monitor_upper": ("Upper confidence bound of that result.", _RESULT),
    "watchkeeper_monitor_status": (
        "Status of that result: 0 ok, 1 insufficient data, 2 warn, 3 alert, 4 error.",
        _RESULT,
    ),
    "watchkeeper_monitor_window_end_timestamp_seconds": (
        "End of the newest evaluated window of a model version and arm (UTC seconds).",
        _STREAM,
    ),
    "watchkeeper_monitor_label_coverage_ratio": (
        "Share of the newest window's rows that have a label.",
        _STREAM,
    ),
}


def _gauge_family() -> Any:
    from watchkeeper._extras import require

    core = require("prometheus_client.core", extra="monitor", purpose="Prometheus gauges")
    return core.GaugeMetricFamily


def _pick(
    rows: Iterable[WindowCheck], lookback: timedelta
) -> tuple[list[WindowCheck], dict[tuple[str, str, str], WindowCheck]]:
    """Per series, the newest result, or the newest judged one when it could not judge;
    per stream, a result of its newest window."""
    rows = list(rows)
    if not rows:
        return [], {}
    newest_by_model: dict[str, datetime] = {}
    for r in rows:
        if r.model not in newest_by_model or r.window_end > newest_by_model[r.model]:
            newest_by_model[r.model] = r.window_end
    newest: dict[tuple[str, ...], WindowCheck] = {}
    judged: dict[tuple[str, ...], WindowCheck] = {}
    streams: dict[tuple[str, str, str], WindowCheck] = {}
    for r in rows:
        if r.window_end < newest_by_model[r.model] - lookback:
            continue
        stream = (r.model, str(r.version), r.arm)
        if stream not in streams or r.window_end > streams[stream].window_end:
            streams[stream] = r
        key = (r.model, str(r.version), r.arm, r.check, r.subject)
        old = newest.get(key)
        if old is None or r.window_end > old.window_end:
            newest[key] = r
        if r.status is not Status.INSUFFICIENT_DATA:
            old = judged.get(key)
            if old is None or r.window_end > old.window_end:
                judged[key] = r
    picked = [
        r if r.status is not Status.INSUFFICIENT_DATA else judged.get(key, r)
        for key, r in newest.items()
    ]
    picked.sort(key=lambda r: (r.model, r.version, r.arm, r.check, r.subject))
    return picked, streams


def monitor_families(
    rows: Iterable[WindowCheck], *, lookback: timedelta = timedelta(days=1)
) -> list[Any]:
    """The monitor gauges (prometheus-client metric families) of stored results.

    Parameters
    ----------
    rows
        Stored results (:meth:`MonitorStore.results`), any order, several windows each.
    lookback
        How far before a model's newest window an older judged result may stand in for an
        unjudged newer one (see the module notes).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> end = datetime(2024, 5, 1, 1, tzinfo=UTC)
    >>> row = WindowCheck("churn", 1, "champion", end - timedelta(hours=1), end, "time", 400,
    ...                   100, "drift.ks", "age", Status.ALERT, "drifted", value=0.21)
    >>> families = {f.name: f for f in monitor_families([row])}
    >>> [(s.labels["check"], s.value) for s in families["watchkeeper_monitor_status"].samples]
    [('drift.ks', 3.0)]
    >>> [s.value for s in families["watchkeeper_monitor_label_coverage_ratio"].samples]
    [0.25]
    """
    family = _gauge_family()
    families = {
        name: family(name, text, labels=list(labels))
        for name, (text, labels) in MONITOR_GAUGES.items()
    }
    picked, streams = _pick(rows, lookback)
    for r in picked:
        labels = [r.model, str(r.version), r.arm, r.check, r.subject]
        families["watchkeeper_monitor_status"].add_metric(labels, float(r.status.severity))
        for field in ("value", "lower", "upper"):
            number = getattr(r, field)
            if number is not None:
                families[f"watchkeeper_monitor_{field}"].add_metric(labels, float(number))
    for stream, last in sorted(streams.items()):
        families["watchkeeper_monitor_window_end_timestamp_seconds"].add_metric(
            list(stream), last.window_end.timestamp()
        )
        families["watchkeeper_monitor_label_coverage_ratio"].add_metric(
            list(stream), last.label_coverage
        )
    return list(families.values())


class MonitorCollector:
    """A prometheus-client collector of the monitor gauges, read from a store per scrape.

    Parameters
    ----------
    store
        A :class:`MonitorStore`, or a function returning one (or ``None`` while there is no
        history yet), called at each read.
    model
        Export only this model.
    lookback
        See :func:`monitor_families`.
    max_age
        Seconds a read is reused: scrapes closer together than this (several Prometheus
        servers, several workers' scrapes) do not query the database again.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from watchkeeper.checks import CheckResult
    >>> from watchkeeper.monitor import MonitorStore
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = MonitorStore(root=tmp.name)
    >>> store.write_window("churn", 1, "champion", datetime(2024, 5, 1, tzinfo=UTC),
    ...                    datetime(2024, 5, 1, 1, tzinfo=UTC), "time", 400, 0,
    ...                    [CheckResult("drift.ks", "age", Status.ALERT, "drifted", value=0.2)],
    ...                    run_id="r1")
    >>> registry = CollectorRegistry()
    >>> registry.register(MonitorCollector(store))
    >>> text = generate_latest(registry).decode()
    >>> [l.split("{")[1] for l in text.splitlines() if l.startswith("watchkeeper_monitor_st")]
    ['arm="champion",check="drift.ks",model="churn",subject="age",version="1"} 3.0']
    >>> store.close(); tmp.cleanup()
    """

    def __init__(
        self,
        store: Any,
        *,
        model: str | None = None,
        lookback: timedelta = timedelta(days=1),
        max_age: float = 5.0,
    ) -> None:
        self._store: Callable[[], Any] = store if callable(store) else (lambda: store)
        self.model = model
        self.lookback = lookback
        self.max_age = max_age
        self._lock = threading.Lock()
        self._cached: tuple[float, list[WindowCheck]] | None = None

    def describe(self) -> Iterator[Any]:
        """The gauge names, without samples (registration must not query the store)."""
        family = _gauge_family()
        for name, (text, labels) in MONITOR_GAUGES.items():
            yield family(name, text, labels=list(labels))

    def rows(self) -> list[WindowCheck]:
        """The stored results the gauges are made from (cached for ``max_age`` seconds)."""
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.max_age:
                return self._cached[1]
            store = self._store()
            rows = [] if store is None else self._read(store)
            self._cached = (now, rows)
            return rows

    def _read(self, store: Any) -> list[WindowCheck]:
        latest = store.latest(self.model)
        rows: list[WindowCheck] = []
        for model in sorted({r.model for r in latest}):
            newest = max(r.window_end for r in latest if r.model == model)
            rows += store.results(model, since=newest - self.lookback)
        return rows

    def collect(self) -> Iterator[Any]:
        """The gauges; an unreadable store gives none (and a warning), never a failed scrape."""
        from watchkeeper.exceptions import WatchkeeperError

        try:
            rows = self.rows()
        except WatchkeeperError as exc:
            logger.warning("monitor gauges not exported: %s", exc)
            rows = []
        yield from monitor_families(rows, lookback=self.lookback)


def render_monitor_metrics(store: Any, *, model: str | None = None) -> bytes:
    """The Prometheus text exposition of the monitor gauges of ``store``.

    Examples
    --------
    >>> import tempfile
    >>> from watchkeeper.monitor import MonitorStore
    >>> with tempfile.TemporaryDirectory() as tmp, MonitorStore(root=tmp) as store:
    ...     b"# TYPE watchkeeper_monitor_status gauge" in render_monitor_metrics(store)
    True
    """
    from watchkeeper._extras import require

    client = require("prometheus_client", extra="monitor", purpose="Prometheus gauges")
    registry = client.CollectorRegistry()
    registry.register(MonitorCollector(store, model=model, max_age=0.0))
    body: bytes = client.generate_latest(registry)
    return body
