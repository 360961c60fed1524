"""HTML rendering of a gate report: self-contained (inline CSS and SVG, no scripts).

Rendering only reads a :class:`GateReport`; it computes nothing. ``GateReport.to_html`` reaches
it through the render hook (:func:`watchkeeper._extras.render`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watchkeeper.checks import CheckResult
    from watchkeeper.lifecycle import GateReport

from watchkeeper.report.html import STATUS_COLORS, badge, esc, fmt, page, table

__all__ = ["render_gate_report"]

_BLUE, _ORANGE, _GREY = "#4C72B0", "#DD8452", "#8c959f"


def _esc(x: Any) -> str:
    return esc(x)


def _fmt(x: Any) -> str:
    return fmt(x) if x is None or isinstance(x, int | float) else esc(x)


def _badge(status: str) -> str:
    return badge(status)


def _table(headers: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    """Rows of already-escaped cells, under optional headers."""
    return table(headers, rows, raw=True)


def _line_chart(
    xs: Sequence[float],
    series: Sequence[tuple[str, Sequence[float | None], str]],
    *,
    x_label: str,
    log_x: bool = False,
    width: int = 480,
    height: int = 240,
    diagonal: bool = False,
) -> str:
    """Lines of y against numeric x, with a legend; ``diagonal`` draws y = x (reliability)."""
    left, right, top, bottom = 56, 12, 10, 52
    pw, ph = width - left - right, height - top - bottom
    tx = [math.log10(x) if log_x and x > 0 else float(x) for x in xs]
    ys = [v for _, vs, _ in series for v in vs if v is not None and math.isfinite(v)]
    if diagonal:
        ys += [min(tx), max(tx)]
    if not tx or not ys:
        return ""
    x0, x1 = min(tx), max(tx)
    y0, y1 = min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def px(v: float) -> float:
        return left + pw * (v - x0) / (x1 - x0)

    def py(v: float) -> float:
        return top + ph * (1 - (v - y0) / (y1 - y0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for frac in (0.0, 0.5, 1.0):
        v = y0 + (y1 - y0) * frac
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" '
            f'stroke="#eaeef2"/><text x="{left - 4}" y="{py(v) + 4:.1f}" '
            f'text-anchor="end">{_fmt(v)}</text>'
        )
    if diagonal:
        parts.append(
            f'<line x1="{px(x0):.1f}" y1="{py(x0):.1f}" x2="{px(x1):.1f}" '
            f'y2="{py(x1):.1f}" stroke="{_GREY}" stroke-dasharray="4 3"/>'
        )
    for name, vs, color in series:
        pts = [
            (px(t), py(v))
            for t, v in zip(tx, vs, strict=False)
            if v is not None and math.isfinite(v)
        ]
        parts.append(
            '<polyline fill="none" stroke-width="2" stroke="'
            + color
            + '" points="'
            + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
            + '"/>'
        )
        parts += [
            f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{color}"><title>'
            f"{_esc(name)}</title></circle>"
            for a, b in pts
        ]
    spaced = len(tx) <= 8 and all(px(b) - px(a) >= 32 for a, b in pairwise(tx))
    # Label the points themselves when they are few and apart (parameter grids), else five
    # evenly spaced ticks (iterations, probabilities).
    ticks = (
        list(zip(tx, xs, strict=False))
        if spaced
        else [(t, 10**t if log_x else t) for t in (x0 + (x1 - x0) * k / 4 for k in range(5))]
    )
    for t, x in ticks:
        parts.append(
            f'<text x="{px(t):.1f}" y="{top + ph + 14}" text-anchor="middle">{_fmt(x)}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 22}" text-anchor="middle">'
        f"{_esc(x_label)}{' (log scale)' if log_x else ''}</text>"
    )
    lx = left
    for name, _, color in series:
        parts.append(
            f'<rect x="{lx}" y="{height - 12}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{height - 3}">{_esc(name)}</text>'
        )
        lx += 24 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def _interval_chart(rows: Sequence[CheckResult], width: int = 560) -> str:
    """Forest plot: improvement and its interval per metric, with zero and the bar."""
    row_h, left, right, top = 30, 120, 20, 20
    height = top + row_h * len(rows) + 24
    vals = [v for r in rows for v in (r.lower, r.upper, r.value, r.threshold, 0.0) if v is not None]
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.1 or 0.01
    lo, hi = lo - pad, hi + pad

    def px(v: float) -> float:
        return left + (width - left - right) * (v - lo) / (hi - lo)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{px(0):.1f}" x2="{px(0):.1f}" y1="{top - 10}" y2="{height - 24}" '
        f'stroke="{_GREY}"/>',
    ]
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        color = STATUS_COLORS.get(r.status.value, ("", _BLUE))[1]
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_esc(r.subject)}</text>'
        )
        if r.threshold is not None:
            parts.append(
                f'<line x1="{px(r.threshold):.1f}" x2="{px(r.threshold):.1f}" '
                f'y1="{y - 10:.1f}" y2="{y + 10:.1f}" stroke="#b3261e" '
                'stroke-dasharray="3 2"><title>bar to clear</title></line>'
            )
        if r.lower is not None and r.upper is not None:
            parts.append(
                f'<line x1="{px(r.lower):.1f}" x2="{px(r.upper):.1f}" y1="{y:.1f}" '
                f'y2="{y:.1f}" stroke="{color}" stroke-width="3"/>'
            )
        if r.value is not None:
            parts.append(
                f'<circle cx="{px(r.value):.1f}" cy="{y:.1f}" r="5" fill="{color}">'
                f"<title>{_fmt(r.value)}</title></circle>"
            )
    parts.append(
        f'<text x="{px(0):.1f}" y="{height - 8}" text-anchor="middle">0 (no '
        "difference); dashed: bar to clear</text></svg>"
    )
    return "".join(parts)


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_esc(caption)}</figcaption></figure>" if svg else ""


def _charts(report: GateReport) -> str:
    figs: list[str] = []
    for r in report.results:
        d = r.details
        if r.check == "gate.learning_curve" and "train_sizes" in d:
            figs.append(
                _figure(
                    _line_chart(
                        d["train_sizes"],
                        [
                            ("train", d["train_mean"], _BLUE),
                            ("validation", d["validation_mean"], _ORANGE),
                        ],
                        x_label="training rows",
                    ),
                    f"Learning curve ({r.subject})",
                )
            )
        elif r.check == "gate.validation_curve" and "values" in d:
            values = d["values"]
            if all(isinstance(v, int | float) for v in values):
                log_x = min(values) > 0 and max(values) / min(values) >= 100
                figs.append(
                    _figure(
                        _line_chart(
                            values,
                            [
                                ("train", d["train_mean"], _BLUE),
                                ("validation", d["validation_mean"], _ORANGE),
                            ],
                            x_label=str(d["param"]),
                            log_x=log_x,
                        ),
                        f"Validation curve: {r.reason}",
                    )
                )
        elif r.check == "gate.early_stopping" and "validation_loss" in d:
            losses = d["validation_loss"]
            figs.append(
                _figure(
                    _line_chart(
                        list(range(1, len(losses) + 1)),
                        [("validation loss", losses, _ORANGE)],
                        x_label="iteration",
                    ),
                    f"Validation loss per iteration; best {d['best_iteration']}",
                )
            )
        elif r.check == "gate.calibration" and "mean_predicted" in d:
            figs.append(
                _figure(
                    _line_chart(
                        d["mean_predicted"],
                        [("observed", d["fraction_positive"], _BLUE)],
                        x_label="mean predicted probability",
                        diagonal=True,
                    ),
                    f"Reliability curve ({d['curve']}); dashed: perfect calibration",
                )
            )
    comparison = report.by_check("gate.comparison")
    if comparison:
        figs.insert(
            0,
            _figure(
                _interval_chart(comparison),
                "Improvement of the challenger over the champion, with interval",
            ),
        )
    return f'<div class="charts">{"".join(figs)}</div>' if figs else ""


def _cell(value: Any, lower: Any, upper: Any) -> str:
    shown = f'<span class="num">{_fmt(value)}</span>'
    if lower is None or upper is None:
        return shown
    return f"{shown} <span class='muted'>({_fmt(lower)} to {_fmt(upper)})</span>"


def _fairness_tradeoff(report: GateReport) -> str:
    """The accuracy–fairness trade-off of the fairness gate's mitigations, as a table: one
    row per model and sensitive attribute, accuracy and every gap with its interval."""
    rows_in = report.by_check("fairness.tradeoff")
    if not rows_in:
        return ""
    gaps: list[str] = []
    for r in rows_in:
        for by_gap in (r.details.get("gaps") or {}).values():
            gaps += [g for g in by_gap if g not in gaps]
    rows: list[list[str]] = []
    for r in rows_in:
        accuracy = _cell(r.value, r.lower, r.upper)
        by_attribute = r.details.get("gaps") or {}
        if not by_attribute:  # a mitigation that failed: its reason in place of the numbers
            filler = ["" for _ in gaps[1:]]
            rows.append(
                [_esc(r.subject), _badge(r.status.value), "—", accuracy, _esc(r.reason), *filler]
            )
            continue
        for attribute, by_gap in by_attribute.items():
            cells = []
            for gap in gaps:
                g = by_gap.get(gap)
                cells.append(
                    "—"
                    if g is None
                    else f"{_cell(g.get('value'), g.get('lower'), g.get('upper'))} "
                    f"{_badge(str(g.get('status')))}"
                )
            rows.append(
                [_esc(r.subject), _badge(r.status.value), _esc(attribute), accuracy, *cells]
            )
    headers = ["model", "status", "attribute", "accuracy"] + [g.replace("_", " ") for g in gaps]
    return (
        '<h2>Fairness trade-off</h2><p class="muted">The candidate as it is and each '
        "mitigation offered, on the same holdout rows: accuracy and every fairness gap with "
        "its interval. Mitigations are offered, never applied: the verdict is about the "
        f'candidate.</p><div class="tradeoff">{_table(headers, rows)}</div>'
    )


def _explanations(report: GateReport) -> str:
    """The explanations section, when the ``explanations`` gate check ran."""
    found = [r for r in report.by_check("gate.explanations") if "global" in r.details]
    if not found:
        return ""
    from watchkeeper.explain import GlobalExplanation, explanation_section

    details = found[0].details
    section = explanation_section(
        GlobalExplanation.from_dict(details["global"]),
        rows=0,
        heading="What the candidate relies on",
    )
    tree = details.get("surrogate")
    if tree:
        section = section.replace(
            "</section>",
            "<h3>Global surrogate</h3>"
            f"<p class='muted'>A shallow decision tree fitted to the candidate's outputs on "
            f"{_fmt(tree['n_train'])} holdout rows; fidelity on {_fmt(tree['n_test'])} other "
            f"rows: {_esc(tree['fidelity_metric'])} <strong>{_fmt(tree['fidelity'])}</strong>."
            f"</p><pre>{_esc(tree['rules'])}</pre></section>",
        )
    return section


def render_gate_report(report: GateReport) -> str:
    """The whole report as one HTML document.

    Examples
    --------
    >>> from watchkeeper.checks import CheckResult, Status
    >>> from watchkeeper.lifecycle._report import GateReport
    >>> r = GateReport(candidate="m:2", champion=None, task="binary", metrics=("accuracy",),
    ...                n_train=80, n_holdout=20, results=(CheckResult(
    ...                    check="gate.cv", subject="accuracy", status=Status.OK, reason="ok"),))
    >>> "<svg" in render_gate_report(r), "pass" in render_gate_report(r)
    (False, True)
    """
    verdict = "pass" if report.passed else ("error" if report.errors else "fail")
    facts = [
        ("candidate", _esc(report.candidate)),
        ("champion", _esc(report.champion or "none")),
        ("challenger blessed", _fmt(report.blessed)),
        ("task", _esc(report.task)),
        ("metrics", _esc(", ".join(report.metrics))),
        ("training rows", _fmt(report.n_train)),
        ("holdout rows", _fmt(report.n_holdout)),
        ("exit code", _fmt(report.exit_code)),
        ("created", _esc(report.created_at)),
        ("watchkeeper", _esc(report.version)),
    ]
    rows = []
    for r in report.results:
        ci = "—" if r.lower is None or r.upper is None else f"{_fmt(r.lower)} to {_fmt(r.upper)}"
        rows.append(
            [
                _esc(r.check.removeprefix("gate.")),
                _esc(r.subject),
                _badge(r.status.value),
                f'<span class="num">{_fmt(r.value)}</span>',
                ci,
                _fmt(r.threshold),
                _esc(r.reason),
            ]
        )
    failures = "".join(
        f"<li>{_badge(r.status.value)} {_esc(r.check)} [{_esc(r.subject)}]: {_esc(r.reason)}</li>"
        for r in report.failures
    )
    notes = "".join(f"<li>{_esc(n)}</li>" for n in report.notes)
    budgets = "".join(
        f"<li>{_badge(r.status.value)} {_esc(r.check)} [{_esc(r.subject)}]: {_esc(r.reason)}</li>"
        for r in report.budgets
    )
    enforced = "enforced" if report.config.serving.enforce else "reported only"
    body = (
        f"<p>{_badge(verdict)} <span class='muted'>exit code {report.exit_code}</span></p>"
        + _table(None, [[_esc(k), v] for k, v in facts])
        + (f"<h2>Blocking results</h2><ul>{failures}</ul>" if failures else "")
        + (
            f"<h2>Budgets</h2><p class='muted'>Latency (CPU time per call) and memory on this "
            f"machine, apart from the statistical verdict; {enforced}.</p><ul>{budgets}</ul>"
            if budgets
            else ""
        )
        + (f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")
        + "<h2>Charts</h2>"
        + (_charts(report) or "<p class='muted'>no curves computed</p>")
        + _fairness_tradeoff(report)
        + _explanations(report)
        + "<h2>All results</h2>"
        + _table(["check", "subject", "status", "value", "interval", "threshold", "reason"], rows)
    )
    title = f"Validation gate: {report.candidate}"
    return page(title, body)
