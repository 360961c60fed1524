"""``watchkeeper explain MODEL[@ALIAS] DATA``: explain a registered model on a data file.

Loads the version from the registry (its hash checked, as ``watchkeeper predict`` does),
explains a seeded sample of the file's rows (SHAP: global importance with its noise floor,
a few single predictions; permutation importance; a shallow surrogate tree with its
fidelity), prints the ranking and writes the report as HTML and/or JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from watchkeeper.cli._app import EXIT_USAGE, app
from watchkeeper.exceptions import InputError, WatchkeeperError

__all__ = ["explain_command", "explain_file"]

_METHODS = ("auto", "tree", "linear", "permutation", "partition", "lime")
_OUTPUTS = ("auto", "probability", "margin")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


@app.command("explain")
def explain_command(
    model: str = typer.Argument(
        ..., help="MODEL[@ALIAS] or MODEL@VERSION (default alias: champion)."
    ),
    data: Path = typer.Argument(..., help="CSV or Parquet file of rows to explain."),
    rows: int = typer.Option(
        1000, "--rows", "-n", help="Explain a seeded sample of at most N rows."
    ),
    html: Path | None = typer.Option(None, "--html", help="Write the HTML report here."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the JSON report here."),
    background: Path | None = typer.Option(
        None,
        "--background",
        help="CSV or Parquet file of typical rows (e.g. training data); default: DATA.",
    ),
    method: str = typer.Option("auto", "--method", help=f"One of {', '.join(_METHODS)}."),
    output: str = typer.Option(
        "auto", "--output", help="Classifiers: auto, probability or margin."
    ),
    target_class: str | None = typer.Option(
        None, "--class", help="Class to explain (default: the last one)."
    ),
    backgrounds: int = typer.Option(
        5, "--backgrounds", help="Backgrounds (seeds) the noise floor is measured over."
    ),
    show: int = typer.Option(5, "--show", help="Single-prediction waterfalls in the report."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    root: str = typer.Option(
        ".watchkeeper", "--root", envvar="WATCHKEEPER_ROOT", help="Project folder."
    ),
    registry: str | None = typer.Option(
        None, "--registry", envvar="WATCHKEEPER_REGISTRY_URL", help="Registry database URL."
    ),
    artifacts: str | None = typer.Option(
        None, "--artifacts", envvar="WATCHKEEPER_ARTIFACTS", help="Artifact folder or URL."
    ),
) -> None:
    """Explain a registered model's predictions on DATA (SHAP, permutation importance,
    surrogate rules), with the noise floor of every importance."""
    try:
        report = explain_file(
            model,
            data,
            rows=rows,
            background=background,
            method=method,
            output=output,
            target_class=target_class,
            backgrounds=backgrounds,
            show=show,
            seed=seed,
            root=root,
            registry_url=registry,
            artifacts=artifacts,
        )
        written = []
        if html is not None:
            written.append(str(report.to_html(html)))
        if json_out is not None:
            written.append(str(report.to_json(json_out)))
    except WatchkeeperError as exc:
        raise _fail(str(exc)) from exc
    except OSError as exc:
        raise _fail(f"cannot write the report: {exc}") from exc
    _print(report, written)


def _print(report: Any, written: list[str]) -> None:
    g = report.importance
    typer.echo(f"{report.title}: {g.output_label}, {g.method}, {g.n_rows:,} rows")
    typer.echo(f"{'feature':<24} {'importance':>12} {'± noise':>10} {'share':>7}")
    floor = dict(zip(g.features, g.noise_floor, strict=True))
    for feature, share in sorted(
        zip(g.features, g.shares, strict=True), key=lambda t: -float(g.get(t[0])[0])
    ):
        importance = g.get(feature)[0]
        typer.echo(f"{feature[:24]:<24} {importance:>12.4g} {floor[feature]:>10.3g} {share:>7.1%}")
    if report.surrogate is not None:
        s = report.surrogate
        typer.echo(
            f"surrogate tree (depth {s.params.get('max_depth')}): "
            f"{s.fidelity_metric} {s.fidelity:.3f} on {s.n_test:,} held-out rows"
        )
    for path in written:
        typer.echo(f"wrote {path}")


def _read(path: Path, columns: tuple[str, ...] | None) -> Any:
    from watchkeeper.explain import as_frame

    return as_frame(path, columns)


def _inputs(loaded: Any) -> tuple[str, ...] | None:
    """The model's input columns: its own feature names, else its schema's features."""
    names = getattr(loaded.native, "feature_names_in_", None)
    if names is not None:
        return tuple(str(n) for n in names)
    if loaded.version.schema is not None:
        from watchkeeper.data import Schema

        features = Schema.from_dict(loaded.version.schema).features
        if features:
            return tuple(features)
    return None


def explain_file(
    ref: str,
    data: Path,
    *,
    rows: int,
    background: Path | None,
    method: str,
    output: str,
    target_class: str | None,
    backgrounds: int,
    show: int,
    seed: int,
    root: str,
    registry_url: str | None,
    artifacts: str | None,
) -> Any:
    """The :class:`~watchkeeper.explain.ExplanationReport` of ``ref`` on ``data``."""
    from watchkeeper.cli._predict import split_model_ref
    from watchkeeper.explain import explanation_report
    from watchkeeper.registry import Registry

    if rows < 1:
        raise InputError(f"--rows must be at least 1, got {rows}")
    if method not in _METHODS:
        raise InputError(f"--method must be one of {', '.join(_METHODS)}, got {method!r}")
    if output not in _OUTPUTS:
        raise InputError(f"--output must be one of {', '.join(_OUTPUTS)}, got {output!r}")
    name, alias = split_model_ref(ref)
    with Registry(registry_url, artifacts=artifacts, root=root) as registry:
        loaded = registry.load_model(name, alias)
    columns = _inputs(loaded)
    frame = _read(data, columns)
    pool = None if background is None else _read(background, columns)
    version = loaded.version
    return explanation_report(
        loaded,
        frame,
        background=pool,
        title=f"{name} version {version.version} ({alias})",
        max_rows=rows,
        local_rows=show,
        n_backgrounds=backgrounds,
        method=method,  # type: ignore[arg-type]
        output=output,  # type: ignore[arg-type]
        target_class=target_class,
        random_state=seed,
        meta={
            "model": name,
            "version": version.version,
            "ref": alias,
            "data": str(data),
            "rows in file": len(frame),
        },
    )
