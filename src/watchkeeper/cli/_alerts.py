"""``watchkeeper alerts ...``: generate Prometheus rules and the Grafana dashboard, list alerts.

``watchkeeper alerts rules`` reads an alert rules file (default: the shipped rules) and
writes Prometheus alerting rules (``--prometheus OUT``) and a Grafana dashboard
(``--grafana OUT``); with neither it prints the rules. ``watchkeeper alerts list`` prints the
firing alerts and the stored firings and resolutions.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from watchkeeper.cli._app import new_app
from watchkeeper.exceptions import InputError

app = new_app(
    name="alerts",
    help="Alert rules, Prometheus rules and Grafana dashboard, alert history.",
)

_RULES = typer.Option(
    None,
    "--rules",
    envvar="WATCHKEEPER_ALERT_RULES",
    help="Alert rules file (.toml or .json; default: the rules shipped with watchkeeper).",
)
_JSON = typer.Option(False, "--json", help="Print JSON on stdout.")


def _config(rules: Path | None) -> Any:
    from watchkeeper.monitor import AlertConfig

    return AlertConfig.default() if rules is None else AlertConfig.from_file(rules)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc}") from exc


@app.command("rules")
def rules_command(
    rules: Path | None = _RULES,
    prometheus: Path | None = typer.Option(
        None, "--prometheus", metavar="OUT", help="Write Prometheus alerting rules (YAML) here."
    ),
    grafana: Path | None = typer.Option(
        None, "--grafana", metavar="OUT", help="Write the Grafana dashboard (JSON) here."
    ),
    window: str = typer.Option(
        "1h", "--window", help="Length of the monitor's windows (for N windows -> for:)."
    ),
    rate_window: str = typer.Option(
        "5m", "--rate-window", help="rate() range over the gateway's live series."
    ),
    as_json: bool = _JSON,
) -> None:
    """Check a rules file and generate Prometheus rules and a Grafana dashboard from it."""
    from watchkeeper.monitor import (
        format_duration,
        parse_duration,
        render_grafana_dashboard,
        render_prometheus_rules,
    )

    config = _config(rules)
    if prometheus is not None:
        text = render_prometheus_rules(
            config,
            window=parse_duration(window, "--window"),
            rate_window=parse_duration(rate_window, "--rate-window"),
            source="the default alert rules" if rules is None else rules.name,
        )
        _write(prometheus, text)
        typer.echo(f"wrote {len(config.rules)} Prometheus alerting rules to {prometheus}", err=True)
    if grafana is not None:
        _write(grafana, render_grafana_dashboard())
        typer.echo(f"wrote the Grafana dashboard to {grafana}", err=True)
    if prometheus is not None or grafana is not None:
        return
    if as_json:
        typer.echo(json.dumps(config.to_dict(), indent=2))
        return
    for rule in config.rules:
        channels = ", ".join(rule.channels)
        scope = rule.check + ("" if rule.subject == "*" else f" [{rule.subject}]")
        typer.echo(
            f"{rule.name:<24} {rule.severity:<8} {scope:<28} {rule.when}  for {rule.for_windows}"
            f"  cooldown {format_duration(rule.cooldown)}  -> {channels}"
        )


@app.command("list")
def list_command(
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    rule: str | None = typer.Option(None, "--rule", help="Only this rule."),
    since: datetime | None = typer.Option(
        None, "--since", help="Only events of windows ending at or after this time (UTC)."
    ),
    firing: bool = typer.Option(False, "--firing", help="Only the alerts firing now."),
    limit: int = typer.Option(50, "--limit", min=1, help="Newest events to show."),
    rules: Path | None = _RULES,
    root: str = typer.Option(
        ".watchkeeper", "--root", envvar="WATCHKEEPER_ROOT", help="Project folder."
    ),
    monitor_url: str | None = typer.Option(
        None,
        "--monitor",
        envvar="WATCHKEEPER_MONITOR_URL",
        help="Monitor history database URL (default: SQLite in <root>/monitor.db).",
    ),
    as_json: bool = _JSON,
) -> None:
    """Firing alerts and the history of firings and resolutions."""
    from watchkeeper.monitor import AlertEvaluator

    if monitor_url is None and not (Path(root) / "monitor.db").exists():
        raise InputError(
            f"no monitor database in {root} (run `watchkeeper monitor run` first, or pass "
            "--root or --monitor)"
        )
    with AlertEvaluator(_config(rules), monitor_url, root=root) as alerts:
        if firing:
            events = alerts.firing(model)
        else:
            events = alerts.events(model, rule=rule, since=since, limit=limit)
        if rule is not None:
            events = [e for e in events if e.rule == rule]
    if as_json:
        typer.echo(json.dumps([e.to_dict() for e in events], indent=2))
        return
    if not events:
        typer.echo("no firing alerts" if firing else "no alert events")
    for e in events:
        value = "n/a" if e.value is None else f"{e.value:.4g}"
        typer.echo(
            f"{e.window_end:%Y-%m-%d %H:%M}  {e.kind:<8} {e.severity:<8} {e.rule:<22} "
            f"{e.model} v{e.version} ({e.arm}) {e.subject}: {e.check} {e.status} {value}"
        )
