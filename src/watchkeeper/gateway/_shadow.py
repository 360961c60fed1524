"""Shadow predictions: the challenger sees a copy of the traffic, off the response path.

A shadow copy starts after the answering arm's records are durable and the response is on
its way; its outputs are logged with ``shadow=True`` (never returned) under the same prediction id
and the shadow alias as arm (the log is keyed by id and arm), so a label fed back for the
id labels the answer and its shadow copies alike. At most ``max_shadow_tasks`` copies
run at once per worker; beyond, copies are skipped and counted, so a slow challenger
cannot grow memory or delay answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from watchkeeper.exceptions import InputError
from watchkeeper.gateway._errors import first_line
from watchkeeper.gateway._models import ServedModel, ServedVersion, with_outliers
from watchkeeper.gateway._validation import build_input, check_columns, records_to_columns
from watchkeeper.logstore import PredictionRecord

if TYPE_CHECKING:
    from watchkeeper.gateway._service import Context

__all__ = ["schedule_shadow"]

logger = logging.getLogger("watchkeeper.gateway")


def schedule_shadow(
    ctx: Context,
    served: ServedModel,
    alias: str,
    records: Sequence[Mapping[str, Any]],
    ids: list[str],
    features: list[dict[str, Any]],
    spec: Any,
    X: Any,
    *,
    ts: float | None = None,
) -> None:
    """Start the shadow prediction unless too many are already in flight."""
    target = served.versions.get(alias)
    if target is None:
        return
    if len(ctx.shadow_tasks) >= ctx.settings.max_shadow_tasks:
        ctx.metrics.child(ctx.metrics.shadow_skipped, served.name).inc()
        return
    same_input = target.spec == spec
    task = asyncio.get_running_loop().create_task(
        _run_shadow(
            ctx,
            served.name,
            alias,
            target,
            records,
            ids,
            features,
            X if same_input else None,
            ts,
        )
    )
    ctx.shadow_tasks.add(task)
    task.add_done_callback(ctx.shadow_tasks.discard)


async def _run_shadow(
    ctx: Context,
    name: str,
    alias: str,
    target: ServedVersion,
    records: Sequence[Mapping[str, Any]],
    ids: list[str],
    features: list[dict[str, Any]],
    X: Any,
    ts: float | None,
) -> None:
    started = time.perf_counter()
    predictions: list[Any] = [None] * len(ids)
    scores: list[dict[str, float]] | None = None
    error: str | None = None
    try:
        if X is None:
            # The challenger takes other inputs than the answering arm: rebuild them.
            spec = target.spec
            columns, _, problems = records_to_columns(
                records, spec, unknown="ignore", missing="null", locate=lambda i, n: n
            )
            problems += check_columns(columns, spec, missing="null", locate=lambda i, n: n)
            if problems:
                raise ValueError(f"{problems[0].field}: {problems[0].problem}")
            X = build_input(columns, spec)
        predictions, scores = await anyio.to_thread.run_sync(
            target.infer, X, ctx.settings.return_scores
        )
    except Exception as exc:
        error = f"{type(exc).__name__}: {first_line(exc)}"
        logger.warning("shadow %s of model %s failed: %s", alias, name, error)
    seconds = time.perf_counter() - started
    if error is None and target.outliers is not None:
        try:
            features = with_outliers(
                features, await anyio.to_thread.run_sync(target.score_outliers, features)
            )
        except InputError as exc:  # the shadow's prediction stands; its scores are left out
            logger.warning("outlier detector of shadow %s of %s failed: %s", alias, name, exc)
    now = time.time() if ts is None else ts
    logged = [
        PredictionRecord(
            id=ids[i],
            ts=now,
            model=name,
            version=target.version,
            arm=alias,
            features=features[i],
            prediction=predictions[i],
            scores=None if scores is None else scores[i],
            latency_ms=seconds * 1000.0,
            shadow=True,
            status="ok" if error is None else "error",
            error=error,
        )
        for i in range(len(ids))
    ]
    labels = (name, str(target.version), alias)
    if error is None:
        ctx.metrics.child(ctx.metrics.model_duration, *labels).observe(seconds)
    try:
        dropped = await ctx.log.log(logged)
    except Exception:
        logger.exception("could not log the shadow predictions of model %s", name)
        return
    if dropped:
        ctx.metrics.log_dropped.inc(dropped)
    ctx.metrics.child(ctx.metrics.predictions, *labels, "true").inc(len(ids))
