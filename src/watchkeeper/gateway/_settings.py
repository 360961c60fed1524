"""Settings of the serving gateway: one frozen object, built from arguments or the environment.

Tokens are kept out of ``repr`` and are never logged. They come from environment variables
(``WATCHKEEPER_PREDICT_TOKENS``, ``WATCHKEEPER_ADMIN_TOKENS``, comma-separated) or a file
(``WATCHKEEPER_TOKENS_FILE``) with one ``SCOPE TOKEN`` pair per line.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from watchkeeper.exceptions import InputError

__all__ = ["GatewayConfig", "is_loopback", "read_tokens_file"]

UnknownPolicy = Literal["ignore", "reject"]
MissingPolicy = Literal["reject", "null"]
OnFull = Literal["block", "drop"]
Synchronous = Literal["full", "normal"]

_SCOPES = ("predict", "admin")
_MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway needs to know; change it by making a new one.

    Parameters
    ----------
    root
        Project folder (registry database, artifacts and prediction log by default).
    registry_url
        Registry database URL; default SQLite in ``<root>/registry.db``.
    artifacts
        Artifact folder or fsspec URL; default ``<root>/artifacts``.
    log_path
        Prediction log: a SQLite file, ``postgresql://...`` or an fsspec URL of a Parquet log
        (see :func:`~watchkeeper.logstore.open_sink`); default ``<root>/predictions.db``.
    host, port, workers
        Where ``watchkeeper serve`` binds and how many worker processes it starts.
    predict_tokens, admin_tokens
        Bearer tokens granting the ``predict`` scope (predict, feedback, model metadata)
        and the ``admin`` scope (routes, promotion, rollback, reload). A token has only the
        scopes it is listed under.
    require_auth
        ``None`` (default): tokens are required when the bind address is not loopback or when
        any token is configured. ``True``/``False`` force it.
    max_body_bytes
        Larger request bodies get 413.
    max_batch
        Most records in one request (422 beyond).
    unknown_fields
        ``ignore`` fields the model does not know, or ``reject`` them (422).
    missing_fields
        ``reject`` records that lack a model input or give it ``null`` (422), or pass
        them to the model as missing values (``null``).
    default_alias
        Alias served by models that have no stored route.
    models
        Serve only these models (default: every model of the registry).
    refresh_interval
        Seconds between checks for route and alias changes.
    return_scores
        Return (and log) class probabilities where the model has them.
    inline_rows
        Batches of at most this many records are predicted on the event loop; larger ones
        in a worker thread, so that a huge batch does not stall other requests. Measured on
        a 100-tree gradient-boosting model: the thread hop costs more than predicting 100
        rows (about 0.35 ms against 0.75 ms), and under the GIL it buys no parallelism for
        small batches.
    max_shadow_tasks
        Most shadow predictions in flight per worker; beyond, shadow copies are skipped and
        counted, so a slow challenger cannot grow memory.
    log_on_full
        When the log's queue is full: ``block`` (requests wait: every answered prediction
        is logged) or ``drop`` (answer anyway; dropped records are counted in
        ``watchkeeper_log_dropped_records_total``).
    log_synchronous
        SQLite log durability: ``full`` survives power loss, ``normal`` survives a killed
        process but not a power cut.
    monitor_every
        Seconds between runs of the monitor (and its alert rules) inside the gateway, in
        exactly one worker; ``None`` or 0: the gateway does not run it (run ``watchkeeper
        monitor watch`` or cron instead). ``/metrics`` exports the monitor gauges either way.
    monitor_window
        Window size of that monitor: a duration (``"1h"``) or a row count (``"1000"``).
    monitor_url
        Monitor history database URL; default SQLite in ``<root>/monitor.db``.
    alert_rules
        Alert rules file of that monitor (default: the rules shipped with watchkeeper).
    allowed_hosts
        Host names the ``Host`` header may carry (``"*"``: any; ``".example.com"``: a domain
        and its subdomains); others get 421, which defeats DNS rebinding. Default: the
        loopback names when bound to loopback; any host on a wildcard bind (``0.0.0.0``,
        tokens are then required); the loopback names and the bind address otherwise.
    cors_origins
        Origins (``https://app.example.com``) allowed to call the gateway from a browser:
        CORS headers for them, and their state-changing requests accepted. Default: none
        (CORS off; cross-origin writes refused with 403).

    Examples
    --------
    >>> s = GatewayConfig(root="/srv/wk", admin_tokens=("an-admin-token-0123456789",))
    >>> s.auth_required, s.resolved_log_path
    (True, '/srv/wk/predictions.db')
    >>> "an-admin-token" in repr(s)
    False
    """

    root: str = ".watchkeeper"
    registry_url: str | None = None
    artifacts: str | None = None
    log_path: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    predict_tokens: tuple[str, ...] = field(default=(), repr=False)
    admin_tokens: tuple[str, ...] = field(default=(), repr=False)
    require_auth: bool | None = None
    max_body_bytes: int = 1_048_576
    max_batch: int = 10_000
    unknown_fields: UnknownPolicy = "ignore"
    missing_fields: MissingPolicy = "reject"
    default_alias: str = "champion"
    models: tuple[str, ...] | None = None
    refresh_interval: float = 0.5
    return_scores: bool = True
    inline_rows: int = 512
    max_shadow_tasks: int = 64
    log_on_full: OnFull = "block"
    log_synchronous: Synchronous = "full"
    monitor_every: float | None = None
    monitor_window: str = "1h"
    monitor_url: str | None = None
    alert_rules: str | None = None
    allowed_hosts: tuple[str, ...] | None = None
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from watchkeeper.registry import validate_alias, validate_name

        if not 0 < self.port < 65536:
            raise InputError(f"port must be between 1 and 65535, got {self.port}")
        if self.workers < 1:
            raise InputError(f"workers must be at least 1, got {self.workers}")
        for name, value in (
            ("max_body_bytes", self.max_body_bytes),
            ("max_batch", self.max_batch),
            ("max_shadow_tasks", self.max_shadow_tasks),
        ):
            if value < 1:
                raise InputError(f"{name} must be at least 1, got {value}")
        if self.inline_rows < 0:
            raise InputError(f"inline_rows must be >= 0, got {self.inline_rows}")
        if not self.refresh_interval > 0:
            raise InputError(
                f"refresh_interval must be positive seconds, got {self.refresh_interval}"
            )
        if self.unknown_fields not in ("ignore", "reject"):
            raise InputError(
                f"unknown_fields must be 'ignore' or 'reject', got {self.unknown_fields!r}"
            )
        if self.missing_fields not in ("reject", "null"):
            raise InputError(
                f"missing_fields must be 'reject' or 'null', got {self.missing_fields!r}"
            )
        if self.log_on_full not in ("block", "drop"):
            raise InputError(f"log_on_full must be 'block' or 'drop', got {self.log_on_full!r}")
        if self.log_synchronous not in ("full", "normal"):
            raise InputError(
                f"log_synchronous must be 'full' or 'normal', got {self.log_synchronous!r}"
            )
        if self.monitor_every is not None and not self.monitor_every >= 0:
            raise InputError(
                f"monitor_every must be seconds >= 0 (0: off), got {self.monitor_every}"
            )
        validate_alias(self.default_alias)
        if self.models is not None:
            object.__setattr__(self, "models", tuple(validate_name(m) for m in self.models))
        if self.allowed_hosts is not None:
            object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        for origin in self.cors_origins:
            if origin == "*" or "://" not in origin:
                raise InputError(
                    f"a CORS origin must be a full origin such as https://app.example.com, "
                    f"got {origin!r} (a wildcard would let any web page act for the gateway's "
                    "users)"
                )
        for scope, tokens in (("predict", self.predict_tokens), ("admin", self.admin_tokens)):
            object.__setattr__(self, f"{scope}_tokens", tuple(tokens))
            for token in tokens:
                _check_token(token, scope)

    @property
    def resolved_allowed_hosts(self) -> tuple[str, ...]:
        """The host names the gateway answers to (see ``allowed_hosts``).

        Examples
        --------
        >>> GatewayConfig().resolved_allowed_hosts
        ('localhost', '127.0.0.1', '::1')
        >>> GatewayConfig(host="0.0.0.0", require_auth=False).resolved_allowed_hosts
        ('*',)
        """
        if self.allowed_hosts:
            return self.allowed_hosts
        loopback = ("localhost", "127.0.0.1", "::1")
        if is_loopback(self.host):
            return loopback if self.host in loopback else (*loopback, self.host)
        if self.host in ("0.0.0.0", "::", ""):
            return ("*",)
        return (*loopback, self.host)

    @property
    def auth_required(self) -> bool:
        """Whether requests need a bearer token (see ``require_auth``)."""
        if self.require_auth is not None:
            return self.require_auth
        return not is_loopback(self.host) or bool(self.predict_tokens or self.admin_tokens)

    @property
    def resolved_log_path(self) -> str:
        """The prediction log file actually used."""
        return self.log_path or str(Path(self.root) / "predictions.db")

    def check_startable(self) -> None:
        """Refuse settings that would expose an open gateway on the network.

        Examples
        --------
        >>> GatewayConfig(host="0.0.0.0").check_startable()
        Traceback (most recent call last):
        ...
        watchkeeper.exceptions.InputError: the gateway binds to 0.0.0.0, ...
        """
        if self.auth_required and not (self.predict_tokens or self.admin_tokens):
            raise InputError(
                f"the gateway binds to {self.host}, which is reachable from other machines, so "
                "it requires bearer tokens, and none are configured: set "
                "WATCHKEEPER_PREDICT_TOKENS / WATCHKEEPER_ADMIN_TOKENS or pass --tokens-file "
                "(lines 'predict TOKEN' / 'admin TOKEN'); or, on a trusted network only, "
                "--no-auth"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> GatewayConfig:
        """Settings from ``WATCHKEEPER_*`` environment variables, then ``overrides``.

        Variables: ``WATCHKEEPER_ROOT``, ``WATCHKEEPER_REGISTRY_URL``,
        ``WATCHKEEPER_ARTIFACTS``, ``WATCHKEEPER_LOG``, ``WATCHKEEPER_MONITOR_URL``,
        ``WATCHKEEPER_ALERT_RULES``, ``WATCHKEEPER_PREDICT_TOKENS``,
        ``WATCHKEEPER_ADMIN_TOKENS``, ``WATCHKEEPER_TOKENS_FILE`` and
        ``WATCHKEEPER_GATEWAY_*`` for the other fields (upper-case field names, e.g.
        ``WATCHKEEPER_GATEWAY_MAX_BODY_BYTES``; ``MODELS`` comma-separated).

        Examples
        --------
        >>> env = {"WATCHKEEPER_ROOT": "/srv", "WATCHKEEPER_GATEWAY_MAX_BATCH": "50",
        ...        "WATCHKEEPER_PREDICT_TOKENS": "tok-aaaaaaaaaaaaaaaa, tok-bbbbbbbbbbbbbbbb"}
        >>> s = GatewayConfig.from_env(env, port=9000)
        >>> s.root, s.max_batch, s.port, len(s.predict_tokens)
        ('/srv', 50, 9000, 2)
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        plain = {
            "WATCHKEEPER_ROOT": "root",
            "WATCHKEEPER_REGISTRY_URL": "registry_url",
            "WATCHKEEPER_ARTIFACTS": "artifacts",
            "WATCHKEEPER_LOG": "log_path",
            "WATCHKEEPER_MONITOR_URL": "monitor_url",
            "WATCHKEEPER_ALERT_RULES": "alert_rules",
        }
        for var, name in plain.items():
            if env.get(var):
                values[name] = env[var]
        for name, kind in _ENV_FIELDS.items():
            raw = env.get(f"WATCHKEEPER_GATEWAY_{name.upper()}")
            if raw is not None and raw != "":
                values[name] = _parse(name, kind, raw)
        tokens: dict[str, list[str]] = {scope: [] for scope in _SCOPES}
        for scope in _SCOPES:
            raw = env.get(f"WATCHKEEPER_{scope.upper()}_TOKENS", "")
            tokens[scope].extend(tok.strip() for tok in raw.split(",") if tok.strip())
        if env.get("WATCHKEEPER_TOKENS_FILE"):
            for scope, found in read_tokens_file(env["WATCHKEEPER_TOKENS_FILE"]).items():
                tokens[scope].extend(found)
        values["predict_tokens"] = tuple(tokens["predict"])
        values["admin_tokens"] = tuple(tokens["admin"])
        values.update(overrides)
        return replace(cls(), **values)  # type: ignore[arg-type]


_ENV_FIELDS: dict[str, str] = {
    "host": "str",
    "port": "int",
    "workers": "int",
    "require_auth": "bool",
    "max_body_bytes": "int",
    "max_batch": "int",
    "unknown_fields": "str",
    "missing_fields": "str",
    "default_alias": "str",
    "models": "list",
    "refresh_interval": "float",
    "return_scores": "bool",
    "inline_rows": "int",
    "max_shadow_tasks": "int",
    "log_on_full": "str",
    "log_synchronous": "str",
    "monitor_every": "float",
    "monitor_window": "str",
    "allowed_hosts": "list",
    "cors_origins": "list",
}


def _parse(name: str, kind: str, raw: str) -> object:
    var = f"WATCHKEEPER_GATEWAY_{name.upper()}"
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("1", "true", "yes")
        if kind == "list":
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise InputError(f"{var}={raw!r} is not a valid {kind}") from None
    return raw


def _check_token(token: object, scope: str) -> None:
    # Never echo the token itself: error messages end up in logs.
    if not isinstance(token, str) or len(token) < _MIN_TOKEN_LENGTH:
        raise InputError(
            f"a {scope} token is shorter than {_MIN_TOKEN_LENGTH} characters; use long random "
            "tokens (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in token) or "," in token:
        raise InputError(
            f"a {scope} token contains spaces, commas or control characters; use URL-safe tokens"
        )


def read_tokens_file(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Tokens by scope from a file of ``SCOPE TOKEN`` lines (``#`` starts a comment).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "tokens"
    ...     _ = p.write_text("# ops\\npredict aaaaaaaaaaaaaaaaaaaa\\nadmin bbbbbbbbbbbbbbbbbbbb\\n")
    ...     {scope: len(found) for scope, found in read_tokens_file(p).items()}
    {'predict': 1, 'admin': 1}
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the tokens file {str(file)!r}: {exc.strerror}") from exc
    found: dict[str, list[str]] = {scope: [] for scope in _SCOPES}
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        parts = content.split()
        if len(parts) != 2 or parts[0] not in _SCOPES:
            raise InputError(
                f"{file}:{number}: expected 'predict TOKEN' or 'admin TOKEN' (the line is not "
                "shown because it may hold a secret)"
            )
        found[parts[0]].append(parts[1])
    return found


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the gateway on this machine.

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
