"""The typer application and the error boundary of the command line.

Every command runs inside :meth:`_Group.main`, the one place where errors become output:
a usage error, a :class:`~watchkeeper.exceptions.WatchkeeperError`, an ``OSError`` or any
other exception is printed as ONE line on stderr (``error: ...``) and the process exits
with code 2 — never a traceback, and never exit code 1, which means "findings". Unexpected
exceptions (a bug, or a library refusing input we did not check) say so and name the way
to get the traceback: ``--debug`` or ``WATCHKEEPER_DEBUG=1``.

Commands added to :data:`app` (``@app.command``) or mounted on it (``app.add_typer``) get
this boundary without doing anything; sub-applications built with :func:`new_app` get it
too when invoked on their own (as tests do).
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from watchkeeper.exceptions import WatchkeeperError

__all__ = [
    "EXIT_CLEAN",
    "EXIT_FINDINGS",
    "EXIT_USAGE",
    "app",
    "console",
    "literal",
    "main",
    "new_app",
    "one_line",
]

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

#: Set to 1 (or pass ``--debug``) to let unexpected errors show their traceback.
DEBUG_ENV = "WATCHKEEPER_DEBUG"
_debug = {"on": False}


def one_line(message: object) -> str:
    """``message`` as one printable line: newlines folded, unencodable characters escaped.

    Examples
    --------
    >>> one_line("bad value\\n  in column 'a'")
    "bad value in column 'a'"
    >>> one_line("lone \\ud800 surrogate")
    'lone \\\\ud800 surrogate'
    """
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def console(*, err: bool = False) -> Any:
    """A Rich console for the command line's output (stderr with ``err``).

    Rich reads ``[...]`` in strings as markup and ``:name:`` as emoji: what the command
    line prints through it is built with :func:`literal` (text and styles, never parsed as
    markup), so user-supplied strings (column, model and file names, actors, reasons) print
    as they are; emoji codes are off altogether.
    """
    from rich.console import Console

    return Console(stderr=err, highlight=False, emoji=False)


def literal(*parts: object) -> Any:
    """A Rich ``Text`` of ``parts`` taken literally: each part is a value (printed with
    ``str``) or a ``(value, style)`` pair; no part is ever read as markup.

    Examples
    --------
    >>> literal(("gate PASSED", "bold green"), " for ", "[/]model").plain
    'gate PASSED for [/]model'
    """
    from rich.text import Text

    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            value, style = part
            out.append(str(value), style=style)
        elif isinstance(part, Text):
            out.append_text(part)
        else:
            out.append(str(part))
    return out


def _describe(exc: BaseException) -> tuple[str, bool]:
    """The line to print for ``exc`` and whether it is an unexpected (internal) error."""
    # Recent typer versions raise their own copy of click's exceptions and older ones
    # click's: recognise both by shape (click's ``format_message``), not by class.
    format_message = getattr(exc, "format_message", None)
    if callable(format_message) and hasattr(exc, "exit_code"):
        ctx = getattr(exc, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        return str(format_message()) + where, False
    if type(exc).__name__ == "Abort":
        return "aborted", False
    if isinstance(exc, WatchkeeperError):
        return str(exc), False
    if isinstance(exc, OSError):
        if exc.strerror and exc.filename is not None:
            return f"{exc.strerror}: {os.fsdecode(exc.filename)!r}", False
        return str(exc) or type(exc).__name__, False
    detail = str(exc)
    return f"{type(exc).__name__}{': ' + detail if detail else ''}", True


class _Group(TyperGroup):
    """A typer group whose ``main`` is the command line's error boundary."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        _debug["on"] = os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Exception as exc:
            if not standalone_mode:
                raise
            sys.exit(_report(exc))
        code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        if not standalone_mode:
            return result
        sys.exit(code)


def _report(exc: BaseException) -> int:
    if type(exc).__name__ == "NoArgsIsHelpError":
        return EXIT_USAGE  # the help was printed when the error was made, as click does
    message, unexpected = _describe(exc)
    if unexpected and _debug["on"]:
        traceback.print_exception(exc, file=sys.stderr)
    elif unexpected:
        message += (
            f" (unexpected; rerun as `watchkeeper --debug ...` or with {DEBUG_ENV}=1 for the "
            "traceback)"
        )
    # If stderr itself is broken, the exit code still tells.
    with contextlib.suppress(Exception):
        typer.echo(f"error: {one_line(message)}", err=True)
    return EXIT_USAGE


def new_app(**settings: Any) -> typer.Typer:
    """A typer application with the command line's conventions and error boundary."""
    defaults: dict[str, Any] = {
        "cls": _Group,
        "no_args_is_help": True,
        "add_completion": False,
        "pretty_exceptions_enable": False,
        "context_settings": {"help_option_names": ["-h", "--help"]},
    }
    return typer.Typer(**{**defaults, **settings})


app = new_app(
    name="watchkeeper",
    help="Keep machine-learning models healthy after deployment.",
)


def _print_version(value: bool) -> None:
    if value:
        from watchkeeper import __version__

        typer.echo(__version__)
        raise typer.Exit(EXIT_CLEAN)


def _set_debug(value: bool) -> None:
    if value:
        _debug["on"] = True


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        expose_value=False,
        callback=_print_version,
        help="Print the version and exit.",
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        is_eager=True,
        expose_value=False,
        callback=_set_debug,
        help=f"Show the traceback of unexpected errors (or set {DEBUG_ENV}=1).",
    ),
) -> None:
    pass


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
    from watchkeeper.cli._loop import app as loop_app

    if not any(group.name == "loop" for group in app.registered_groups):
        app.add_typer(
            loop_app, name="loop", help="The closed loop: retrain, gate, roll out, decide."
        )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``watchkeeper`` console script."""
    _register_commands()
    app(args=argv, standalone_mode=True)
