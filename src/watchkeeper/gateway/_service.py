"""One prediction request from records to a durable answer, shared by the v1 and v2 APIs.

Order of work: pick the model and arm from the request's snapshot, validate every record
(all problems at once), build the model input once, predict (inline for small batches, in
a worker thread otherwise), write the records to the log and wait until they are durable,
and only then answer. Shadow copies (:mod:`._shadow`) run afterwards, off the response
path.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import math
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from watchkeeper.exceptions import InputError
from watchkeeper.gateway._errors import ApiError, FieldProblem, first_line
from watchkeeper.gateway._log import PredictionLog
from watchkeeper.gateway._metrics import GatewayMetrics
from watchkeeper.gateway._models import (
    ServedModel,
    ServedVersion,
    ServingState,
    Snapshot,
    with_outliers,
)
from watchkeeper.gateway._routes_store import RouteStore
from watchkeeper.gateway._routing import Decision, choose
from watchkeeper.gateway._security import TokenAuth
from watchkeeper.gateway._settings import GatewayConfig
from watchkeeper.gateway._shadow import schedule_shadow
from watchkeeper.gateway._validation import (
    build_input,
    check_columns,
    check_contract_rules,
    check_extras,
    check_record_id,
    records_to_columns,
)
from watchkeeper.logstore import IdConflictError, PredictionRecord
from watchkeeper.registry import Registry, validate_name

__all__ = [
    "Answer",
    "Context",
    "current_snapshot",
    "event_time",
    "predict_records",
    "refresh",
    "served_model",
]

logger = logging.getLogger("watchkeeper.gateway")

Locate = Callable[[int, str], str]


@dataclass
class Context:
    """What every request handler of one app shares."""

    settings: GatewayConfig
    registry: Registry
    routes: RouteStore
    state: ServingState
    log: PredictionLog
    metrics: GatewayMetrics
    auth: TokenAuth
    shadow_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    watcher: asyncio.Task[None] | None = None
    #: When the log was last probed for writability, and the problem found (or None).
    log_probe: tuple[float, str | None] | None = None


@dataclass(frozen=True)
class Answer:
    """The result of one prediction request."""

    model: str
    version: int
    arm: str
    ids: list[str]
    predictions: list[Any]
    scores: list[dict[str, float]] | None
    #: each record's outlier score and flag, when the arm's version has a detector
    outlier_scores: list[float] | None = None
    outliers: list[bool] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The v1 response body (``outlier_scores`` and ``outliers`` only when the version
        answering has an outlier detector)."""
        out = {
            "model": self.model,
            "version": self.version,
            "arm": self.arm,
            "ids": self.ids,
            "predictions": self.predictions,
            "scores": self.scores,
        }
        if self.outlier_scores is not None:
            out["outlier_scores"] = self.outlier_scores
            out["outliers"] = self.outliers
        return out


async def current_snapshot(ctx: Context) -> Snapshot:
    """The snapshot a request works with, or 503 while models are still loading."""
    if ctx.watcher is None or not ctx.state.loaded:
        await ensure_started(ctx)
    if not ctx.state.loaded:
        raise ApiError(
            "the gateway is still loading its models; retry shortly",
            [FieldProblem("", ctx.state.last_error or "not ready")],
            status=503,
            headers={"Retry-After": "1"},
        )
    return ctx.state.current


async def ensure_started(ctx: Context) -> None:
    """Load the served state and start watching the registry, once.

    Normally the app's start-up does this; servers that skip ASGI lifespan events get it on
    the first request instead.
    """
    if ctx.watcher is None:
        ctx.watcher = asyncio.get_running_loop().create_task(_watch(ctx))
    if not ctx.state.loaded:
        await refresh(ctx)


async def refresh(ctx: Context, *, force: bool = False) -> bool:
    """Rebuild the served state now if it changed (or ``force``); update model-info."""
    swapped = await ctx.state.refresh(force)
    if swapped:
        _freeze_heap()
        snapshot = ctx.state.current
        ctx.metrics.set_served(
            (name, str(v.version), alias, v.record.format)
            for name, served in snapshot.models.items()
            for alias, v in served.versions.items()
        )
    return swapped


def _freeze_heap() -> None:
    """Take the long-lived heap (libraries, loaded models) out of the garbage collector's view.

    The gateway process holds a large, long-lived heap. Without this, the objects every
    request allocates regularly set off full collections that walk all of it and pause the
    event loop for tens of milliseconds: the p99 latency tail (BENCHMARKS.md, serving). After
    each model swap the previous freeze is undone first, so models no longer served can be
    collected, then what is live now is frozen again (``gc.freeze``, as recommended for
    long-running servers in the ``gc`` module's documentation).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def _watch(ctx: Context) -> None:
    while True:
        await asyncio.sleep(ctx.settings.refresh_interval)
        await refresh(ctx)
        try:
            ctx.metrics.sample_log(ctx.log.stats())
        except Exception:  # metrics must never stop the watcher
            logger.exception("cannot read the prediction log's statistics")


def served_model(snapshot: Snapshot, name: str) -> ServedModel:
    """The served model ``name`` or a 404 that says what is served."""
    try:
        validate_name(name)
    except ValueError as exc:
        # No model can have such a name: as unknown as any other.
        raise ApiError(
            "invalid model name", [FieldProblem("path.name", str(exc))], status=404
        ) from None
    found = snapshot.models.get(name)
    if found is not None:
        return found
    if name in snapshot.unserved:
        why = snapshot.unserved[name]
        raise ApiError(
            f"model {name!r} is not served", [FieldProblem("path.name", why)], status=404
        )
    shown = ", ".join(sorted(snapshot.models)[:20]) or "none"
    raise ApiError(
        f"no model named {name!r} is served",
        [FieldProblem("path.name", f"served models: {shown}")],
        status=404,
    )


def pick_arm(
    served: ServedModel, headers: Mapping[str, str], version: int | None = None
) -> tuple[Decision, ServedVersion]:
    """The arm answering this request (or the arm serving ``version``, if one is asked)."""
    if version is not None:
        for alias in served.route.aliases:
            found = served.versions.get(alias)
            if found is not None and found.version == version:
                return Decision(alias), found
        live = sorted({v.version for v in served.versions.values()})
        raise ApiError(
            f"version {version} of model {served.name!r} is not served",
            [FieldProblem("path.version", f"served versions: {live or 'none'}")],
            status=404,
        )
    decision = choose(served.route, served.name, headers.get(served.route.sticky_header))
    found = served.versions.get(decision.alias)
    if found is None:
        why = served.problems.get(decision.alias, "not loaded")
        raise ApiError(
            f"arm {decision.alias!r} of model {served.name!r} is unavailable",
            [FieldProblem("", why)],
            status=503,
        )
    return decision, found


_id_state: dict[int, tuple[str, Iterator[int]]] = {}


def _id_source() -> tuple[str, Iterator[int]]:
    pid = os.getpid()
    state = _id_state.get(pid)
    if state is None:  # first id in this process (workers are separate processes)
        state = _id_state[pid] = (secrets.token_hex(8), itertools.count())
    return state


def new_id() -> str:
    """A prediction id unique across processes and restarts: a random per-process prefix
    (64 bits) and a counter, cheaper than a UUID per record.

    Examples
    --------
    >>> first, second = new_id(), new_id()
    >>> first != second and first.split("-")[0] == second.split("-")[0]
    True
    """
    prefix, counter = _id_source()
    return f"{prefix}-{next(counter):x}"


def assign_ids(ids: list[str | None], request_id: str | None, locate: Locate) -> list[str]:
    """Fill missing record ids from ``X-Request-Id`` (``<id>-<i>`` in batches) or UUIDs.

    Examples
    --------
    >>> assign_ids(["a", None], "req", lambda i, n: n)
    ['a', 'req-1']
    >>> assign_ids([None], "req", lambda i, n: n)
    ['req']
    """
    n = len(ids)
    prefix, counter = _id_source()
    out: list[str] = []
    for i, given in enumerate(ids):
        if given is not None:
            out.append(given)
        elif request_id is not None:
            out.append(request_id if n == 1 else f"{request_id}-{i}")
        else:
            out.append(f"{prefix}-{next(counter):x}")
    if len(set(out)) != n:
        seen: set[str] = set()
        problems = []
        for i, value in enumerate(out):
            if value in seen:
                problems.append(
                    FieldProblem(locate(i, "id"), f"id {value!r} repeats an earlier one")
                )
            seen.add(value)
        raise ApiError("prediction ids must be unique within a request", problems)
    return out


def request_id_from(headers: Mapping[str, str]) -> str | None:
    """The validated ``X-Request-Id`` header, if sent."""
    raw = headers.get("x-request-id")
    if raw is None:
        return None
    found = check_record_id(raw, "header.x-request-id")
    if isinstance(found, FieldProblem):
        raise ApiError("invalid X-Request-Id header", [found])
    return found


async def predict_records(
    ctx: Context,
    served: ServedModel,
    records: Sequence[Mapping[str, Any]],
    headers: Mapping[str, str],
    *,
    locate: Locate,
    version: int | None = None,
) -> Answer:
    """Validate, predict, log durably, schedule the shadow copy; the answer to send."""
    settings = ctx.settings
    if not records:
        raise ApiError("no records to predict", [FieldProblem("body", "send at least one record")])
    if len(records) > settings.max_batch:
        raise ApiError(
            f"too many records: {len(records)} (at most {settings.max_batch} per request)",
            [FieldProblem("body", "split the batch into smaller requests")],
            status=413,
        )
    decision, arm = pick_arm(served, headers, version)
    spec = arm.spec
    if spec.n_positional is not None:
        raise ApiError(
            f"model {served.name!r} version {arm.version} was registered without an input "
            "schema, so named fields cannot be mapped to its inputs",
            [
                FieldProblem(
                    "",
                    "re-register it with reference= or schema=, or send a v2 request with one "
                    "tensor of shape [N, n_features]",
                )
            ],
        )
    columns, given_ids, problems = records_to_columns(
        records,
        spec,
        unknown=settings.unknown_fields,
        missing=settings.missing_fields,
        locate=locate,
    )
    problems += check_columns(columns, spec, missing=settings.missing_fields, locate=locate)
    if spec.extra_kinds:
        problems += check_extras(records, spec, locate=locate)
    if spec.contract is not None and not problems:
        problems += check_contract_rules(records, spec, locate=locate)
    if problems:
        raise ApiError("invalid input", problems)
    ids = assign_ids(given_ids, request_id_from(headers), locate)
    X = build_input(columns, spec)
    labels = (served.name, str(arm.version), decision.alias)
    started = time.perf_counter()
    try:
        if len(records) <= settings.inline_rows:
            predictions, scores = arm.infer(X, settings.return_scores)
        else:
            predictions, scores = await anyio.to_thread.run_sync(
                arm.infer, X, settings.return_scores
            )
    except (ValueError, TypeError) as exc:
        # Validated input the model still refuses (an unseen category, a dtype it cannot
        # cast): the caller can act on the model's own message.
        raise ApiError(
            "the model could not predict these records",
            [FieldProblem("", f"{type(exc).__name__}: {first_line(exc)}")],
        ) from exc
    seconds = time.perf_counter() - started
    ctx.metrics.child(ctx.metrics.model_duration, *labels).observe(seconds)
    features = _features(records, columns, spec.columns, spec.known)
    if arm.outliers is None:
        found = None
    elif len(records) <= settings.inline_rows:
        found = _outliers(arm, features)
    else:
        found = await anyio.to_thread.run_sync(_outliers, arm, features)
    # logged beside the features (copies: the shadow arm gets the request's own)
    logged_features = with_outliers(features, found)
    now = event_time(headers)
    latency_ms = seconds * 1000.0
    version_number = arm.version
    logged = [
        PredictionRecord(
            id=ids[i],
            ts=now,
            model=served.name,
            version=version_number,
            arm=decision.alias,
            features=logged_features[i],
            prediction=predictions[i],
            scores=None if scores is None else scores[i],
            latency_ms=latency_ms,
        )
        for i in range(len(ids))
    ]
    await write_log(ctx, logged)
    ctx.metrics.child(ctx.metrics.predictions, *labels, "false").inc(len(ids))
    if decision.shadow is not None:
        schedule_shadow(ctx, served, decision.shadow, records, ids, features, spec, X, ts=now)
    return Answer(
        served.name,
        version_number,
        decision.alias,
        ids,
        predictions,
        scores,
        None if found is None else found[0],
        None if found is None else found[1],
    )


def _outliers(
    arm: ServedVersion, features: Sequence[Mapping[str, Any]]
) -> tuple[list[float], list[bool]] | None:
    """Outlier scores and flags of the arm's version (``None`` without a detector)."""
    try:
        return arm.score_outliers(features)
    except InputError as exc:
        # the detector scores columns the schema knows: a mismatch is the registration's
        # fault, not the caller's
        logger.error("outlier detector of %s v%s failed: %s", arm.name, arm.version, exc)
        raise ApiError(
            "the outlier detector could not score these records",
            [FieldProblem("", first_line(exc))],
            status=500,
        ) from None


#: Largest lead of an ``X-Event-Time`` over the server's clock (clock skew), in seconds.
_MAX_EVENT_LEAD = 86_400.0


def event_time(headers: Mapping[str, str]) -> float:
    """The time the request's records are about, in UTC seconds: now, or ``X-Event-Time``.

    Replays and backfills send the time the data describes (UNIX seconds, or ISO 8601 with
    a UTC offset such as ``2011-04-01T08:00:00Z``), so that the log's windows follow the
    data's time, not the time of the replay. More than a day ahead of the server's clock is
    refused.

    Examples
    --------
    >>> event_time({"x-event-time": "2011-04-01T08:00:00Z"})
    1301644800.0
    >>> event_time({"x-event-time": "1301644800"})
    1301644800.0
    """
    raw = headers.get("x-event-time")
    now = time.time()
    if raw is None:
        return now
    value: float | None
    try:
        value = float(raw)
    except ValueError:
        value = _iso_seconds(raw)
    if value is None or not math.isfinite(value) or value < 0 or value > now + _MAX_EVENT_LEAD:
        raise ApiError(
            "invalid X-Event-Time header",
            [
                FieldProblem(
                    "header.x-event-time",
                    "UNIX seconds or ISO 8601 with a UTC offset (e.g. 2011-04-01T08:00:00Z), "
                    "not more than a day ahead of the server's clock",
                )
            ],
        )
    return value


def _iso_seconds(text: str) -> float | None:
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # ambiguous without an offset
    return parsed.timestamp()


async def write_log(ctx: Context, records: Sequence[PredictionRecord]) -> None:
    """Wait until ``records`` are durable; 503 if the log cannot take them."""
    started = time.perf_counter()
    try:
        dropped = await ctx.log.log(records)
    except IdConflictError as exc:
        ctx.metrics.log_conflicts.inc(len(exc.ids) or 1)
        raise ApiError(
            "prediction id already used for other features",
            [FieldProblem("id", str(exc))],
            status=409,
        ) from None
    except InputError as exc:
        # checked and encoded before it joined a shared commit: only this request fails
        raise ApiError(
            "a value of this request cannot be logged",
            [FieldProblem("", first_line(exc))],
        ) from None
    except Exception as exc:
        logger.exception("the prediction log failed")
        raise ApiError(
            "the prediction log is unavailable, so the prediction is not returned",
            [FieldProblem("", f"{type(exc).__name__}: {first_line(exc)}; retry later")],
            status=503,
        ) from exc
    ctx.metrics.log_write_duration.observe(time.perf_counter() - started)
    if dropped:
        ctx.metrics.log_dropped.inc(dropped)


def _features(
    records: Sequence[Mapping[str, Any]],
    columns: Mapping[str, list[Any]],
    inputs: Sequence[str],
    known: frozenset[str],
) -> list[dict[str, Any]]:
    # Inputs as validated (booleans normalised), plus the other fields the schema knows
    # (sensitive attributes, timestamps...) that monitoring needs even if the model does not.
    out = [{name: columns[name][i] for name in inputs} for i in range(len(records))]
    if len(known) > len(inputs):
        for row, record in zip(out, records, strict=True):
            for key, value in record.items():
                if key in known and key not in row:
                    row[key] = value
    return out


def finite_or_none(value: Any) -> Any:
    """Replace NaN and infinities (not JSON) by ``None``, recursively.

    Examples
    --------
    >>> finite_or_none([1.0, float("nan"), {"a": float("inf")}])
    [1.0, None, {'a': None}]
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    return value
