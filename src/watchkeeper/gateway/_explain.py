"""``POST /v1/models/{name}/explain``: attributions for given records or a logged prediction.

Body: one record or a list of records (the shape of a predict request), or
``{"prediction_id": "..."}`` to explain a logged prediction with the features it was logged
with, by the version that made it. Needs the ``predict`` scope and the ``explain`` extra.

Cost is bounded so that explanations cannot starve predictions:

- at most ``WATCHKEEPER_EXPLAIN_MAX_ROWS`` records per request (default 100; 413 beyond);
- explanations run in their own pool of one thread, with at most
  ``WATCHKEEPER_EXPLAIN_QUEUE`` requests waiting for it (default 4; 429 beyond);
- each request has ``WATCHKEEPER_EXPLAIN_TIMEOUT`` seconds (default 30; 504 beyond): rows
  are explained in small chunks and the work stops at the first chunk after the deadline.

An :class:`~watchkeeper.explain.Explainer` is built lazily per served version (on the first
request for it) and cached. Its background is the row sample of the version's reference
profile (validated like request records); a version registered without one is explained
against the request's own rows, which the response says.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from watchkeeper.exceptions import InputError, MissingExtraError
from watchkeeper.gateway._errors import ApiError, FieldProblem, first_line
from watchkeeper.gateway._http import json_response, read_json
from watchkeeper.gateway._models import ServedVersion
from watchkeeper.gateway._observe import (
    RequestObservation,
    observation_dependency,
    request_observer,
)
from watchkeeper.gateway._schemas import ERROR_RESPONSES, ModelName, predict_request_schema
from watchkeeper.gateway._service import Context, current_snapshot, pick_arm, served_model
from watchkeeper.gateway._validation import (
    build_input,
    check_columns,
    check_record_id,
    records_to_columns,
)

__all__ = ["ExplainConfig", "explain_router"]

logger = logging.getLogger("watchkeeper.gateway")

#: Rows explained between two looks at the deadline.
_CHUNK = 10
#: Explainers kept per worker (least recently used ones are dropped).
_CACHE = 16
_FEWER = "explain fewer records at a time, or raise "
_UNKNOWN_ID = "unknown id (or a prediction of another model, or one moved to Parquet)"


def _env_number(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise InputError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


@dataclass(frozen=True)
class ExplainConfig:
    """Limits of the explain endpoint (from ``WATCHKEEPER_EXPLAIN_*`` variables).

    Examples
    --------
    >>> ExplainConfig().max_rows, ExplainConfig().timeout
    (100, 30.0)
    """

    max_rows: int = 100
    timeout: float = 30.0
    queue: int = 4
    max_background: int = 100

    @classmethod
    def from_env(cls) -> ExplainConfig:
        """``WATCHKEEPER_EXPLAIN_MAX_ROWS``, ``_TIMEOUT`` (seconds), ``_QUEUE`` and
        ``_MAX_BACKGROUND``; defaults for the unset ones."""
        return cls(
            max_rows=int(_env_number("WATCHKEEPER_EXPLAIN_MAX_ROWS", 100, 1)),
            timeout=_env_number("WATCHKEEPER_EXPLAIN_TIMEOUT", 30.0, 0.01),
            queue=int(_env_number("WATCHKEEPER_EXPLAIN_QUEUE", 4, 1)),
            max_background=int(_env_number("WATCHKEEPER_EXPLAIN_MAX_BACKGROUND", 100, 1)),
        )


class Attribution(BaseModel):
    """The explanation of one record."""

    id: str | None = Field(description="The prediction id (when explaining a logged one).")
    prediction: float = Field(description="The explained output for this record.")
    base_value: float = Field(description="Expected output over the background.")
    attributions: dict[str, float] = Field(description="Feature -> contribution.")
    values: dict[str, Any] = Field(description="Feature -> value explained.")


class ExplainResponse(BaseModel):
    """Attributions per record: ``base_value + sum(attributions) == prediction``."""

    model: str
    version: int
    arm: str | None = Field(description="Route arm used (null for a logged prediction).")
    method: str = Field(description="tree, linear, permutation, partition or lime.")
    output: str = Field(description="prediction, probability or margin.")
    output_label: str
    target_class: str | None
    background: str = Field(description="Where the background rows came from.")
    explanations: list[Attribution]


def explain_request_schema() -> dict[str, Any]:
    """OpenAPI request body of the explain endpoint."""
    predict = predict_request_schema()["requestBody"]["content"]["application/json"]
    records = predict["schema"]["oneOf"]  # one record, or a list of them
    by_id = {
        "type": "object",
        "required": ["prediction_id"],
        "additionalProperties": False,
        "properties": {"prediction_id": {"type": "string", "minLength": 1, "maxLength": 128}},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [by_id, *records]},
                    "examples": {
                        "records": {"value": [{"temp": 0.3, "hr": 8, "workingday": 1}]},
                        "logged": {"value": {"prediction_id": "8f2c1a-1f"}},
                    },
                }
            },
        }
    }


_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {"model": ERROR_RESPONSES[404]["model"], "description": "Unknown model or id."},
    429: {"model": ERROR_RESPONSES[404]["model"], "description": "Explainer busy; retry."},
    504: {"model": ERROR_RESPONSES[404]["model"], "description": "Explanation timed out."},
}


class _Explainers:
    """Explainers per served version, built on first use (in the explain thread)."""

    def __init__(self, settings: ExplainConfig) -> None:
        self.settings = settings
        self._cache: OrderedDict[tuple[str, int], tuple[Any, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ctx: Context, served: ServedVersion, rows: Any) -> tuple[Any, str]:
        key = (served.name, served.version)
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        background, source = self._background(ctx, served)
        if background is None:
            # Not cached: the next request brings other rows.
            return self._fit(served, rows), "the request's own rows (no reference sample)"
        entry = (self._fit(served, background), source)
        with self._lock:
            self._cache[key] = entry
            while len(self._cache) > _CACHE:
                self._cache.popitem(last=False)
        return entry

    def _fit(self, served: ServedVersion, background: Any) -> Any:
        from watchkeeper.explain import Explainer

        return Explainer(served.model, max_background=self.settings.max_background).fit(background)

    def _background(self, ctx: Context, served: ServedVersion) -> tuple[Any, str]:
        """The reference profile's row sample in the model's input format, or ``None``."""
        try:
            profile = ctx.registry.load_profile(served.name, served.version)
        except Exception:  # a missing or unreadable profile only costs the background
            logger.warning("no reference profile for %s v%s", served.name, served.version)
            return None, ""
        spec = served.spec
        sample = None if profile is None else profile.sample
        if sample is None or not set(spec.columns) <= set(sample.column_names):
            return None, ""
        records = sample.select(list(spec.columns)).to_pylist()
        frame = _frame(records, spec, lambda i, n: f"[{i}].{n}")
        if isinstance(frame, list):
            logger.warning(
                "the reference sample of %s v%s does not fit its inputs: %s",
                served.name,
                served.version,
                "; ".join(p.problem for p in frame[:3]),
            )
            return None, ""
        return frame, f"reference sample ({len(records):,} rows)"


def _frame(
    records: list[dict[str, Any]],
    spec: Any,
    locate: Any,
    *,
    unknown: str = "ignore",
    missing: str = "null",
) -> Any:
    """A DataFrame of validated records in input order, or the list of problems."""
    import pandas as pd

    columns, _, problems = records_to_columns(
        records, spec, unknown=unknown, missing=missing, locate=locate
    )
    problems += check_columns(columns, spec, missing=missing, locate=locate)
    if problems:
        return problems
    X = build_input(columns, spec)
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=list(spec.columns))


def _log_path(ctx: Context) -> Path | None:
    """The SQLite prediction log file behind the gateway's log, if there is one."""
    from watchkeeper.logstore import SQLiteLogSink

    log = ctx.log
    sink = getattr(getattr(log, "writer", None), "sink", None) or getattr(log, "sink", None)
    if isinstance(sink, SQLiteLogSink):
        return Path(sink.path)
    path = Path(ctx.settings.resolved_log_path)
    return path if path.is_file() else None


def _logged(ctx: Context, model: str, prediction_id: str) -> tuple[str, int, dict[str, Any]] | None:
    """``(model, version, features)`` of the live prediction ``prediction_id`` of ``model``."""
    path = _log_path(ctx)
    if path is None:
        raise ApiError(
            "logged predictions cannot be looked up: the gateway's log is not a SQLite file",
            [FieldProblem("prediction_id", "send the records to explain instead")],
            status=422,
        )
    # A read-only connection of its own: reads never block the log's writer (WAL).
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        row = conn.execute(
            "SELECT model, version, features FROM predictions "
            "WHERE model = ? AND id = ? AND shadow = 0",
            (model, prediction_id),
        ).fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    return str(row[0]), int(row[1]), json.loads(row[2])


def _explain_rows(explainer: Any, frame: Any, deadline: float) -> list[Any]:
    """Explain ``frame`` in chunks; stop once ``deadline`` (monotonic) has passed."""
    parts = []
    for start in range(0, len(frame), _CHUNK):
        if time.monotonic() > deadline:
            raise TimeoutError
        parts.append(explainer.explain(frame.iloc[start : start + _CHUNK]))
    return parts


def _body(
    parts: list[Any], ids: list[str | None], served: ServedVersion, arm: str | None, source: str
) -> dict[str, Any]:
    from watchkeeper.gateway._service import finite_or_none

    first = parts[0]
    names = first.feature_names
    explanations: list[dict[str, Any]] = []
    for part in parts:
        for i in range(part.n_rows):
            explanations.append(
                {
                    "id": ids[len(explanations)],
                    "prediction": float(part.predictions[i]),
                    "base_value": float(part.base_values[i]),
                    "attributions": dict(zip(names, part.values[i].tolist(), strict=True)),
                    "values": {n: v for n, v, _ in part.contributions(i)},
                }
            )
    body: dict[str, Any] = finite_or_none(
        {
            "model": served.name,
            "version": served.version,
            "arm": arm,
            "method": first.method,
            "output": first.output,
            "output_label": first.output_label,
            "target_class": first.target_class,
            "background": source,
            "explanations": explanations,
        }
    )
    return body


def explain_router(ctx: Context) -> APIRouter:
    """``POST /v1/models/{name}/explain``."""
    settings = ExplainConfig.from_env()
    router = APIRouter()
    observed = observation_dependency(request_observer(ctx.metrics, "explain", count=False))
    explainers = _Explainers(settings)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watchkeeper-explain")
    slots = threading.BoundedSemaphore(settings.queue + 1)

    def work(
        name: str, prediction_id: str | None, served: ServedVersion | None, records: Any
    ) -> tuple[ServedVersion, list[Any], str, list[str | None]]:
        deadline = time.monotonic() + settings.timeout
        ids: list[str | None]
        if prediction_id is not None:
            found = _logged(ctx, name, prediction_id)
            if found is None or found[0] != name:
                raise ApiError(
                    f"no logged prediction of model {name!r} has id {prediction_id!r}",
                    [FieldProblem("prediction_id", _UNKNOWN_ID)],
                    status=404,
                )
            served = ctx.state.load_version(name, found[1])
            frame = _frame([found[2]], served.spec, _locate(True))
            ids = [prediction_id]
        else:
            assert served is not None
            frame = _frame(
                records,
                served.spec,
                _locate(len(records) == 1),
                unknown=ctx.settings.unknown_fields,
                missing=ctx.settings.missing_fields,
            )
            ids = [None] * len(records)
        if isinstance(frame, list):
            raise ApiError("invalid input", frame)
        explainer, source = explainers.get(ctx, served, frame)
        return served, _explain_rows(explainer, frame, deadline), source, ids

    @router.post(
        "/v1/models/{name}/explain",
        tags=["explain"],
        summary="Attributions for records or a logged prediction",
        response_model=None,
        responses={200: {"model": ExplainResponse}, **_RESPONSES},
        openapi_extra=explain_request_schema(),
    )
    async def explain(
        name: ModelName, request: Request, obs: RequestObservation = observed
    ) -> Response:
        """Per-feature attributions (SHAP) of the records sent (as for predict, at most
        ``WATCHKEEPER_EXPLAIN_MAX_ROWS``) or of a logged prediction
        (``{"prediction_id": ...}``): ``base_value + sum(attributions) = prediction``."""
        ctx.auth.check(request.headers.get("authorization"), "predict")
        snapshot = await current_snapshot(ctx)
        model = served_model(snapshot, name)
        obs.model = name
        body = await read_json(request, ctx.settings.max_body_bytes)
        prediction_id, records, served, arm = _parse(body, settings.max_rows)
        if prediction_id is None:
            decision, served = pick_arm(model, request.headers)
            arm = decision.alias
            if served.spec.n_positional is not None:
                raise ApiError(
                    f"model {name!r} version {served.version} has no input schema, so named "
                    "fields cannot be mapped to its inputs",
                    [FieldProblem("", "re-register it with reference= or schema=")],
                )
        if not slots.acquire(blocking=False):
            raise ApiError(
                "the explainer is busy with other requests; retry shortly",
                [FieldProblem("", f"at most {settings.queue} explanations wait at a time")],
                status=429,
                headers={"Retry-After": "1"},
            )
        future = pool.submit(work, name, prediction_id, served, records)
        future.add_done_callback(lambda _: slots.release())
        try:
            found, parts, source, ids = await asyncio.wait_for(
                asyncio.wrap_future(future), timeout=settings.timeout + 1.0
            )
        except TimeoutError:
            raise ApiError(
                f"the explanation did not finish within {settings.timeout:g} s",
                [FieldProblem("body", _FEWER + "WATCHKEEPER_EXPLAIN_TIMEOUT")],
                status=504,
            ) from None
        except MissingExtraError as exc:
            raise ApiError(
                "explanations are not available on this gateway",
                [FieldProblem("", str(exc))],
                status=501,
            ) from exc
        except ApiError:
            raise
        except (InputError, ValueError, TypeError) as exc:
            raise ApiError(
                "the model could not be explained on these records",
                [FieldProblem("", f"{type(exc).__name__}: {first_line(exc)}")],
            ) from exc
        return json_response(_body(parts, ids, found, arm, source))

    return router


def _locate(single: bool) -> Any:
    if single:
        return lambda _i, n: n
    return lambda i, n: f"[{i}].{n}"


def _parse(body: Any, max_rows: int) -> tuple[str | None, list[Any], Any, str | None]:
    """``(prediction_id, records, served, arm)`` from the body (``served`` set later)."""
    if isinstance(body, dict) and "prediction_id" in body:
        extra = [k for k in body if k != "prediction_id"]
        if extra:
            raise ApiError(
                "a request by prediction id takes no other field",
                [FieldProblem(k, "unknown field; send only prediction_id") for k in extra],
            )
        found = check_record_id(body["prediction_id"], "prediction_id")
        if isinstance(found, FieldProblem):
            raise ApiError("invalid prediction id", [found])
        return found, [], None, None
    records = [body] if isinstance(body, dict) else body
    if not isinstance(records, list) or not records:
        raise ApiError(
            'expected a record, a list of records, or {"prediction_id": ...}',
            [FieldProblem("body", f"got {type(body).__name__}" if body != [] else "empty list")],
        )
    bad = [FieldProblem(f"[{i}]", "expected an object") for i, r in enumerate(records)
           if not isinstance(r, dict)]  # fmt: skip
    if bad:
        raise ApiError("every record must be a JSON object keyed by field name", bad)
    if len(records) > max_rows:
        raise ApiError(
            f"too many records to explain: {len(records)} (at most {max_rows} per request)",
            [FieldProblem("body", _FEWER + "WATCHKEEPER_EXPLAIN_MAX_ROWS")],
            status=413,
        )
    return None, records, None, None
