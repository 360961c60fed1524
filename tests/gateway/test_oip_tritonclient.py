"""Open Inference Protocol conformance, checked with NVIDIA's own client (``tritonclient``)
against a real gateway (a ``watchkeeper serve`` subprocess): health, readiness with and
without a version, metadata, and inference with binary and JSON tensors in both directions
over FP32, FP64, INT64 and BYTES inputs, answers equal to the model's own predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from .conftest import MODEL, DemoRegistry, GatewayProcess

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

#: The tensor datatype each input of the demo model is sent as.
DATATYPES = {
    "hr": "INT64",
    "weekday": "INT64",
    "workingday": "INT64",
    "holiday": "INT64",
    "weathersit": "BYTES",
    "temp": "FP32",
    "atemp": "FP32",
    "hum": "FP64",
    "windspeed": "FP64",
}
_NUMPY = {"INT64": np.int64, "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_}


@pytest.fixture(scope="module")
def client(gateway_server: GatewayProcess) -> Any:
    found = httpclient.InferenceServerClient(url=f"127.0.0.1:{gateway_server.port}")
    yield found
    found.close()


def _columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    out = {}
    for name, datatype in DATATYPES.items():
        values = [row[name] for row in rows]
        if datatype == "BYTES":
            out[name] = np.array([str(v).encode() for v in values], dtype=np.object_)
        else:
            out[name] = np.array(values, dtype=_NUMPY[datatype])
    return out


def _inputs(columns: dict[str, np.ndarray], binary: bool) -> list[Any]:
    inputs = []
    for name, values in columns.items():
        tensor = httpclient.InferInput(name, list(values.shape), DATATYPES[name])
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


def _own(gateway_server: GatewayProcess, columns: dict[str, np.ndarray]) -> tuple[Any, Any]:
    """The champion's own predictions and probabilities for exactly these tensor values."""
    from watchkeeper.registry import Registry

    frame = pd.DataFrame(
        {
            name: [v.decode() for v in values] if values.dtype == object else values.astype(float)
            for name, values in columns.items()
        }
    )
    with Registry(root=gateway_server.root) as registry:
        model = registry.load_model(MODEL, "champion")
        return model.predict(frame), model.predict_proba(frame)


def test_health_readiness_and_metadata(
    client: Any, gateway_server: GatewayProcess, demo_registry: DemoRegistry
) -> None:
    headers = gateway_server.headers
    assert client.is_server_live(headers=headers)
    assert client.is_server_ready(headers=headers)
    assert client.is_model_ready(MODEL, headers=headers)
    assert client.is_model_ready(MODEL, "1", headers=headers)
    assert not client.is_model_ready(MODEL, "2", headers=headers)  # not on the route
    assert not client.is_model_ready("no-such-model", headers=headers)
    server = client.get_server_metadata(headers=headers)
    assert server["name"] == "watchkeeper"
    assert "binary_tensor_data" in server["extensions"]
    meta = client.get_model_metadata(MODEL, headers=headers)
    assert meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == list(demo_registry.features)
    assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba", "prediction_id"}
    assert client.get_model_metadata(MODEL, "1", headers=headers)["name"] == MODEL


@pytest.mark.parametrize(
    ("binary_in", "binary_out"), [(True, True), (False, False), (True, False), (False, True)]
)
def test_inference_equals_the_models_own_answers(
    client: Any,
    gateway_server: GatewayProcess,
    demo_registry: DemoRegistry,
    binary_in: bool,
    binary_out: bool,
) -> None:
    rows = [dict(r) for r in demo_registry.rows[:7]]
    columns = _columns(rows)
    outputs = [
        httpclient.InferRequestedOutput(name, binary_data=binary_out)
        for name in ("predict", "predict_proba", "prediction_id")
    ]
    result = client.infer(
        MODEL, _inputs(columns, binary_in), outputs=outputs, headers=gateway_server.headers
    )
    labels, proba = _own(gateway_server, columns)
    predicted = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")]
    assert predicted == list(labels)
    np.testing.assert_allclose(result.as_numpy("predict_proba"), proba, rtol=1e-12, atol=1e-12)
    ids = result.as_numpy("prediction_id")
    assert len(ids) == len(rows)
    assert len({bytes(i) if isinstance(i, bytes) else i for i in ids}) == len(rows)


def test_default_request_binary_everything_and_a_version(
    client: Any, gateway_server: GatewayProcess, demo_registry: DemoRegistry
) -> None:
    # no outputs named: tritonclient asks for every output in binary (binary_data_output)
    columns = _columns([dict(r) for r in demo_registry.rows[10:13]])
    result = client.infer(
        MODEL, _inputs(columns, True), model_version="1", headers=gateway_server.headers
    )
    labels, proba = _own(gateway_server, columns)
    assert [v.decode() for v in result.as_numpy("predict")] == list(labels)
    np.testing.assert_allclose(result.as_numpy("predict_proba"), proba, rtol=1e-12, atol=1e-12)
    assert result.get_response()["model_version"] == "1"


def test_shape_and_datatype_errors_are_400(
    client: Any, gateway_server: GatewayProcess, demo_registry: DemoRegistry
) -> None:
    columns = _columns([dict(r) for r in demo_registry.rows[:2]])
    wrong_shape = _inputs(columns, False)
    wrong_shape[0].set_shape([3])  # two values sent for a shape of three
    wrong_type = _inputs(columns, False)
    text = httpclient.InferInput("hr", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"a", b"b"], dtype=np.object_), binary_data=True)
    wrong_type[0] = text
    for inputs in (wrong_shape, wrong_type):
        with pytest.raises(InferenceServerException) as caught:
            client.infer(MODEL, inputs, headers=gateway_server.headers)
        assert caught.value.status() == "400", caught.value
