"""``watchkeeper profile``, ``watchkeeper schema`` and ``watchkeeper compare``."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import typer

from watchkeeper.cli._app import EXIT_CLEAN, EXIT_FINDINGS, app, literal
from watchkeeper.cli._app import console as _cli_console
from watchkeeper.cli._options import MlflowExperiment, MlflowRun, MlflowTrackingUri
from watchkeeper.exceptions import InputError

#: Entry-point group of the profile engines (``watchkeeper.engines.spark`` declares "spark"
#: in pyproject.toml): the command line sits below the engines, so it finds them by name.
ENGINE_GROUP = "watchkeeper.engines"


def _engine(name: str) -> Any:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENGINE_GROUP):
        if ep.name == name:
            try:
                return ep.load()
            except ImportError as exc:
                raise InputError(
                    f"the {name} engine cannot start ({exc}); install it with "
                    f'pip install "watchkeeper[{name}]"'
                ) from None
    known = sorted({"local", *(ep.name for ep in entry_points(group=ENGINE_GROUP))})
    raise InputError(
        f"unknown engine {name!r}; installed engines: {', '.join(known)} (the Spark engine "
        'comes with pip install "watchkeeper[spark]")'
    )


class FailOn(enum.StrEnum):
    drift = "drift"
    quality = "quality"
    any = "any"


def _roles(specs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in specs or []:
        name, sep, role = spec.partition("=")
        if not sep or not name or not role:
            raise InputError(f"--role {spec!r} must look like COLUMN=ROLE, e.g. --role y=target")
        out[name.strip()] = role.strip()
    return out


def _console(err: bool = False) -> Any:
    return _cli_console(err=err)


@app.command("schema")
def schema_command(
    data: str = typer.Argument(..., help="CSV or Parquet file to infer the schema from."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the schema (JSON)."),
    role: list[str] = typer.Option(None, "--role", help="Declare a role: COLUMN=ROLE (repeat)."),
    contract: bool = typer.Option(
        False, "--contract", help="Propose a data contract from the data (rules it keeps)."
    ),
    contract_from: list[Path] = typer.Option(
        None,
        "--contract-from",
        help="Import contract rules from a TFDV schema (schema.pbtxt or JSON) or a Great "
        "Expectations suite (JSON); repeat to combine.",
    ),
) -> None:
    """Infer a schema (column kinds and roles) from data and save it as JSON to edit;
    with --contract / --contract-from, the schema carries a data contract too."""
    from watchkeeper.data import Contract, Schema

    schema = Schema.infer(data, roles=_roles(role) or None)
    rules = Contract.propose(data, schema) if contract else Contract()
    skipped: list[str] = []
    for path in contract_from or []:
        found = _import_contract(path)
        skipped += [f"{path.name}: {entry}" for entry in found.unmapped]
        kept = Contract(
            tuple(r for r in found.contract.rules if set(r.columns) <= set(schema.names))
        )
        skipped += [
            f"{path.name}: {r.name} (column not in the data)"
            for r in found.contract.rules
            if not set(r.columns) <= set(schema.names)
        ]
        rules = rules + kept
    if rules.rules:
        schema = schema.with_contract(rules)
    schema.save(out)
    said = f" and a contract of {len(rules)} rules" if rules.rules else ""
    _console().print(literal(f"schema of {len(schema.names)} columns{said} written to ", out))
    for entry in skipped:
        _console().print(literal("not imported: ", entry))


def _import_contract(path: Path) -> Any:
    import json

    from watchkeeper.data import Contract

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {str(path)!r}: {exc}") from None
    if text.lstrip().startswith("{"):
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{str(path)!r} is not valid JSON: {exc}") from None
        if isinstance(payload, dict) and "expectations" in payload:
            return Contract.from_great_expectations(payload)
        return Contract.from_tfdv(payload)
    return Contract.from_tfdv(text)


@app.command("contract")
def contract_command(
    data: str = typer.Argument(..., help="CSV or Parquet file to check."),
    schema: Path = typer.Option(..., "--schema", help="Schema JSON carrying the contract."),
    as_of: str = typer.Option(
        None, "--as-of", help="Time freshness rules are measured at (ISO 8601)."
    ),
) -> None:
    """Check data against the schema's contract; exit 1 when a rule is broken."""
    from watchkeeper.checks import Status, check_contract
    from watchkeeper.data import Schema

    sch = Schema.load(schema)
    if sch.contract is None or not sch.contract.rules:
        raise InputError(
            f"{str(schema)!r} has no contract; write one with watchkeeper schema --contract"
        )
    results = check_contract(sch.contract, data, as_of=as_of)
    console = _console()
    for r in results:
        console.print(literal(f"{r.status.value:>17}  {r.check}  ", r.reason))
    broken = [r for r in results if r.status in (Status.WARN, Status.ALERT)]
    console.print(literal(f"{len(broken)} of {len(results)} contract rules broken"))
    raise typer.Exit(EXIT_FINDINGS if broken else EXIT_CLEAN)


@app.command("profile")
def profile_command(
    data: str = typer.Argument(
        ..., help="CSV or Parquet file (or, with --engine spark, a Parquet directory)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Where to write the profile: binary (loads in milliseconds; name it .wkp), or "
        "JSON when the name ends in .json.",
    ),
    schema: Path | None = typer.Option(None, "--schema", help="Schema JSON (default: inferred)."),
    role: list[str] = typer.Option(None, "--role", help="Declare a role: COLUMN=ROLE (repeat)."),
    reference: Path | None = typer.Option(
        None,
        "--reference",
        help="Reference profile (.wkp or .json) whose bins and categories to use.",
    ),
    sample_size: int = typer.Option(
        100_000, "--sample-size", min=0, help="Rows kept for exact tests (0: none)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the row sample."),
    engine: str = typer.Option(
        "local", "--engine", help="local (Parquet streamed by row group) or spark."
    ),
    batch_rows: int = typer.Option(
        1_000_000, "--batch-rows", min=1, help="Rows per batch when streaming Parquet."
    ),
    storage_option: list[str] = typer.Option(
        None,
        "--storage-option",
        help="fsspec option of an object-store URL for --engine spark, KEY=VALUE (repeat; "
        'JSON values are parsed), e.g. client_kwargs=\'{"endpoint_url": "http://minio:9000"}\'.',
    ),
) -> None:
    """Summarise data into a mergeable profile, to reuse as the reference of `compare`.

    Parquet files are read row group by row group, so memory stays bounded whatever their size.
    """
    from watchkeeper.data import Profile, Schema, read_table

    ref = Profile.load(reference) if reference else None
    sch = Schema.load(schema) if schema else None
    if sch is None and ref is not None:
        sch = ref.schema
    options: dict[str, Any] = {"sample_size": sample_size, "random_state": seed}
    lower = data.lower()
    storage = _storage_options(storage_option)
    if storage and engine == "local":
        raise InputError(
            "--storage-option is for --engine spark (the local engine reads local files); "
            "add --engine spark, or copy the data to this machine"
        )
    if engine != "local":
        profile_parquet = _engine(engine)
        if sch is None:
            sch = _infer_parquet_schema(data, role, storage)
        if storage:
            options["storage_options"] = storage
        profile = profile_parquet(data, sch, reference=ref, **options)
    elif lower.endswith((".parquet", ".pq")):
        if sch is None:
            sch = _infer_parquet_schema(data, role)
        profile = Profile.from_parquet(data, sch, reference=ref, batch_rows=batch_rows, **options)
    else:
        table = read_table(data)
        if sch is None:
            sch = Schema.infer(table, roles=_roles(role) or None)
        profile = Profile.from_data(table, sch, reference=ref, **options)
    profile.save(out)
    _console().print(
        literal(f"profile of {profile.n_rows:,} rows x {len(sch.names)} columns written to ", out)
    )


def _storage_options(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as fsspec storage options (JSON values parsed, else strings)."""
    import json

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(
                f"--storage-option {pair!r} must look like KEY=VALUE, e.g. "
                "--storage-option anon=true"
            )
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _infer_parquet_schema(
    path: str, role: list[str] | None, storage_options: dict[str, Any] | None = None
) -> Any:
    """Schema inferred from the first 100,000 rows of a Parquet file or directory (on any
    fsspec URL when ``storage_options`` are given)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from watchkeeper.data import Schema

    try:
        if storage_options:
            import fsspec
            from pyarrow.fs import FSSpecHandler, PyFileSystem

            fs, root = fsspec.core.url_to_fs(path, **storage_options)
            dataset = ds.dataset(
                root,
                format="parquet",
                filesystem=PyFileSystem(FSSpecHandler(fs)),
                partitioning="hive",
            )
        else:
            dataset = ds.dataset(path, format="parquet")
        head = dataset.head(100_000)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"cannot read {path!r} as Parquet: {exc}") from exc
    if head.num_rows == 0:
        raise InputError(f"{path!r} has no rows; pass --schema to profile it")
    return Schema.infer(head, roles=_roles(role) or None)


@app.command("compare")
def compare_command(
    reference: str = typer.Argument(
        ..., help="Reference data (CSV/Parquet) or a saved profile (.wkp, .json)."
    ),
    current: str = typer.Argument(..., help="Current data (CSV/Parquet)."),
    schema: Path | None = typer.Option(None, "--schema", help="Schema JSON."),
    columns: str | None = typer.Option(
        None, "--columns", help="Comma-separated columns to compare (default: all features)."
    ),
    method: list[str] = typer.Option(
        None, "--method", help="Method per kind, e.g. --method numeric=ks (repeat)."
    ),
    rule: str = typer.Option("fdr", "--rule", help="Decision rule: fdr, threshold or chunks."),
    multivariate: str = typer.Option(
        "pca_reconstruction", "--multivariate", help="Multivariate method, or 'none'."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the JSON report here."),
    html_out: Path | None = typer.Option(None, "--html", help="Write the HTML report here."),
    fail_on: FailOn | None = typer.Option(
        None, "--fail-on", help="Exit 1 on drift, quality findings, or any of them."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice."),
    stream: bool | None = typer.Option(
        None,
        "--stream/--no-stream",
        help="Read current Parquet in batches into a profile (default: files over 5M rows).",
    ),
    batch_rows: int = typer.Option(
        1_000_000, "--batch-rows", min=1, help="Rows per batch when streaming Parquet."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
    mlflow_run: MlflowRun = None,
    mlflow_experiment: MlflowExperiment = None,
    mlflow_tracking_uri: MlflowTrackingUri = None,
) -> None:
    """Compare current data with a reference: drift per column and overall, and data quality.

    Exit codes: 0 clean (or no --fail-on), 1 findings matching --fail-on, 2 usage or input
    error.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from watchkeeper.report import compare

    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    mv = None if multivariate.lower() in ("none", "") else multivariate
    err = _console(err=True)
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    ) as bar:
        task = bar.add_task("comparing columns", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = compare(
            reference,
            current,
            schema=schema,
            columns=cols,
            methods=method or None,
            rule=rule,
            multivariate=mv,
            random_state=seed,
            progress=progress,
            stream=stream,
            batch_rows=batch_rows,
        )
    if json_out:
        report.to_json(json_out)
    if html_out:
        report.to_html(html_out)
    mlflow_run_id = None
    if mlflow_run or mlflow_experiment or mlflow_tracking_uri:
        from watchkeeper.integrations.mlflow import log_drift_report

        mlflow_run_id = log_drift_report(
            report,
            run_id=mlflow_run,
            experiment=mlflow_experiment,
            tracking_uri=mlflow_tracking_uri,
        )
    if not quiet:
        _print_report(report, json_out, html_out)
        if mlflow_run_id:
            _console().print(literal("MLflow run: ", mlflow_run_id))
    findings = {
        FailOn.drift: report.drifted,
        FailOn.quality: report.has_quality_issues,
        FailOn.any: report.drifted or report.has_quality_issues,
    }
    raise typer.Exit(EXIT_FINDINGS if fail_on and findings[fail_on] else EXIT_CLEAN)


def _print_report(report: Any, json_out: Path | None, html_out: Path | None) -> None:
    from rich.table import Table

    console = _console()
    d = report.dataset
    colour = "red" if d.drifted else "green"
    console.print(
        literal(
            ("Drift detected" if d.drifted else "No drift", f"bold {colour}"),
            f": {d.n_drifted} of {d.n_tested} columns drifted"
            + (f", {d.n_insufficient} with insufficient data" if d.n_insufficient else "")
            + " — rule ",
            d.rule,
        )
    )
    t = Table(show_edge=False, header_style="bold")
    for h in ("column", "status", "method", "effect", "p (adj.)", "reason"):
        t.add_column(h, justify="right" if h in ("effect", "p (adj.)") else "left")
    style = {"alert": "red", "warn": "yellow", "insufficient_data": "dim", "ok": "green"}
    for c in report.columns:
        t.add_row(
            literal(c.name),
            literal((c.status.value, style.get(c.status.value, ""))),
            literal(c.method),
            "—" if c.effect_size is None else f"{c.effect_size:.4g}",
            "—" if c.adjusted_p_value is None else f"{c.adjusted_p_value:.3g}",
            literal(c.reason),
        )
    console.print(t)
    for m in report.multivariate:
        console.print(
            literal("multivariate ", (m.method, "bold"), f": {m.status.value} — ", m.reason)
        )
    findings = report.quality_findings
    console.print(f"quality findings: {len(findings)}")
    for q in findings[:20]:
        console.print(
            literal(
                "  ",
                (q.status.value, style.get(q.status.value, "")),
                " ",
                q.subject,
                ": ",
                q.reason,
            )
        )
    for label, path in (("JSON", json_out), ("HTML", html_out)):
        if path:
            console.print(literal(f"{label} report: ", path))
