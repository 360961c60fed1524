"""Open Inference Protocol (v2) tensors to records and answers to tensors.

Pure functions: the endpoints in :mod:`._v2` call them. Tensor data may be flat or nested
row-major lists; its length must match the shape and its values the datatype.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from watchkeeper.data import ColumnKind
from watchkeeper.gateway._errors import ApiError, FieldProblem
from watchkeeper.gateway._service import Answer
from watchkeeper.gateway._validation import InputSpec

__all__ = [
    "DATATYPES",
    "OUTPUTS",
    "attach_binary",
    "binary_answer",
    "binary_outputs",
    "datatype_of",
    "decode_inputs",
    "encode_outputs",
    "split_binary",
    "tensor_type",
    "wanted_outputs",
]

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
OUTPUTS = ("predict", "predict_proba", "prediction_id", "outlier_score", "outlier")


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


def datatype_of(values: Sequence[Any]) -> str:
    """The v2 datatype of output values.

    Examples
    --------
    >>> datatype_of([True]), datatype_of([1, 2]), datatype_of([0.5, 1]), datatype_of(["a"])
    ('BOOL', 'INT64', 'FP64', 'BYTES')
    """
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
    outputs.append({"name": "predict", "datatype": datatype_of(flat), "shape": shape, "data": flat})
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
    if answer.outlier_scores is not None and answer.outliers is not None:
        for name, datatype, data in (
            ("outlier_score", "FP64", answer.outlier_scores),
            ("outlier", "BOOL", answer.outliers),
        ):
            outputs.append({"name": name, "datatype": datatype, "shape": [n], "data": data})
    if wanted is not None:
        outputs = [o for o in outputs if o["name"] in wanted]
    return outputs


def wanted_outputs(body: Mapping[str, Any]) -> list[str] | None:
    """The output names a request asks for (``None``: all of them).

    Examples
    --------
    >>> wanted_outputs({"outputs": [{"name": "predict"}]}), wanted_outputs({})
    (['predict'], None)
    """
    requested = body.get("outputs")
    if requested is None:
        return None
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and o.get("name") in OUTPUTS for o in requested
    ):
        raise ApiError(
            "invalid outputs",
            [FieldProblem("outputs", f"a list of {{name}} among {', '.join(OUTPUTS)}")],
        )
    return [o["name"] for o in requested]


def tensor_type(kind: ColumnKind | None) -> str:
    """The v2 datatype announced for an input of this kind.

    Examples
    --------
    >>> tensor_type(ColumnKind.NUMERIC), tensor_type(ColumnKind.CATEGORICAL)
    ('FP64', 'BYTES')
    """
    if kind is ColumnKind.NUMERIC:
        return "FP64"
    if kind is ColumnKind.BOOLEAN:
        return "BOOL"
    return "BYTES"


# -- binary tensor data (the ``binary_tensor_data`` extension) ------------------------------
#
# A request with the ``Inference-Header-Content-Length: N`` header is N bytes of JSON (the
# usual inference request, where an input with ``parameters.binary_data_size`` has no
# ``data``) followed by the inputs' raw bytes in the order of the inputs: little-endian,
# row-major; BOOL one byte per value; BYTES each value as a 4-byte little-endian length and
# its bytes. Answers use the same layout for the outputs asked in binary.

#: numpy dtypes of the fixed-size datatypes (little-endian).
_NUMPY_TYPES = {
    "BOOL": "|b1",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def _binary_error(where: str, problem: str) -> ApiError:
    return ApiError("invalid binary tensor data", [FieldProblem(where, problem)], status=400)


def split_binary(body: bytes, header_length: str) -> tuple[bytes, bytes]:
    """The JSON header and the binary part of a request sent with binary tensor data.

    Examples
    --------
    >>> split_binary(b'{"inputs": []}\\x01\\x02', "14")
    (b'{"inputs": []}', b'\\x01\\x02')
    """
    if not header_length.isdigit() or int(header_length) > len(body):
        raise _binary_error(
            "header.inference-header-content-length",
            f"must be the byte length of the JSON part (at most {len(body)}), "
            f"got {header_length!r}",
        )
    n = int(header_length)
    return body[:n], body[n:]


def _decode_bytes(raw: bytes, count: int, where: str) -> list[str]:
    values: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise _binary_error(where, "a BYTES element is cut short (its 4-byte length)")
        size = int.from_bytes(raw[offset : offset + 4], "little")
        start, offset = offset + 4, offset + 4 + size
        if offset > len(raw):
            raise _binary_error(where, "a BYTES element is longer than the data sent")
        try:
            values.append(raw[start:offset].decode("utf-8"))
        except UnicodeDecodeError:
            raise _binary_error(where, "BYTES elements must be UTF-8 text") from None
    if len(values) != count:
        raise _binary_error(where, f"the shape needs {count} BYTES elements, got {len(values)}")
    return values


def attach_binary(inputs: Any, binary: bytes) -> None:
    """Replace, in place, each input's ``binary_data_size`` bytes by its decoded ``data``.

    Examples
    --------
    >>> import numpy as np
    >>> inputs = [{"name": "x", "shape": [2], "datatype": "FP32",
    ...            "parameters": {"binary_data_size": 8}}]
    >>> attach_binary(inputs, np.array([1.5, 2.0], "<f4").tobytes())
    >>> inputs[0]["data"]
    [1.5, 2.0]
    """
    import numpy as np

    if not isinstance(inputs, list):
        return  # decode_inputs explains it
    offset = 0
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}]"
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            continue
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise _binary_error(
                f"{where}.parameters.binary_data_size",
                f"must be the byte size of the tensor's data ({len(binary) - offset} bytes left)",
            )
        raw, offset = binary[offset : offset + size], offset + size
        shape, datatype = tensor.get("shape"), tensor.get("datatype")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise _binary_error(f"{where}.shape", "expected a list of non-negative integers")
        count = math.prod(shape)
        if datatype == "BYTES":
            tensor["data"] = _decode_bytes(raw, count, f"{where}.data")
            continue
        dtype = _NUMPY_TYPES.get(datatype) if isinstance(datatype, str) else None
        if dtype is None:
            raise _binary_error(f"{where}.datatype", f"expected one of {', '.join(DATATYPES)}")
        itemsize = np.dtype(dtype).itemsize
        if len(raw) != count * itemsize:
            raise _binary_error(
                f"{where}.parameters.binary_data_size",
                f"shape {shape} of {datatype} needs {count * itemsize} bytes, got {len(raw)}",
            )
        tensor["data"] = np.frombuffer(raw, dtype=dtype).tolist()
    if offset != len(binary):
        raise _binary_error(
            "body", f"{len(binary) - offset} bytes of binary data belong to no input"
        )


def binary_outputs(body: Mapping[str, Any]) -> set[str] | bool:
    """Which outputs the request wants as binary data: ``True`` for all of them (request
    parameter ``binary_data_output``), else the names asking ``binary_data``.

    Examples
    --------
    >>> binary_outputs({"parameters": {"binary_data_output": True}})
    True
    >>> binary_outputs({"outputs": [{"name": "predict", "parameters": {"binary_data": True}}]})
    {'predict'}
    """
    params = body.get("parameters")
    if isinstance(params, dict) and params.get("binary_data_output") is True:
        return True
    names: set[str] = set()
    for output in body.get("outputs") or ():
        if isinstance(output, dict):
            oparams = output.get("parameters")
            if isinstance(oparams, dict) and oparams.get("binary_data") is True:
                names.add(str(output.get("name")))
    return names


def _to_binary(output: dict[str, Any]) -> bytes:
    import numpy as np

    data, datatype = output["data"], output["datatype"]
    if datatype == "BYTES":
        parts = []
        for value in data:
            raw = str(value).encode("utf-8", "backslashreplace")
            parts.append(len(raw).to_bytes(4, "little") + raw)
        return b"".join(parts)
    values = [np.nan if v is None else v for v in data]
    return np.asarray(values, dtype=_NUMPY_TYPES[datatype]).tobytes()


def binary_answer(payload: dict[str, Any], wanted: set[str] | bool) -> tuple[bytes, int]:
    """The answer body with the chosen outputs as binary data, and its JSON header's length.

    Examples
    --------
    >>> body, n = binary_answer(
    ...     {"outputs": [{"name": "p", "datatype": "FP64", "shape": [1], "data": [0.5]}]}, True)
    >>> import json
    >>> json.loads(body[:n])["outputs"][0]["parameters"], len(body) - n
    ({'binary_data_size': 8}, 8)
    """
    from watchkeeper.gateway._http import dumps

    blobs: list[bytes] = []
    outputs = []
    for output in payload["outputs"]:
        if wanted is True or (isinstance(wanted, set) and output["name"] in wanted):
            raw = _to_binary(output)
            blobs.append(raw)
            output = {k: v for k, v in output.items() if k != "data"}
            output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(raw)}
        outputs.append(output)
    header = dumps({**payload, "outputs": outputs})
    return header + b"".join(blobs), len(header)
