"""A corpus of hostile model files, generated in a temporary folder.

Every payload, if it ever ran, would create the file or folder ``marker`` it is given; the
tests assert that it never appears. Shared by the registry, CLI and gateway tests.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _text(value: str) -> dict[str, Any]:
    return {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
        "__id__": 1,
    }


def call_node(module: str, name: str, *args: str) -> dict[str, Any]:
    """A skops node that, once trusted, calls ``module.name(*args)`` while loading."""
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [_text(a) for a in args],
            "__id__": 2,
        },
        "__id__": 3,
    }


def skops_archive(schema: dict[str, Any], extra: dict[str, bytes] | None = None) -> bytes:
    """A skops zip file with ``schema`` as its schema.json."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps({**schema, "protocol": 2}))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _writer_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


def skops_payloads(marker: Path) -> dict[str, bytes]:
    """skops files naming callables, private or testing modules; each would create ``marker``."""
    code = _writer_code(marker)
    shell = f'{sys.executable} -c "{code}"'
    nodes = {
        # The case of the issue: a function of a private testing module of scikit-learn.
        "sklearn-testing-function": call_node(
            "sklearn.utils._testing", "assert_run_python_script_without_output", code
        ),
        "builtins-exec": call_node("builtins", "exec", code),
        "os-system": call_node("os", "system", shell),
        # A public function of a public scikit-learn module (creates the folder it is given).
        "sklearn-public-function": call_node("sklearn.datasets", "get_data_home", str(marker)),
        # The same function named through its private module.
        "sklearn-private-module": call_node("sklearn.datasets._base", "get_data_home", str(marker)),
    }
    files = {name: skops_archive(node) for name, node in nodes.items()}
    # The payload hidden inside an otherwise legitimate estimator.
    files["nested-in-estimator"] = _nested(call_node("builtins", "exec", code))
    return files


def _nested(payload: dict[str, Any]) -> bytes:
    import skops.io as sio
    from sklearn.dummy import DummyRegressor

    legit = sio.dumps(DummyRegressor().fit([[0.0]], [1.0]))
    with zipfile.ZipFile(io.BytesIO(legit)) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    schema = json.loads(members.pop("schema.json"))
    schema["content"]["content"]["strategy"] = payload
    return skops_archive(schema, members)


def zip_bomb() -> bytes:
    """A small .skops zip whose member declares (and holds) 64 MiB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", json.dumps({"__class__": "dict", "protocol": 2}))
        with archive.open("1.npy", "w", force_zip64=True) as member:
            chunk = bytes(16 * 1024**2)
            for _ in range(4):
                member.write(chunk)
    return buffer.getvalue()


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (os.mkdir, (self.marker,))


def pickle_payload(marker: Path) -> bytes:
    """A pickle whose loading creates the folder ``marker``."""
    return pickle.dumps(_Payload(str(marker)))


def onnx_external(location: str) -> bytes:
    """An ONNX model (Y = X + W) whose initializer W is read from ``location``."""
    from onnx import TensorProto, helper

    weight = TensorProto()
    weight.name = "W"
    weight.data_type = TensorProto.FLOAT
    weight.dims.extend([2])
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value=location)
    weight.external_data.add(key="length", value="8")
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def lightgbm_text() -> str:
    """The text of a small, valid LightGBM binary classifier."""
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=3)
    return str(booster.model_to_string())


def xgboost_bytes() -> bytes:
    """A small, valid XGBoost model in UBJSON."""
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    params = {"objective": "binary:logistic", "nthread": 1}
    return bytes(xgb.train(params, xgb.DMatrix(X, y), 3).save_raw("ubj"))


def corpus(folder: Path, marker: Path) -> dict[str, Path]:
    """Every hostile file of the corpus under ``folder``, by case name (file name kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes | str] = {}
    for name, data in skops_payloads(marker).items():
        files[f"{name}.skops"] = data
    files["bomb.skops"] = zip_bomb()
    files["not-a-zip.skops"] = pickle_payload(marker)
    files["reduce.pkl"] = pickle_payload(marker)
    files["reduce.joblib"] = pickle_payload(marker)
    files["pickle-as.lgb"] = pickle_payload(marker)
    files["pickle-as.onnx"] = pickle_payload(marker)
    files["external-relative.onnx"] = onnx_external("../../etc/passwd")
    files["external-absolute.onnx"] = onnx_external("/etc/passwd")
    files["external-sibling.onnx"] = onnx_external("registry.db")
    text = lightgbm_text()
    files["truncated.lgb"] = text[: len(text) // 2]
    # A tree that claims more leaves than it lists: LightGBM's parser aborts the process.
    files["aborting.lgb"] = text.replace("num_leaves=", "num_leaves=99999999", 1)
    files["garbage.lgb"] = "hello world\n"
    raw = xgboost_bytes()
    files["truncated.ubj"] = raw[: len(raw) // 2]
    files["garbage.ubj"] = b"hello"
    paths = {}
    for name, data in files.items():
        path = folder / name
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
        paths[name] = path
    # A link to a legitimate-looking file elsewhere (here: a real skops model).
    import skops.io as sio
    from sklearn.dummy import DummyRegressor

    elsewhere = folder.parent / f"{folder.name}-elsewhere.skops"
    elsewhere.write_bytes(sio.dumps(DummyRegressor().fit([[0.0]], [1.0])))
    link = folder / "link.skops"
    link.symlink_to(elsewhere)
    paths["link.skops"] = link
    return paths
