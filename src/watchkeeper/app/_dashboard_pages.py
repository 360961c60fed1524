"""The dashboard's HTML pages, drawn from the JSON the dashboard API returns.

Only the shared blocks of :mod:`watchkeeper.report.html` (inline CSS and SVG) and a few lines of
inline JavaScript for the periodic reload: nothing is loaded from anywhere.
"""

from __future__ import annotations

from typing import Any

from watchkeeper.report.html import badge, esc, fmt, page, table

__all__ = ["detail_page", "login_page", "nav", "overview_page"]


def _card(label: str, value: str) -> str:
    return (
        f'<div class="card"><div class="muted">{esc(label)}</div><div class="v">{value}</div></div>'
    )


def nav(extra: str = "") -> str:
    """Links back to the overview and to the API documentation."""
    return (
        f'<p class="muted"><a href="/dashboard">all models</a>{extra} · '
        '<a href="/dashboard/loop">loop</a> · <a href="/docs">API</a></p>'
    )


def _reload(refresh: int) -> str:
    if refresh <= 0:
        return ""
    # Plain reload: the server renders the page again from the stores.
    return f"<script>setTimeout(function(){{location.reload();}},{refresh * 1000});</script>"


def overview_page(data: dict[str, Any], refresh: int) -> str:
    """The overview: every registered model with its aliases, route and latest status."""
    rows = []
    for m in data["models"]:
        route = m["route"] or {}
        described = (route.get("route") or {}).get("description") or route.get("not_served", "—")
        rows.append(
            (
                f'<a href="/dashboard/models/{esc(m["name"])}">{esc(m["name"])}</a>',
                m["n_versions"],
                esc(", ".join(f"{a} → v{v}" for a, v in sorted(m["aliases"].items())) or "—"),
                esc(described),
                badge(m["status"]) if m["status"] else "—",
                esc(m.get("latest_window_end") or "—"),
                "—" if m["firing_alerts"] is None else m["firing_alerts"],
            )
        )
    headers = ["model", "versions", "aliases", "route", "latest status", "latest window",
               "firing alerts"]  # fmt: skip
    notes = []
    if not data["monitoring"]:
        notes.append("No monitoring history yet: run <code>watchkeeper monitor run</code>.")
    body = table(headers, rows, raw=True) if rows else "<p>No model is registered.</p>"
    body += "".join(f'<p class="muted">{n}</p>' for n in notes)
    return page(
        "watchkeeper dashboard", nav() + body + _reload(refresh), subtitle="registered models"
    )


def _route_html(route: dict[str, Any] | None) -> str:
    if route is None:
        return "<p>Not served by this gateway.</p>"
    if "not_served" in route:
        return f"<p>Not served: {esc(route['not_served'])}</p>"
    spec = route["route"]
    arms = route.get("arms", {})
    total = sum(float(a.get("weight", 0.0)) for a in spec.get("arms", [])) or 1.0
    rows = [
        (
            esc(a["alias"]),
            f"{100 * float(a.get('weight', 0.0)) / total:.1f}%",
            arms.get(a["alias"], {}).get("version"),
            esc(arms.get(a["alias"], {}).get("format", "—")),
        )
        for a in spec.get("arms", [])
    ]
    if spec.get("shadow"):
        shadow = spec["shadow"]
        rows.append(
            (
                f"{esc(shadow)} (shadow)",
                f"copy of {100 * float(spec.get('shadow_fraction', 1.0)):.0f}%",
                arms.get(shadow, {}).get("version"),
                esc(arms.get(shadow, {}).get("format", "—")),
            )
        )
    problems = "".join(
        f'<p class="muted">{esc(alias)}: {esc(why)}</p>'
        for alias, why in (route.get("problems") or {}).items()
    )
    return (
        f'<p><strong data-route-mode="{esc(spec["mode"])}">{esc(spec["description"])}</strong> '
        f'<span class="muted">({esc(route.get("route_source", ""))} route)</span></p>'
        + table(["arm", "traffic", "version", "format"], rows, raw=True)
        + problems
    )


def _event_change(e: dict[str, Any]) -> str:
    if e["alias"]:
        before = "—" if e["from_version"] is None else f"v{e['from_version']}"
        after = "—" if e["to_version"] is None else f"v{e['to_version']}"
        return f"{e['alias']}: {before} → {after}"
    return "" if e["version"] is None else f"v{e['version']}"


def detail_page(data: dict[str, Any], refresh: int) -> str:
    """One model: route, versions and aliases, audit trail, monitoring history, alerts."""
    from watchkeeper.report import render_alerts, render_monitoring

    name = data["model"]
    monitoring = data["monitoring"]
    status = None if monitoring is None else monitoring["status"]
    alerts = data["alerts"]
    route = data["route"] or {}
    described = (route.get("route") or {}).get("description") or route.get("not_served", "—")
    cards = "".join(
        [
            _card("latest status", badge(status) if status else "—"),
            _card("versions", str(len(data["versions"]))),
            _card(
                "aliases",
                esc(", ".join(f"{a} → v{v}" for a, v in sorted(data["aliases"].items())) or "—"),
            ),
            _card("firing alerts", "—" if alerts is None else str(len(alerts["firing"]))),
        ]
    )
    versions = table(
        ["version", "aliases", "registered", "by", "format", "output", "metrics", "description"],
        (
            (
                v["version"],
                " ".join(f'<span class="alias">{esc(a)}</span>' for a in v["aliases"]) or "—",
                esc(v["created_at"]),
                esc(v["actor"]),
                esc(v["format"]),
                esc(v["output_kind"]),
                esc(", ".join(f"{k} {fmt(x)}" for k, x in sorted(v["metrics"].items())) or "—"),
                esc(v["description"]),
            )
            for v in reversed(data["versions"])
        ),
        raw=True,
    )
    history = table(
        ["when", "what", "change", "by", "reason"],
        ((e["at"], e["kind"], _event_change(e), e["actor"], e["reason"]) for e in data["history"]),
    )
    body = (
        nav(f" · {esc(name)}")
        + f'<div class="cards">{cards}</div>'
        + f"<h2>Route</h2>{_route_html(data['route'])}"
        + f"<h2>Versions and aliases</h2>{versions}"
        + f"<h2>Audit history</h2>{history}"
        + (
            render_monitoring(monitoring)
            if monitoring is not None
            else '<section id="monitoring"><h2>Monitoring</h2><p>No monitoring history yet: '
            "run <code>watchkeeper monitor run</code>.</p></section>"
        )
        + render_alerts(alerts)
        + _reload(refresh)
    )
    return page(f"{name} — watchkeeper", body, subtitle=f"route: {described}")


_LOGIN_FORM = (
    '<form method="post" action="/dashboard/login"><p>{message}</p>'
    '<label>Token <input type="password" name="token" autocomplete="current-password" '
    'size="48" autofocus></label> <button type="submit">Open the dashboard</button></form>'
    '<p class="muted">Any predict or admin token of this gateway. It is kept in an HttpOnly '
    "cookie for this browser session.</p>"
)


def login_page(message: str) -> str:
    """The sign-in form (the token is posted in the body, never put in a URL)."""
    return page("watchkeeper dashboard — sign in", _LOGIN_FORM.format(message=esc(message)))
