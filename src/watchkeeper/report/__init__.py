"""Reports: the result of a comparison and its renderings (JSON, HTML, text)."""

from watchkeeper.report._compare import compare
from watchkeeper.report._loop import loop_view, render_loop_dashboard
from watchkeeper.report._monitoring import alert_view, monitor_view
from watchkeeper.report._monitoring_html import render_alerts, render_monitoring
from watchkeeper.report._report import REPORT_FORMAT, DatasetVerdict, MultivariateDrift, Report

__all__ = [
    "REPORT_FORMAT",
    "DatasetVerdict",
    "MultivariateDrift",
    "Report",
    "alert_view",
    "compare",
    "loop_view",
    "monitor_view",
    "render_alerts",
    "render_loop_dashboard",
    "render_monitoring",
]
