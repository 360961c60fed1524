"""``watchkeeper predict MODEL[@ALIAS] DATA --out PREDICTIONS``: offline batch scoring.

The file is checked against the model version's schema, scored in batches with the same
served-model code as the gateway, written as CSV, Parquet or JSON lines, and every
prediction is logged to the gateway's prediction log (arm = the alias used), so monitoring
sees batch and online traffic alike.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import typer

from watchkeeper.cli._app import EXIT_USAGE, app
from watchkeeper.exceptions import InputError, WatchkeeperError

__all__ = ["predict_command", "score_file", "split_model_ref"]

_OUTPUT_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def split_model_ref(ref: str) -> tuple[str, str]:
    """``NAME[@ALIAS_OR_VERSION]`` as ``(name, ref)``; the ref defaults to ``champion``.

    Examples
    --------
    >>> split_model_ref("churn"), split_model_ref("churn@3"), split_model_ref("churn@challenger")
    (('churn', 'champion'), ('churn', '3'), ('churn', 'challenger'))
    """
    name, _, alias = ref.partition("@")
    if not name or (ref.endswith("@") and not alias):
        raise InputError(f"expected MODEL or MODEL@ALIAS (or MODEL@VERSION), got {ref!r}")
    return name, alias or "champion"


@app.command("predict")
def predict_command(
    model: str = typer.Argument(
        ..., help="MODEL[@ALIAS] or MODEL@VERSION (default alias: champion)."
    ),
    data: Path = typer.Argument(..., help="CSV or Parquet file of records to score."),
    out: Path = typer.Option(..., "--out", "-o", help="Predictions file (.csv, .parquet, .jsonl)."),
    root: str = typer.Option(
        ".watchkeeper", "--root", envvar="WATCHKEEPER_ROOT", help="Project folder."
    ),
    registry: str | None = typer.Option(
        None, "--registry", envvar="WATCHKEEPER_REGISTRY_URL", help="Registry database URL."
    ),
    artifacts: str | None = typer.Option(
        None, "--artifacts", envvar="WATCHKEEPER_ARTIFACTS", help="Artifact folder or URL."
    ),
    log: str | None = typer.Option(
        None,
        "--log",
        envvar="WATCHKEEPER_LOG",
        help="Prediction log (default: <root>/predictions.db).",
    ),
    no_log: bool = typer.Option(False, "--no-log", help="Do not write the prediction log."),
    id_column: str | None = typer.Option(
        None, "--id-column", help="Column holding prediction ids (default: the schema's id column)."
    ),
    batch_size: int = typer.Option(10_000, "--batch-size", help="Rows per model call."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Score DATA offline with a registered model and log the predictions like the gateway.

    Logging is idempotent: a row whose id is already logged for the model with the same
    features (a rerun) is not logged twice. A row whose id is already logged with *other*
    features is a conflict: it is scored and written to --out but not logged; each conflict is
    reported on stderr, one line per id, and the command exits with code 2.
    """
    try:
        summary = score_file(
            model,
            data,
            out,
            root=root,
            registry_url=registry,
            artifacts=artifacts,
            log_path=None if no_log else (log or str(Path(root) / "predictions.db")),
            id_column=id_column,
            batch_size=batch_size,
        )
    except WatchkeeperError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc), "type": type(exc).__name__}))
        raise _fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        logged = f"; logged to {summary['log']}" if summary["log"] else ""
        typer.echo(
            f"scored {summary['rows']} rows with {summary['model']} version {summary['version']} "
            f"({summary['ref']}) into {summary['out']}{logged}"
        )
    if summary["conflicts"]:
        for conflict in summary["conflicts"]:
            typer.echo(
                f"error: prediction id {conflict!r} is already logged for model "
                f"{summary['model']!r} with other features: not logged (use new ids, or --no-log)",
                err=True,
            )
        raise typer.Exit(code=2)


def score_file(
    ref: str,
    data: Path,
    out: Path,
    *,
    root: str,
    registry_url: str | None,
    artifacts: str | None,
    log_path: str | None,
    id_column: str | None,
    batch_size: int,
) -> dict[str, Any]:
    """Score ``data`` into ``out``; return a summary (see ``watchkeeper predict``)."""
    import pandas as pd

    from watchkeeper.data import read_table
    from watchkeeper.gateway import ServedVersion
    from watchkeeper.registry import Registry

    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    if out.suffix.lower() not in _OUTPUT_SUFFIXES:
        raise InputError(
            f"--out must end in one of {', '.join(_OUTPUT_SUFFIXES)}, got {out.name!r}"
        )
    name, alias = split_model_ref(ref)
    with Registry(registry_url, artifacts=artifacts, root=root) as registry:
        served = ServedVersion(registry.load_model(name, alias))
    spec = served.spec
    if spec.n_positional is not None:
        raise InputError(
            f"model {name!r} version {served.version} has no input schema, so the file's "
            "columns cannot be matched to its inputs; re-register it with reference= or schema="
        )
    table = read_table(data)
    missing = [c for c in spec.columns if c not in table.column_names]
    if missing:
        raise InputError(
            f"{data} lacks the model's inputs {missing}; its columns: {table.column_names}"
        )
    if served.schema is not None:
        checked = [c for c in spec.columns if c in served.schema]
        report = served.schema.select(checked).validate(table.select(checked))
        if report.type_mismatches:
            raise InputError(
                f"{data} does not fit the model's schema: " + "; ".join(report.problems())
            )
    frame = table.to_pandas()
    ids = _ids(frame, served, id_column, len(frame))
    logged_columns = [c for c in frame.columns if c in spec.known]
    sink = None
    if log_path is not None:
        from watchkeeper.logstore import SQLiteLogSink

        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        sink = SQLiteLogSink(log_path)
    arm = alias if not alias.isdigit() else f"v{alias}"
    predictions: list[Any] = []
    conflicts: list[str] = []
    scores: list[dict[str, float]] | None = [] if served.has_proba else None
    try:
        for start in range(0, len(frame), batch_size):
            part = frame.iloc[start : start + batch_size]
            X = (
                part[list(spec.columns)]
                if spec.as_frame
                else part[list(spec.columns)].to_numpy(dtype=float)
            )
            began = time.perf_counter()
            batch_predictions, batch_scores = served.infer(X)
            latency_ms = (time.perf_counter() - began) * 1000.0 / max(len(part), 1)
            predictions.extend(batch_predictions)
            if scores is not None:
                scores.extend(batch_scores or [{} for _ in batch_predictions])
            if sink is not None:
                batch = _records(
                    part,
                    logged_columns,
                    ids[start:],
                    served,
                    arm,
                    batch_predictions,
                    batch_scores,
                    latency_ms,
                )
                written = sink.write_predictions(batch)
                if written is not None:
                    conflicts.extend(batch[i].id for i in written.conflicts)
    finally:
        if sink is not None:
            sink.close()
    result = pd.DataFrame({"id": ids, "prediction": predictions})
    if scores:
        for key in served.class_keys or []:
            result[f"score_{key}"] = [s.get(key) for s in scores]
    _write(result, out)
    return {
        "model": name,
        "ref": alias,
        "version": served.version,
        "rows": len(result),
        "out": str(out),
        "log": log_path,
        "conflicts": conflicts,
    }


def _ids(frame: Any, served: Any, id_column: str | None, n: int) -> list[str]:
    column = id_column
    if column is None and served.schema is not None:
        found = served.schema.with_role("id")
        column = found[0] if found and found[0] in frame.columns else None
    if column is None:
        run = uuid.uuid4().hex[:12]
        return [f"{run}-{i}" for i in range(n)]
    if column not in frame.columns:
        raise InputError(f"--id-column {column!r} is not a column of the data")
    values = [str(v) for v in frame[column].tolist()]
    if len(set(values)) != len(values):
        raise InputError(f"the id column {column!r} repeats values; prediction ids must be unique")
    return values


def _records(
    part: Any,
    columns: list[str],
    ids: list[str],
    served: Any,
    arm: str,
    predictions: list[Any],
    scores: list[dict[str, float]] | None,
    latency_ms: float,
) -> list[Any]:
    from watchkeeper.logstore import PredictionRecord

    now = time.time()
    rows = part[columns].to_dict(orient="records")
    return [
        PredictionRecord(
            id=ids[i],
            ts=now,
            model=served.name,
            version=served.version,
            arm=arm,
            features=row,
            prediction=predictions[i],
            scores=None if scores is None else scores[i],
            latency_ms=latency_ms,
        )
        for i, row in enumerate(rows)
    ]


def _write(result: Any, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    try:
        if suffix == ".csv":
            result.to_csv(out, index=False)
        elif suffix == ".jsonl":
            result.to_json(out, orient="records", lines=True)
        else:
            result.to_parquet(out, index=False)
    except OSError as exc:
        raise InputError(f"cannot write {str(out)!r}: {exc.strerror}") from exc
