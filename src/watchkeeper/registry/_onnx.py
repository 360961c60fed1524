"""ONNX models, run with onnxruntime (a graph, not code: safe to load)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper._extras import require
from watchkeeper.exceptions import InputError
from watchkeeper.registry._errors import UnsupportedFormatError
from watchkeeper.registry._formats import Packed, Predictor
from watchkeeper.registry._safety import check_onnx

__all__ = ["OnnxFormat", "OnnxPredictor"]

_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}
_CLASS_ATTRIBUTES = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")


class OnnxFormat:
    """An ``onnx.ModelProto``, its serialized bytes, or a ``.onnx`` file."""

    name = "onnx"

    def pack(self, model: Any, *, trusted: bool) -> Packed:
        """Serialize an ONNX model and read its class labels from the graph."""
        if isinstance(model, bytes | bytearray):
            data = bytes(model)
        elif hasattr(model, "SerializeToString"):
            data = model.SerializeToString()
        else:
            raise UnsupportedFormatError(
                f"format 'onnx' needs an onnx.ModelProto or its bytes, got {type(model).__name__}"
            )
        session = _session(data)
        outputs = session.get_outputs()
        if len(outputs) > 1:
            kind = "classification"
        elif outputs and outputs[0].type in ("tensor(float)", "tensor(double)"):
            kind = "regression"
        else:
            kind = "unknown"
        classes = _graph_classes(data) if kind == "classification" else None
        return Packed(data, kind, {"classes": classes})

    def read_file(self, path: Path, *, trusted: bool) -> Any:
        """The bytes of a ``.onnx`` file, checked to be one self-contained ONNX model."""
        data = path.read_bytes()
        check_onnx(data, repr(str(path)))
        return data

    def unpack(self, data: bytes, flavor: dict[str, Any], *, trusted: bool = False) -> Predictor:
        """Open an onnxruntime session on the stored model."""
        return OnnxPredictor(_session(data), flavor.get("classes"))


def _session(data: bytes) -> Any:
    ort = require("onnxruntime", extra="onnx", purpose="ONNX models")
    check_onnx(data)
    try:
        return ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad graphs
        raise UnsupportedFormatError(
            f"onnxruntime cannot load this ONNX model: {str(exc).splitlines()[0]}"
        ) from exc


def _graph_classes(data: bytes) -> list[Any] | None:
    # The classifier or ZipMap node carries the labels; without the onnx package they are
    # taken from the probability output at prediction time instead.
    try:
        import onnx
    except ImportError:
        return None
    graph = onnx.load_model_from_string(data).graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name in _CLASS_ATTRIBUTES:
                values = onnx.helper.get_attribute_value(attribute)
                return [v.decode() if isinstance(v, bytes) else int(v) for v in values]
    return None


class OnnxPredictor:
    """:class:`Predictor` feeding a table to an onnxruntime session.

    A model with one input gets the whole table as a matrix; a model with one input per
    column (as skl2onnx produces for mixed-type pipelines) gets each column by name.
    """

    def __init__(self, session: Any, classes: list[Any] | None) -> None:
        self.native = session
        self._classes = None if classes is None else tuple(classes)
        self._inputs = session.get_inputs()
        outputs = session.get_outputs()
        self._label = outputs[0].name
        names = [o.name for o in outputs[1:]]
        self._proba = next((n for n in names if "prob" in n.lower()), names[0] if names else None)

    @property
    def classes(self) -> tuple[Any, ...] | None:
        """Class labels in ``predict_proba`` column order, if a classifier."""
        return self._classes

    def _feed(self, X: Any) -> dict[str, np.ndarray]:
        if len(self._inputs) == 1:
            spec = self._inputs[0]
            matrix = X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X)
            if matrix.ndim == 1:
                matrix = matrix.reshape(1, -1)
            return {spec.name: matrix.astype(_DTYPES.get(spec.type, np.float32))}
        if not hasattr(X, "columns"):
            raise InputError(
                "this ONNX model takes one input per column "
                f"({', '.join(i.name for i in self._inputs)}); pass a DataFrame with those columns"
            )
        missing = [i.name for i in self._inputs if i.name not in X.columns]
        if missing:
            raise InputError(f"the ONNX model needs columns that are missing: {missing}")
        return {
            i.name: X[i.name].to_numpy().reshape(-1, 1).astype(_DTYPES.get(i.type, np.float32))
            for i in self._inputs
        }

    def predict(self, X: Any) -> np.ndarray:
        """First output of the graph (labels for classifiers, values for regressors)."""
        (out,) = self.native.run([self._label], self._feed(X))
        out = np.asarray(out)
        return out.ravel() if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_proba(self, X: Any) -> np.ndarray:
        """The probability output, one column per class."""
        if self._proba is None:
            raise InputError("this ONNX model has no probability output; use predict")
        (out,) = self.native.run([self._proba], self._feed(X))
        if isinstance(out, list):  # ZipMap: one {label: probability} dict per row
            keys = list(self._classes) if self._classes is not None else list(out[0])
            return np.array([[row[k] for k in keys] for row in out], dtype=np.float64)
        return np.asarray(out)
