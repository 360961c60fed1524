"""Open Inference Protocol (v2): health, metadata, inference in both input layouts, and
errors in the protocol's ``{"error": ...}`` form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from watchkeeper.registry import Registry

from ._apps import CHURN_INPUTS, churn_record, fresh_root, gateway, read_log

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


def _columnar(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    types = {"x1": "FP64", "x2": "FP32", "plan": "BYTES", "active": "BOOL"}
    return [
        {
            "name": name,
            "shape": [len(records)],
            "datatype": types[name],
            "data": [r[name] for r in records],
        }
        for name in CHURN_INPUTS
    ]


async def test_health_and_server_metadata(root: Path) -> None:
    async with gateway(root) as client:
        server = (await client.get("/v2")).json()
        live = await client.get("/v2/health/live")
        ready = await client.get("/v2/health/ready")
        model_ready = await client.get("/v2/models/churn/ready")
    assert server["name"] == "watchkeeper"
    assert live.json() == {"live": True}
    assert (ready.status_code, ready.json()) == (200, {"ready": True})
    assert model_ready.json() == {"name": "churn", "ready": True}


async def test_not_ready_is_a_4xx(tmp_path: Path) -> None:
    async with gateway(tmp_path / "empty") as client:
        ready = await client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (400, {"ready": False})


async def test_model_metadata(root: Path) -> None:
    async with gateway(root) as client:
        meta = (await client.get("/v2/models/churn")).json()
        version = await client.get("/v2/models/churn/versions/1")
        missing = await client.get("/v2/models/churn/versions/9")
    assert meta["name"] == "churn"
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "watchkeeper-skops"
    assert meta["inputs"] == [
        {"name": "x1", "datatype": "FP64", "shape": [-1]},
        {"name": "x2", "datatype": "FP64", "shape": [-1]},
        {"name": "plan", "datatype": "BYTES", "shape": [-1]},
        {"name": "active", "datatype": "BOOL", "shape": [-1]},
    ]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba", "prediction_id"]
    assert version.json()["versions"] == ["1"]
    assert missing.status_code == 404


async def test_columnar_infer_matches_v1_and_logs(root: Path) -> None:
    records = [churn_record(i) for i in range(6)]
    async with gateway(root) as client:
        v2 = await client.post(
            "/v2/models/churn/infer", json={"id": "req-7", "inputs": _columnar(records)}
        )
        v1 = (await client.post("/v1/models/churn/predict", json=records)).json()
    assert v2.status_code == 200, v2.text
    body = v2.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("churn", "1", "req-7")
    assert body["parameters"] == {"arm": "champion"}
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == v1["predictions"]
    assert outputs["predict"]["shape"] == [6]
    proba = np.array(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
    expected = np.array([[s["no"], s["yes"]] for s in v1["scores"]])
    np.testing.assert_allclose(proba, expected, atol=1e-12)
    ids = outputs["prediction_id"]["data"]
    assert ids == [f"req-7-{i}" for i in range(6)]
    assert {r["id"] for r in read_log(root, "churn")} >= set(ids)


async def test_matrix_layout_and_output_selection(root: Path) -> None:
    async with gateway(root) as client:
        resp = await client.post(
            "/v2/models/price/infer",
            json={
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [2, 2],
                        "datatype": "FP32",
                        "data": [[1, 2], [3, 4]],
                    }
                ],
                "outputs": [{"name": "predict"}],
            },
        )
    assert resp.status_code == 200, resp.text
    (output,) = resp.json()["outputs"]
    with Registry(root=root) as registry:
        expected = registry.load_model("price", 1).predict(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert output["name"] == "predict"
    assert output["datatype"] == "FP64"
    assert output["data"] == pytest.approx(expected.tolist())


async def test_versioned_infer_uses_that_version(root: Path) -> None:
    records = [churn_record(i) for i in range(4)]
    async with gateway(root) as client:
        await client.put("/v1/admin/models/churn/route", json={"mode": "canary", "percent": 0})
        resp = await client.post(
            "/v2/models/churn/versions/2/infer", json={"inputs": _columnar(records)}
        )
        absent = await client.post("/v2/models/price/versions/5/infer", json={"inputs": []})
    assert resp.json()["model_version"] == "2"
    assert resp.json()["parameters"] == {"arm": "challenger"}
    frame = pd.DataFrame(records)[list(CHURN_INPUTS)]
    with Registry(root=root) as registry:
        expected = registry.load_model("churn", 2).predict(frame).tolist()
    assert resp.json()["outputs"][0]["data"] == expected
    assert absent.status_code == 404


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            [{"name": "x1", "shape": [3], "datatype": "FP64", "data": [1.0, 2.0]}],
            "shape [3] needs 3 values, got 2",
        ),
        (
            [{"name": "x1", "shape": [1], "datatype": "INT8", "data": [300]}],
            "INT8 tensors hold integers in [-128, 127]",
        ),
        (
            [{"name": "x1", "shape": [1], "datatype": "BOOL", "data": [1]}],
            "BOOL tensors hold true/false",
        ),
        (
            [{"name": "x1", "shape": [1], "datatype": "FP128", "data": [1.0]}],
            "expected one of BOOL",
        ),
        (
            [{"name": "m", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}],
            "or one tensor of shape [N, 4]",
        ),
        (
            [
                {"name": "x1", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]},
                {"name": "x2", "shape": [1], "datatype": "FP64", "data": [1]},
            ],
            "expected [N] or [N, 1]",
        ),
        (
            [
                {"name": "x1", "shape": [2], "datatype": "FP64", "data": [1, 2]},
                {"name": "x2", "shape": [1], "datatype": "FP64", "data": [1]},
            ],
            "1 rows, the first tensor has 2",
        ),
        ([{"name": "x1", "shape": [1], "datatype": "FP64"}], "expected a list"),
        ([], "send a non-empty list of tensors"),
    ],
)
async def test_tensor_errors(root: Path, inputs: list[Any], message: str) -> None:
    async with gateway(root) as client:
        resp = await client.post("/v2/models/churn/infer", json={"inputs": inputs})
    assert resp.status_code == 400  # as the protocol says
    body = resp.json()
    assert isinstance(body["error"], str)  # the protocol's error form
    assert any(message in d["problem"] for d in body["detail"]), body


async def test_value_errors_name_the_tensor(root: Path) -> None:
    records = [churn_record(0), churn_record(1, plan=None)]
    inputs = _columnar(records)
    inputs[2]["datatype"] = "BYTES"
    inputs[2]["data"] = ["basic", "ok"]
    inputs[0]["data"] = [1.0, 2.0]
    del inputs[1]  # x2 missing for every row
    async with gateway(root) as client:
        resp = await client.post(
            "/v2/models/churn/infer", json={"inputs": inputs, "outputs": [{"name": "what"}]}
        )
        ok_outputs = await client.post("/v2/models/churn/infer", json={"inputs": inputs})
    assert resp.status_code == 400
    assert resp.json()["detail"][0]["field"] == "outputs"
    assert {d["field"] for d in ok_outputs.json()["detail"]} == {"inputs[x2][0]", "inputs[x2][1]"}
