"""``watchkeeper validate``: the validation gate for CI/CD pipelines.

Exit codes: 0 the gate passed, 1 it failed, 2 an error (bad input, or a check that could not
be computed).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from watchkeeper.cli._app import app, console, literal
from watchkeeper.cli._options import MlflowExperiment, MlflowRun, MlflowTrackingUri
from watchkeeper.exceptions import InputError

__all__ = ["load_candidate", "validate_command"]

_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


class _RegistryModel:
    """A registry model that is not a scikit-learn estimator, with the attributes the gate
    reads (``classes_``); it cannot be refitted, so generalisation checks are skipped."""

    def __init__(self, loaded: Any) -> None:
        self._loaded = loaded
        if loaded.classes is not None:
            self.classes_ = list(loaded.classes)
            self.predict_proba = loaded.predict_proba

    def predict(self, X: Any) -> Any:
        return self._loaded.predict(X)


def _from_file(path: Path, trust_pickle: bool) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".skops":
        from watchkeeper.registry import UnsafeFormatError, read_model_file

        # The registry's checks: skops' safe types plus reviewed scikit-learn classes load;
        # anything else (functions, foreign types) only when the caller vouches for the file.
        try:
            return read_model_file(path, trusted=trust_pickle)
        except UnsafeFormatError as exc:
            raise InputError(
                str(exc).replace("trusted=True (--trusted)", "--trust-pickle")
            ) from None
    if suffix in _PICKLE_SUFFIXES:
        if not trust_pickle:
            raise InputError(
                f"{path} is a pickle, which can run arbitrary code when loaded; pass "
                "--trust-pickle if you trust its origin, or save the model with skops"
            )
        import joblib

        return joblib.load(path)
    raise InputError(
        f"cannot load a model from {path}: use a .skops file, a .joblib/.pkl file with "
        "--trust-pickle, or a registry reference NAME@VERSION"
    )


def load_candidate(
    spec: str,
    *,
    trust_pickle: bool = False,
    registry_url: str | None = None,
    artifacts: str | None = None,
    root: str = ".watchkeeper",
) -> tuple[Any, str]:
    """Load a model from a file or from the registry (``NAME@VERSION`` or ``NAME@ALIAS``).

    Returns the model (the native estimator when the registry holds a scikit-learn one) and
    the label to show in the report.

    Examples
    --------
    >>> load_candidate("missing-file.skops")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: model 'missing-file.skops' is neither a file nor ...
    """
    path = Path(spec)
    if path.is_file():
        return _from_file(path, trust_pickle), path.name
    name, sep, ref = spec.rpartition("@")
    if not sep or not name or not ref:
        raise InputError(
            f"model {spec!r} is neither a file nor a registry reference like churn@champion "
            "or churn@3"
        )
    from watchkeeper.registry import Registry

    with Registry(registry_url, artifacts=artifacts, root=root) as registry:
        version: int | str = int(ref) if ref.isdigit() else ref
        loaded = registry.load_model(name, version)
    native = loaded.native
    label = f"{name}@{ref} (version {loaded.version.version})"
    if hasattr(native, "get_params") and hasattr(native, "fit") and hasattr(native, "predict"):
        return native, label
    return _RegistryModel(loaded), label


@app.command("validate")
def validate_command(
    candidate: str = typer.Argument(
        ..., help="Model file (.skops; .joblib/.pkl with --trust-pickle) or NAME@VERSION|ALIAS."
    ),
    data: str = typer.Argument(..., help="Training data with the target (CSV or Parquet)."),
    target: str | None = typer.Option(
        None, "--target", "-t", help="Target column (default: from --schema)."
    ),
    holdout: str | None = typer.Option(
        None, "--holdout", help="Separate holdout (default: split from DATA)."
    ),
    champion: str | None = typer.Option(
        None, "--champion", help="Model in production to compare with (file or NAME@ALIAS)."
    ),
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Gate config (TOML or JSON).")
    ] = None,
    schema: Annotated[
        Path | None, typer.Option("--schema", help="Schema JSON with column roles.")
    ] = None,
    timestamp: str | None = typer.Option(
        None, "--timestamp", help="Time column: time-series CV and the latest rows held out."
    ),
    task: str | None = typer.Option(
        None, "--task", help="binary, multiclass or regression (default: inferred)."
    ),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the JSON report here.")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write the HTML report here.")
    ] = None,
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Allow loading pickle/joblib files (they can run code)."
    ),
    registry: str | None = typer.Option(
        None, "--registry", envvar="WATCHKEEPER_REGISTRY_URL", help="Registry database URL."
    ),
    artifacts: str | None = typer.Option(
        None, "--artifacts", envvar="WATCHKEEPER_ARTIFACTS", help="Registry artifact folder."
    ),
    root: str = typer.Option(
        ".watchkeeper", "--root", envvar="WATCHKEEPER_ROOT", help="Project folder."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
    mlflow_run: MlflowRun = None,
    mlflow_experiment: MlflowExperiment = None,
    mlflow_tracking_uri: MlflowTrackingUri = None,
) -> None:
    """Validate a model before deployment: generalisation, calibration, champion comparison,
    robustness and serving fitness.

    Exit codes: 0 the gate passed, 1 it failed (or a latency/memory budget was exceeded with
    serving.enforce set; budgets are otherwise reported apart, as warnings), 2 an error (bad
    input, or a check that could not be computed).
    """
    from watchkeeper.lifecycle import validate

    if task is not None and task not in ("binary", "multiclass", "regression"):
        raise InputError(f"--task must be binary, multiclass or regression, not {task!r}")
    where: dict[str, Any] = {"registry_url": registry, "artifacts": artifacts, "root": root}
    model, label = load_candidate(candidate, trust_pickle=trust_pickle, **where)
    champ, champ_label = (
        load_candidate(champion, trust_pickle=trust_pickle, **where) if champion else (None, None)
    )
    err = console(err=True)
    live = not quiet and err.is_terminal
    with err.status("validating", spinner="dots") if live else nullcontext() as status:

        def progress(stage: str) -> None:
            if status is not None:
                status.update(literal("validating: ", stage))

        report = validate(
            model,
            data,
            target=target,
            schema=schema,
            holdout=holdout,
            champion=champ,
            config=config,
            timestamp=timestamp,
            task=cast(Any, task),
            name=label,
            champion_name=champ_label,
            random_state=seed,
            progress=progress,
        )
    if json_out:
        report.to_json(json_out)
    if html_out:
        report.to_html(html_out)
    mlflow_run_id = None
    if mlflow_run or mlflow_experiment or mlflow_tracking_uri:
        from watchkeeper.integrations.mlflow import log_gate_report

        mlflow_run_id = log_gate_report(
            report,
            run_id=mlflow_run,
            experiment=mlflow_experiment,
            tracking_uri=mlflow_tracking_uri,
        )
    if not quiet:
        _print(report, json_out, html_out)
        if mlflow_run_id:
            typer.echo(f"MLflow run: {mlflow_run_id}")
    raise typer.Exit(report.exit_code)


def _print(report: Any, json_out: Path | None, html_out: Path | None) -> None:
    from rich.table import Table

    out = console()
    verdict = "PASSED" if report.passed else ("ERROR" if report.errors else "FAILED")
    colour = {"PASSED": "green", "FAILED": "red", "ERROR": "magenta"}[verdict]
    out.print(literal((f"gate {verdict}", f"bold {colour}"), " for ", report.candidate))
    if report.blessed is not None:
        out.print(
            literal(
                f"challenger {'blessed' if report.blessed else 'not blessed'} over ",
                report.champion,
            )
        )
    if report.budgets:
        how = "enforced" if report.config.serving.enforce else "reported only"
        state = ("met", "") if report.budgets_passed else ("EXCEEDED", "yellow")
        out.print(literal("budgets ", state, f" ({how}; latency as CPU time per call)"))
    style = {"alert": "red", "error": "magenta", "warn": "yellow", "insufficient_data": "dim"}
    t = Table(show_edge=False, header_style="bold")
    for h in ("check", "subject", "status", "value", "reason"):
        t.add_column(h, justify="right" if h == "value" else "left")
    for r in report.results:
        s = r.status.value
        t.add_row(
            literal(r.check.removeprefix("gate.")),
            literal(r.subject),
            literal((s, style.get(s, "green"))),
            "—" if r.value is None else f"{r.value:.4g}",
            literal(r.reason),
        )
    out.print(t)
    for note in report.notes:
        out.print(literal((f"note: {note}", "dim")))
    for what, path in (("JSON", json_out), ("HTML", html_out)):
        if path:
            out.print(literal(f"{what} report: ", path))
