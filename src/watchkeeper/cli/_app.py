"""The typer application and the error boundary of the command line."""

from __future__ import annotations

import sys

import typer

from watchkeeper.exceptions import WatchkeeperError

app = typer.Typer(
    name="watchkeeper",
    help="Keep machine-learning models healthy after deployment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        from watchkeeper import __version__

        typer.echo(__version__)
        raise typer.Exit(EXIT_CLEAN)


def _register_commands() -> None:
    # Each module adds its commands to ``app`` when imported; they import heavy
    # dependencies lazily inside the commands so that `--help` stays fast.
    from watchkeeper.cli import _drift, _explain, _report, _serve, _validate  # noqa: F401
    from watchkeeper.cli._models import app as models_app

    if not any(group.name == "models" for group in app.registered_groups):
        app.add_typer(models_app, name="models", help="Model registry: versions, aliases, audit.")
    from watchkeeper.cli._alerts import app as alerts_app

    if not any(group.name == "alerts" for group in app.registered_groups):
        app.add_typer(alerts_app, name="alerts", help="Alert rules, Prometheus/Grafana, history.")
    from watchkeeper.cli._monitor import app as monitor_app

    if not any(group.name == "monitor" for group in app.registered_groups):
        app.add_typer(monitor_app, name="monitor", help="Monitor the prediction log; alerts.")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``watchkeeper`` console script."""
    _register_commands()
    try:
        app(args=argv, standalone_mode=True)
    except WatchkeeperError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
