"""Generated Prometheus rules (promtool check and unit tests), the Grafana dashboard, the
checked-in files under deploy/, and the ``watchkeeper alerts`` commands."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from watchkeeper.checks import Status
from watchkeeper.monitor import AlertConfig, AlertEvaluator, WindowCheck
from watchkeeper.monitor._promrules import (
    GATEWAY_SERIES,
    MONITOR_SERIES,
    grafana_dashboard,
    prometheus_rules,
    render_grafana_dashboard,
    render_prometheus_rules,
)

REPO = Path(__file__).resolve().parents[2]
RULES_FILE = REPO / "deploy" / "prometheus" / "watchkeeper-alerts.yml"
DASHBOARD_FILE = REPO / "deploy" / "grafana" / "watchkeeper-dashboard.json"
#: Names PromQL reads that are not metrics: functions, keywords, Prometheus' own series.
_NOT_METRICS = {
    "sum", "max", "min", "rate", "histogram_quantile", "time", "unless", "or", "and", "ALERTS",
}  # fmt: skip


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        conftest = REPO / "tests" / "conftest.py"
        spec = importlib.util.spec_from_file_location("_wk_root_conftest_promrules", conftest)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(spec.name, module)
        spec.loader.exec_module(module)
        module.service_unavailable("promtool is not installed (apt-get install prometheus)")
    assert found is not None
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, check=False, timeout=120
    )


def exported_series() -> set[str]:
    """Every sample name the gateway and the monitor export."""
    from watchkeeper.gateway._metrics import GatewayMetrics

    names = set(MONITOR_SERIES)
    for family in GatewayMetrics().registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type in ("counter", "histogram"):
            names.add(family.name + ("_total" if family.type == "counter" else "_bucket"))
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, groupings, ranges dropped)."""
    bare = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|on)\s*\([^)]*\)", " ", bare)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
    return {w for w in words if w not in _NOT_METRICS}


CUSTOM = AlertConfig.from_dict(
    {
        "rules": [
            {"name": "auc", "check": "performance.roc_auc", "when": "value < 0.8", "for": 2,
             "summary": "AUC below 0.8", "labels": {"team": "risk"}},
            {"name": "auc-upper", "check": "performance.roc_auc", "subject": "class_?",
             "model": "churn*", "when": "upper < 0.7", "severity": "critical"},
            {"name": "shift", "check": "drift.[kp]*", "when": "status == warn", "cooldown": "2h"},
            {"name": "slow", "check": "serving.latency_p50", "when": "value >= 100"},
            {"name": "quiet", "check": "serving.throughput", "model": "fraud",
             "when": "value < 1"},
            {"name": "errors", "check": "serving.error_rate", "model": "churn",
             "when": "value > 0.01"},
            {"name": "monitor-latency", "check": "serving.latency_p99", "when": "status >= warn"},
        ]
    }
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Prometheus rules
# ---------------------------------------------------------------------------------------------


def test_checked_in_files_are_up_to_date() -> None:
    assert RULES_FILE.read_text() == render_prometheus_rules(AlertConfig.default()), (
        "deploy/prometheus is stale: run `watchkeeper alerts rules --prometheus "
        "deploy/prometheus/watchkeeper-alerts.yml --grafana "
        "deploy/grafana/watchkeeper-dashboard.json`"
    )
    assert DASHBOARD_FILE.read_text() == render_grafana_dashboard(), "deploy/grafana is stale"


@pytest.mark.parametrize("config", [AlertConfig.default(), CUSTOM], ids=["default", "custom"])
def test_promtool_accepts_the_generated_rules(config: AlertConfig, tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(render_prometheus_rules(config, window=timedelta(minutes=30)))
    done = run_promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(config.rules)} rules found" in done.stdout


def test_generated_expressions_read_only_exported_series() -> None:
    exported = exported_series()
    for config in (AlertConfig.default(), CUSTOM):
        for rule in prometheus_rules(config)["groups"][0]["rules"]:
            names = metric_names(rule["expr"])
            assert names
            assert names <= exported, (rule["alert"], names - exported)


def test_expressions_follow_the_rules() -> None:
    rules = {
        r["labels"]["watchkeeper_rule"]: r for r in prometheus_rules(CUSTOM)["groups"][0]["rules"]
    }
    auc = rules["auc"]
    assert auc["expr"].startswith(
        '(watchkeeper_monitor_value{check=~"performance\\\\.roc_auc"} < 0.8)'
    )
    assert "unless on (model, version, arm, check, subject)" in auc["expr"]
    assert auc["for"] == "1h"  # (2 - 1) windows of 1h
    assert auc["labels"] == {"severity": "warning", "watchkeeper_rule": "auc", "team": "risk"}
    assert "keep_firing_for" not in auc
    upper = rules["auc-upper"]["expr"]
    assert 'model=~"churn.*"' in upper
    assert 'subject=~"class_."' in upper
    assert "watchkeeper_monitor_upper" in upper
    assert "for" not in rules["auc-upper"]
    assert rules["shift"]["expr"].endswith(") == 2")
    assert 'check=~"drift\\\\.[kp].*"' in rules["shift"]["expr"]
    assert rules["shift"]["keep_firing_for"] == "2h"
    assert rules["slow"]["expr"].startswith("histogram_quantile(0.5, ")
    assert rules["slow"]["expr"].endswith(" * 1000 >= 100")
    assert rules["slow"]["for"] == "5m"
    assert 'watchkeeper_requests_total{model=~"fraud"}' in rules["quiet"]["expr"]
    assert 'watchkeeper_requests_total{model=~"churn", code=~"5.."}' in rules["errors"]["expr"]
    # A status condition on a serving check reads the monitor's verdict, not live series.
    assert "watchkeeper_monitor_status" in rules["monitor-latency"]["expr"]


def test_promtool_unit_test_of_the_default_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(render_prometheus_rules(AlertConfig.default()))
    shutil.copy(Path(__file__).with_name("test_promrules_promtool.yml"), tmp_path / "test.yml")
    done = run_promtool("test", "rules", str(tmp_path / "test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


# ---------------------------------------------------------------------------------------------
# Grafana
# ---------------------------------------------------------------------------------------------


def _exprs(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


def test_dashboard_structure() -> None:
    board = grafana_dashboard()
    assert board["schemaVersion"] >= 36
    assert json.loads(render_grafana_dashboard()) == board
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["datasource"]["uid"] == "${datasource}"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["type"] in {"timeseries", "state-timeline", "table", "stat"}
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["targets"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for topic in ("requests", "latency", "log", "drift", "performance", "label coverage"):
        assert topic in titles


def test_dashboard_reads_only_and_shows_every_exported_series() -> None:
    exported = exported_series()
    used: set[str] = set()
    for expr in _exprs(grafana_dashboard()):
        names = metric_names(expr)
        assert names <= exported, (expr, names - exported)
        used |= names
    families = set(MONITOR_SERIES) | set(GATEWAY_SERIES)
    from watchkeeper.gateway._metrics import GatewayMetrics

    families |= {f.name for f in GatewayMetrics().registry.collect()}
    missing = {f for f in families if not any(u == f or u.startswith(f + "_") for u in used)}
    assert not missing, f"series without a panel: {sorted(missing)}"


# ---------------------------------------------------------------------------------------------
# watchkeeper alerts ...
# ---------------------------------------------------------------------------------------------


def test_cli_generates_files_from_a_rules_file(tmp_path: Path) -> None:
    from watchkeeper.cli._alerts import app

    rules = tmp_path / "alerts.json"
    rules.write_text(json.dumps(CUSTOM.to_dict()))
    runner = CliRunner()
    out = runner.invoke(
        app,
        ["rules", "--rules", str(rules), "--prometheus", str(tmp_path / "p" / "r.yml"),
         "--grafana", str(tmp_path / "g" / "d.json"), "--window", "30m"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    text = (tmp_path / "p" / "r.yml").read_text()
    assert "from alerts.json" in text
    assert text == render_prometheus_rules(
        CUSTOM, window=timedelta(minutes=30), source="alerts.json"
    )
    assert json.loads((tmp_path / "g" / "d.json").read_text()) == grafana_dashboard()
    listed = runner.invoke(app, ["rules"])
    assert listed.exit_code == 0
    assert "drift" in listed.output
    assert "status >= alert" in listed.output
    as_json = runner.invoke(app, ["rules", "--json", "--rules", str(rules)])
    assert AlertConfig.from_dict(json.loads(as_json.output)) == CUSTOM


def test_cli_lists_alert_events(tmp_path: Path) -> None:
    from watchkeeper.cli._alerts import app

    def result(end: datetime) -> WindowCheck:
        return WindowCheck(
            "churn", 1, "champion", end - timedelta(hours=1), end, "time", 100, 80,
            "performance.accuracy", "model", Status.ALERT, "accuracy fell", value=0.61,
        )  # fmt: skip

    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    root = tmp_path / "root"
    with AlertEvaluator(root=root) as alerts:
        alerts.evaluate([result(t0), result(t0 + timedelta(hours=1))])
    runner = CliRunner()
    out = runner.invoke(app, ["list", "--root", str(root)])
    assert out.exit_code == 0, out.output
    assert "firing" in out.output
    assert "performance.accuracy alert 0.61" in out.output
    as_json = runner.invoke(app, ["list", "--root", str(root), "--firing", "--json"])
    (event,) = json.loads(as_json.output)
    assert (event["rule"], event["kind"], event["version"]) == ("performance", "firing", "1")
    empty = runner.invoke(app, ["list", "--root", str(root), "--model", "other"])
    assert "no alert events" in empty.output
    missing = runner.invoke(app, ["list", "--root", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0
