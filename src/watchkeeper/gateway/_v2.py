"""Open Inference Protocol (KServe v2) REST endpoints, so KServe, MLServer and Triton
clients work unchanged.

Two input layouts are understood: one tensor per feature (named like the feature, shape
``[N]`` or ``[N, 1]``; what MLServer's pandas codec sends), or a single tensor of shape
``[N, n_features]`` holding rows in the model's input order. Either way the request becomes
records and takes the same path as ``/v1/.../predict``: the same validation, routing and
durable logging. Outputs are ``predict``, ``predict_proba`` (classifiers, ``[N, classes]``)
and ``prediction_id`` (BYTES), the ids to send feedback for. Tensor handling lives in
:mod:`._v2_codec`.

Tensors travel as JSON or, with the ``binary_tensor_data`` extension (advertised in the
server metadata; what ``tritonclient`` sends by default), as raw bytes after a JSON header
whose length the ``Inference-Header-Content-Length`` header gives; outputs come back in
binary when the request asks (``binary_data_output``, or ``binary_data`` per output). Errors
answer 400 with ``{"error": ...}``, as the protocol says.

Reference: https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from watchkeeper import __version__
from watchkeeper.gateway._errors import ApiError, FieldProblem
from watchkeeper.gateway._http import check_json_type, json_response, parse_json, read_body
from watchkeeper.gateway._models import ServedModel, ServedVersion
from watchkeeper.gateway._observe import (
    RequestObservation,
    observation_dependency,
    request_observer,
)
from watchkeeper.gateway._schemas import ERROR_RESPONSES, ModelName, VersionNumber
from watchkeeper.gateway._service import (
    Context,
    current_snapshot,
    predict_records,
    served_model,
)
from watchkeeper.gateway._v2_codec import (
    DATATYPES,
    OUTPUTS,
    attach_binary,
    binary_answer,
    binary_outputs,
    datatype_of,
    decode_inputs,
    encode_outputs,
    split_binary,
    tensor_type,
    wanted_outputs,
)
from watchkeeper.gateway._validation import InputSpec

__all__ = ["EXTENSIONS", "v2_router"]

#: Protocol extensions the server implements (listed in the server metadata).
EXTENSIONS = ("binary_tensor_data",)
_HEADER_LENGTH = "inference-header-content-length"

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
                                "properties": {"name": {"enum": list(OUTPUTS)}},
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


def _metadata(served: ServedModel, versions: Sequence[ServedVersion]) -> dict[str, Any]:
    first = versions[0]
    spec = first.spec
    inputs = [
        {"name": n, "datatype": tensor_type(k), "shape": [-1]}
        for n, k in zip(spec.columns, spec.kinds, strict=True)
    ]
    outputs: list[dict[str, Any]] = [
        {
            "name": "predict",
            "datatype": datatype_of(list(first.classes)) if first.classes else "FP64",
            "shape": [-1],
        }
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


def v2_router(ctx: Context) -> APIRouter:
    """The Open Inference Protocol endpoints."""
    from watchkeeper.gateway._app import readiness

    router = APIRouter()
    observed = observation_dependency(request_observer(ctx.metrics, "infer", count=True))

    @router.get("/v2", tags=["v2"], summary="Server metadata", response_model=None)
    async def server_metadata() -> Response:
        """Name, version and extensions of the server."""
        return json_response(
            {"name": "watchkeeper", "version": __version__, "extensions": list(EXTENSIONS)}
        )

    @router.get("/v2/health/live", tags=["v2"], summary="Server liveness", response_model=None)
    async def live() -> Response:
        """200 while the server answers."""
        return json_response({"live": True})

    @router.get(
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

    @router.get(
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

    @router.get(
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

    @router.get(
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

    @router.get(
        "/v2/models/{name}/versions/{version}/ready",
        tags=["v2"],
        summary="Model version readiness",
        response_model=None,
        responses=ERROR_RESPONSES,
    )
    async def version_ready(name: ModelName, version: VersionNumber, request: Request) -> Response:
        """200 when the route serves this version and it is loaded; 404 when it serves
        another one."""
        check(request)
        served = served_model(await current_snapshot(ctx), name)
        number = _version_number(version)
        if not any(v.version == number for v in served.versions.values()):
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
        return json_response({"name": name, "version": str(number), "ready": True})

    async def infer(
        name: str, version: int | None, request: Request, obs: RequestObservation
    ) -> Response:
        try:
            check(request)
            served = served_model(await current_snapshot(ctx), name)
            obs.model = name
            body = await _read_request(request, ctx.settings.max_body_bytes)
            if not isinstance(body, dict):
                raise ApiError(
                    "expected an inference request object",
                    [FieldProblem("body", 'send {"inputs": [...]}')],
                )
            wanted = wanted_outputs(body)
            binary = binary_outputs(body)
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
            obs.answered(answer.version, answer.arm)
            payload: dict[str, Any] = {
                "model_name": name,
                "model_version": str(answer.version),
                "parameters": {"arm": answer.arm},
                "outputs": encode_outputs(answer, wanted),
            }
            if request_id is not None:
                payload["id"] = request_id
            if binary:
                content, n = binary_answer(payload, binary)
                return Response(
                    content,
                    headers={"Inference-Header-Content-Length": str(n)},
                    media_type="application/octet-stream",
                )
            return json_response(payload)
        except ApiError as exc:
            if exc.status == 422:  # the protocol answers every bad request with 400
                exc.status = 400
            raise

    @router.post(
        "/v2/models/{name}/infer",
        tags=["v2"],
        summary="Inference (routed like /v1 predict)",
        response_model=None,
        responses=ERROR_RESPONSES,
        openapi_extra=_INFER_BODY,
    )
    async def infer_model(
        name: ModelName, request: Request, obs: RequestObservation = observed
    ) -> Response:
        """Predictions for input tensors; the route picks the version."""
        return await infer(name, None, request, obs)

    @router.post(
        "/v2/models/{name}/versions/{version}/infer",
        tags=["v2"],
        summary="Inference on one served version",
        response_model=None,
        responses=ERROR_RESPONSES,
        openapi_extra=_INFER_BODY,
    )
    async def infer_version(
        name: ModelName,
        version: VersionNumber,
        request: Request,
        obs: RequestObservation = observed,
    ) -> Response:
        """Predictions from a given version (it must be one the route serves)."""
        return await infer(name, _version_number(version), request, obs)

    return router


async def _read_request(request: Request, limit: int) -> Any:
    """The inference request, from JSON or from binary tensor data (see the module
    docstring). A ``Content-Type`` is optional (``tritonclient`` sends none); when given it
    must be JSON, or ``application/octet-stream`` with binary data."""
    header_length = request.headers.get(_HEADER_LENGTH)
    declared = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if not (header_length is not None and declared == "application/octet-stream"):
        check_json_type(request, optional=True)
    raw = await read_body(request, limit)
    if header_length is None:
        body = parse_json(raw)
        binary = b""
    else:
        head, binary = split_binary(raw, header_length)
        body = parse_json(head)
    if isinstance(body, dict) and (binary or _wants_binary(body.get("inputs"))):
        attach_binary(body.get("inputs"), binary)
    return body


def _wants_binary(inputs: Any) -> bool:
    return isinstance(inputs, list) and any(
        isinstance(t, dict)
        and isinstance(t.get("parameters"), dict)
        and "binary_data_size" in t["parameters"]
        for t in inputs
    )


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
