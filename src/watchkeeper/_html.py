"""Old home of the HTML building blocks, kept so existing imports work: see
:mod:`watchkeeper.report.html`."""

from __future__ import annotations

from watchkeeper.report.html import (
    CUR_COLOR,
    REF_COLOR,
    STATUS_COLORS,
    badge,
    bar_chart,
    esc,
    fmt,
    legend,
    line_chart,
    page,
    table,
)

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
