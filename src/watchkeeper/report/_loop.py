"""The loop's dashboard page: each model's stage, and the evidence behind its latest rollout
(the confidence sequence as a chart, the guardrails, every step)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from watchkeeper._html import esc, fmt, legend, line_chart, page, table

__all__ = ["loop_view", "render_loop_dashboard"]


def loop_view(registry: Any) -> dict[str, Any]:
    """Plain data of the page: per model, its latest rollout, its evidence and its steps."""
    from watchkeeper.registry import LoopStore

    store = LoopStore(registry)
    models: dict[str, dict[str, Any]] = {}
    for r in store.rollouts():
        models[r.model] = {"rollout": r.to_dict()}
    for name, entry in models.items():
        rid = entry["rollout"]["id"]
        steps = [s.to_dict() for s in store.steps(rollout_id=rid)]
        entry["steps"] = steps
        evidence = entry["rollout"]["state"].get("last")
        for s in reversed(steps):
            if "test" in s["evidence"]:
                if evidence is None or s["at"] >= (evidence.get("now") or 0):
                    evidence = s["evidence"]
                break
        entry["evidence"] = evidence
        entry["history"] = [
            {"id": r.id, "stage": r.stage, "started_at": r.started_at, "updated_at": r.updated_at}
            for r in store.rollouts(name)
        ]
    return {"models": [dict(name=k, **v) for k, v in sorted(models.items())]}


def render_loop_dashboard(view: dict[str, Any], *, refresh: int = 60) -> str:
    """The HTML page for :func:`loop_view`'s data.

    Examples
    --------
    >>> html = render_loop_dashboard({"models": []})
    >>> "No loop rollout yet" in html
    True
    """
    parts = ['<p class="muted"><a href="/dashboard">all models</a> · loop</p>']
    if not view["models"]:
        parts.append("<p>No loop rollout yet: run <code>watchkeeper loop run POLICY</code>.</p>")
    for m in view["models"]:
        r = m["rollout"]
        state = r["state"]
        stage = r["stage"] + (" (active)" if r["active"] else "")
        parts.append(f"<h2>{esc(m['name'])}: {esc(stage)}</h2>")
        challenger = state.get("challenger_version")
        parts.append(
            f'<p class="muted">rollout {esc(r["id"])}, {esc(state.get("mode", ""))}; started '
            f"{_iso(r['started_at'])}, last look {_iso(r['updated_at'])}"
            + (
                f"; champion v{state.get('champion_version')}, challenger v{challenger}"
                if challenger
                else ""
            )
            + "</p>"
        )
        ev = m.get("evidence")
        if ev:
            parts.append(_evidence_html(ev))
        rows = [
            (_iso(s["at"]), esc(s["ref"]) + (" (undone)" if s["undone"] else ""), esc(s["summary"]))
            for s in m["steps"]
        ]
        parts.append(table(["event time", "step", "summary"], rows, raw=True))
        if len(m["history"]) > 1:
            hist = [
                (esc(h["id"]), esc(h["stage"]), _iso(h["started_at"]), _iso(h["updated_at"]))
                for h in m["history"]
            ]
            parts.append("<h3>earlier rollouts</h3>")
            parts.append(table(["rollout", "outcome", "started", "ended"], hist, raw=True))
    reload = (
        f"<script>setTimeout(function(){{location.reload();}},{refresh * 1000});</script>"
        if refresh > 0
        else ""
    )
    return page("watchkeeper loop", "".join(parts) + reload, subtitle="closed-loop rollouts")


def _evidence_html(ev: dict[str, Any]) -> str:
    test = ev.get("test", {})
    alpha = ev.get("alpha", {})
    out = [
        f"<p>{ev.get('labelled', 0)} labelled requests ({ev.get('labelled_challenger', 0)} on "
        f"the challenger), {ev.get('requests', 0)} challenger requests; verdict "
        f"<b>{esc(test.get('verdict', '—'))}</b>: loss difference (champion − challenger) "
        f"{fmt(test.get('estimate'))}, confidence sequence {fmt(test.get('lower'))} to "
        f"{fmt(test.get('upper'))}; alpha {fmt(alpha.get('quality'))} (quality) + "
        f"{fmt(alpha.get('guardrails_total'))} (guardrails) = {fmt(alpha.get('family'))}</p>"
    ]
    seq = ev.get("sequence") or {}
    if seq.get("t"):
        out.append(sequence_chart(seq))
    guards = ev.get("guardrails") or []
    if guards:
        rows = [
            (
                esc(g["name"]),
                g["n"],
                fmt(g["estimate"]),
                fmt(g["lower"]),
                fmt(g["upper"]),
                fmt(g["limit"]),
                "BREACHED" if g["breached"] else "ok",
                esc(g["reason"]),
            )
            for g in guards
        ]
        out.append(
            table(
                ["guardrail", "n", "estimate", "lower", "upper", "limit", "state", "why"],
                rows,
                raw=True,
            )
        )
    return "".join(out)


def sequence_chart(seq: dict[str, Any], margin: float = 0.0) -> str:
    """The confidence sequence as an SVG chart: the estimate, the shaded interval and zero.

    Examples
    --------
    >>> svg = sequence_chart({"t": [30, 60], "estimate": [0.5, 0.4], "lower": [-1.0, 0.1],
    ...                       "upper": [2.0, 0.7]})
    >>> svg.startswith("<svg") and "polygon" in svg
    True
    """
    labels = [str(t) for t in seq["t"]]

    def clean(values: list[Any]) -> list[float | None]:
        return [None if v is None or not math.isfinite(float(v)) else float(v) for v in values]

    lower, upper = clean(seq["lower"]), clean(seq["upper"])
    zero = [margin] * len(labels)
    chart = line_chart(
        labels,
        [("estimate", clean(seq["estimate"]), "#0969da"), ("margin", zero, "#8c959f")],
        band=(lower, upper, "#0969da"),
        y_label="champion loss − challenger loss",
    )
    return chart + legend([("estimate", "#0969da"), ("interval", "#9ec5f8"), ("0", "#8c959f")])


def _iso(seconds: Any) -> str:
    if seconds is None:
        return "—"
    return datetime.fromtimestamp(float(seconds), tz=UTC).strftime("%Y-%m-%d %H:%M")
