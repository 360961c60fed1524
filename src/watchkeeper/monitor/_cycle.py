"""One monitoring cycle: evaluate the log's new windows, then the alert rules over them.

``watchkeeper monitor run`` / ``watch`` and the gateway's in-process schedule all go through
:func:`run_cycle`, so a window is judged, stored and alerted on the same way wherever the
monitor runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watchkeeper.checks import Status
from watchkeeper.monitor._alerts import AlertEvaluator, AlertOutcome
from watchkeeper.monitor._monitor import Monitor, MonitorSummary, Progress
from watchkeeper.monitor._store import MonitorStore

__all__ = ["MonitorCycle", "run_cycle"]

logger = logging.getLogger("watchkeeper.monitor")


@dataclass(frozen=True, slots=True)
class MonitorCycle:
    """What one cycle did: the monitor's run, the alert evaluation (``None`` when no alert
    evaluator was given) and how long both took."""

    summary: MonitorSummary
    alerts: AlertOutcome | None
    seconds: float

    @property
    def worst_status(self) -> Status:
        """The most severe status among the windows evaluated in this cycle."""
        return self.summary.worst_status

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form."""
        out = self.summary.to_dict()
        out["seconds"] = round(self.seconds, 3)
        out["alerts"] = (
            None
            if self.alerts is None
            else {
                "events": [e.to_dict() for e in self.alerts.events],
                "failed_deliveries": [
                    {"event": event_id, "channel": d.channel, "error": d.error}
                    for event_id, d in self.alerts.failed
                ],
            }
        )
        return out


def run_cycle(
    monitor: Monitor,
    sink: Any,
    registry: Any,
    store: MonitorStore,
    alerts: AlertEvaluator | None = None,
    *,
    model: str | None = None,
    since: datetime | float | None = None,
    now: datetime | float | None = None,
    progress: Progress | None = None,
) -> MonitorCycle:
    """Run ``monitor`` once, then ``alerts`` over the windows it evaluated.

    The alert rules see every stored result of the windows that ended at or after the
    earliest window evaluated now (the evaluator skips windows it has judged before, so a
    repeated cycle sends nothing twice). A cycle that evaluated no window evaluates no rule.

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np, pandas as pd
    >>> from sklearn.dummy import DummyRegressor
    >>> from watchkeeper.logstore import PredictionRecord, SQLiteLogSink
    >>> from watchkeeper.monitor import AlertEvaluator, MonitorConfig
    >>> from watchkeeper.registry import Registry
    >>> tmp = tempfile.TemporaryDirectory()
    >>> registry = Registry(root=tmp.name)
    >>> rng = np.random.default_rng(0)
    >>> _ = registry.register("m", DummyRegressor().fit([[0.0]], [1.0]), actor="a",
    ...                       reference=pd.DataFrame({"x": rng.normal(size=500)}))
    >>> sink = SQLiteLogSink(os.path.join(tmp.name, "predictions.db"))
    >>> sink.write_predictions([PredictionRecord(f"r{i}", 1_700_000_000 + i, "m", 1,
    ...                                          "champion", {"x": float(rng.normal(3))}, 1.0)
    ...                         for i in range(400)])
    >>> store = MonitorStore(root=tmp.name)
    >>> alerts = AlertEvaluator(root=tmp.name)
    >>> monitor = Monitor(MonitorConfig(every=200, detectors=(), estimators=()))
    >>> cycle = run_cycle(monitor, sink, registry, store, alerts)
    >>> len(cycle.summary.windows), cycle.worst_status.value
    (2, 'alert')
    >>> sorted(e.rule for e in cycle.alerts.events)  # values far outside the reference
    ['drift', 'quality', 'skew']
    >>> run_cycle(monitor, sink, registry, store, alerts).alerts.events  # nothing new
    ()
    >>> sink.close(); registry.close(); store.close(); alerts.close(); tmp.cleanup()
    """
    t0 = time.perf_counter()
    summary = monitor.run(
        sink, registry, store, model=model, since=since, now=now, progress=progress
    )
    outcome = None
    if alerts is not None:
        ends = [w.window_end for w in summary.windows]
        if ends:
            outcome = alerts.evaluate_store(store, model=model, since=min(ends))
        else:
            outcome = AlertOutcome((), (), 0)
        for event_id, failed in outcome.failed:
            logger.warning(
                "alert event %s not delivered to %s: %s", event_id, failed.channel, failed.error
            )
    return MonitorCycle(summary, outcome, time.perf_counter() - t0)
