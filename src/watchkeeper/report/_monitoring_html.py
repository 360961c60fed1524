"""The HTML of a monitoring view (:func:`watchkeeper.report._monitoring.monitor_view`):
heat strips of check statuses over windows, line charts with interval bands, alert tables.

Inline SVG and the shared blocks of :mod:`watchkeeper.report.html` only, so a page works offline.
Nothing here reads a store: everything drawn is in the view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watchkeeper.report.html import STATUS_COLORS, badge, esc, fmt, legend, line_chart, table

__all__ = ["heat_strip", "render_alerts", "render_monitoring"]

#: Heat-strip fills: saturated enough to read at a glance, the same hues as the badges.
_FILL = {
    "ok": "#8fd19e",
    "insufficient_data": "#d0d7de",
    "warn": "#f2b84b",
    "alert": "#e5534b",
    "error": "#8b1a10",
}
_REALISED_COLOR = "#4C72B0"
_ESTIMATED_COLOR = "#DD8452"


def _window_label(window: Mapping[str, Any]) -> str:
    end = window.get("end")
    if not end:
        return "?"
    when = datetime.fromisoformat(end)
    return when.strftime("%m-%d %H:%M")


def heat_strip(
    rows: Sequence[Mapping[str, Any]],
    window_labels: Sequence[str],
    *,
    width: int = 1040,
    label_width: int = 260,
) -> str:
    """Status over windows, one row of coloured cells per check and subject (inline SVG).

    Each cell carries its status in ``data-status`` and a tooltip with the window, the status
    and the check's reason; empty cells mean no result in that window.

    Examples
    --------
    >>> svg = heat_strip([{"check": "drift.ks", "subject": "temp",
    ...                    "statuses": ["ok", "alert"], "reasons": ["fine", "shifted"]}],
    ...                  ["05-01 01:00", "05-01 02:00"])
    >>> svg.count("<rect"), 'data-status="alert"' in svg
    (2, True)
    """
    n = max(len(window_labels), 1)
    cell_w = max(min((width - label_width - 8) / n, 28.0), 3.0)
    cell_h, top = 18, 4
    height = top + cell_h * len(rows) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="heat" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">'
    ]
    for r, row in enumerate(rows):
        y = top + r * cell_h
        name = f"{row['check']} · {row['subject']}"
        shown = name if len(name) <= 40 else name[:39] + "…"
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end">{esc(shown)}'
            f"<title>{esc(name)}</title></text>"
        )
        reasons = row.get("reasons") or [None] * len(row["statuses"])
        for i, status in enumerate(row["statuses"]):
            x = label_width + i * cell_w
            if status is None:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 1}" width="{cell_w - 1:.1f}" '
                    f'height="{cell_h - 2}" fill="#fff" stroke="#eaeef2"/>'
                )
                continue
            when = window_labels[i] if i < len(window_labels) else ""
            tip = f"{name} · {when}: {status.replace('_', ' ')}"
            if reasons[i]:
                tip += f" — {reasons[i]}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 1}" width="{cell_w - 1:.1f}" height="{cell_h - 2}" '
                f'fill="{_FILL.get(status, "#eef0f3")}" data-check="{esc(row["check"])}" '
                f'data-subject="{esc(row["subject"])}" data-status="{esc(status)}">'
                f"<title>{esc(tip)}</title></rect>"
            )
    y = top + cell_h * len(rows) + 14
    step = max(1, math.ceil(80 / cell_w))  # a time label is about 70 px wide
    for i, label in enumerate(window_labels):
        if i % step == 0:
            parts.append(f'<text x="{label_width + i * cell_w:.1f}" y="{y}">{esc(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _strip_legend() -> str:
    return legend([(s.replace("_", " "), c) for s, c in _FILL.items()])


def _series_chart(
    item: Mapping[str, Any], labels: Sequence[str], realised: Mapping[str, Any] | None
) -> str:
    color = _ESTIMATED_COLOR if item["family"] == "estimated" else _REALISED_COLOR
    lines = [(item["check"], item["values"], color)]
    if realised is not None:
        # The realised metric on the estimate's chart: how close the estimate came.
        lines.append((realised["check"], realised["values"], _REALISED_COLOR))
    has_band = any(v is not None for v in item["lower"]) and any(
        v is not None for v in item["upper"]
    )
    chart = line_chart(
        labels,
        lines,
        width=500,
        height=200,
        band=(item["lower"], item["upper"], color) if has_band else None,
    )
    latest = next((s for s in reversed(item["statuses"]) if s is not None), None)
    caption = f"{esc(item['check'])} · {esc(item['subject'])} "
    caption += badge(latest) if latest else ""
    if has_band:
        caption += ' <span class="muted">(band: interval)</span>'
    keys = [(item["check"], color)] + ([(realised["check"], _REALISED_COLOR)] if realised else [])
    return (
        f'<figure data-check="{esc(item["check"])}" data-subject="{esc(item["subject"])}">'
        f"{chart}{legend(keys)}<figcaption>{caption}</figcaption></figure>"
    )


#: Status-strip sections of a stream: (families, heading, note); the first takes every family
#: no other section names.
_STRIP_SECTIONS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("drift", "quality", "concept"), "Drift and data quality over windows", ""),
    (
        ("fairness",),
        "Fairness by sensitive group",
        "Metrics per group and the gaps between groups; a gap alerts when it is significant "
        "after multiple-testing control and reaches its threshold.",
    ),
    (
        ("skew",),
        "Training–serving skew",
        "Each version's first full window, profiled against the reference: a unit, offset or "
        "encoding change of a feature.",
    ),
    (
        ("attribution",),
        "Attribution drift",
        "Each feature's mean |attribution| in the window against the reference explanation, "
        "judged against its noise floor.",
    ),
    (
        ("segments",),
        "Weak segments",
        "Slices where the model does much worse than on the rest; only slices weak in at least "
        "one window are drawn.",
    ),
    (
        ("contract",),
        "Data contract",
        "Rules declared in the schema's contract, decided on each window's profile; a broken "
        "rule's reason counts the offending values and gives examples.",
    ),
)
_BAD = ("warn", "alert", "error")


def _strip_sections(strips: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> list[str]:
    named = {f for families, _, _ in _STRIP_SECTIONS[1:] for f in families}
    parts = []
    for i, (families, heading, note) in enumerate(_STRIP_SECTIONS):
        rows = [s for s in strips if (s["family"] in families if i else s["family"] not in named)]
        if families == ("segments",):
            judged = len(rows)
            rows = [s for s in rows if any(st in _BAD for st in s["statuses"])]
            note += f" {len(rows)} of {judged} slice(s) shown."
        if not rows:
            continue
        family = families[0]
        parts.append(
            f'<div class="strips" data-family="{esc(family)}"><h4>{esc(heading)}</h4>'
            + (f'<p class="muted">{esc(note.strip())}</p>' if note.strip() else "")
            + heat_strip(rows, labels)
            + _strip_legend()
            + _findings(rows, labels)
            + "</div>"
        )
    return parts


def _findings(rows: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    """What the warn/alert cells of non-drift families say (their reasons), newest first."""
    if rows and rows[0]["family"] in ("drift", "quality", "concept"):
        return ""
    found = []
    for s in rows:
        reasons = s.get("reasons") or [None] * len(s["statuses"])
        for i in reversed(range(len(s["statuses"]))):
            if s["statuses"][i] in _BAD:
                found.append(
                    (
                        esc(labels[i] if i < len(labels) else ""),
                        esc(s["check"]),
                        esc(s["subject"]),
                        badge(s["statuses"][i]),
                        esc(reasons[i] or ""),
                    )
                )
                break  # the newest finding of each check and subject
    if not found:
        return ""
    return (
        "<details><summary>Findings</summary>"
        + table(["window end", "check", "subject", "status", "reason"], found, raw=True)
        + "</details>"
    )


def _stream_html(stream: Mapping[str, Any]) -> str:
    windows = stream["windows"]
    labels = [_window_label(w) for w in windows]
    title = f"version {stream['version']} · {stream['arm']}" if stream["arm"] else "all arms"
    first, end = windows[0], windows[-1]
    span = f"{len(windows)} window(s), {first.get('start') or '?'} to {end.get('end') or '?'}"
    parts = [
        f'<section class="column stream" data-version="{esc(stream["version"])}" '
        f'data-arm="{esc(stream["arm"])}"><header><h3>{esc(title)}</h3>'
        f"{badge(end['status']) if end.get('status') else ''}"
        f'<span class="muted">{esc(span)}</span></header>'
    ]
    parts += _strip_sections(stream["strips"], labels)
    by_name = {(s["check"], s["subject"]): s for s in stream["series"]}
    for family, heading in (
        ("performance", "Performance with labels"),
        ("estimated", "Performance estimated without labels"),
        ("feedback", "User flags (share of predictions flagged, against the reference period)"),
        ("serving", "Serving health"),
        ("outliers", "Outliers (share of records flagged, against the detector's reference rate)"),
    ):
        figures = []
        for item in stream["series"]:
            if item["family"] != family:
                continue
            realised = None
            if family == "estimated":
                metric = item["check"].split(".", 1)[1]
                realised = by_name.get((f"performance.{metric}", item["subject"]))
            figures.append(_series_chart(item, labels, realised))
        if figures:
            parts.append(f'<h4>{heading}</h4><div class="charts">{"".join(figures)}</div>')
    coverage = [w.get("label_coverage") for w in windows]
    if any(c is not None for c in coverage):
        parts.append(
            "<h4>Label coverage</h4>"
            + line_chart(labels, [("label coverage", coverage, "#6e7781")], width=500, height=160)
        )
    rows = [
        (
            esc(w.get("start") or ""),
            esc(w.get("end") or ""),
            w.get("n_rows"),
            w.get("n_labels"),
            "—" if w.get("label_coverage") is None else f"{100 * w['label_coverage']:.1f}%",
            badge(w["status"]) if w.get("status") else "—",
        )
        for w in reversed(windows)
    ]
    headers = ["start", "end", "rows", "labels", "label coverage", "worst status"]
    parts.append(
        f"<details><summary>Windows</summary>{table(headers, rows, raw=True)}</details></section>"
    )
    return "".join(parts)


def render_monitoring(view: Mapping[str, Any]) -> str:
    """HTML sections of a :func:`monitor_view`: latest results, then each stream's history.

    Examples
    --------
    >>> html = render_monitoring({"model": "m", "status": None, "latest": [], "streams": []})
    >>> "No monitoring history" in html
    True
    """
    if not view["streams"]:
        return (
            '<section id="monitoring"><h2>Monitoring</h2><p>No monitoring history for this '
            "model yet: run <code>watchkeeper monitor run</code> (or start the gateway with "
            "a monitor schedule).</p></section>"
        )
    latest = table(
        ["version", "arm", "check", "subject", "status", "value", "interval", "reason"],
        (
            (
                r["version"],
                esc(r["arm"]),
                esc(r["check"]),
                esc(r["subject"]),
                f'<span data-check="{esc(r["check"])}" data-subject="{esc(r["subject"])}">'
                f"{badge(r['status'])}</span>",
                r["value"],
                _interval(r["lower"], r["upper"]),
                esc(r["reason"]),
            )
            for r in view["latest"]
        ),
        raw=True,
    )
    streams = "".join(_stream_html(s) for s in view["streams"] if s["windows"])
    return (
        '<section id="monitoring"><h2>Monitoring</h2>'
        f"<h3>Latest window</h3>{latest}<h3>Over time</h3>{streams}</section>"
    )


def _interval(lower: float | None, upper: float | None) -> str:
    if lower is None and upper is None:
        return "—"
    return f"{fmt(lower)} to {fmt(upper)}"


def _state_badge(kind: str) -> str:
    bg, fg = STATUS_COLORS["alert" if kind == "firing" else "ok"]
    return f'<span class="badge" style="background:{bg};color:{fg}">{esc(kind)}</span>'


def render_alerts(alerts: Mapping[str, Any] | None) -> str:
    """The alerts section of an :func:`alert_view`: firing alerts, then recent events.

    ``None`` means alerting is not set up.

    Examples
    --------
    >>> from watchkeeper.report._monitoring import alert_view
    >>> html = render_alerts(alert_view([{"kind": "firing", "key": "k", "rule": "drift",
    ...                                   "check": "drift.ks", "subject": "temp"}]))
    >>> "Firing (1)" in html and "drift.ks" in html
    True
    """
    if alerts is None:
        return (
            '<section id="alerts"><h2>Alerts</h2><p class="muted">Alerting is not set up '
            "for this project (no alert history).</p></section>"
        )
    headers = ["event", "severity", "rule", "check", "subject", "version", "arm", "window end",
               "reason"]  # fmt: skip

    def rows(items: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (
                _state_badge(str(a.get("kind") or "")),
                esc(a.get("severity") or ""),
                esc(a.get("rule") or ""),
                esc(a.get("check") or ""),
                esc(a.get("subject") or ""),
                esc(a.get("version") or ""),
                esc(a.get("arm") or ""),
                esc(a.get("window_end") or ""),
                esc(a.get("reason") or ""),
            )
            for a in items
        ]

    firing, recent = alerts["firing"], alerts["recent"]
    body = f"<h3>Firing ({len(firing)})</h3>"
    body += table(headers, rows(firing), raw=True) if firing else "<p>No alert is firing.</p>"
    if recent:
        body += f"<h3>Recent events</h3>{table(headers, rows(recent), raw=True)}"
    return f'<section id="alerts"><h2>Alerts</h2>{body}</section>'
