"""Reports: the result of a comparison and its renderings (JSON, HTML, text)."""

from watchkeeper.report._compare import compare
from watchkeeper.report._loop import loop_view, render_loop_dashboard
from watchkeeper.report._report import REPORT_FORMAT, DatasetVerdict, MultivariateDrift, Report

__all__ = [
    "REPORT_FORMAT",
    "DatasetVerdict",
    "MultivariateDrift",
    "Report",
    "compare",
    "loop_view",
    "render_loop_dashboard",
]
