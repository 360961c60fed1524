"""``watchkeeper models ...``: register, list, show, history, alias, rollback, delete, card.

Every command takes ``--json`` to print machine-readable output on stdout. Errors print one
line on stderr (and, with ``--json``, an ``{"error": ...}`` object on stdout) and exit 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer

from watchkeeper.cli._app import console as _cli_console
from watchkeeper.cli._app import literal, new_app
from watchkeeper.exceptions import InputError, WatchkeeperError

app = new_app(
    name="models",
    help="Model registry: versions, verified artifacts, aliases and their audit trail.",
)

EXIT_USAGE = 2

_JSON = typer.Option(False, "--json", help="Print JSON on stdout.")
_ACTOR = typer.Option(None, "--actor", help="Who does this (default: user@host).")
_REASON = typer.Option("", "--reason", "-m", help="Why; kept in the audit trail.")
# The group's --root/--registry/--artifacts are accepted after the subcommand too
# (`watchkeeper models card X --root R`, as `validate`, `report` and `explain` take them);
# given there, they win over the group's.
_SUB_ROOT = typer.Option(None, "--root", help="Project folder (default: .watchkeeper).")
_SUB_REGISTRY = typer.Option(
    None, "--registry", help="Database URL (default: SQLite in <root>/registry.db)."
)
_SUB_ARTIFACTS = typer.Option(
    None, "--artifacts", help="Artifact folder or fsspec URL (default: <root>/artifacts)."
)


@app.callback()
def _options(
    ctx: typer.Context,
    registry: str | None = typer.Option(
        None,
        "--registry",
        envvar="WATCHKEEPER_REGISTRY_URL",
        help="Database URL (default: SQLite in <root>/registry.db).",
    ),
    artifacts: str | None = typer.Option(
        None,
        "--artifacts",
        envvar="WATCHKEEPER_ARTIFACTS",
        help="Artifact folder or fsspec URL (default: <root>/artifacts).",
    ),
    root: str = typer.Option(
        ".watchkeeper", "--root", envvar="WATCHKEEPER_ROOT", help="Project folder."
    ),
) -> None:
    ctx.obj = {"url": registry, "artifacts": artifacts, "root": root}


@contextmanager
def _session(
    ctx: typer.Context,
    as_json: bool,
    root: str | None = None,
    url: str | None = None,
    artifacts: str | None = None,
) -> Iterator[Any]:
    """Open the registry and turn watchkeeper errors into one line and exit code 2.

    ``root``, ``url`` and ``artifacts`` given to the subcommand win over the group's.
    """
    from watchkeeper.registry import Registry

    try:
        options = ctx.obj or {}
        with Registry(
            url if url is not None else options.get("url"),
            artifacts=artifacts if artifacts is not None else options.get("artifacts"),
            root=root if root is not None else options.get("root", ".watchkeeper"),
        ) as registry:
            yield registry
    except WatchkeeperError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc), "type": type(exc).__name__}))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from exc


def _emit(payload: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=2, default=str))
    else:
        human()


def _console() -> Any:
    return _cli_console()


def _pairs(specs: list[str] | None, option: str, parse: Callable[[str], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs or []:
        key, sep, value = spec.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{option} {spec!r} must look like KEY=VALUE")
        try:
            out[key.strip()] = parse(value.strip())
        except ValueError as exc:
            raise InputError(f"{option} {spec!r}: {exc}") from exc
    return out


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _version_table(versions: list[Any]) -> Any:
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for header in ("version", "created (UTC)", "format", "output", "aliases", "actor", "metrics"):
        table.add_column(header)
    for v in versions:
        table.add_row(
            str(v.version),
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            literal(v.format),
            literal(v.output_kind),
            literal(", ".join(v.aliases)),
            literal(v.actor),
            literal(", ".join(f"{k}={val:.4g}" for k, val in v.metrics.items())),
        )
    return table


def _print_events(events: list[Any]) -> None:
    for event in events:
        typer.echo(_event_line(event))
    if not events:
        typer.echo("no events")


def _event_line(e: Any) -> str:
    when = e.at.strftime("%Y-%m-%d %H:%M:%S.%f")
    if e.kind == "register":
        what = f"registered version {e.version}"
    elif e.kind == "delete":
        what = f"deleted version {e.version}"
    elif e.kind == "unalias":
        what = f"removed alias {e.alias} (was {e.from_version})"
    elif e.kind == "route":
        # A route event keeps what the route became (its summary) as its reason.
        return f"{when}  {e.actor:<20} route: {e.reason or 'changed'}"
    elif e.kind in ("alias", "rollback"):
        verb = "rolled back" if e.kind == "rollback" else "pointed"
        what = f"{verb} {e.alias}: {e.from_version or '-'} -> {e.to_version}"
    else:
        what = e.kind + (f" version {e.version}" if e.version is not None else "")
    return f"{when}  {e.actor:<20} {what}" + (f"  ({e.reason})" if e.reason else "")


@app.command("register")
def register_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    model: str = typer.Argument(
        ...,
        help="Model file (.skops .onnx .lgb .ubj .pkl .joblib), MLflow model folder, or "
        "models:/NAME/VERSION URI.",
    ),
    format: str | None = typer.Option(None, "--format", help="Storage format (inferred)."),
    reference: str | None = typer.Option(
        None, "--reference", help="Reference data (CSV/Parquet) to profile and store."
    ),
    schema: str | None = typer.Option(None, "--schema", help="Schema JSON (default: inferred)."),
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Training metric KEY=NUMBER (repeat).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Parameter KEY=VALUE (repeat).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag KEY=VALUE (repeat).")] = None,
    description: str = typer.Option("", "--description", "-d", help="Free text."),
    training_data: str | None = typer.Option(
        None, "--training-data", help="Training data file to fingerprint."
    ),
    code_version: str | None = typer.Option(
        None, "--code-version", help="Commit of the training code (default: git HEAD)."
    ),
    trusted: bool = typer.Option(
        False,
        "--trusted",
        help="Vouch for the file's author: allow what may run code on load (pickle/joblib, skops "
        "types outside the safe list).",
    ),
    outliers: str | None = typer.Option(
        None,
        "--outliers",
        help="Serve an outlier detector fitted on --reference: mahalanobis or isolation_forest "
        "(docs/outliers.md).",
    ),
    outlier_rate: float = typer.Option(
        0.01, "--outlier-rate", help="Stated false-positive rate of the outlier detector."
    ),
    output_kind: str | None = typer.Option(
        None,
        "--output-kind",
        help="What the model predicts: classification, regression or ranking (ranked item "
        "lists, docs/ranking.md); inferred from the model when left out.",
    ),
    actor: str | None = _ACTOR,
    as_json: bool = _JSON,
    root: str | None = _SUB_ROOT,
    registry_url: str | None = _SUB_REGISTRY,
    artifacts: str | None = _SUB_ARTIFACTS,
) -> None:
    """Register a model file as the next version of NAME."""
    detector = None
    if outliers is not None:
        from watchkeeper.checks import OutlierDetector

        detector = OutlierDetector(method=outliers, rate=outlier_rate)
    with _session(ctx, as_json, root, registry_url, artifacts) as registry:
        loaded_schema = None
        if schema is not None:
            from watchkeeper.data import Schema

            loaded_schema = Schema.load(schema)
        version = registry.register(
            name,
            model,
            format=format,
            reference=reference,
            schema=loaded_schema,
            metrics=_pairs(metric, "--metric", float),
            params=_pairs(param, "--param", _json_or_text),
            tags=_pairs(tag, "--tag", str),
            description=description,
            training_data=training_data,
            code_version=code_version,
            trusted=trusted,
            actor=actor,
            outliers=detector,
            output_kind=output_kind,
        )
    _emit(
        version.to_dict(),
        as_json,
        lambda: _console().print(
            literal(
                "registered ",
                (version.name, "bold"),
                f" version {version.version} ({version.format}, sha256 "
                f"{version.artifact_sha256[:12]})",
            )
        ),
    )


@app.command("list")
def list_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="List the versions of this model."),
    as_json: bool = _JSON,
    root: str | None = _SUB_ROOT,
    registry_url: str | None = _SUB_REGISTRY,
    artifacts: str | None = _SUB_ARTIFACTS,
) -> None:
    """List models, or the live versions of one model."""
    with _session(ctx, as_json, root, registry_url, artifacts) as registry:
        if name is not None:
            versions = registry.list_versions(name)
            _emit(
                [v.to_dict() for v in versions],
                as_json,
                lambda: _console().print(_version_table(versions)),
            )
            return
        models = registry.list_models()

    def human() -> None:
        from rich.table import Table

        table = Table(show_edge=False, header_style="bold")
        for header in ("model", "versions", "latest", "aliases", "updated (UTC)"):
            table.add_column(header)
        for m in models:
            table.add_row(
                literal(m.name),
                str(m.n_versions),
                "-" if m.latest_version is None else str(m.latest_version),
                literal(", ".join(f"{a}={v}" for a, v in m.aliases.items())),
                m.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
        _console().print(table if models else "no models registered")

    _emit([m.to_dict() for m in models], as_json, human)


@app.command("show")
def show_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    ref: str = typer.Argument("latest", help="Version number, alias, or 'latest'."),
    as_json: bool = _JSON,
    root: str | None = _SUB_ROOT,
    registry_url: str | None = _SUB_REGISTRY,
    artifacts: str | None = _SUB_ARTIFACTS,
) -> None:
    """Show one version: format, hash, metrics, parameters, provenance, aliases."""
    with _session(ctx, as_json, root, registry_url, artifacts) as registry:
        version = registry.get_version(name, ref)
        location = registry.artifacts.locate(version.artifact_sha256)
    payload = {**version.to_dict(), "artifact_location": location}

    def human() -> None:
        console = _console()
        for key, value in payload.items():
            if key in ("schema", "flavor"):
                continue
            shown = json.dumps(value) if isinstance(value, dict | list) else value
            console.print(literal((f"{key:>18}", "bold"), " ", shown))

    _emit(payload, as_json, human)


@app.command("history")
def history_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias: str | None = typer.Option(None, "--alias", help="Only events of this alias."),
    as_json: bool = _JSON,
    root: str | None = _SUB_ROOT,
    registry_url: str | None = _SUB_REGISTRY,
    artifacts: str | None = _SUB_ARTIFACTS,
) -> None:
    """The audit trail: registrations, alias moves, rollbacks and deletions."""
    with _session(ctx, as_json, root, registry_url, artifacts) as registry:
        events = [e for e in registry.history(name) if alias is None or e.alias == alias]
    _emit(
        [e.to_dict() for e in events],
        as_json,
        lambda: _print_events(events),
    )


@app.command("alias")
def alias_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. champion or challenger."),
    version: str | None = typer.Argument(None, help="Version (number or alias) to point at."),
    remove: bool = typer.Option(False, "--remove", help="Remove the alias instead."),
    at: str | None = typer.Option(
        None, "--at", help="Only ask which version the alias held at this ISO time (with zone)."
    ),
    reason: str = _REASON,
    actor: str | None = _ACTOR,
    as_json: bool = _JSON,
    root: str | None = _SUB_ROOT,
    registry_url: str | None = _SUB_REGISTRY,
    artifacts: str | None = _SUB_ARTIFACTS,
) -> None:
    """Point ALIAS at VERSION, remove it (--remove), or ask where it pointed (--at TIME)."""
    with _session(ctx, as_json, root, registry_url, artifacts) as registry:
        modes = sum((version is not None, remove, at is not None))
        if modes != 1:
            raise InputError("give exactly one of VERSION, --remove or --at TIME")
        if at is not None:
            when = _parse_time(at)
            held = registry.alias_at(name, alias, when)
            _emit(
                {"name": name, "alias": alias, "at": when.isoformat(), "version": held},
                as_json,
                lambda: typer.echo(
                    f"{name}@{alias} at {when.isoformat()}: "
                    + ("not set" if held is None else f"version {held}")
                ),
            )
            return
        if remove:
            event = registry.remove_alias(name, alias, actor=actor, reason=reason)
        else:
            assert version is not None
            event = registry.set_alias(name, alias, version, actor=actor, reason=reason)
    if event is None:
        _emit(
            {"changed": False, "name": name, "alias": alias},
            as_json,
            lambda: typer.echo(f"{name}@{alias} already points at {version}; nothing changed"),
        )
        return
    _emit({"changed": True, **event.to_dict()}, as_json, lambda: typer.echo(_event_line(event)))


@app.command("rollback")
def rollback_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    alias_arg: str | None = typer.Argument(
        None, metavar="ALIAS", help="Alias to roll back (default: champion)."
    ),
    alias_opt: str | None = typer.Option(
        None, "--alias", help="Alias to roll back (the same as the ALIAS argument)."
    ),
    reason: str = _REASON,
    actor: str | None = _ACTOR,
    as_json: bool = _JSON,
    root: str | None = _SUB_ROOT,
    registry_url: str | None = _SUB_REGISTRY,
    artifacts: str | None = _SUB_ARTIFACTS,
) -> None:
    """Point an alias back at its previous holder (audited):
    `watchkeeper models rollback churn champion`."""
    if alias_arg is not None and alias_opt is not None and alias_arg != alias_opt:
        raise InputError(
            f"the alias is given twice ({alias_arg!r} and --alias {alias_opt!r}); give it once"
        )
    alias = alias_arg or alias_opt or "champion"
    with _session(ctx, as_json, root, registry_url, artifacts) as registry:
        event = registry.rollback(name, alias, actor=actor, reason=reason)
    _emit(event.to_dict(), as_json, lambda: typer.echo(_event_line(event)))


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(..., help="Version number."),
    force: bool = typer.Option(False, "--force", help="Also remove aliases pointing at it."),
    reason: str = _REASON,
    actor: str | None = _ACTOR,
    as_json: bool = _JSON,
    root: str | None = _SUB_ROOT,
    registry_url: str | None = _SUB_REGISTRY,
    artifacts: str | None = _SUB_ARTIFACTS,
) -> None:
    """Delete a version; refused while an alias points at it unless --force."""
    with _session(ctx, as_json, root, registry_url, artifacts) as registry:
        events = registry.delete_version(name, version, force=force, actor=actor, reason=reason)
    _emit(
        [e.to_dict() for e in events],
        as_json,
        lambda: _print_events(events),
    )


@app.command("card")
def card_command(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@ALIAS (default: latest)."),
    markdown: str | None = typer.Option(None, "--md", help="Write the Markdown card here."),
    html: str | None = typer.Option(None, "--html", help="Write the HTML card here."),
    gate_report: str | None = typer.Option(
        None, "--gate-report", help="The version's gate report JSON (default: its gate_report tag)."
    ),
    as_json: bool = _JSON,
    root: str | None = _SUB_ROOT,
    registry_url: str | None = _SUB_REGISTRY,
    artifacts: str | None = _SUB_ARTIFACTS,
) -> None:
    """Write the model card of a version: intended use, data, metrics overall and by group,
    fairness, known limits, lineage. Without --md/--html it prints the Markdown."""
    from watchkeeper.lifecycle import model_card

    name, _, ref = model.partition("@")
    with _session(ctx, as_json, root, registry_url, artifacts) as registry:
        card = model_card(registry, name, ref or "latest", gate_report=gate_report)
    card.save(markdown=markdown, html=html)
    written = [p for p in (markdown, html) if p]
    _emit(
        {**card.to_dict(), "written": written},
        as_json,
        lambda: typer.echo(
            "\n".join(f"model card: {p}" for p in written) if written else card.to_markdown()
        ),
    )


def _parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"--at {text!r} is not an ISO 8601 time, e.g. 2024-05-01T12:00Z") from exc
    if when.tzinfo is None:
        raise InputError(f"--at {text!r} has no time zone; add one, e.g. {text}Z or {text}+02:00")
    return when
