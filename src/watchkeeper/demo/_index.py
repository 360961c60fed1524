"""The demo's index page linking every report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from watchkeeper.report.html import badge, esc, line_chart, page, table

__all__ = ["write_index"]


def write_index(out: Path, months: list[Any], control: Any) -> Path:
    labels = [m.label for m in months]
    n_cols = [len(m.drifted_columns) for m in months]
    chart = line_chart(labels, [("drifted columns", [float(v) for v in n_cols], "#DD8452")],
                       y_label="drifted columns")  # fmt: skip
    rows = (
        (
            f'<a href="{esc(m.html_path.name)}">{esc(m.label)}</a>',
            m.rows,
            badge("alert" if m.drifted else "ok"),
            esc(", ".join(m.drifted_columns) or "—"),
            m.quality_findings,
            f'<a href="{esc(m.json_path.name)}">JSON</a>',
        )
        for m in months
    )
    gates = sorted(p.name for p in out.glob("gate-v*.html"))
    gate_links = "".join(f'<li><a href="{esc(p)}">{esc(p)}</a></li>' for p in gates)
    body = (
        (f"<h2>Validation gates</h2><ul>{gate_links}</ul>" if gates else "")
        + "<h2>Drift of each month against January–March</h2>"
        + chart
        + table(["month", "rows", "drift", "drifted columns", "quality", ""], rows, raw=True)
        + "<h2>Control</h2><p>Two random halves of the reference compared with each other: "
        + badge("alert" if control.drifted else "ok")
        + f" {control.dataset.n_drifted} of {control.dataset.n_tested} columns drifted.</p>"
    )
    path = out / "index.html"
    path.write_text(page("watchkeeper demo — Capital Bikeshare 2011", body), encoding="utf-8")
    return path
