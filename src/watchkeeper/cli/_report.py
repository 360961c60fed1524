"""``watchkeeper report MODEL``: one window or a period of a served model, as HTML and JSON.

The period is given as ``--window START/END`` or as the ``--last N`` windows of the monitor
history. The report combines

- drift and data quality of the period's logged inputs against the reference profile of the
  version that served most of them, computed and drawn by the foundation's report
  (:func:`watchkeeper.compare`, the same rules as ``watchkeeper compare``);
- the monitor history of the period: every check's status per window, performance with
  labels and estimated without them (with intervals), serving health and label coverage;
- the alerts that fired or resolved in the period, and those firing now.

Exit codes: 0 written, 2 usage or input error.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from watchkeeper.cli._app import EXIT_CLEAN, app, console, literal
from watchkeeper.exceptions import InputError

__all__ = ["MONITOR_REPORT_FORMAT", "parse_window", "report_command"]

MONITOR_REPORT_FORMAT = "watchkeeper.monitor-report/1"
#: Windows read from the history at most, whatever the period (bounds the queries).
_MAX_WINDOWS = 2000
_TICK = timedelta(microseconds=1)


def _when(text: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"{what} {text!r} is not an ISO 8601 time; write e.g. 2024-05-01T00:00 "
            "(UTC unless it carries an offset)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_window(text: str) -> tuple[datetime, datetime]:
    """``START/END`` (ISO 8601, UTC unless an offset is given) as aware datetimes.

    Examples
    --------
    >>> start, end = parse_window("2024-05-01/2024-05-02T12:00+02:00")
    >>> start.isoformat(), end.astimezone(UTC).isoformat()
    ('2024-05-01T00:00:00+00:00', '2024-05-02T10:00:00+00:00')
    >>> parse_window("2024-05-02/2024-05-01")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: --window ends before it starts: 2024-05-02/2024-05-01
    """
    first, sep, second = text.partition("/")
    if not sep or not first.strip() or not second.strip():
        raise InputError(f"--window {text!r} must look like START/END, e.g. 2024-05-01/2024-05-08")
    start, end = _when(first, "window start"), _when(second, "window end")
    if end <= start:
        raise InputError(f"--window ends before it starts: {text}")
    return start, end


def _monitor(cls: Any, url: str | None, root: str) -> Any:
    """``cls`` (a monitor-layer store) opened on its database, or ``None`` without one."""
    if url is None and not (Path(root) / "monitor.db").exists():
        return None
    return cls(url=url, root=root)


def _last_windows(
    store: Any, model: str, n: int, version: int | None, arm: str | None
) -> tuple[datetime, datetime]:
    filters = {k: v for k, v in (("version", version), ("arm", arm)) if v is not None}
    bounds = set()
    for w in store.windows(model, **filters):
        bounds.add((w.window_start, w.window_end))
    if not bounds:
        raise InputError(
            f"model {model!r} has no monitor windows yet; run `watchkeeper monitor run` first, "
            "or give the period with --window START/END"
        )
    kept = sorted(bounds, key=lambda b: (b[1], b[0]))[-n:]
    start, end = min(b[0] for b in kept), max(b[1] for b in kept)
    return _aware(start), _aware(end)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _drift(registry: Any, model: str, rows: Any, version: int | None) -> tuple[Any, dict[str, Any]]:
    """The foundation's drift report of the period's inputs (or ``None``) and why not."""
    from watchkeeper.report import compare

    if rows.num_rows == 0:
        return None, {"note": "no logged predictions in the period"}
    if version is None:
        version = Counter(rows.column("version").to_pylist()).most_common(1)[0][0]
    profile = registry.load_profile(model, version)
    if profile is None:
        return None, {
            "version": version,
            "note": f"version {version} was registered without a reference profile, so drift "
            "cannot be computed; register it with reference=",
        }
    schema = profile.schema
    compared = {"feature", "target", "prediction", "score", "sensitive"}
    columns = [
        name
        for name in schema.names
        if name in rows.column_names and str(schema[name].role) in compared
    ]
    if not columns:
        return None, {"version": version, "note": "no reference column is in the log"}
    frame = rows.filter(_version_mask(rows, version)).select(columns).to_pandas()
    report = compare(profile, frame, columns=columns)
    return report, {"version": version, "n_rows": len(frame), "columns": columns}


def _version_mask(rows: Any, version: int) -> Any:
    import pyarrow.compute as pc

    return pc.equal(rows.column("version"), version)


def _inner_body(document: str) -> str:
    # The foundation's page is ``<h1>title</h1>`` + subtitle + sections; keep all but the
    # title, one heading level down, as a section of this report.
    inner = document[document.index("</h1>") + len("</h1>") : document.rindex("</body>")]
    return inner.replace("<h2>", "<h3>").replace("</h2>", "</h3>")


def _card(label: str, value: str) -> str:
    from watchkeeper.report.html import esc

    return (
        f'<div class="card"><div class="muted">{esc(label)}</div><div class="v">{value}</div></div>'
    )


def render_report_html(payload: dict[str, Any], drift_html: str | None) -> str:
    """The HTML page of a monitoring report (see :func:`report_command`)."""
    from watchkeeper.report import render_alerts, render_monitoring
    from watchkeeper.report.html import badge, esc, page

    view = payload["monitoring"]
    drift = payload["drift"]
    alerts = payload["alerts"]
    coverage = payload["label_coverage"]
    verdict = "—"
    if drift is not None:
        verdict = badge("alert") + " drift" if drift["dataset"]["drifted"] else badge("ok")
    cards = "".join(
        [
            _card("predictions", f"{payload['n_rows']:,}"),
            _card("labelled", f"{payload['n_labels']:,}"),
            _card("label coverage", "—" if coverage is None else f"{100 * coverage:.1f}%"),
            _card("worst latest status", badge(view["status"]) if view["status"] else "—"),
            _card("drift over the period", verdict),
            _card("firing alerts", "—" if alerts is None else str(len(alerts["firing"]))),
        ]
    )
    if drift_html is not None:
        drift_section = (
            f'<section id="drift"><h2>Drift and data quality of the period (version '
            f"{esc(payload['reference']['version'])})</h2>{drift_html}</section>"
        )
    else:
        drift_section = (
            '<section id="drift"><h2>Drift and data quality of the period</h2>'
            f"<p>{esc(payload['reference'].get('note', ''))}</p></section>"
        )
    period = payload["period"]
    body = (
        f'<div class="cards">{cards}</div>'
        + (render_monitoring(view) if view["streams"] or payload["monitoring_found"] else "")
        + render_alerts(alerts)
        + drift_section
    )
    return page(
        f"{payload['model']} — monitoring report",
        body,
        subtitle=f"period {period['start']} to {period['end']} · created {payload['created_at']}",
    )


@app.command("report")
def report_command(
    model: str = typer.Argument(..., help="Model name."),
    window: str | None = typer.Option(
        None, "--window", metavar="START/END", help="The period, ISO 8601 (UTC by default)."
    ),
    last: int | None = typer.Option(
        None, "--last", min=1, help="The period of the last N monitor windows."
    ),
    html_out: Path = typer.Option(..., "--html", help="Write the HTML report here."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the JSON report here."),
    version: int | None = typer.Option(None, "--version", min=1, help="Only this version."),
    arm: str | None = typer.Option(None, "--arm", help="Only this arm (alias)."),
    root: str = typer.Option(
        ".watchkeeper", "--root", envvar="WATCHKEEPER_ROOT", help="Project folder."
    ),
    registry_url: str | None = typer.Option(
        None,
        "--registry",
        envvar="WATCHKEEPER_REGISTRY_URL",
        help="Registry database URL (default: SQLite in <root>/registry.db).",
    ),
    artifacts: str | None = typer.Option(
        None, "--artifacts", envvar="WATCHKEEPER_ARTIFACTS", help="Artifact folder or URL."
    ),
    log: str | None = typer.Option(
        None,
        "--log",
        help="Prediction log: SQLite file, postgresql://... or s3://... Parquet log "
        "(default: <root>/predictions.db).",
    ),
    monitor_url: str | None = typer.Option(
        None,
        "--monitor",
        envvar="WATCHKEEPER_MONITOR_URL",
        help="Monitor history database URL (default: SQLite in <root>/monitor.db).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Render one window or a period of MODEL: drift and quality of its logged inputs,
    performance (realised and estimated) and serving health per window, and alerts."""
    from watchkeeper import __version__
    from watchkeeper.logstore import open_sink
    from watchkeeper.monitor import AlertEvaluator, MonitorStore
    from watchkeeper.registry import Registry, validate_name
    from watchkeeper.report import monitor_view

    validate_name(model)
    if (window is None) == (last is None):
        raise InputError("give the period with exactly one of --window START/END and --last N")
    log_url = log or str(Path(root) / "predictions.db")
    open_sink(log_url, create=False).close()  # a missing log fails before any work
    store = _monitor(MonitorStore, monitor_url, root)
    alerting = _monitor(AlertEvaluator, monitor_url, root)
    try:
        if window is not None:
            start, end = parse_window(window)
        elif store is None:
            raise InputError(
                "no monitor history (run `watchkeeper monitor run` first), so --last has no "
                "windows to count; give the period with --window START/END"
            )
        else:
            assert last is not None
            start, end = _last_windows(store, model, last, version, arm)
        with Registry(registry_url, artifacts=artifacts, root=root) as registry:
            registry.list_versions(model)  # an unknown model fails here, by name
            sink = open_sink(log_url, create=False)
            try:
                rows = sink.read_window(model, start=start, end=end, version=version, arm=arm)
            finally:
                sink.close()
            drift, reference = _drift(registry, model, rows, version)
        view = (
            {"model": model, "status": None, "latest": [], "streams": []}
            if store is None
            else monitor_view(
                store,
                model,
                last=_MAX_WINDOWS,
                # The store bounds window ends by since <= end < until: keep the windows
                # that end inside (start, end].
                since=start + _TICK,
                until=end + _TICK,
                version=version,
                arm=arm,
            )
        )
        alerts = None
        if alerting is not None:
            from watchkeeper.report import alert_view

            events = [
                e
                for e in alerting.events(model, since=start + _TICK)
                if _aware(e.window_end) <= end
                and (version is None or str(e.version) == str(version))
                and (arm is None or e.arm == arm)
            ]
            alerts = alert_view(events, firing=alerting.firing(model))
    finally:
        for opened in (store, alerting):
            if opened is not None:
                opened.close()
    n_labels = 0 if rows.num_rows == 0 else rows.num_rows - rows.column("label").null_count
    payload: dict[str, Any] = {
        "format": MONITOR_REPORT_FORMAT,
        "model": model,
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "filters": {"version": version, "arm": arm},
        "n_rows": rows.num_rows,
        "n_labels": n_labels,
        "label_coverage": n_labels / rows.num_rows if rows.num_rows else None,
        "versions": {
            str(v): n for v, n in sorted(Counter(rows.column("version").to_pylist()).items())
        },
        "reference": reference,
        "drift": None if drift is None else drift.to_dict(),
        "monitoring": view,
        "monitoring_found": store is not None,
        "alerts": alerts,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "watchkeeper_version": __version__,
    }
    drift_html = None if drift is None else _inner_body(drift.to_html(title=model))
    html_out.write_text(render_report_html(payload, drift_html), encoding="utf-8")
    if json_out is not None:
        json_out.write_text(
            json.dumps(payload, indent=2, allow_nan=False, default=str), encoding="utf-8"
        )
    if not quiet:
        _print_summary(payload, html_out, json_out)
    raise typer.Exit(EXIT_CLEAN)


def _print_summary(payload: dict[str, Any], html_out: Path, json_out: Path | None) -> None:
    out = console()
    period = payload["period"]
    out.print(
        literal(
            payload["model"],
            f": {payload['n_rows']:,} predictions, {payload['n_labels']:,} "
            f"labelled, from {period['start']} to {period['end']}",
        )
    )
    drift = payload["drift"]
    if drift is not None:
        d = drift["dataset"]
        out.print(
            literal(
                f"drift over the period: {'YES' if d['drifted'] else 'no'} ({d['n_drifted']} of "
                f"{d['n_tested']} columns, version {payload['reference']['version']})"
            )
        )
    else:
        out.print(literal("drift: ", payload["reference"].get("note", "not computed")))
    view = payload["monitoring"]
    n_windows = sum(len(s["windows"]) for s in view["streams"])
    out.print(
        literal(f"monitor windows: {n_windows}, worst latest status: {view['status'] or '—'}")
    )
    if payload["alerts"] is not None:
        out.print(f"alerts firing now: {len(payload['alerts']['firing'])}")
    for label, path in (("HTML", html_out), ("JSON", json_out)):
        if path is not None:
            out.print(literal(f"{label} report: ", path))
