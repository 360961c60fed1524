"""Continuous monitoring: windows over the prediction log, history, alerts."""

from watchkeeper.monitor._alert_event import AlertEvent
from watchkeeper.monitor._alert_rules import (
    AlertConfig,
    AlertRule,
    Condition,
    format_duration,
    parse_duration,
)
from watchkeeper.monitor._alerts import AlertEvaluator, AlertOutcome, AlertStoreError
from watchkeeper.monitor._channels import (
    Delivery,
    DeliveryError,
    EmailChannel,
    LogChannel,
    SlackChannel,
    WebhookChannel,
    deliver,
)
from watchkeeper.monitor._config import MonitorConfig
from watchkeeper.monitor._cycle import MonitorCycle, run_cycle
from watchkeeper.monitor._gauges import MonitorCollector, render_monitor_metrics
from watchkeeper.monitor._monitor import Monitor, MonitorSummary
from watchkeeper.monitor._promrules import render_grafana_dashboard, render_prometheus_rules
from watchkeeper.monitor._store import MonitorStore, MonitorStoreError, WindowCheck, WindowSummary

__all__ = [
    "AlertConfig",
    "AlertEvaluator",
    "AlertEvent",
    "AlertOutcome",
    "AlertRule",
    "AlertStoreError",
    "Condition",
    "Delivery",
    "DeliveryError",
    "EmailChannel",
    "LogChannel",
    "Monitor",
    "MonitorCollector",
    "MonitorConfig",
    "MonitorCycle",
    "MonitorStore",
    "MonitorStoreError",
    "MonitorSummary",
    "SlackChannel",
    "WebhookChannel",
    "WindowCheck",
    "WindowSummary",
    "deliver",
    "format_duration",
    "parse_duration",
    "render_grafana_dashboard",
    "render_monitor_metrics",
    "render_prometheus_rules",
    "run_cycle",
]
