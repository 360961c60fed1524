"""A model's monitoring history as one JSON-ready view, and the HTML that shows it.

The gateway's dashboard (``/dashboard``) and ``watchkeeper report`` read the same view, so a
page, its JSON API and a report written from the command line show the same numbers. The view
is built from a monitor history store (``watchkeeper.monitor.MonitorStore`` or anything with
its ``windows``/``results`` reading API): the last ``last`` windows of each (version, arm)
stream, the status of every check over those windows (drawn as heat strips), and the numeric
series (realised and estimated performance, serving health) with their intervals (drawn as line
charts with bands).

:mod:`watchkeeper.report._monitoring_html` draws the view; it only reads it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

__all__ = ["MONITOR_VIEW_FORMAT", "HistoryStore", "alert_view", "monitor_view", "worst_status"]

MONITOR_VIEW_FORMAT = "watchkeeper.monitor-view/1"

#: Check families drawn as series of numbers (with intervals) rather than as status strips.
SERIES_FAMILIES = ("performance", "estimated", "feedback", "serving", "outliers")
#: Status strips first for these families, in this order; any other family follows.
STRIP_ORDER = (
    "drift", "quality", "concept", "fairness", "skew", "attribution", "segments", "contract",
)  # fmt: skip
_SEVERITY = {"ok": 0, "insufficient_data": 1, "warn": 2, "alert": 3, "error": 4}


class HistoryStore(Protocol):
    """The reading side of a monitor history (``watchkeeper.monitor.MonitorStore``)."""

    def windows(self, model: str, **filters: Any) -> Sequence[Any]:
        """Window summaries of ``model``."""
        ...

    def results(self, model: str, **filters: Any) -> Sequence[Any]:
        """One row per check result per window of ``model``."""
        ...


def worst_status(statuses: Iterable[str | None]) -> str | None:
    """The most severe of ``statuses`` (``None`` when there is none).

    Examples
    --------
    >>> worst_status(["ok", "warn", None, "insufficient_data"])
    'warn'
    >>> worst_status([]) is None
    True
    """
    known = [s for s in statuses if s is not None]
    return max(known, key=lambda s: _SEVERITY.get(s, 0)) if known else None


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _iso(value: Any) -> str | None:
    found = _when(value)
    return None if found is None else found.isoformat()


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _get(obj: Any, *names: str) -> Any:
    """The first attribute (or mapping key) of ``names`` that ``obj`` has."""
    for name in names:
        if isinstance(obj, Mapping):
            if name in obj:
                return obj[name]
        elif hasattr(obj, name):
            return getattr(obj, name)
    return None


def _window(summary: Any) -> dict[str, Any]:
    n_rows = _get(summary, "n_rows")
    n_labels = _get(summary, "n_labels")
    coverage = _number(_get(summary, "label_coverage", "coverage"))
    if coverage is None and n_rows:
        coverage = (n_labels or 0) / n_rows
    status = _get(summary, "status", "worst_status")
    return {
        "start": _iso(_get(summary, "window_start", "start")),
        "end": _iso(_get(summary, "window_end", "end")),
        "kind": _get(summary, "window_kind", "kind"),
        "n_rows": None if n_rows is None else int(n_rows),
        "n_labels": None if n_labels is None else int(n_labels),
        "label_coverage": coverage,
        "status": None if status is None else _text(status),
    }


def _stream_key(row: Any) -> tuple[int | None, str]:
    version = _get(row, "version")
    return (None if version is None else int(version), str(_get(row, "arm") or ""))


def _window_key(row: Any) -> tuple[str | None, str | None]:
    return _iso(_get(row, "window_start", "start")), _iso(_get(row, "window_end", "end"))


def monitor_view(
    store: HistoryStore,
    model: str,
    *,
    last: int = 48,
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    arm: str | None = None,
) -> dict[str, Any]:
    """The monitoring history of ``model``: the last ``last`` windows of each (version, arm).

    Parameters
    ----------
    store
        A monitor history (``watchkeeper.monitor.MonitorStore``).
    model
        Model name.
    last
        Windows kept per (version, arm) stream, newest last; bounds every query.
    since, until
        Only windows that end in ``[since, until)`` (aware datetimes), as the store's
        ``windows`` and ``results`` select them.
    version, arm
        Only this version / arm.

    Returns
    -------
    dict
        ``format``, ``model``, ``status`` (worst status of each stream's latest window),
        ``latest`` (each check's result in the latest window of its stream, worst first) and
        ``streams``: per (version, arm), its ``windows`` (bounds, rows, labels, label
        coverage, worst status), ``strips`` (status per window of each status check) and
        ``series`` (value, lower, upper and status per window of each performance,
        estimated-performance and serving check). Lists run over the stream's windows, with
        ``None`` where a window has no result for that check.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> from types import SimpleNamespace as Row
    >>> t0 = datetime(2024, 5, 1, tzinfo=UTC)
    >>> def row(i, check, status, value=None):
    ...     return Row(version=1, arm="champion", window_start=t0 + timedelta(hours=i),
    ...                window_end=t0 + timedelta(hours=i + 1), window_kind="time", n_rows=100,
    ...                n_labels=50, check=check, subject="temp" if check[0] == "d" else "model",
    ...                status=status, value=value, lower=None, upper=None, threshold=None,
    ...                p_value=None, rule=None, reason=f"{check} is {status}", details={})
    >>> class Store:
    ...     rows = [row(0, "drift.ks", "ok", 0.02), row(1, "drift.ks", "alert", 0.31),
    ...             row(0, "performance.accuracy", "ok", 0.91),
    ...             row(1, "performance.accuracy", "warn", 0.84)]
    ...     def windows(self, model, **kw):
    ...         return [r for r in self.rows if r.check == "drift.ks"]
    ...     def results(self, model, **kw):
    ...         return self.rows
    >>> view = monitor_view(Store(), "churn")
    >>> view["status"], [s["statuses"] for s in view["streams"][0]["strips"]]
    ('alert', [['ok', 'alert']])
    >>> view["streams"][0]["series"][0]["values"]
    [0.91, 0.84]
    >>> view["latest"][0]["check"], view["latest"][0]["status"]
    ('drift.ks', 'alert')
    """
    filters: dict[str, Any] = {}
    if since is not None:
        filters["since"] = since
    if until is not None:
        filters["until"] = until
    if version is not None:
        filters["version"] = version
    if arm is not None:
        filters["arm"] = arm
    summaries = list(store.windows(model, **filters))
    by_stream: dict[tuple[int | None, str], dict[tuple[str | None, str | None], Any]] = {}
    for summary in summaries:
        by_stream.setdefault(_stream_key(summary), {})[_window_key(summary)] = summary
    kept = {
        key: sorted(windows.items(), key=lambda kv: (kv[0][1] or "", kv[0][0] or ""))[-last:]
        for key, windows in by_stream.items()
    }
    starts = [_when(w[0][0][0]) for w in kept.values() if w]
    earliest = min((s for s in starts if s is not None), default=None)
    if earliest is not None and (since is None or earliest > since):
        # Results only from the oldest kept window on: the query is bounded by ``last``.
        filters["since"] = earliest
    rows = list(store.results(model, **filters)) if kept else []
    streams = [_stream(key, kept[key], rows) for key in sorted(kept, key=_sort_stream)]
    latest = [r for stream in streams for r in stream.pop("_latest")]
    latest.sort(key=lambda r: (-_SEVERITY.get(r["status"], 0), r["check"], r["subject"]))
    return {
        "format": MONITOR_VIEW_FORMAT,
        "model": model,
        "status": worst_status(s["windows"][-1]["status"] for s in streams if s["windows"]),
        "latest": latest,
        "streams": streams,
    }


def _sort_stream(key: tuple[int | None, str]) -> tuple[int, str]:
    return (-1 if key[0] is None else key[0], key[1])


def _result(row: Any) -> dict[str, Any]:
    return {
        "check": str(_get(row, "check")),
        "subject": str(_get(row, "subject")),
        "status": _text(_get(row, "status")),
        "value": _number(_get(row, "value")),
        "lower": _number(_get(row, "lower")),
        "upper": _number(_get(row, "upper")),
        "threshold": _number(_get(row, "threshold")),
        "p_value": _number(_get(row, "p_value")),
        "reason": str(_get(row, "reason") or ""),
    }


def _stream(
    key: tuple[int | None, str],
    windows: list[tuple[tuple[str | None, str | None], Any]],
    rows: Sequence[Any],
) -> dict[str, Any]:
    position = {wkey: i for i, (wkey, _) in enumerate(windows)}
    n = len(windows)
    cells: dict[tuple[str, str], list[dict[str, Any] | None]] = {}
    for row in rows:
        if _stream_key(row) != key:
            continue
        i = position.get(_window_key(row))
        if i is None:
            continue
        found = _result(row)
        cells.setdefault((found["check"], found["subject"]), [None] * n)[i] = found
    window_dicts = [_window(summary) for _, summary in windows]
    for i, window in enumerate(window_dicts):
        if window["status"] is None:
            found_here = (c[i] for c in cells.values())
            window["status"] = worst_status(c["status"] for c in found_here if c is not None)
    strips: list[dict[str, Any]] = []
    series: list[dict[str, Any]] = []
    latest: list[dict[str, Any]] = []
    for (check, subject), values in sorted(cells.items(), key=lambda kv: _check_order(kv[0])):
        family = check.split(".", 1)[0]
        if family in SERIES_FAMILIES:
            series.append(
                {
                    "check": check,
                    "subject": subject,
                    "family": family,
                    "values": [None if c is None else c["value"] for c in values],
                    "lower": [None if c is None else c["lower"] for c in values],
                    "upper": [None if c is None else c["upper"] for c in values],
                    "statuses": [None if c is None else c["status"] for c in values],
                }
            )
        else:
            strips.append(
                {
                    "check": check,
                    "subject": subject,
                    "family": family,
                    "statuses": [None if c is None else c["status"] for c in values],
                    "values": [None if c is None else c["value"] for c in values],
                    "reasons": [None if c is None else c["reason"] for c in values],
                }
            )
        if values and values[-1] is not None:
            latest.append({"version": key[0], "arm": key[1], **values[-1]})
    return {
        "version": key[0],
        "arm": key[1],
        "windows": window_dicts,
        "strips": strips,
        "series": series,
        "_latest": latest,
    }


def _check_order(key: tuple[str, str]) -> tuple[int, str, str]:
    family = key[0].split(".", 1)[0]
    rank = STRIP_ORDER.index(family) if family in STRIP_ORDER else len(STRIP_ORDER)
    return rank, key[0], key[1]


def alert_view(
    events: Iterable[Any], *, firing: Iterable[Any] | None = None, recent: int = 50
) -> dict[str, Any]:
    """Alert events (``watchkeeper.monitor.AlertEvent`` or their dicts) as firing and recent.

    ``firing`` are the firing events of the alerts firing now, as the alert store knows
    them; without it, an alert (one rule on one model, version, arm and subject) counts as
    firing when its newest event in ``events`` is a firing one. ``recent`` lists the newest
    events first.

    Examples
    --------
    >>> events = [{"kind": "firing", "key": "a", "rule": "drift", "window_end": "2024-05-02"},
    ...           {"kind": "firing", "key": "b", "rule": "quality", "window_end": "2024-05-02"},
    ...           {"kind": "resolved", "key": "b", "rule": "quality", "window_end": "2024-05-03"}]
    >>> view = alert_view(events)
    >>> [e["rule"] for e in view["firing"]], [e["kind"] for e in view["recent"]]
    (['drift'], ['resolved', 'firing', 'firing'])
    """
    rows = [_plain(e) for e in events]
    if firing is not None:
        now = [_plain(e) for e in firing]
    else:
        newest: dict[Any, dict[str, Any]] = {}
        for row in rows:
            newest[row.get("key") or id(row)] = row
        now = [r for r in newest.values() if r.get("kind") == "firing"]
    return {"firing": now, "recent": list(reversed(rows))[:recent]}


def _plain(event: Any) -> dict[str, Any]:
    return dict(event.to_dict() if hasattr(event, "to_dict") else event)
