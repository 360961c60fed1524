"""``watchkeeper serve``: the gateway on uvicorn (``watchkeeper predict`` is registered
along with it, from :mod:`._predict`).

``serve`` passes its settings to worker processes through ``WATCHKEEPER_*`` environment
variables, so one worker and many behave the same; with several workers it gives
prometheus-client a fresh multiprocess folder so ``/metrics`` sums every worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import typer

from watchkeeper.cli._app import EXIT_USAGE, app
from watchkeeper.exceptions import WatchkeeperError

__all__ = ["serve_command"]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address."),
    port: int = typer.Option(8080, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", help="Worker processes."),
    root: str = typer.Option(
        ".watchkeeper", "--root", envvar="WATCHKEEPER_ROOT", help="Project folder."
    ),
    registry: str | None = typer.Option(
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
        envvar="WATCHKEEPER_LOG",
        help="Prediction log: a SQLite file (one host), postgresql://user@host/db (many "
        "workers and replicas) or an fsspec URL of a Parquet log such as s3://bucket/log "
        "(default: <root>/predictions.db).",
    ),
    tokens_file: str | None = typer.Option(
        None,
        "--tokens-file",
        envvar="WATCHKEEPER_TOKENS_FILE",
        help="File of 'predict TOKEN' / 'admin TOKEN' lines (tokens may also come from "
        "WATCHKEEPER_PREDICT_TOKENS / WATCHKEEPER_ADMIN_TOKENS).",
    ),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Serve without tokens even on a non-loopback address."
    ),
    model: list[str] | None = typer.Option(
        None, "--model", help="Serve only this model (repeatable; default: all)."
    ),
    default_alias: str = typer.Option(
        "champion", "--default-alias", help="Alias served by models without a route."
    ),
    max_body_bytes: int = typer.Option(1_048_576, "--max-body-bytes", help="413 beyond."),
    max_batch: int = typer.Option(10_000, "--max-batch", help="Most records per request."),
    unknown_fields: str = typer.Option(
        "ignore", "--unknown-fields", help="'ignore' or 'reject' fields the model lacks."
    ),
    missing_fields: str = typer.Option(
        "reject", "--missing-fields", help="'reject' missing inputs or pass them as 'null'."
    ),
    log_on_full: str = typer.Option(
        "block", "--log-on-full", help="Full log queue: 'block' requests or 'drop' records."
    ),
    log_synchronous: str = typer.Option(
        "full", "--log-synchronous", help="'full' (survives power loss) or 'normal'."
    ),
    allowed_host: list[str] | None = typer.Option(
        None,
        "--allowed-host",
        help="Host name the Host header may carry (repeatable; '*': any). Default: the "
        "loopback names on a loopback bind.",
    ),
    cors_origin: list[str] | None = typer.Option(
        None,
        "--cors-origin",
        help="Browser origin allowed to call the gateway (repeatable; default: CORS off).",
    ),
    access_log: bool = typer.Option(
        False,
        "--access-log/--no-access-log",
        help="uvicorn's per-request log lines (off: every prediction is in the prediction log).",
    ),
    log_level: str = typer.Option("info", "--log-level", help="Server log level."),
    keep_alive: int = typer.Option(
        75,
        "--keep-alive",
        min=1,
        help="Seconds an idle client connection stays open. Keep it above the idle timeout "
        "of the clients and load balancers in front (60 s on common cloud balancers; httpx "
        "pools connections for 5 s): a server closing first races their next request.",
    ),
) -> None:
    """Serve the registry's models over HTTP (predict, feedback, v2 inference, metrics)."""
    from watchkeeper._extras import require

    for module in ("uvicorn", "fastapi", "prometheus_client"):
        require(module, extra="serve", purpose="watchkeeper serve")
    if tokens_file:
        os.environ["WATCHKEEPER_TOKENS_FILE"] = tokens_file
    fields: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "require_auth": False if no_auth else None,
        "max_body_bytes": max_body_bytes,
        "max_batch": max_batch,
        "unknown_fields": unknown_fields,
        "missing_fields": missing_fields,
        "default_alias": default_alias,
        "models": tuple(model) if model else None,
        "log_on_full": log_on_full,
        "log_synchronous": log_synchronous,
    }
    if allowed_host:
        fields["allowed_hosts"] = tuple(allowed_host)
    if cors_origin:
        fields["cors_origins"] = tuple(cors_origin)
    paths = {"root": root, "registry_url": registry, "artifacts": artifacts, "log_path": log}
    try:
        from watchkeeper.gateway import GatewayConfig

        fields.update({k: v for k, v in paths.items() if v})
        settings = GatewayConfig.from_env(None, **fields)
        settings.check_startable()
        _preflight(settings)
    except WatchkeeperError as exc:
        raise _fail(str(exc)) from exc
    _export(settings)
    metrics_dir = _multiprocess_dir(workers)
    if settings.auth_required:
        scopes = [
            s
            for s, t in (("predict", settings.predict_tokens), ("admin", settings.admin_tokens))
            if t
        ]
        typer.echo(f"bearer tokens required (scopes configured: {', '.join(scopes)})", err=True)
    elif not _loopback(host):
        typer.echo("warning: serving WITHOUT authentication on a non-loopback address", err=True)
    import uvicorn

    try:
        uvicorn.run(
            "watchkeeper.app:app_from_env",  # the application shell: core + dashboard + monitor
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=access_log,
            log_level=log_level,
            timeout_graceful_shutdown=30,
            timeout_keep_alive=keep_alive,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _loopback(host: str) -> bool:
    from watchkeeper.gateway import is_loopback

    return is_loopback(host)


def _preflight(settings: Any) -> None:
    """Fail before starting workers: bad registry URL, unwritable log folder."""
    from watchkeeper.gateway import RouteStore
    from watchkeeper.registry import Registry

    with Registry(settings.registry_url, artifacts=settings.artifacts, root=settings.root) as reg:
        # Creates the route table once, before several workers would race to.
        RouteStore(reg)
    from watchkeeper.logstore import open_sink

    # Creates the log's folder or tables once, and fails early on a bad URL or an
    # unreachable server, before several workers would.
    open_sink(settings.resolved_log_path).close()


def _export(settings: Any) -> None:
    """Hand the settings to worker processes (tokens stay where they came from)."""
    plain = {
        "WATCHKEEPER_ROOT": settings.root,
        "WATCHKEEPER_REGISTRY_URL": settings.registry_url,
        "WATCHKEEPER_ARTIFACTS": settings.artifacts,
        "WATCHKEEPER_LOG": settings.log_path,
    }
    for var, value in plain.items():
        if value:
            os.environ[var] = str(value)
    gateway_fields = {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "max_body_bytes": settings.max_body_bytes,
        "max_batch": settings.max_batch,
        "unknown_fields": settings.unknown_fields,
        "missing_fields": settings.missing_fields,
        "default_alias": settings.default_alias,
        "log_on_full": settings.log_on_full,
        "log_synchronous": settings.log_synchronous,
    }
    if settings.require_auth is not None:
        gateway_fields["require_auth"] = "true" if settings.require_auth else "false"
    if settings.models:
        gateway_fields["models"] = ",".join(settings.models)
    if settings.allowed_hosts:
        gateway_fields["allowed_hosts"] = ",".join(settings.allowed_hosts)
    if settings.cors_origins:
        gateway_fields["cors_origins"] = ",".join(settings.cors_origins)
    for name, value in gateway_fields.items():
        os.environ[f"WATCHKEEPER_GATEWAY_{name.upper()}"] = str(value)


def _multiprocess_dir(workers: int) -> str | None:
    """A fresh folder for prometheus-client's per-process files (several workers only)."""
    if workers < 2:
        return None
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        # Files of a previous run would add its counts to this one's.
        for stale in folder.glob("*.db"):
            stale.unlink()
        return None
    made = tempfile.mkdtemp(prefix="watchkeeper-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    return made


# The batch-scoring command belongs with serving: importing this module registers both.
from watchkeeper.cli import _predict  # noqa: E402, F401
