"""The HTML page of a drift and data-quality report (building blocks in watchkeeper.report.html)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from watchkeeper.report.html import (
    CUR_COLOR,
    REF_COLOR,
    badge,
    bar_chart,
    esc,
    fmt,
    legend,
    line_chart,
    page,
    table,
)

if TYPE_CHECKING:
    from watchkeeper.report._report import Report

__all__ = [
    "badge",
    "bar_chart",
    "esc",
    "fmt",
    "legend",
    "line_chart",
    "page",
    "render_drift_report",
    "table",
]


def _card(label: str, value: str) -> str:
    return (
        f'<div class="card"><div class="muted">{esc(label)}</div><div class="v">{value}</div></div>'
    )


def _column_section(c: Any, plot: dict[str, Any] | None) -> str:
    stats = table(
        ["", ""],
        [
            ("method", c.method),
            ("statistic", c.statistic),
            ("p-value", c.p_value),
            ("adjusted p-value", c.adjusted_p_value),
            ("effect size", c.effect_size),
            ("threshold / floor", c.threshold),
            ("values (ref / cur)", f"{c.n_reference:,} / {c.n_current:,}"),
            ("reference from", c.reference_source),
        ],
    )
    chart = ""
    if plot:
        chart = bar_chart(
            plot["labels"],
            [("reference", plot["reference"], REF_COLOR), ("current", plot["current"], CUR_COLOR)],
        ) + legend([("reference", REF_COLOR), ("current", CUR_COLOR)])
        if plot.get("reference_quantiles") and plot.get("current_quantiles"):
            qrows = [
                (f"p{round(100 * q)}", r, k)
                for q, r, k in zip(
                    plot["quantiles"],
                    plot["reference_quantiles"],
                    plot["current_quantiles"],
                    strict=False,
                )
            ]
            chart += table(["quantile", "reference", "current"], qrows)
    chart += _unstructured_details(c)
    return (
        f'<section class="column" id="col-{esc(c.name)}"><header><h3>{esc(c.name)}</h3>'
        f'{badge(c.status.value)}<span class="muted">{esc(c.kind)} · {esc(c.reason)}</span>'
        f'</header><div class="grid"><div>{chart}</div><div>{stats}</div></div></section>'
    )


def _unstructured_details(c: Any) -> str:
    """The sub-tests of a text column, the projection of an embedding column."""
    details = c.details or {}
    subs = details.get("sub_tests")
    if c.kind == "text" and isinstance(subs, dict):
        return "<h4>Text sub-tests</h4>" + table(
            ["test", "method", "p-value", "effect", "floor"],
            (
                (
                    name,
                    s.get("method"),
                    s.get("p_value"),
                    s.get("effect_size"),
                    s.get("effect_floor"),
                )
                for name, s in subs.items()
            ),
        )
    if c.kind == "embedding" and "dim" in details:
        return "<h4>Embedding projection</h4>" + table(
            ["", ""],
            [
                ("vector length", details.get("dim")),
                ("principal components (+ residual norm)", details.get("n_components")),
                ("reference variance explained", details.get("explained_variance")),
            ],
        )
    return ""


def render_drift_report(report: Report, *, title: str | None = None) -> str:
    """The HTML page of a drift and quality report."""
    d = report.dataset
    meta = report.meta
    verdict = badge("alert") + " drift detected" if d.drifted else badge("ok") + " no drift"
    cards = "".join(
        [
            _card("dataset", verdict),
            _card("drifted columns", f"{d.n_drifted} / {d.n_tested}"),
            _card("insufficient data", str(d.n_insufficient)),
            _card("quality findings", str(len(report.quality_findings))),
            _card(
                "rows (ref / cur)",
                f"{meta.get('n_reference_rows', 0):,} / {meta.get('n_current_rows', 0):,}",
            ),
        ]
    )
    body = [
        f'<div class="cards">{cards}</div>',
        f'<p class="muted">Rule: {esc(d.rule)} — {esc(d.rule_description)}.</p>',
    ]
    overview = table(
        ["column", "status", "method", "effect", "p (adj.)", "reason"],
        (
            (
                f'<a href="#col-{esc(c.name)}">{esc(c.name)}</a>',
                badge(c.status.value),
                esc(c.method),
                c.effect_size,
                c.adjusted_p_value,
                esc(c.reason),
            )
            for c in report.columns
        ),
        raw=True,
    )
    body.append(f"<h2>Columns</h2>{overview}")
    if report.multivariate:
        body.append(
            "<h2>Multivariate</h2>"
            + table(
                ["method", "status", "statistic", "effect", "p (adj.)", "reason"],
                (
                    (
                        esc(m.method),
                        badge(m.status.value),
                        m.statistic,
                        m.effect_size,
                        m.adjusted_p_value,
                        esc(m.reason),
                    )
                    for m in report.multivariate
                ),
                raw=True,
            )
        )
    body.append("<h2>Data quality</h2>")
    if report.quality:
        body.append(
            table(
                ["check", "subject", "status", "finding"],
                (
                    (esc(q.check), esc(q.subject), badge(q.status.value), esc(q.reason))
                    for q in report.quality
                ),
                raw=True,
            )
        )
    else:
        body.append("<p>No quality findings.</p>")
    body.append("<h2>Details per column</h2>")
    body += [_column_section(c, report.plots.get(c.name)) for c in report.columns]
    skipped = meta.get("skipped_columns") or []
    if skipped:
        body.append(
            "<h2>Not compared</h2>"
            + table(["column", "why"], ((s["name"], s["reason"]) for s in skipped))
        )
    total = fmt(meta.get("timings_seconds", {}).get("total"))
    body.append(
        f'<p class="muted">watchkeeper {esc(meta.get("watchkeeper_version", ""))} · '
        f"{esc(meta.get('created_at', ''))} · total {total} s</p>"
    )
    return page(
        title or "Drift and data-quality report",
        "".join(body),
        subtitle=f"reference: {meta.get('reference', '')} · methods: "
        + ", ".join(f"{k}={v}" for k, v in (meta.get("methods") or {}).items()),
    )
