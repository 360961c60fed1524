"""The v1 API: predict, feedback, and what is served.

Bodies are one JSON object (one record) or a list of objects (a batch). Field names in
error details are the field for one record, ``[i].field`` in a batch.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from watchkeeper.exceptions import InputError
from watchkeeper.gateway._errors import ApiError, FieldProblem, first_line
from watchkeeper.gateway._http import json_response, read_json
from watchkeeper.gateway._observe import (
    RequestObservation,
    observation_dependency,
    request_observer,
)
from watchkeeper.gateway._schemas import (
    ERROR_RESPONSES,
    FeedbackResponse,
    ModelList,
    ModelName,
    PredictResponse,
    feedback_request_schema,
    predict_request_schema,
)
from watchkeeper.gateway._service import (
    Context,
    current_snapshot,
    event_time,
    predict_records,
    served_model,
)
from watchkeeper.gateway._validation import check_record_id
from watchkeeper.logstore import FeedbackRecord

__all__ = ["v1_router"]

logger = logging.getLogger("watchkeeper.gateway")

_MAX_NOTE = 2000
_FEEDBACK_KEYS = frozenset({"id", "label", "flag", "note"})


def v1_router(ctx: Context) -> APIRouter:
    """The v1 endpoints: predict, feedback, model listing and detail."""
    settings = ctx.settings
    metrics = ctx.metrics
    router = APIRouter()
    observed = observation_dependency(request_observer(metrics, "predict", count=True))

    @router.post(
        "/v1/models/{name}/predict",
        tags=["predict"],
        summary="Predict one record or a batch",
        response_model=None,
        responses={200: {"model": PredictResponse}, **ERROR_RESPONSES},
        openapi_extra=predict_request_schema(),
    )
    async def predict(
        name: ModelName,
        request: Request,
        obs: RequestObservation = observed,
    ) -> Response:
        """Predictions for one record (a JSON object keyed by feature name) or a batch (a
        list of them). Send ``X-Request-Id`` or a per-record ``id`` to choose prediction ids;
        send the route's sticky header (default ``X-User-Id``) to keep a user on one arm;
        send ``X-Event-Time`` (UNIX seconds or ISO 8601 with an offset) when replaying or
        backfilling, so the log records the time the data describes."""
        ctx.auth.check(request.headers.get("authorization"), "predict")
        snapshot = await current_snapshot(ctx)
        served = served_model(snapshot, name)
        obs.model = name
        body = await read_json(request, settings.max_body_bytes)
        single = isinstance(body, dict)
        records = [body] if single else body
        _require_records(records)
        answer = await predict_records(
            ctx,
            served,
            records,
            request.headers,
            locate=_locate_single if single else _locate_batch,
        )
        obs.answered(answer.version, answer.arm)
        return json_response(answer.to_dict())

    @router.post(
        "/v1/models/{name}/feedback",
        tags=["feedback"],
        summary="Labels and flags for earlier predictions",
        response_model=None,
        responses={200: {"model": FeedbackResponse}, **ERROR_RESPONSES},
        openapi_extra=feedback_request_schema(),
    )
    async def feedback(name: ModelName, request: Request) -> Response:
        """Ground-truth ``label`` and/or a user ``flag`` (with an optional ``note``) for
        earlier prediction ids, one object or a list, any time after the prediction."""
        ctx.auth.check(request.headers.get("authorization"), "predict")
        served = served_model(await current_snapshot(ctx), name)
        body = await read_json(request, settings.max_body_bytes)
        single = isinstance(body, dict)
        items = [body] if single else body
        _require_records(items)
        records = _feedback_records(
            items,
            _locate_single if single else _locate_batch,
            event_time(request.headers),
            served.name,
            ranking=any(v.record.output_kind == "ranking" for v in served.versions.values()),
        )
        try:
            result = await ctx.log.feedback(records)
        except InputError as exc:
            # checked and encoded before it joined a shared commit: only this request fails
            raise ApiError(
                "this feedback cannot be logged", [FieldProblem("", first_line(exc))]
            ) from None
        except Exception as exc:
            logger.exception("the prediction log failed to store feedback")
            raise ApiError(
                "the prediction log is unavailable; the feedback was not stored",
                [FieldProblem("", "retry later")],
                status=503,
            ) from exc
        n_labels = sum(1 for r in records if r.label is not None)
        n_flags = sum(1 for r in records if r.flag is not None)
        if n_labels:
            metrics.child(metrics.feedback, served.name, "label").inc(n_labels)
        if n_flags:
            metrics.child(metrics.feedback, served.name, "flag").inc(n_flags)
        return json_response(
            {
                "received": len(records),
                "matched": result.n_matched,
                "unknown": result.n_unknown,
                "unknown_ids": list(result.unknown_ids),
            }
        )

    @router.get(
        "/v1/models",
        tags=["models"],
        summary="Served models and their routes",
        response_model=None,
        responses={200: {"model": ModelList}, **ERROR_RESPONSES},
    )
    async def list_models(request: Request) -> Response:
        """Every served model with its route and the version behind each arm."""
        ctx.auth.check(request.headers.get("authorization"), "predict")
        snapshot = await current_snapshot(ctx)
        return json_response(
            {
                "models": [snapshot.models[n].describe() for n in sorted(snapshot.models)],
                "not_served": dict(snapshot.unserved),
            }
        )

    @router.get(
        "/v1/models/{name}",
        tags=["models"],
        summary="Versions, aliases, route and inputs of a model",
        response_model=None,
        responses=ERROR_RESPONSES,
    )
    async def model_detail(name: ModelName, request: Request) -> Response:
        """The model's live versions and aliases (from the registry), its current route,
        and the inputs each served version takes."""
        ctx.auth.check(request.headers.get("authorization"), "predict")
        served = served_model(await current_snapshot(ctx), name)
        versions = await asyncio.to_thread(ctx.registry.list_versions, name)
        return json_response(
            {
                **served.describe(),
                "versions": [
                    {
                        "version": v.version,
                        "created_at": v.created_at.isoformat(),
                        "format": v.format,
                        "output_kind": v.output_kind,
                        "aliases": list(v.aliases),
                        "metrics": dict(v.metrics),
                        "description": v.description,
                    }
                    for v in versions
                ],
                "aliases": {a: v.version for v in versions for a in v.aliases},
                "inputs": {alias: sv.spec.describe() for alias, sv in served.versions.items()},
                "schema": {alias: sv.record.schema for alias, sv in served.versions.items()},
            }
        )

    return router


def _locate_single(_: int, name: str) -> str:
    return name


def _locate_batch(i: int, name: str) -> str:
    return f"[{i}].{name}"


def _require_records(items: Any) -> None:
    if not isinstance(items, list):
        raise ApiError(
            "expected a JSON object (one record) or a list of objects",
            [FieldProblem("body", f"got {type(items).__name__}")],
        )
    bad = [
        FieldProblem(f"[{i}]", "expected an object")
        for i, r in enumerate(items)
        if not isinstance(r, dict)
    ]
    if bad:
        raise ApiError("every record must be a JSON object keyed by field name", bad)


def _ranking_label(label: Any, where: str) -> FieldProblem | None:
    """Why a ranking model's label is unusable, or ``None``: it must be the relevant item
    ids (a list of distinct texts or whole numbers, possibly empty; or one id) or an object
    item -> relevance (a number >= 0)."""
    if isinstance(label, dict):
        bad = [
            k for k, v in label.items()
            if isinstance(v, bool) or not isinstance(v, int | float)
            or not math.isfinite(v) or v < 0
        ]  # fmt: skip
        if bad:
            return FieldProblem(
                where,
                f"the relevance of item {bad[0]!r} must be a number >= 0 "
                '(e.g. {"item7": 2, "item3": 1})',
            )
        return None
    ids = label if isinstance(label, list) else [label]
    if any(isinstance(i, bool) or not isinstance(i, str | int) for i in ids):
        return FieldProblem(
            where,
            "expected the relevant item ids (a list of texts or whole numbers, e.g. "
            '["item7", "item3"]) or an object item -> relevance (e.g. {"item7": 2})',
        )
    if len({str(i) for i in ids}) != len(ids):
        return FieldProblem(where, "names an item more than once; send each relevant item once")
    return None


def _feedback_records(
    items: list[dict[str, Any]], locate: Any, now: float, model: str, *, ranking: bool = False
) -> list[FeedbackRecord]:
    problems: list[FieldProblem] = []
    records = []
    for i, item in enumerate(items):
        for key in item:
            if key not in _FEEDBACK_KEYS:
                problems.append(
                    FieldProblem(locate(i, key), "unknown field; use id, label, flag, note")
                )
        if "id" not in item:
            problems.append(FieldProblem(locate(i, "id"), "is required (the prediction id)"))
            continue
        found = check_record_id(item["id"], locate(i, "id"))
        if isinstance(found, FieldProblem):
            problems.append(found)
            continue
        flag = item.get("flag")
        if flag is not None and not isinstance(flag, bool):
            problems.append(FieldProblem(locate(i, "flag"), "expected true or false"))
        note = item.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > _MAX_NOTE):
            problems.append(
                FieldProblem(
                    locate(i, "note"), f"expected a string of at most {_MAX_NOTE} characters"
                )
            )
        label = item.get("label")
        if ranking and label is not None:
            found_problem = _ranking_label(label, locate(i, "label"))
            if found_problem is not None:
                problems.append(found_problem)
        elif isinstance(label, dict):
            problems.append(
                FieldProblem(
                    locate(i, "label"),
                    "expected a value or a list, got an object (an object of item -> "
                    "relevance is a ranking model's label)",
                )
            )
        if label is None and flag is None:
            problems.append(FieldProblem(locate(i, "label"), "send a label, a flag, or both"))
        records.append(
            FeedbackRecord(id=found, ts=now, label=label, flag=flag, note=note, model=model)
        )
    if problems:
        raise ApiError("invalid feedback", problems)
    return records
