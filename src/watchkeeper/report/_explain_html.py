"""HTML for explanations, built from the shared blocks of :mod:`watchkeeper.report.html`.

:func:`importance_chart` draws mean absolute attributions as horizontal bars with their
95% interval as error bars; :func:`waterfall` lays out one row's attributions from the
expected value to the prediction; :func:`explanation_section` puts the global view, the
model-agnostic views and a few rows together as one fragment that any report (drift, gate,
monitoring) can embed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchkeeper.checks import CheckResult
from watchkeeper.explain import Explanation, GlobalExplanation, PermutationImportance, Surrogate
from watchkeeper.report.html import CUR_COLOR, REF_COLOR, badge, esc, fmt, page, table

__all__ = ["explanation_page", "explanation_section", "importance_chart", "waterfall"]

_POSITIVE = "#c44e52"
_NEGATIVE = REF_COLOR


def importance_chart(
    labels: Sequence[str],
    values: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    *,
    width: int = 560,
    color: str = CUR_COLOR,
) -> str:
    """Horizontal bars (largest first as given) with interval whiskers, as inline SVG.

    Examples
    --------
    >>> svg = importance_chart(["a", "b"], [2.0, 1.0], [1.5, 0.8], [2.5, 1.2])
    >>> svg.startswith("<svg") and svg.count("<rect") == 2 and svg.count("<line") >= 2
    True
    """
    row_h, left, right, top = 22, 130, 60, 6
    height = top * 2 + row_h * max(len(labels), 1)
    plot_w = width - left - right
    vmax = max([*upper, *values, 1e-12])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for i, (label, v, lo, hi) in enumerate(zip(labels, values, lower, upper, strict=True)):
        y = top + i * row_h
        w = plot_w * max(v, 0.0) / vmax
        x_lo = left + plot_w * max(lo, 0.0) / vmax
        x_hi = left + plot_w * hi / vmax
        mid = y + row_h / 2
        text = label if len(label) <= 18 else label[:17] + "…"
        parts.append(
            f'<text x="{left - 6}" y="{mid + 4:.1f}" text-anchor="end">{esc(text)}</text>'
            f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{color}">'
            f"<title>{esc(label)}: {fmt(v)} (95% interval {fmt(lo)} to {fmt(hi)})</title></rect>"
            f'<line x1="{x_lo:.1f}" x2="{x_hi:.1f}" y1="{mid:.1f}" y2="{mid:.1f}" '
            f'stroke="#1f2328" stroke-width="1.5"/>'
            f'<line x1="{x_lo:.1f}" x2="{x_lo:.1f}" y1="{mid - 4:.1f}" y2="{mid + 4:.1f}" '
            f'stroke="#1f2328"/><line x1="{x_hi:.1f}" x2="{x_hi:.1f}" y1="{mid - 4:.1f}" '
            f'y2="{mid + 4:.1f}" stroke="#1f2328"/>'
            f'<text x="{x_hi + 4:.1f}" y="{mid + 4:.1f}">{fmt(v, 3)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bar(value: float, scale: float, width: int = 160) -> str:
    w = 0.0 if scale <= 0 else width / 2 * min(abs(value) / scale, 1.0)
    x = width / 2 if value >= 0 else width / 2 - w
    color = _POSITIVE if value >= 0 else _NEGATIVE
    return (
        f'<svg width="{width}" height="12" role="img"><line x1="{width / 2}" '
        f'x2="{width / 2}" y1="0" y2="12" stroke="#d0d7de"/><rect x="{x:.1f}" y="2" '
        f'width="{w:.1f}" height="8" fill="{color}"/></svg>'
    )


def waterfall(explanation: Explanation, row: int, *, top: int = 10) -> str:
    """One row's attributions from the expected value to the prediction, as a table.

    The ``top`` largest attributions are listed; the rest are summed in one line.

    Examples
    --------
    >>> import numpy as np
    >>> e = Explanation(values=np.array([[1.0, -0.5]]), base_values=np.array([2.0]),
    ...                 predictions=np.array([2.5]), data=np.array([[3, "a"]], dtype=object),
    ...                 feature_names=("x", "c"), method="linear", output="prediction",
    ...                 output_label="prediction")
    >>> html = waterfall(e, 0)
    >>> "expected value" in html and "+1" in html and "2.5" in html
    True
    """
    items = explanation.contributions(row)
    scale = max((abs(v) for _, _, v in items), default=0.0)
    base = float(explanation.base_values[row])
    rows: list[list[Any]] = [["expected value", "", fmt(base), "", fmt(base)]]
    running = base
    for name, value, attribution in items[:top]:
        running += attribution
        rows.append(
            [esc(name), esc(fmt(value)), f"{attribution:+.4g}", _bar(attribution, scale),
             fmt(running)]
        )  # fmt: skip
    rest = items[top:]
    if rest:
        total = sum(v for _, _, v in rest)
        running += total
        rows.append(
            [f"{len(rest)} other features", "", f"{total:+.4g}", _bar(total, scale), fmt(running)]
        )
    rows.append(
        [f"<strong>{esc(explanation.output_label)}</strong>", "", "", "",
         f"<strong>{fmt(float(explanation.predictions[row]))}</strong>"]
    )  # fmt: skip
    return table(["feature", "value", "attribution", "", "running total"], rows, raw=True)


def _ranked_chart(
    features: Sequence[str],
    order: Sequence[int],
    values: Any,
    lower: Any,
    upper: Any,
    color: str,
) -> str:
    return importance_chart(
        [features[j] for j in order],
        [float(values[j]) for j in order],
        [float(lower[j]) for j in order],
        [float(upper[j]) for j in order],
        color=color,
    )


def _global_block(g: GlobalExplanation) -> str:
    order = [g.features.index(f) for f in g.ranking()]
    chart = _ranked_chart(g.features, order, g.importance, g.lower, g.upper, CUR_COLOR)
    rows = [
        [
            g.features[j],
            float(g.importance[j]),
            float(g.noise_floor[j]),
            float(g.shares[j]),
            float(g.mean_attribution[j]),
        ]
        for j in order
    ]
    note = (
        f"Mean |attribution| of the {esc(g.output_label)} over {g.n_rows:,} rows "
        f"({esc(g.method)}; {g.n_backgrounds} background(s) of "
        f"{esc(g.details.get('background_rows', '—'))} rows). Whiskers: 95% interval from "
        "the spread over rows and backgrounds — gaps smaller than the noise floor are noise."
    )
    return f'<p class="muted">{note}</p>{chart}' + table(
        ["feature", "importance", "noise floor (±)", "share", "mean attribution"], rows
    )


def _permutation_block(pi: PermutationImportance) -> str:
    order = [pi.features.index(f) for f in pi.ranking()]
    chart = _ranked_chart(pi.features, order, pi.importance, pi.lower, pi.upper, REF_COLOR)
    return (
        f'<p class="muted">Drop in {esc(pi.scoring)} (baseline {fmt(pi.baseline_score)}, '
        f"against the {esc(pi.target)}) when a feature is shuffled, {pi.n_repeats} repeats; "
        "whiskers: 95% t-interval.</p>" + chart
    )


def _surrogate_block(s: Surrogate) -> str:
    what = "decision tree" if s.kind == "tree" else "sparse linear model"
    return (
        f'<p class="muted">A {what} fitted to the model\'s outputs on {s.n_train:,} rows; '
        f"fidelity on {s.n_test:,} held-out rows: {esc(s.fidelity_metric)} "
        f"<strong>{fmt(s.fidelity)}</strong>.</p><pre>{esc(s.rules)}</pre>"
    )


def _drift_block(results: Sequence[CheckResult]) -> str:
    rows = [
        [badge(r.status.value), esc(r.subject), fmt(r.details.get("reference_importance")),
         fmt(r.details.get("window_importance")), fmt(r.value),
         fmt(r.details.get("noise_floor")), esc(r.reason)]
        for r in sorted(results, key=lambda r: (-r.status.severity, r.subject))
    ]  # fmt: skip
    return table(
        ["status", "feature", "reference", "window", "change", "noise floor (±)", "why"],
        rows,
        raw=True,
    )


def explanation_section(
    global_: GlobalExplanation,
    *,
    local: Explanation | None = None,
    rows: int = 3,
    permutation: PermutationImportance | None = None,
    surrogate: Surrogate | None = None,
    drift: Sequence[CheckResult] = (),
    heading: str = "Explanations",
) -> str:
    """An HTML fragment (``<section>``) explaining a model, for any report.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from watchkeeper.explain import global_importance
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> g = global_importance(LinearRegression().fit(X, X[:, 0]), X, n_backgrounds=2)
    >>> html = explanation_section(g)
    >>> html.startswith("<section") and "x0" in html and "waterfall" in html
    True
    """
    local = local if local is not None else global_.local
    parts = [f'<section class="explanations"><h2>{esc(heading)}</h2>']
    parts.append("<h3>Global importance</h3>" + _global_block(global_))
    if drift:
        parts.append("<h3>Attribution drift</h3>" + _drift_block(drift))
    if permutation is not None:
        parts.append("<h3>Permutation importance</h3>" + _permutation_block(permutation))
    if surrogate is not None:
        parts.append("<h3>Global surrogate</h3>" + _surrogate_block(surrogate))
    if local is not None and rows > 0:
        parts.append(
            '<h3>Single predictions</h3><p class="muted">Each waterfall starts at the '
            "expected value and adds one attribution per feature to reach the row's "
            "output.</p>"
        )
        for i in range(min(rows, local.n_rows)):
            parts.append(
                f'<div class="column waterfall"><header><h3>row {i}</h3></header>'
                f"{waterfall(local, i)}</div>"
            )
    parts.append("</section>")
    return "".join(parts)


def explanation_page(title: str, body: str, subtitle: str = "") -> str:
    """A complete page around an :func:`explanation_section` (an explanation report)."""
    return page(title, body, subtitle=subtitle)
