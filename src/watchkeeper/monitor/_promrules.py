"""Prometheus alerting rules and a Grafana dashboard generated from the alert rules file.

The same rules that :class:`AlertEvaluator` applies to the monitor history become Prometheus
alerting rules over the exported series, so a team already on Prometheus/Alertmanager gets
the same alerts there:

- a status condition reads ``watchkeeper_monitor_status`` (0 ok, 1 insufficient data,
  2 warn, 3 alert, 4 error);
- a numeric condition reads ``watchkeeper_monitor_value`` / ``_lower`` / ``_upper`` and, like
  the evaluator, ignores results whose status is insufficient data or error;
- ``serving.latency_p50`` / ``latency_p99`` (milliseconds, as the monitor reports them),
  ``serving.error_rate`` and ``serving.throughput`` with a numeric condition are computed
  live from the gateway's own latency histogram and request counter instead, over
  ``rate_window``.

``for N`` windows becomes ``for: (N - 1) × window`` on monitor series (a window's result is a
gauge that holds until the next window) and ``for: N × rate_window`` on live gateway series.
``cooldown`` becomes ``keep_firing_for`` (Prometheus ≥ 2.42): a flapping alert stays firing
instead of notifying again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from watchkeeper.checks import Status
from watchkeeper.monitor._alert_rules import AlertConfig, AlertRule, format_duration
from watchkeeper.monitor._gauges import MONITOR_GAUGES

__all__ = [
    "GATEWAY_SERIES",
    "MONITOR_SERIES",
    "grafana_dashboard",
    "prometheus_rules",
    "promql_regex",
    "render_grafana_dashboard",
    "render_prometheus_rules",
]

#: Series of the monitor (the shared contract, exported by ``MonitorCollector``).
MONITOR_SERIES = tuple(MONITOR_GAUGES)
#: Metric families of the gateway (``gateway/_metrics.py``) the dashboard shows.
GATEWAY_SERIES = (
    "watchkeeper_requests",
    "watchkeeper_request_duration_seconds",
    "watchkeeper_model_duration_seconds",
    "watchkeeper_predictions",
    "watchkeeper_feedback",
    "watchkeeper_log_queue_depth",
    "watchkeeper_log_write_duration_seconds",
    "watchkeeper_log_dropped_records",
    "watchkeeper_log_duplicate_records",
    "watchkeeper_log_id_conflicts",
    "watchkeeper_shadow_skipped",
    "watchkeeper_model_info",
)

_KEY = "model, version, arm, check, subject"
_LIVE_LATENCY = {"serving.latency_p50": 0.5, "serving.latency_p99": 0.99}


def promql_regex(glob: str) -> str:
    """An RE2 regular expression (Prometheus matchers are fully anchored) for a glob.

    Examples
    --------
    >>> promql_regex("drift.*"), promql_regex("performance.[!r]oc?")
    ('drift\\\\..*', 'performance\\\\.[^r]oc.')
    """
    out: list[str] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and "]" in glob[i + 2 :]:
            end = glob.index("]", i + 2)
            body = glob[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _selector(rule: AlertRule, *, check: bool = True) -> str:
    parts = []
    for label in ("model", "check", "subject") if check else ("model",):
        glob = getattr(rule, label)
        if glob != "*":
            parts.append(f"{label}=~{_quote(promql_regex(glob))}")
    return "{" + ", ".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def _live_expr(rule: AlertRule, rate: str) -> str | None:
    """A rule on a serving check, computed from the gateway's own series, if it has one."""
    if isinstance(rule.when.threshold, Status) or rule.when.field != "value":
        return None
    comparison = f"{rule.when.op} {_number(rule.when.threshold)}"
    model = _selector(rule, check=False)
    if rule.check in _LIVE_LATENCY:
        q = _LIVE_LATENCY[rule.check]
        buckets = f"watchkeeper_request_duration_seconds_bucket{model}"
        # The monitor reports latency in milliseconds, the gateway's histogram in seconds.
        quantile = f"histogram_quantile({q}, sum by (model, le) (rate({buckets}[{rate}])))"
        return f"{quantile} * 1000 {comparison}"
    requests = "watchkeeper_requests_total"
    if rule.check == "serving.error_rate":
        failed = "{" + ", ".join([*([model[1:-1]] if model else []), 'code=~"5.."']) + "}"
        return (
            f"(sum by (model, version, arm) (rate({requests}{failed}[{rate}]))"
            f" / sum by (model, version, arm) (rate({requests}{model}[{rate}]))) {comparison}"
        )
    if rule.check == "serving.throughput":
        return f"sum by (model, version, arm) (rate({requests}{model}[{rate}])) {comparison}"
    return None


def _monitor_expr(rule: AlertRule) -> str:
    selector = _selector(rule)
    condition = rule.when
    if isinstance(condition.threshold, Status):
        # One series per alert key, as the evaluator deduplicates: the worst check wins.
        worst = f"max by (model, version, arm, subject) (watchkeeper_monitor_status{selector})"
        return f"{worst} {condition.op} {condition.threshold.severity}"
    series = f"watchkeeper_monitor_{condition.field}{selector}"
    status = f"watchkeeper_monitor_status{selector}"
    unjudged = (
        f"{status} == {Status.INSUFFICIENT_DATA.severity} or {status} == {Status.ERROR.severity}"
    )
    return (
        f"({series} {condition.op} {_number(condition.threshold)}) unless on ({_KEY}) ({unjudged})"
    )


def _alert_name(rule: str) -> str:
    return "Watchkeeper" + "".join(p[:1].upper() + p[1:] for p in re.split(r"[-_.]", rule) if p)


def prometheus_rules(
    config: AlertConfig,
    *,
    window: timedelta = timedelta(hours=1),
    rate_window: timedelta = timedelta(minutes=5),
) -> dict[str, Any]:
    """The Prometheus rules file for ``config``, as data (see the module docstring).

    Parameters
    ----------
    config
        The alert rules.
    window
        Length of the monitor's windows (how often a new result replaces the gauges).
    rate_window
        Range of ``rate()`` over the gateway's live series.

    Examples
    --------
    >>> rules = prometheus_rules(AlertConfig.default())["groups"][0]["rules"]
    >>> drift = rules[0]
    >>> drift["alert"], drift["for"], drift["keep_firing_for"]
    ('WatchkeeperDrift', '1h', '6h')
    >>> print(drift["expr"])
    max by (model, version, arm, subject) (watchkeeper_monitor_status{check=~"drift\\\\..*"}) >= 3
    """
    rate = format_duration(rate_window)
    out = []
    for rule in config.rules:
        live = _live_expr(rule, rate)
        if live is None:
            expr, hold = _monitor_expr(rule), window * (rule.for_windows - 1)
        else:
            expr, hold = live, rate_window * rule.for_windows
        entry: dict[str, Any] = {"alert": _alert_name(rule.name), "expr": expr}
        if hold > timedelta(0):
            entry["for"] = format_duration(hold)
        if rule.cooldown > timedelta(0):
            entry["keep_firing_for"] = format_duration(rule.cooldown)
        entry["labels"] = {"severity": rule.severity, "watchkeeper_rule": rule.name}
        entry["labels"].update(rule.labels)
        about = "{{ $labels.model }}"
        if live is None or "version" in expr:
            about += " v{{ $labels.version }} ({{ $labels.arm }})"
        if live is None:
            about += ": " + ("" if "max by" in expr else "{{ $labels.check }} on ")
            about += "{{ $labels.subject }}"
        entry["annotations"] = {
            "summary": rule.summary or f"{rule.name}: {rule.check} {rule.when}",
            "description": f"{about} meets '{rule.when}' (value {{{{ $value }}}}); "
            f"watchkeeper rule {rule.name}.",
        }
        out.append(entry)
    return {"groups": [{"name": "watchkeeper", "rules": out}]}


def _yaml(value: Any, indent: int) -> list[str]:
    # JSON scalars are valid YAML; this keeps the file readable without a YAML dependency.
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list):
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{key}: {json.dumps(item)}")
    else:
        for item in value:
            nested = _yaml(item, indent + 2)
            lines.append(f"{pad}- {nested[0].lstrip()}")
            lines.extend(nested[1:])
    return lines


def render_prometheus_rules(
    config: AlertConfig,
    *,
    window: timedelta = timedelta(hours=1),
    rate_window: timedelta = timedelta(minutes=5),
    source: str = "the default alert rules",
) -> str:
    """:func:`prometheus_rules` as the text of a rules file (YAML).

    Examples
    --------
    >>> print(render_prometheus_rules(AlertConfig.default()).splitlines()[3])
      - name: "watchkeeper"
    """
    data = prometheus_rules(config, window=window, rate_window=rate_window)
    head = [
        f"# Prometheus alerting rules generated by `watchkeeper alerts rules` from {source}.",
        f"# Monitor window {format_duration(window)}, rate window {format_duration(rate_window)}."
        " Regenerate instead of editing.",
    ]
    return "\n".join([*head, *_yaml(data, 0)]) + "\n"


# ---------------------------------------------------------------------------------------------
# Grafana
# ---------------------------------------------------------------------------------------------

_DS = {"type": "prometheus", "uid": "${datasource}"}
_MODEL = 'model=~"$model"'
_STATUS_MAP = [
    {
        "type": "value",
        "options": {
            str(s.severity): {"text": s.value, "color": color, "index": s.severity}
            for s, color in zip(Status, ("green", "blue", "yellow", "red", "purple"), strict=True)
        },
    }
]


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": _DS, "expr": expr, "legendFormat": legend, "refId": ref}


def _panel(
    title: str, kind: str, targets: list[tuple[str, str]], unit: str, **extra: Any
) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "type": kind,
        "title": title,
        "datasource": _DS,
        "targets": [_target(e, legend, chr(65 + i)) for i, (e, legend) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    for key, value in extra.items():
        panel[key] = value
    return panel


def _status_panel(title: str, check_regex: str) -> dict[str, Any]:
    status = f'watchkeeper_monitor_status{{{_MODEL}, check=~"{check_regex}"}}'
    expr = f"max by (model, version, arm, subject) ({status})"
    panel = _panel(title, "state-timeline", [(expr, "{{model}} v{{version}} {{subject}}")], "none")
    panel["fieldConfig"]["defaults"].update(
        {"mappings": _STATUS_MAP, "min": 0, "max": 4, "color": {"mode": "thresholds"}}
    )
    panel["fieldConfig"]["defaults"]["thresholds"] = {
        "mode": "absolute",
        "steps": [
            {"color": "green", "value": None},
            {"color": "blue", "value": 1},
            {"color": "yellow", "value": 2},
            {"color": "red", "value": 3},
            {"color": "purple", "value": 4},
        ],
    }
    panel["options"] = {"showValue": "never", "mergeValues": True}
    return panel


def _panels() -> list[dict[str, Any]]:
    rate = "[$__rate_interval]"
    by = "model, version, arm"
    requests = f"watchkeeper_requests_total{{{_MODEL}}}"
    errors = f'watchkeeper_requests_total{{{_MODEL}, code=~"5.."}}'
    predictions = f"watchkeeper_predictions_total{{{_MODEL}}}"
    latency = f"watchkeeper_request_duration_seconds_bucket{{{_MODEL}}}"
    model_latency = f"watchkeeper_model_duration_seconds_bucket{{{_MODEL}}}"
    bounds = 'check=~"performance\\\\..*|estimated\\\\..*"'
    perf = f"{_MODEL}, {bounds}"
    legend = "{{model}} v{{version}} {{check}} {{subject}}"
    return [
        _panel(
            "Requests per second",
            "timeseries",
            [
                (
                    f"sum by ({by}, code) (rate({requests}{rate}))",
                    "{{model}} v{{version}} {{arm}} {{code}}",
                )
            ],
            "reqps",
        ),
        _panel(
            "Request error share (5xx)",
            "timeseries",
            [
                (
                    f"sum by ({by}) (rate({errors}{rate}))"
                    f" / sum by ({by}) (rate({requests}{rate}))",
                    "{{model}} v{{version}} {{arm}}",
                )
            ],
            "percentunit",
        ),
        _panel(
            "Request latency p50 / p99",
            "timeseries",
            [
                (
                    f"histogram_quantile(0.5, sum by (model, le) (rate({latency}{rate})))",
                    "p50 {{model}}",
                ),
                (
                    f"histogram_quantile(0.99, sum by (model, le) (rate({latency}{rate})))",
                    "p99 {{model}}",
                ),
                (
                    f"histogram_quantile(0.99, sum by ({by}, le) (rate({model_latency}{rate})))",
                    "model p99 {{model}} v{{version}} {{arm}}",
                ),
            ],
            "s",
        ),
        _panel(
            "Predictions and feedback per second",
            "timeseries",
            [
                (
                    f"sum by ({by}, shadow) (rate({predictions}{rate}))",
                    "predictions {{model}} v{{version}} {{arm}} shadow={{shadow}}",
                ),
                (
                    f"sum by (model, kind) (rate(watchkeeper_feedback_total{{{_MODEL}}}{rate}))",
                    "feedback {{model}} {{kind}}",
                ),
                (
                    f"sum by (model) (rate(watchkeeper_shadow_skipped_total{{{_MODEL}}}{rate}))",
                    "shadow skipped {{model}}",
                ),
            ],
            "ops",
        ),
        _panel(
            "Prediction log: queue depth, drops, reused ids, write p99",
            "timeseries",
            [
                ("sum(watchkeeper_log_queue_depth)", "queue depth"),
                (f"sum(rate(watchkeeper_log_dropped_records_total{rate}))", "dropped / s"),
                (
                    f"sum(rate(watchkeeper_log_duplicate_records_total{rate}))",
                    "retries logged once / s",
                ),
                (f"sum(rate(watchkeeper_log_id_conflicts_total{rate}))", "id conflicts (409) / s"),
                (
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(watchkeeper_log_write_duration_seconds_bucket{rate})))",
                    "write p99 (s)",
                ),
            ],
            "short",
        ),
        _panel(
            "Served versions",
            "table",
            [(f"max by ({by}, format) (watchkeeper_model_info{{{_MODEL}}}) == 1", "")],
            "none",
        ),
        _status_panel("Drift status", "drift\\\\..*"),
        _status_panel("Data quality status", "quality\\\\..*"),
        _panel(
            "Performance (realised and estimated) with bounds",
            "timeseries",
            [
                (f"watchkeeper_monitor_value{{{perf}}}", legend),
                (f"watchkeeper_monitor_lower{{{perf}}}", "lower " + legend),
                (f"watchkeeper_monitor_upper{{{perf}}}", "upper " + legend),
            ],
            "none",
        ),
        _status_panel(
            "Performance and concept-drift status", "(performance|estimated|concept)\\\\..*"
        ),
        _panel(
            "Serving health from the log (monitor)",
            "timeseries",
            [(f'watchkeeper_monitor_value{{{_MODEL}, check=~"serving\\\\..*"}}', legend)],
            "none",
        ),
        _panel(
            "Label coverage of the latest window",
            "timeseries",
            [
                (
                    f"watchkeeper_monitor_label_coverage_ratio{{{_MODEL}}}",
                    "{{model}} v{{version}} {{arm}}",
                )
            ],
            "percentunit",
        ),
        _panel(
            "Age of the latest monitored window",
            "stat",
            [
                (
                    f"time() - watchkeeper_monitor_window_end_timestamp_seconds{{{_MODEL}}}",
                    "{{model}} v{{version}} {{arm}}",
                )
            ],
            "s",
        ),
        _panel(
            "Firing watchkeeper alerts",
            "table",
            [('ALERTS{alertstate="firing", alertname=~"Watchkeeper.*"}', "{{alertname}}")],
            "none",
        ),
    ]


def grafana_dashboard(*, title: str = "watchkeeper", uid: str = "watchkeeper") -> dict[str, Any]:
    """A Grafana dashboard (JSON model, schema version 39) over every exported series.

    It has a Prometheus data source variable and a multi-select ``model`` variable; panels
    show requests, errors, latency, predictions and feedback, the prediction log, served
    versions, drift and quality status, performance with its bounds, serving health, label
    coverage, window age and firing alerts.

    Examples
    --------
    >>> board = grafana_dashboard()
    >>> board["schemaVersion"], [v["name"] for v in board["templating"]["list"]]
    (39, ['datasource', 'model'])
    """
    panels = _panels()
    for i, panel in enumerate(panels):
        panel["id"] = i + 1
        panel["gridPos"] = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}
    return {
        "uid": uid,
        "title": title,
        "description": "watchkeeper: serving, prediction log and monitoring of deployed models",
        "tags": ["watchkeeper"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "timezone": "browser",
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "model",
                    "label": "Model",
                    "type": "query",
                    "datasource": _DS,
                    "query": {
                        "query": "label_values(watchkeeper_model_info, model)",
                        "refId": "model",
                    },
                    "definition": "label_values(watchkeeper_model_info, model)",
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                    "allValue": ".*",
                    "current": {},
                    "hide": 0,
                },
            ]
        },
        "panels": panels,
    }


def render_grafana_dashboard(**kwargs: Any) -> str:
    """:func:`grafana_dashboard` as indented JSON text."""
    return json.dumps(grafana_dashboard(**kwargs), indent=2) + "\n"
