"""HTML building blocks shared by every watchkeeper report (drift, gates, monitoring).

Self-contained output: inline CSS and inline SVG charts, no scripts, no CDN, so a report
renders offline and can be mailed or archived as one file. All HTML of watchkeeper is built
here or in the ``report`` modules that use these blocks (the dashboard included); lower layers
reach rendering only through :func:`watchkeeper._extras.render` (see docs/architecture.md).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "CUR_COLOR",
    "REF_COLOR",
    "STATUS_COLORS",
    "badge",
    "bar_chart",
    "esc",
    "fmt",
    "legend",
    "line_chart",
    "page",
    "table",
]

REF_COLOR = "#4C72B0"
CUR_COLOR = "#DD8452"
STATUS_COLORS = {
    "ok": ("#e6f4ea", "#1e7b34"),
    "insufficient_data": ("#eef0f3", "#5f6b7a"),
    "warn": ("#fff4e0", "#9a5b00"),
    "alert": ("#fde7e9", "#b3261e"),
    "error": ("#fde7e9", "#7a0c06"),
    "pass": ("#e6f4ea", "#1e7b34"),
    "fail": ("#fde7e9", "#b3261e"),
}

_CSS = """
:root { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
        color: #1f2328; background: #fff; }
body { margin: 0 auto; max-width: 1100px; padding: 24px; line-height: 1.45; }
h1 { font-size: 1.6rem; margin: 0 0 4px; } h2 { font-size: 1.25rem; margin-top: 32px;
border-bottom: 1px solid #d0d7de; padding-bottom: 4px; } h3 { font-size: 1.05rem; margin: 0; }
.muted { color: #59636e; font-size: 0.9rem; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.8rem;
         font-weight: 600; letter-spacing: 0.02em; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; margin: 8px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eaeef2;
         vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0; }
.card { border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 16px; min-width: 140px; }
.card .v { font-size: 1.5rem; font-weight: 600; }
.column { border: 1px solid #d0d7de; border-radius: 8px; padding: 12px 16px; margin: 12px 0; }
.column header { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.grid { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 16px; }
svg text { font-family: inherit; font-size: 11px; fill: #59636e; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; } figure { margin: 0; }
figcaption { font-size: 0.85rem; color: #59636e; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; }
"""


def esc(x: Any) -> str:
    """HTML-escape any value."""
    return html.escape(str(x), quote=True)


def fmt(x: Any, digits: int = 4) -> str:
    """Numbers for people: short, ``—`` for missing."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "—"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
            return f"{x:.{max(digits - 1, 1)}e}"
        return f"{x:.{digits}g}"
    return str(x)


def badge(status: str) -> str:
    """A coloured status label."""
    bg, fg = STATUS_COLORS.get(status, ("#eef0f3", "#1f2328"))
    label = status.replace("_", " ")
    return f'<span class="badge" style="background:{bg};color:{fg}">{esc(label)}</span>'


def table(
    headers: Sequence[str] | None, rows: Iterable[Sequence[Any]], *, raw: bool = False
) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then the caller escaped them)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers or ())
    body = []
    for row in rows:
        cells = []
        for cell in row:
            numeric = isinstance(cell, int | float) and not isinstance(cell, bool)
            text = fmt(cell) if numeric or cell is None else (str(cell) if raw else esc(cell))
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    return f"<table>{thead}<tbody>{''.join(body)}</tbody></table>"


def bar_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    *,
    width: int = 560,
    height: int = 220,
    percent: bool = True,
) -> str:
    """Grouped vertical bars, one group per label, one bar per series."""
    n = max(len(labels), 1)
    k = max(len(series), 1)
    left, bottom, top = 44, 56, 10
    plot_w, plot_h = width - left - 8, height - bottom - top
    vmax = max([max(v, default=0.0) for _, v, _ in series] + [1e-12])
    group_w = plot_w / n
    bar_w = max(group_w * 0.8 / k, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        val = vmax * frac
        label = f"{100 * val:.0f}%" if percent else fmt(val, 3)
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
        )
    for s, (name, values, color) in enumerate(series):
        for i, v in enumerate(values):
            h = plot_h * (float(v) / vmax) if vmax > 0 else 0.0
            x = left + i * group_w + group_w * 0.1 + s * bar_w
            tip = f"{esc(name)} · {esc(labels[i] if i < len(labels) else '')}: " + (
                f"{100 * float(v):.2f}%" if percent else fmt(float(v))
            )
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{tip}</title></rect>'
            )
    for i, lab in enumerate(labels):
        x = left + (i + 0.5) * group_w
        text = lab if len(lab) <= 14 else lab[:13] + "…"
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 12}" text-anchor="end" '
            f'transform="rotate(-35 {x:.1f} {top + plot_h + 12})">{esc(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None], str]],
    *,
    width: int = 560,
    height: int = 220,
    band: tuple[Sequence[float | None], Sequence[float | None], str] | None = None,
    y_label: str = "",
) -> str:
    """Lines over ordered x positions, with an optional shaded band (e.g. an interval)."""
    left, bottom, top = 52, 44, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    values = [v for _, vs, _ in series for v in vs if v is not None and math.isfinite(v)]
    if band is not None:
        values += [v for v in (*band[0], *band[1]) if v is not None and math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    n = max(len(x_labels), 2)

    def px(i: int) -> float:
        return left + plot_w * i / (n - 1)

    def py(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for frac in (0.0, 0.5, 1.0):
        v = lo + (hi - lo) * frac
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{py(v):.1f}" y2="{py(v):.1f}" '
            f'stroke="#eaeef2"/><text x="{left - 4}" y="{py(v) + 4:.1f}" '
            f'text-anchor="end">{fmt(v, 3)}</text>'
        )
    if y_label:
        parts.append(f'<text x="4" y="{top + 8}">{esc(y_label)}</text>')
    if band is not None:
        lows, highs, color = band
        pts = [(i, lo_, hi_) for i, (lo_, hi_) in enumerate(zip(lows, highs, strict=False))
               if lo_ is not None and hi_ is not None]  # fmt: skip
        if pts:
            upper = " ".join(f"{px(i):.1f},{py(h):.1f}" for i, _, h in pts)
            lower = " ".join(f"{px(i):.1f},{py(low):.1f}" for i, low, _ in reversed(pts))
            parts.append(f'<polygon points="{upper} {lower}" fill="{color}" opacity="0.18"/>')
    for name, vs, color in series:
        pts2 = [(i, v) for i, v in enumerate(vs) if v is not None and math.isfinite(v)]
        path = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in pts2)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [
            f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{color}">'
            f"<title>{esc(name)} · {esc(x_labels[i])}: {fmt(v)}</title></circle>"
            for i, v in pts2
        ]
    step = max(1, len(x_labels) // 10)
    for i, lab in enumerate(x_labels):
        if i % step == 0:
            parts.append(
                f'<text x="{px(i):.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                f"{esc(lab)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def legend(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="legend muted">'
        + "".join(f'<span style="background:{c}"></span>{esc(n)}' for n, c in items)
        + "</div>"
    )


def page(title: str, body: str, *, subtitle: str = "") -> str:
    """A complete HTML document with the shared style."""
    sub = f'<p class="muted">{esc(subtitle)}</p>' if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>{sub}{body}</body></html>\n"
    )
