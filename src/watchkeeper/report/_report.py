"""The result of :func:`watchkeeper.compare`: the engine's :class:`Comparison` plus its HTML.

The JSON form is stable and documented in ``docs/report-format.md``; its top-level keys are
``format``, ``columns``, ``dataset``, ``multivariate``, ``quality``, ``plots`` and ``meta``.
The numbers come from :func:`watchkeeper.checks.run_comparison`; this module only renders.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from watchkeeper.checks import REPORT_FORMAT, Comparison, DatasetVerdict, MultivariateDrift

__all__ = ["REPORT_FORMAT", "DatasetVerdict", "MultivariateDrift", "Report"]


@dataclass(frozen=True, slots=True)
class Report(Comparison):
    """Everything one comparison found. Build it with :func:`watchkeeper.compare`.

    Columns are sorted by severity (alerts first), then by effect size.
    """

    @classmethod
    def from_comparison(cls, comparison: Comparison) -> Report:
        """The report of an engine result (the same numbers, plus rendering)."""
        return cls(**{f.name: getattr(comparison, f.name) for f in fields(Comparison)})

    def to_html(self, path: str | Path | None = None, *, title: str | None = None) -> str:
        """Self-contained HTML page (inline CSS and SVG, works offline)."""
        from watchkeeper.report._html import render_drift_report

        html = render_drift_report(self, title=title)
        if path is not None:
            Path(path).write_text(html, encoding="utf-8")
        return html

    def _repr_html_(self) -> str:
        return self.to_html()
