"""``watchkeeper monitor run`` (once, for cron or CI) and ``watchkeeper monitor watch``.

Both evaluate the prediction log's new windows (:class:`watchkeeper.monitor.Monitor`), store
the results in the monitor history, then evaluate the alert rules over them and deliver the
events (:func:`watchkeeper.monitor.run_cycle`).

Exit codes: 0 no window of the run has a result at ``alert`` or ``error``, 1 one has (or an
alert fired), 2 usage or input error. ``watch`` exits 0 on Ctrl-C, or like ``run`` over all
its cycles when ``--iterations`` bounds it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from watchkeeper.cli._alerts import _RULES  # the same --rules as `watchkeeper alerts`
from watchkeeper.cli._app import EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE, new_app
from watchkeeper.exceptions import InputError, WatchkeeperError

__all__ = ["app", "parse_since"]

app = new_app(
    name="monitor",
    help="Evaluate the prediction log window by window, store the results, raise alerts.",
)

_MODEL = typer.Option(None, "--model", help="Only this model (default: every logged model).")
_SINCE = typer.Option(
    None,
    "--since",
    help="Re-read the log from this time (ISO 8601, UTC unless an offset is given) or this "
    "long ago (e.g. 2d); default: the recompute horizon before the newest stored window.",
)
_ROOT = typer.Option(".watchkeeper", "--root", envvar="WATCHKEEPER_ROOT", help="Project folder.")
_LOG = typer.Option(
    None,
    "--log",
    envvar="WATCHKEEPER_LOG",
    help="Prediction log: a SQLite file, postgresql://... or an fsspec URL of a Parquet log "
    "such as s3://bucket/log (default: <root>/predictions.db).",
)
_REGISTRY = typer.Option(
    None,
    "--registry",
    envvar="WATCHKEEPER_REGISTRY_URL",
    help="Registry database URL (default: SQLite in <root>/registry.db).",
)
_ARTIFACTS = typer.Option(
    None, "--artifacts", envvar="WATCHKEEPER_ARTIFACTS", help="Artifact folder or URL."
)
_MONITOR = typer.Option(
    None,
    "--monitor",
    envvar="WATCHKEEPER_MONITOR_URL",
    help="Monitor history database URL (default: SQLite in <root>/monitor.db).",
)
_NO_ALERTS = typer.Option(False, "--no-alerts", help="Store results only; evaluate no rule.")
_PROM_FILE = typer.Option(
    None,
    "--prom-file",
    help="Write the monitor gauges here after each run (Prometheus text format, for the "
    "node exporter's textfile collector).",
)
_JSON = typer.Option(False, "--json", help="Print each run as JSON on stdout.")
_QUIET = typer.Option(False, "--quiet", "-q", help="Print nothing but errors.")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO 8601 time (UTC unless an offset is given) or a duration back from
    ``now`` (``"90m"``, ``"2d"``).

    Examples
    --------
    >>> parse_since("2024-05-01T12:00").isoformat()
    '2024-05-01T12:00:00+00:00'
    >>> parse_since("2d", now=datetime(2024, 5, 3, tzinfo=UTC)).isoformat()
    '2024-05-01T00:00:00+00:00'
    >>> parse_since("last tuesday")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: --since 'last tuesday' is neither an ISO 8601 time ...
    """
    from watchkeeper.monitor import parse_duration

    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            back = parse_duration(text.strip(), "--since")
        except InputError:
            raise InputError(
                f"--since {text!r} is neither an ISO 8601 time (2024-05-01T00:00) nor a "
                "duration back from now (90m, 2d)"
            ) from None
        return (now or datetime.now(UTC)) - back
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _window(text: str) -> str | int:
    text = text.strip()
    return int(text) if text.isdigit() else text


@contextmanager
def _opened(
    root: str,
    log: str | None,
    registry_url: str | None,
    artifacts: str | None,
    monitor_url: str | None,
    rules: Path | None,
    alerts: bool,
) -> Iterator[dict[str, Any]]:
    """The log, the registry, the monitor history and the alert evaluator, closed after."""
    from watchkeeper.logstore import open_sink
    from watchkeeper.monitor import AlertConfig, AlertEvaluator, MonitorStore
    from watchkeeper.registry import Registry

    log_url = log or str(Path(root) / "predictions.db")
    config = None
    if alerts:
        config = AlertConfig.default() if rules is None else AlertConfig.from_file(rules)
    with ExitStack() as stack:
        opened: dict[str, Any] = {
            "sink": stack.enter_context(open_sink(log_url, create=False)),  # type: ignore[arg-type]
            "registry": stack.enter_context(Registry(registry_url, artifacts=artifacts, root=root)),
            "store": stack.enter_context(MonitorStore(monitor_url, root=root)),
            "alerts": None,
        }
        if config is not None:
            opened["alerts"] = stack.enter_context(AlertEvaluator(config, monitor_url, root=root))
        yield opened


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A progress callback drawing a bar on a terminal (``None`` elsewhere)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from watchkeeper.cli._app import console

    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        console=console(err=True),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(model: str, done: int, total: int) -> None:
            if model not in tasks:
                tasks[model] = bar.add_task(f"monitor {model}", total=total)
            bar.update(tasks[model], completed=done, total=total)

        yield progress


def _found(cycle: Any) -> bool:
    fired = cycle.alerts is not None and any(e.kind == "firing" for e in cycle.alerts.events)
    return bool(cycle.summary.alerts) or fired


def _print(cycle: Any) -> None:
    summary = cycle.summary
    for w in summary.windows:
        results = summary.results.get((w.model, w.version, w.arm, w.window_start), ())
        flagged = sorted({f"{r.check}[{r.subject}]" for r in results if r.status.severity >= 3})
        shown = ", ".join(flagged[:4]) + (f" +{len(flagged) - 4} more" if len(flagged) > 4 else "")
        typer.echo(
            f"{w.model} v{w.version} ({w.arm}) {w.window_start:%Y-%m-%d %H:%M}.."
            f"{w.window_end:%Y-%m-%d %H:%M}  {w.n_rows:>6,} rows  "
            f"{w.label_coverage:>4.0%} labelled  {w.status.value}" + (f"  {shown}" if shown else "")
        )
    typer.echo(
        f"{len(summary.windows)} windows evaluated, {summary.skipped} unchanged; worst status "
        f"{summary.worst_status.value} ({cycle.seconds:.1f} s)"
    )
    for model, stats in summary.feedback.items():
        unknown = getattr(stats, "n_unknown", 0)
        if unknown:
            typer.echo(f"{model}: {unknown:,} labels for unknown prediction ids (kept, not used)")
    if cycle.alerts is not None:
        for e in cycle.alerts.events:
            typer.echo(
                f"alert {e.kind}: {e.rule} ({e.severity}) {e.model} v{e.version} ({e.arm}) "
                f"{e.subject}: {e.check} {e.status}"
            )
        for event_id, d in cycle.alerts.failed:
            typer.echo(f"alert event {event_id} not delivered to {d.channel}: {d.error}", err=True)


def _write_gauges(path: Path, store: Any) -> None:
    from watchkeeper.monitor import render_monitor_metrics

    body = render_monitor_metrics(store)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(body)
        tmp.replace(path)  # the textfile collector must never read a half-written file
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc}") from exc


def _cycle(
    opened: dict[str, Any],
    monitor: Any,
    model: str | None,
    since: datetime | None,
    prom_file: Path | None,
    as_json: bool,
    quiet: bool,
) -> Any:
    from watchkeeper.monitor import run_cycle

    with _progress(not (as_json or quiet)) as progress:
        cycle = run_cycle(
            monitor,
            opened["sink"],
            opened["registry"],
            opened["store"],
            opened["alerts"],
            model=model,
            since=since,
            progress=progress,
        )
    if prom_file is not None:
        _write_gauges(prom_file, opened["store"])
    if as_json:
        typer.echo(json.dumps(cycle.to_dict(), default=str, allow_nan=False))
    elif not quiet:
        _print(cycle)
    return cycle


def _usage(exc: WatchkeeperError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(EXIT_USAGE)


def _monitor(window: str, model: str | None) -> Any:
    from watchkeeper.monitor import Monitor, MonitorConfig
    from watchkeeper.registry import validate_name

    if model is not None:
        validate_name(model)
    return Monitor(MonitorConfig(every=_window(window)))


def _renamed(
    old: str | None, old_flag: str, new: str | None, new_flag: str, what: str
) -> str | None:
    """The value of an option given under its new name or its deprecated one (warned)."""
    if old is None:
        return new
    typer.echo(
        f"warning: {old_flag} is deprecated here (it meant different things in `monitor run` "
        f"and `monitor watch`); use {new_flag} for the {what}",
        err=True,
    )
    if new is not None and new != old:
        raise InputError(
            f"{old_flag} {old!r} and {new_flag} {new!r} disagree; give {new_flag} only"
        )
    return old


@app.command("run")
def run_command(
    model: str | None = _MODEL,
    since: str | None = _SINCE,
    window: str | None = typer.Option(
        None, "--window", help="Window size: a duration (1h, 1d) or a row count [default: 1h]."
    ),
    every: str | None = typer.Option(
        None, "--every", hidden=True, help="Deprecated spelling of --window."
    ),
    root: str = _ROOT,
    log: str | None = _LOG,
    registry_url: str | None = _REGISTRY,
    artifacts: str | None = _ARTIFACTS,
    monitor_url: str | None = _MONITOR,
    rules: Path | None = _RULES,
    no_alerts: bool = _NO_ALERTS,
    prom_file: Path | None = _PROM_FILE,
    as_json: bool = _JSON,
    quiet: bool = _QUIET,
) -> None:
    """Evaluate the new windows of the prediction log once, store them, raise alerts."""
    try:
        window = _renamed(every, "--every", window, "--window", "window size") or "1h"
        monitor = _monitor(window, model)
        start = None if since is None else parse_since(since)
        with _opened(root, log, registry_url, artifacts, monitor_url, rules, not no_alerts) as o:
            cycle = _cycle(o, monitor, model, start, prom_file, as_json, quiet)
    except WatchkeeperError as exc:
        raise _usage(exc) from exc
    raise typer.Exit(EXIT_FINDINGS if _found(cycle) else EXIT_CLEAN)


@app.command("watch")
def watch_command(
    interval: str | None = typer.Option(
        None, "--interval", help="Time between runs (90s, 5m, 1h) [default: 5m]."
    ),
    every: str | None = typer.Option(
        None, "--every", hidden=True, help="Deprecated spelling of --interval."
    ),
    window: str = typer.Option(
        "1h", "--window", help="Window size: a duration (1h, 1d) or a row count."
    ),
    iterations: int | None = typer.Option(
        None, "--iterations", min=1, help="Stop after this many runs (default: until Ctrl-C)."
    ),
    model: str | None = _MODEL,
    root: str = _ROOT,
    log: str | None = _LOG,
    registry_url: str | None = _REGISTRY,
    artifacts: str | None = _ARTIFACTS,
    monitor_url: str | None = _MONITOR,
    rules: Path | None = _RULES,
    no_alerts: bool = _NO_ALERTS,
    prom_file: Path | None = _PROM_FILE,
    as_json: bool = _JSON,
    quiet: bool = _QUIET,
) -> None:
    """Run the monitor every --interval until Ctrl-C (or --iterations runs)."""
    from watchkeeper.monitor import parse_duration

    found = False
    try:
        interval = _renamed(every, "--every", interval, "--interval", "time between runs") or "5m"
        monitor = _monitor(window, model)
        period = parse_duration(interval, "--interval").total_seconds()
        with _opened(root, log, registry_url, artifacts, monitor_url, rules, not no_alerts) as o:
            done = 0
            while iterations is None or done < iterations:
                started = time.monotonic()
                cycle = _cycle(o, monitor, model, None, prom_file, as_json, quiet)
                found = found or _found(cycle)
                done += 1
                if iterations is not None and done >= iterations:
                    break
                time.sleep(max(0.0, period - (time.monotonic() - started)))
    except WatchkeeperError as exc:
        raise _usage(exc) from exc
    except KeyboardInterrupt:
        # A run interrupted midway left every window either written or untouched.
        if not quiet:
            typer.echo("stopped", err=True)
        raise typer.Exit(EXIT_CLEAN) from None
    raise typer.Exit(EXIT_FINDINGS if found else EXIT_CLEAN)
