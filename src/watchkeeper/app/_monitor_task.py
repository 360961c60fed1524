"""The monitor inside the gateway: a schedule in exactly one worker, gauges in every worker.

**Schedule.** With ``monitor_every`` set, every worker starts a small thread that tries, each
period, to take a non-blocking ``flock`` on ``<root>/monitor.lock``. The worker holding it
runs one monitoring cycle per period (:func:`watchkeeper.monitor.run_cycle`: new windows,
then the alert rules) in that thread, off the event loop; the others only keep trying, so
when the holder exits or dies (the kernel drops its lock) another worker takes over at its
next try. The holder writes its pid into the lock file. A failed cycle is logged and the
next period tries again: monitoring problems never stop serving.

**Gauges.** ``/metrics`` of every worker appends the monitor gauges read from the monitor
history at scrape time (:class:`watchkeeper.monitor.MonitorCollector`), whoever wrote it: this
schedule, ``watchkeeper monitor watch`` or a cron job. The history is opened only once it
exists (or ``monitor_url`` is set), so a gateway without monitoring creates no database.

This is part of the application shell (:mod:`watchkeeper.app`); the monitor is imported
inside the functions that use it so that a gateway without monitoring does not load it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Any

from watchkeeper.exceptions import WatchkeeperError
from watchkeeper.gateway import GatewayConfig

__all__ = ["MonitorTask"]

logger = logging.getLogger("watchkeeper.gateway")


class MonitorTask:
    """The gateway's monitor schedule and monitor gauges (see the module notes).

    Parameters
    ----------
    settings
        ``monitor_every``, ``monitor_window``, ``monitor_url``, ``alert_rules`` and the
        paths of the registry, the log and the project folder.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as root:
    ...     task = MonitorTask(GatewayConfig(root=root, monitor_every=60, monitor_window="1h"))
    ...     first = task.try_lock()
    ...     other = MonitorTask(GatewayConfig(root=root, monitor_every=60))
    ...     first, other.try_lock(), task.exposition()  # no history yet: no gauges
    ...     task.stop(); other.try_lock(); other.stop()
    (True, False, b'')
    True
    """

    def __init__(self, settings: GatewayConfig) -> None:
        self.settings = settings
        self.every = float(settings.monitor_every or 0.0)
        self.lock_path = Path(settings.root) / "monitor.lock"
        self.runs = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._opened: dict[str, Any] = {}
        self._gauges: Any = None
        self._gauges_lock = threading.Lock()
        if self.every > 0:
            self._config()  # a bad window size or rules file fails at start-up, not later

    # -- schedule ----------------------------------------------------------------------

    def _config(self) -> tuple[Any, Any]:
        from watchkeeper.monitor import AlertConfig, MonitorConfig

        every = self.settings.monitor_window.strip()
        config = MonitorConfig(every=int(every) if every.isdigit() else every)
        rules = self.settings.alert_rules
        return config, (AlertConfig.default() if rules is None else AlertConfig.from_file(rules))

    def start(self) -> None:
        """Start the schedule thread (nothing when ``monitor_every`` is off)."""
        if self.every <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="watchkeeper-monitor", daemon=True)
        self._thread.start()

    @property
    def holder(self) -> bool:
        """Whether this worker holds the lock (runs the monitor)."""
        return self._lock_fd is not None

    def try_lock(self) -> bool:
        """Take ``<root>/monitor.lock`` if no other process holds it; ``True`` when held."""
        if self._lock_fd is not None:
            return True
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        logger.info(
            "monitor schedule: worker %d runs the monitor every %g s", os.getpid(), self.every
        )
        return True

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                if self.try_lock():
                    self.run_once()
                self._stop.wait(self.every)
        finally:
            self._close_run()

    def run_once(self) -> Any:
        """One monitoring cycle (the caller holds the lock); ``None`` when it failed."""
        try:
            opened = self._open_run()
            from watchkeeper.monitor import run_cycle

            cycle = run_cycle(
                opened["monitor"],
                opened["sink"],
                opened["registry"],
                opened["store"],
                opened["alerts"],
            )
        except Exception as exc:  # the next period tries again; serving goes on
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("monitor cycle failed (retried in %g s)", self.every)
            return None
        self.runs += 1
        self.last_error = None
        logger.info(
            "monitor cycle: %d windows, worst %s, %d alert events in %.2f s",
            len(cycle.summary.windows),
            cycle.worst_status.value,
            0 if cycle.alerts is None else len(cycle.alerts.events),
            cycle.seconds,
        )
        return cycle

    def _open_run(self) -> dict[str, Any]:
        if self._opened:
            return self._opened
        from watchkeeper.logstore import open_sink
        from watchkeeper.monitor import AlertEvaluator, Monitor, MonitorStore
        from watchkeeper.registry import Registry

        s = self.settings
        config, rules = self._config()
        opened: dict[str, Any] = {"monitor": Monitor(config)}
        try:
            opened["sink"] = open_sink(s.resolved_log_path)
            opened["registry"] = Registry(s.registry_url, artifacts=s.artifacts, root=s.root)
            opened["store"] = MonitorStore(s.monitor_url, root=s.root)
            opened["alerts"] = AlertEvaluator(rules, s.monitor_url, root=s.root)
        except BaseException:
            _close_all(opened)
            raise
        self._opened = opened
        return opened

    def _close_run(self) -> None:
        _close_all(self._opened)
        self._opened = {}

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the schedule (waiting up to ``timeout`` s for a running cycle), release the
        lock and the databases."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("monitor cycle still running at shutdown; abandoned")
            self._thread = None
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
        with self._gauges_lock:
            if self._gauges is not None:
                self._gauges[1].close()
            self._gauges = None

    # -- gauges ------------------------------------------------------------------------

    def _gauge_source(self) -> Any:
        """The collector over the monitor history, or ``None`` while there is none."""
        with self._gauges_lock:
            if self._gauges is not None:
                return self._gauges[0]
            s = self.settings
            if s.monitor_url is None and not (Path(s.root) / "monitor.db").exists():
                return None
            try:
                from watchkeeper.monitor import MonitorCollector, MonitorStore
            except ImportError:  # the monitor layer is not installed
                return None
            store = MonitorStore(s.monitor_url, root=s.root)
            self._gauges = (MonitorCollector(store), store)
            return self._gauges[0]

    def exposition(self) -> bytes:
        """The monitor gauges in Prometheus text format (empty without a history)."""
        try:
            collector = self._gauge_source()
        except WatchkeeperError as exc:
            logger.warning("monitor gauges not exported: %s", exc)
            return b""
        if collector is None:
            return b""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        return generate_latest(registry)


def _close_all(opened: dict[str, Any]) -> None:
    for name in ("alerts", "store", "registry", "sink"):
        found = opened.get(name)
        if found is not None:
            with contextlib.suppress(Exception):
                found.close()
