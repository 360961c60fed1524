"""``watchkeeper loop ...``: run a model's loop policy, watch it, see its state, stop or
undo a step.

``run POLICY`` advances the loop once at an event time (default: the newest prediction in
the log) and prints every transition; ``--dry-run`` prints the plan and what would trigger
now without changing anything. ``watch POLICY`` repeats that every ``--every``. ``status``
lists rollouts, stages and steps; ``abort MODEL`` ends the active rollout; ``undo STEP``
reverts one recorded step (``ROLLOUT/STEP``, as ``status --steps`` shows them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from watchkeeper.cli._app import EXIT_CLEAN, EXIT_USAGE
from watchkeeper.exceptions import InputError, WatchkeeperError

app = typer.Typer(
    name="loop",
    help="The closed loop: retrain, gate, shadow or canary, promote or roll back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_ROOT = typer.Option(".watchkeeper", "--root", envvar="WATCHKEEPER_ROOT", help="Project folder.")
_LOG = typer.Option(
    None, "--log", envvar="WATCHKEEPER_LOG",
    help="SQLite prediction log (default: <root>/predictions.db).",
)  # fmt: skip
_REGISTRY = typer.Option(
    None, "--registry", envvar="WATCHKEEPER_REGISTRY_URL",
    help="Registry database URL (default: SQLite in <root>/registry.db); the loop keeps its "
    "state there.",
)  # fmt: skip
_ARTIFACTS = typer.Option(
    None, "--artifacts", envvar="WATCHKEEPER_ARTIFACTS", help="Artifact folder or URL."
)
_MONITOR = typer.Option(
    None, "--monitor", envvar="WATCHKEEPER_MONITOR_URL",
    help="Monitor database URL, for the alert triggers (default: SQLite in <root>/monitor.db).",
)  # fmt: skip
_AT = typer.Option(
    None, "--at",
    help="Event time to act at (ISO 8601, UTC unless an offset is given; default: the newest "
    "prediction in the log). Decisions depend on the data up to this time only.",
)  # fmt: skip
_JSON = typer.Option(False, "--json", help="Print JSON on stdout.")
_REFERENCE = typer.Option(
    None, "--reference",
    help="The champion's training rows (CSV or Parquet with the features and the target), "
    "added to the training data.",
)  # fmt: skip
_REPORTS = typer.Option(None, "--reports", help="Folder for the candidates' gate reports.")


def _usage(exc: WatchkeeperError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(EXIT_USAGE)


def parse_at(text: str) -> float:
    """UTC seconds of an ISO 8601 time (UTC when no offset is given).

    Examples
    --------
    >>> parse_at("2011-06-01")
    1306886400.0
    >>> parse_at("June")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: --at must be an ISO 8601 time such as ...
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"--at must be an ISO 8601 time such as 2024-05-01T12:00, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_every(text: str) -> float:
    """Seconds of a duration such as ``90s``, ``5m``, ``1h`` or ``1d``.

    Examples
    --------
    >>> parse_every("5m"), parse_every("1d")
    (300.0, 86400.0)
    """
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    value, unit = text.strip()[:-1], text.strip()[-1:]
    try:
        seconds = float(value) * units[unit]
    except (KeyError, ValueError):
        seconds = -1.0
    if not seconds > 0:
        raise InputError(f"--every must be a duration such as 90s, 5m, 1h or 1d, got {text!r}")
    return seconds


@contextmanager
def _opened(
    root: str,
    log: str | None,
    registry_url: str | None,
    artifacts: str | None,
    monitor_url: str | None,
    *,
    need_log: bool = True,
) -> Iterator[dict[str, Any]]:
    from watchkeeper.logstore import SQLiteLogSink
    from watchkeeper.registry import Registry

    log_path = Path(log or Path(root) / "predictions.db")
    if need_log and not log_path.exists():
        raise InputError(f"no prediction log at {log_path}; pass --log or --root")
    with ExitStack() as stack:
        opened: dict[str, Any] = {
            "registry": stack.enter_context(Registry(registry_url, artifacts=artifacts, root=root)),
            "sink": stack.enter_context(SQLiteLogSink(str(log_path))) if need_log else None,
            "alerts": None,
        }
        monitor_db = Path(root) / "monitor.db"
        if monitor_url is not None or monitor_db.exists():
            from watchkeeper.monitor import AlertEvaluator

            opened["alerts"] = stack.enter_context(AlertEvaluator(url=monitor_url, root=root))
        yield opened


def _policy(path: Path) -> Any:
    from watchkeeper.loop import LoopConfig

    return LoopConfig.from_toml(path)


def _reference(path: Path | None) -> Any:
    if path is None:
        return None
    from watchkeeper.data import read_table

    return read_table(str(path))


def _newest(sink: Any, model: str) -> float:
    window = sink.read_window(model, last=1)
    if window.num_rows == 0:
        raise InputError(f"the prediction log has no predictions of model {model!r}; pass --at")
    return float(window.column("ts")[0].as_py().timestamp())


def _runner(policy: Any, o: dict[str, Any], reference: Path | None, reports: Path | None,
            quiet: bool) -> Any:  # fmt: skip
    from watchkeeper.loop import LoopRunner

    return LoopRunner(
        policy, registry=o["registry"], sink=o["sink"], alerts=o["alerts"],
        reference=_reference(reference), reports=reports,
        channels=None if o["alerts"] is None else o["alerts"].config.channels,
        say=(lambda _m: None) if quiet else (lambda m: typer.echo(m)),
    )  # fmt: skip


def _once(runner: Any, at: float, dry_run: bool, manual: str | None, as_json: bool) -> None:
    if dry_run:
        plan = runner.plan(at)
        typer.echo(json.dumps(plan.to_dict(), indent=2) if as_json else plan.text())
        return
    made = runner.step(at, manual=manual)
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in made], indent=2))
        return
    if not made:
        active = runner.store.active(runner.policy.model)
        last = None if active is None else active.state.get("last")
        if active is None:
            typer.echo(f"{runner.policy.model}: idle; nothing triggers at {_iso(at)}")
        elif last:
            t = last["test"]
            typer.echo(
                f"{active.id}: {active.stage}, {last['labelled']} labelled, loss difference "
                f"{_num(t['estimate'])} (CS {_num(t['lower'])} to {_num(t['upper'])}): "
                "no verdict yet"
            )
        else:
            typer.echo(f"{active.id}: {active.stage}")


@app.command("run")
def run_command(
    policy_file: Path = typer.Argument(..., metavar="POLICY", help="Loop policy (TOML)."),
    at: str | None = _AT,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan and what would trigger now; change nothing."
    ),
    manual: str | None = typer.Option(
        None, "--manual", metavar="REASON", help="Start a rollout now (the manual trigger)."
    ),
    reference: Path | None = _REFERENCE,
    reports: Path | None = _REPORTS,
    root: str = _ROOT,
    log: str | None = _LOG,
    registry_url: str | None = _REGISTRY,
    artifacts: str | None = _ARTIFACTS,
    monitor_url: str | None = _MONITOR,
    as_json: bool = _JSON,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the outcome."),
) -> None:
    """Advance the loop of one model once, at an event time."""
    try:
        policy = _policy(policy_file)
        with _opened(root, log, registry_url, artifacts, monitor_url) as o:
            runner = _runner(policy, o, reference, reports, quiet or as_json)
            when = parse_at(at) if at is not None else _newest(o["sink"], policy.model)
            _once(runner, when, dry_run, manual, as_json)
    except WatchkeeperError as exc:
        raise _usage(exc) from exc
    raise typer.Exit(EXIT_CLEAN)


@app.command("watch")
def watch_command(
    policy_file: Path = typer.Argument(..., metavar="POLICY", help="Loop policy (TOML)."),
    every: str = typer.Option("5m", "--every", help="Time between runs (90s, 5m, 1h)."),
    iterations: int | None = typer.Option(
        None, "--iterations", min=1, help="Stop after this many runs (default: until Ctrl-C)."
    ),
    reference: Path | None = _REFERENCE,
    reports: Path | None = _REPORTS,
    root: str = _ROOT,
    log: str | None = _LOG,
    registry_url: str | None = _REGISTRY,
    artifacts: str | None = _ARTIFACTS,
    monitor_url: str | None = _MONITOR,
    as_json: bool = _JSON,
) -> None:
    """Advance the loop every --every, each time at the newest prediction's event time."""
    try:
        policy = _policy(policy_file)
        period = parse_every(every)
        with _opened(root, log, registry_url, artifacts, monitor_url) as o:
            runner = _runner(policy, o, reference, reports, as_json)
            done = 0
            while iterations is None or done < iterations:
                started = time.monotonic()
                _once(runner, _newest(o["sink"], policy.model), False, None, as_json)
                done += 1
                if iterations is not None and done >= iterations:
                    break
                time.sleep(max(0.0, period - (time.monotonic() - started)))
    except WatchkeeperError as exc:
        raise _usage(exc) from exc
    except KeyboardInterrupt:
        # Every transition was committed whole or not at all: a restart resumes.
        typer.echo("stopped", err=True)
    raise typer.Exit(EXIT_CLEAN)


@app.command("status")
def status_command(
    model: str | None = typer.Argument(None, help="Only this model."),
    steps: bool = typer.Option(False, "--steps", help="List every step with its evidence."),
    root: str = _ROOT,
    registry_url: str | None = _REGISTRY,
    artifacts: str | None = _ARTIFACTS,
    as_json: bool = _JSON,
) -> None:
    """Rollouts, their stages and their steps."""
    from watchkeeper.loop import LoopStore
    from watchkeeper.registry import Registry

    try:
        with Registry(registry_url, artifacts=artifacts, root=root) as registry:
            store = LoopStore(registry)
            rollouts = store.rollouts(model)
            done = store.steps(model=model)
    except WatchkeeperError as exc:
        raise _usage(exc) from exc
    if as_json:
        payload = {
            "rollouts": [r.to_dict() for r in rollouts],
            "steps": [s.to_dict() for s in done],
        }
        typer.echo(json.dumps(payload, indent=2))
        raise typer.Exit(EXIT_CLEAN)
    if not rollouts:
        typer.echo("no loop rollouts yet")
    for r in rollouts:
        mark = "active" if r.active else "ended"
        version = r.state.get("challenger_version")
        typer.echo(
            f"{r.id}: {r.stage} ({mark}); started {_iso(r.started_at)}, last {_iso(r.updated_at)}"
            + (f"; challenger v{version}" if version else "")
        )
        if steps:
            for s in done:
                if s.rollout_id == r.id:
                    undone = " [undone]" if s.undone else ""
                    typer.echo(f"  {s.ref}{undone} at {_iso(s.at)}: {s.summary}")
    raise typer.Exit(EXIT_CLEAN)


def _policy_or_default(policy_file: Path | None, model: str) -> Any:
    from watchkeeper.loop import LoopConfig

    if policy_file is None:
        return LoopConfig(model=model)
    policy = LoopConfig.from_toml(policy_file)
    if policy.model != model:
        raise InputError(f"the policy {policy_file} is for model {policy.model!r}, not {model!r}")
    return policy


@contextmanager
def _acting(root: str, log: str | None, registry_url: str | None, artifacts: str | None,
            policy: Any, at: str | None) -> Iterator[tuple[Any, float]]:  # fmt: skip
    """The runner and the event time to record an operator's action at: ``--at``, else the
    newest of the log's last prediction and the loop's last recorded time."""
    from watchkeeper.loop import LoopRunner

    log_path = Path(log or Path(root) / "predictions.db")
    with _opened(root, log, registry_url, artifacts, None, need_log=log_path.exists()) as o:
        runner = LoopRunner(policy, registry=o["registry"], sink=o["sink"],
                            say=lambda m: typer.echo(m))  # fmt: skip
        if at is not None:
            when = parse_at(at)
        else:
            times = [r.updated_at for r in runner.store.rollouts(policy.model)]
            if o["sink"] is not None:
                with suppress(InputError):
                    times.append(_newest(o["sink"], policy.model))
            when = max(times, default=0.0)
        yield runner, when


@app.command("abort")
def abort_command(
    model: str = typer.Argument(..., help="Model whose active rollout ends."),
    reason: str = typer.Option("aborted by an operator", "--reason", help="Why (audited)."),
    policy_file: Path | None = typer.Option(
        None, "--policy", help="The model's policy (for its alias names)."
    ),
    at: str | None = _AT,
    root: str = _ROOT,
    log: str | None = _LOG,
    registry_url: str | None = _REGISTRY,
    artifacts: str | None = _ARTIFACTS,
) -> None:
    """End the active rollout: the champion alone answers, the challenger alias goes."""
    try:
        policy = _policy_or_default(policy_file, model)
        with _acting(root, log, registry_url, artifacts, policy, at) as (runner, when):
            step = runner.abort(when, reason=reason)
            typer.echo(f"{step.ref}: {step.summary}")
    except WatchkeeperError as exc:
        raise _usage(exc) from exc
    raise typer.Exit(EXIT_CLEAN)


@app.command("undo")
def undo_command(
    step_ref: str = typer.Argument(..., metavar="STEP", help="ROLLOUT/STEP, e.g. churn-3/promote."),
    reason: str = typer.Option("", "--reason", help="Why (audited)."),
    policy_file: Path | None = typer.Option(
        None, "--policy", help="The model's policy (for its alias names)."
    ),
    at: str | None = _AT,
    root: str = _ROOT,
    log: str | None = _LOG,
    registry_url: str | None = _REGISTRY,
    artifacts: str | None = _ARTIFACTS,
) -> None:
    """Undo one step: aliases, route and stage go back to what they were before it."""
    model, sep, _ = step_ref.rpartition("/")
    try:
        if not sep or "-" not in model:
            raise InputError(f"STEP is ROLLOUT/STEP such as churn-3/promote, got {step_ref!r}")
        policy = _policy_or_default(policy_file, model.rsplit("-", 1)[0])
        with _acting(root, log, registry_url, artifacts, policy, at) as (runner, when):
            step = runner.undo(step_ref, when, reason=reason)
            typer.echo(f"{step.ref}: {step.summary}")
    except WatchkeeperError as exc:
        raise _usage(exc) from exc
    raise typer.Exit(EXIT_CLEAN)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _num(value: Any) -> str:
    return "—" if value is None else f"{float(value):+.4g}"
