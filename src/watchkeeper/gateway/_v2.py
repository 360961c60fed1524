"""Open Inference Protocol (KServe v2) REST endpoints, so KServe, MLServer and Triton
clients work unchanged.

Two input layouts are understood: one tensor per feature (named like the feature, shape
``[N]`` or ``[N, 1]``; what MLServer's pandas codec sends), or a single tensor of shape
``[N, n_features]`` holding rows in the model's input order. Either way the request becomes
records and takes the same path as ``/v1/.../predict``: the same validation, routing and
durable logging. Outputs are ``predict``, ``predict_proba`` (classifiers, ``[N, classes]``)
and ``prediction_id`` (BYTES), the ids to send feedback for.

Reference: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from watchkeeper import __version__
from watchkeeper.data import ColumnKind
from watchkeeper.gateway._errors import ApiError, FieldProblem
from watchkeeper.gateway._http import json_response, read_json
from watchkeeper.gateway._models import ServedModel, ServedVersion
from watchkeeper.gateway._schemas import ERROR_RESPONSES, ModelName, VersionNumber
from watchkeeper.gateway._service import (
    Answer,
    Context,
    current_snapshot,
    predict_records,
    served_model,
)
from watchkeeper.gateway._validation import InputSpec

__all__ = ["add_v2", "decode_inputs", "encode_outputs"]

_INT_RANGES = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
_FLOATS = ("FP16", "FP32", "FP64")
DATATYPES = ("BOOL", *_INT_RANGES, *_FLOATS, "BYTES")
_OUTPUTS = ("predict", "predict_proba", "prediction_id")

_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["name", "shape", "datatype", "data"],
                                "properties": {
                                    "name": {"type": "string"},
                                    "shape": {
                                        "type": "array",
                                        "items": {"type": "integer", "minimum": 0},
                                    },
                                    "datatype": {"enum": list(DATATYPES)},
                                    "parameters": {"type": "object"},
                                    "data": {"type": "array"},
                                },
                            },
                        },
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"enum": list(_OUTPUTS)}},
                            },
                        },
                    },
                },
                "example": {
                    "inputs": [
                        {"name": "temp", "shape": [2], "datatype": "FP64", "data": [0.3, 0.7]},
                        {"name": "hour", "shape": [2], "datatype": "INT64", "data": [8, 17]},
                    ]
                },
            }
        },
    }
}


def _flatten(data: Any) -> list[Any]:
    if not any(isinstance(v, list) for v in data):
        return list(data)
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            out.append(value)
        else:
            stack.pop()
    return out


def _check_tensor(i: int, tensor: Any) -> tuple[str, list[int], str, list[Any]]:
    where = f"inputs[{i}]"
    if not isinstance(tensor, dict):
        raise ApiError("invalid tensor", [FieldProblem(where, "expected an object")])
    name, shape, datatype, data = (tensor.get(k) for k in ("name", "shape", "datatype", "data"))
    problems = []
    if not isinstance(name, str) or not name:
        problems.append(FieldProblem(f"{where}.name", "expected a non-empty string"))
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        problems.append(FieldProblem(f"{where}.shape", "expected a list of non-negative integers"))
    if datatype not in DATATYPES:
        problems.append(
            FieldProblem(f"{where}.datatype", f"expected one of {', '.join(DATATYPES)}")
        )
    if not isinstance(data, list):
        problems.append(FieldProblem(f"{where}.data", "expected a list"))
    if problems:
        raise ApiError("invalid tensor", problems)
    assert isinstance(name, str)
    assert isinstance(shape, list)
    assert isinstance(data, list)
    flat = _flatten(data)
    if len(flat) != math.prod(shape):
        raise ApiError(
            "tensor data does not match its shape",
            [
                FieldProblem(
                    f"{where}.data",
                    f"shape {shape} needs {math.prod(shape)} values, got {len(flat)}",
                )
            ],
        )
    problem = _datatype_problem(str(datatype), flat)
    if problem is not None:
        raise ApiError(
            "tensor data does not match its datatype", [FieldProblem(f"{where}.data", problem)]
        )
    return name, shape, str(datatype), flat


def _datatype_problem(datatype: str, values: list[Any]) -> str | None:
    if datatype == "BOOL":
        ok = all(type(v) is bool for v in values)
        return None if ok else "BOOL tensors hold true/false"
    if datatype in _INT_RANGES:
        low, high = _INT_RANGES[datatype]
        ok = all(type(v) is int and low <= v <= high for v in values)
        return None if ok else f"{datatype} tensors hold integers in [{low}, {high}]"
    if datatype in _FLOATS:
        ok = all(type(v) in (int, float) for v in values)
        return None if ok else f"{datatype} tensors hold numbers"
    ok = all(type(v) is str for v in values)
    return None if ok else "BYTES tensors hold strings"


def decode_inputs(inputs: Any, spec: InputSpec) -> list[dict[str, Any]]:
    """Records from v2 input tensors (one per feature, or one ``[N, n_features]`` matrix).

    Examples
    --------
    >>> from watchkeeper.data import ColumnSpec, Schema
    >>> spec = InputSpec.for_model(Schema((ColumnSpec("a", "numeric"),
    ...                                    ColumnSpec("b", "numeric"))), None)
    >>> decode_inputs([{"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 2]},
    ...                {"name": "b", "shape": [2, 1], "datatype": "FP64", "data": [[3], [4]]}],
    ...               spec)
    [{'a': 1, 'b': 3}, {'a': 2, 'b': 4}]
    >>> decode_inputs([{"name": "input-0", "shape": [1, 2], "datatype": "FP32",
    ...                 "data": [5.0, 6.0]}], spec)
    [{'a': 5.0, 'b': 6.0}]
    """
    if not isinstance(inputs, list) or not inputs:
        raise ApiError("no inputs", [FieldProblem("inputs", "send a non-empty list of tensors")])
    tensors = [_check_tensor(i, t) for i, t in enumerate(inputs)]
    names = [t[0] for t in tensors]
    if len(set(names)) != len(names):
        raise ApiError("duplicate input names", [FieldProblem("inputs", f"names repeat: {names}")])
    columns = set(spec.columns)
    if len(tensors) == 1 and names[0] not in columns and names[0] != "id":
        name, shape, _, flat = tensors[0]
        width = len(spec.columns)
        if len(shape) != 2 or shape[1] != width:
            raise ApiError(
                "cannot map the input tensor to the model's inputs",
                [
                    FieldProblem(
                        "inputs[0]",
                        f"send one tensor per feature ({', '.join(spec.columns)}) or one tensor "
                        f"of shape [N, {width}] in that order; got {name!r} with shape {shape}",
                    )
                ],
            )
        order = spec.columns
        return [
            dict(zip(order, flat[r * width : (r + 1) * width], strict=True))
            for r in range(shape[0])
        ]
    n: int | None = None
    for i, (_, shape, _, _) in enumerate(tensors):
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise ApiError(
                "per-feature tensors must be columns",
                [FieldProblem(f"inputs[{i}].shape", f"expected [N] or [N, 1], got {shape}")],
            )
        if n is None:
            n = shape[0]
        elif shape[0] != n:
            raise ApiError(
                "input tensors disagree on the number of rows",
                [FieldProblem(f"inputs[{i}].shape", f"{shape[0]} rows, the first tensor has {n}")],
            )
    records: list[dict[str, Any]] = [{} for _ in range(n or 0)]
    for name, _, _, flat in tensors:
        for record, value in zip(records, flat, strict=True):
            record[name] = value
    return records


def _datatype_of(values: Sequence[Any]) -> str:
    if all(type(v) is bool for v in values):
        return "BOOL"
    if all(type(v) is int for v in values):
        return "INT64"
    if all(type(v) in (int, float) or v is None for v in values):
        return "FP64"
    return "BYTES"


def encode_outputs(answer: Answer, wanted: Sequence[str] | None) -> list[dict[str, Any]]:
    """v2 output tensors for an answer.

    Examples
    --------
    >>> answer = Answer("m", 1, "champion", ["a", "b"], ["no", "yes"],
    ...                 [{"no": 0.8, "yes": 0.2}, {"no": 0.1, "yes": 0.9}])
    >>> [(o["name"], o["datatype"], o["shape"]) for o in encode_outputs(answer, None)]
    [('predict', 'BYTES', [2]), ('predict_proba', 'FP64', [2, 2]), ('prediction_id', 'BYTES', [2])]
    """
    n = len(answer.ids)
    predictions = answer.predictions
    outputs: list[dict[str, Any]] = []
    if predictions and isinstance(predictions[0], list):
        flat = _flatten(predictions)
        shape = [n, len(predictions[0])]
    else:
        flat, shape = (
            [p if isinstance(p, bool | int | float) or p is None else str(p) for p in predictions],
            [n],
        )
    outputs.append(
        {"name": "predict", "datatype": _datatype_of(flat), "shape": shape, "data": flat}
    )
    if answer.scores is not None:
        keys = list(answer.scores[0]) if answer.scores else []
        outputs.append(
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [n, len(keys)],
                "data": [row[k] for row in answer.scores for k in keys],
            }
        )
    outputs.append({"name": "prediction_id", "datatype": "BYTES", "shape": [n], "data": answer.ids})
    if wanted is not None:
        outputs = [o for o in outputs if o["name"] in wanted]
    return outputs


def _wanted(body: Mapping[str, Any]) -> list[str] | None:
    requested = body.get("outputs")
    if requested is None:
        return None
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and o.get("name") in _OUTPUTS for o in requested
    ):
        raise ApiError(
            "invalid outputs",
            [FieldProblem("outputs", f"a list of {{name}} among {', '.join(_OUTPUTS)}")],
        )
    return [o["name"] for o in requested]


def _tensor_type(kind: ColumnKind | None) -> str:
    if kind is ColumnKind.NUMERIC:
        return "FP64"
    if kind is ColumnKind.BOOLEAN:
        return "BOOL"
    return "BYTES"


def _metadata(served: ServedModel, versions: Sequence[ServedVersion]) -> dict[str, Any]:
    first = versions[0]
    spec = first.spec
    inputs = [
        {"name": n, "datatype": _tensor_type(k), "shape": [-1]}
        for n, k in zip(spec.columns, spec.kinds, strict=True)
    ]
    outputs: list[dict[str, Any]] = [
        {"name": "predict", "datatype": "BYTES" if first.classes else "FP64", "shape": [-1]}
    ]
    if first.has_proba and first.classes is not None:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(first.classes)]}
        )
    outputs.append({"name": "prediction_id", "datatype": "BYTES", "shape": [-1]})
    return {
        "name": served.name,
        "versions": sorted({str(v.version) for v in versions}, key=int),
        "platform": f"watchkeeper-{first.record.format}",
        "inputs": inputs,
        "outputs": outputs,
    }


def _version_number(version: str) -> int:
    if not (version.isascii() and version.isdigit()) or int(version) < 1:
        raise ApiError(
            "invalid version",
            [FieldProblem("path.version", "a version number (1, 2, ...)")],
            status=404,
        )
    return int(version)


def add_v2(app: FastAPI, ctx: Context) -> None:
    """Register the Open Inference Protocol endpoints on ``app``."""
    from watchkeeper.gateway._app import readiness

    metrics = ctx.metrics

    @app.get("/v2", tags=["v2"], summary="Server metadata", response_model=None)
    async def server_metadata() -> Response:
        """Name, version and extensions of the server."""
        return json_response({"name": "watchkeeper", "version": __version__, "extensions": []})

    @app.get("/v2/health/live", tags=["v2"], summary="Server liveness", response_model=None)
    async def live() -> Response:
        """200 while the server answers."""
        return json_response({"live": True})

    @app.get(
        "/v2/health/ready",
        tags=["v2"],
        summary="Server readiness",
        response_model=None,
        responses={400: {"description": "Not ready."}},
    )
    async def ready() -> Response:
        """200 when every served model is loaded; 400 (as the protocol says) otherwise."""
        problems = await readiness(ctx)
        return json_response({"ready": not problems}, 400 if problems else 200)

    def check(request: Request) -> None:
        ctx.auth.check(request.headers.get("authorization"), "predict")

    @app.get(
        "/v2/models/{name}",
        tags=["v2"],
        summary="Model metadata",
        response_model=None,
        responses=ERROR_RESPONSES,
    )
    async def model_metadata(name: ModelName, request: Request) -> Response:
        """Versions served, platform, input and output tensors."""
        check(request)
        served = served_model(await current_snapshot(ctx), name)
        versions = list(served.versions.values())
        if not versions:
            raise ApiError(
                f"model {name!r} has no loaded version",
                [FieldProblem("", str(dict(served.problems)))],
                status=503,
            )
        return json_response(_metadata(served, versions))

    @app.get(
        "/v2/models/{name}/versions/{version}",
        tags=["v2"],
        summary="Model version metadata",
        response_model=None,
        responses=ERROR_RESPONSES,
    )
    async def version_metadata(
        name: ModelName, version: VersionNumber, request: Request
    ) -> Response:
        """Metadata of one served version."""
        check(request)
        served = served_model(await current_snapshot(ctx), name)
        number = _version_number(version)
        found = [v for v in served.versions.values() if v.version == number]
        if not found:
            raise ApiError(
                f"version {number} of model {name!r} is not served",
                [
                    FieldProblem(
                        "path.version",
                        f"served: {sorted({v.version for v in served.versions.values()})}",
                    )
                ],
                status=404,
            )
        return json_response(_metadata(served, found[:1]))

    @app.get(
        "/v2/models/{name}/ready",
        tags=["v2"],
        summary="Model readiness",
        response_model=None,
        responses={
            **{code: spec for code, spec in ERROR_RESPONSES.items() if code != 400},
            400: {"description": "The model is served but not every arm is loaded."},
        },
    )
    async def model_ready(name: ModelName, request: Request) -> Response:
        """200 when every arm of the model's route is loaded, 400 otherwise."""
        check(request)
        served = served_model(await current_snapshot(ctx), name)
        ok = not served.problems
        return json_response({"name": name, "ready": ok}, 200 if ok else 400)

    async def infer(name: str, version: int | None, request: Request) -> Response:
        started = time.perf_counter()
        labels = ["unknown", "", "", "500"]
        try:
            check(request)
            served = served_model(await current_snapshot(ctx), name)
            labels[0] = name
            body = await read_json(request, ctx.settings.max_body_bytes)
            if not isinstance(body, dict):
                raise ApiError(
                    "expected an inference request object",
                    [FieldProblem("body", 'send {"inputs": [...]}')],
                )
            wanted = _wanted(body)
            headers: Mapping[str, str] = request.headers
            request_id = body.get("id")
            if request_id is not None:
                if not isinstance(request_id, str):
                    raise ApiError("invalid id", [FieldProblem("id", "expected a string")])
                headers = {**request.headers, "x-request-id": request_id}
            arm_spec = _spec_for(served, version)
            records = decode_inputs(body.get("inputs"), arm_spec)
            answer = await predict_records(
                ctx,
                served,
                records,
                headers,
                locate=lambda i, n: f"inputs[{n}][{i}]",
                version=version,
            )
            labels[1], labels[2], labels[3] = str(answer.version), answer.arm, "200"
            payload: dict[str, Any] = {
                "model_name": name,
                "model_version": str(answer.version),
                "parameters": {"arm": answer.arm},
                "outputs": encode_outputs(answer, wanted),
            }
            if request_id is not None:
                payload["id"] = request_id
            return json_response(payload)
        except ApiError as exc:
            labels[3] = str(exc.status)
            raise
        finally:
            metrics.child(metrics.requests, *labels).inc()
            metrics.child(metrics.request_duration, labels[0], "infer").observe(
                time.perf_counter() - started
            )

    @app.post(
        "/v2/models/{name}/infer",
        tags=["v2"],
        summary="Inference (routed like /v1 predict)",
        response_model=None,
        responses=ERROR_RESPONSES,
        openapi_extra=_INFER_BODY,
    )
    async def infer_model(name: ModelName, request: Request) -> Response:
        """Predictions for input tensors; the route picks the version."""
        return await infer(name, None, request)

    @app.post(
        "/v2/models/{name}/versions/{version}/infer",
        tags=["v2"],
        summary="Inference on one served version",
        response_model=None,
        responses=ERROR_RESPONSES,
        openapi_extra=_INFER_BODY,
    )
    async def infer_version(name: ModelName, version: VersionNumber, request: Request) -> Response:
        """Predictions from a given version (it must be one the route serves)."""
        return await infer(name, _version_number(version), request)


def _spec_for(served: ServedModel, version: int | None) -> InputSpec:
    # Decoding needs the input order before the arm is drawn; arms of one route nearly
    # always share inputs, and validation later checks against the arm actually chosen.
    for served_version in served.versions.values():
        if version is None or served_version.version == version:
            return served_version.spec
    raise ApiError(
        f"model {served.name!r} has no loaded version" + ("" if version is None else f" {version}"),
        [FieldProblem("path.name", str(dict(served.problems)) or "not loaded")],
        status=404 if version is not None else 503,
    )
