"""``POST /v1/models/{name}/explain`` on a real ``watchkeeper serve`` (uvicorn subprocess):
records and logged prediction ids, limits, errors, and the OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from watchkeeper.registry import Registry

from .conftest import MODEL, DemoRegistry, GatewayProcess, StartGateway, http

MAX_ROWS = 20


def _post(server: GatewayProcess, path: str, body: Any, **headers: str) -> tuple[int, Any]:
    status, raw = http(
        "POST",
        server.base_url + path,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **server.headers, **headers},
        timeout=60.0,
    )
    return status, json.loads(raw)


@pytest.fixture(scope="module")
def records(demo_registry: DemoRegistry) -> list[dict[str, Any]]:
    return [dict(r) for r in demo_registry.rows[:3]]


def test_explain_records_and_logged_predictions(
    start_gateway: StartGateway, demo_registry: DemoRegistry, records: list[dict[str, Any]]
) -> None:
    server = start_gateway(workers=1, env={"WATCHKEEPER_EXPLAIN_MAX_ROWS": str(MAX_ROWS)})
    features = list(demo_registry.features)

    # Records, as for predict: explained by the champion (version 1) against its reference.
    status, body = _post(server, f"/v1/models/{MODEL}/explain", records)
    assert status == 200, body
    assert (body["model"], body["version"], body["arm"]) == (MODEL, 1, "champion")
    assert (body["method"], body["output"], body["target_class"]) == ("tree", "margin", "quiet")
    assert body["background"].startswith("reference sample")
    assert len(body["explanations"]) == 3
    with Registry(root=server.root) as registry:
        model = registry.load_model(MODEL, 1).native
    margins = model.decision_function(pd.DataFrame(records)[features])
    for item, margin in zip(body["explanations"], margins, strict=True):
        assert list(item["attributions"]) == features
        assert item["prediction"] == pytest.approx(margin, abs=1e-9)
        total = item["base_value"] + sum(item["attributions"].values())
        assert total == pytest.approx(item["prediction"], abs=1e-6)
        assert item["id"] is None

    # A logged prediction: the features it was logged with, the version that made it.
    status, answer = _post(
        server, f"/v1/models/{MODEL}/predict", {**records[1], "id": "explain-me"}
    )
    assert status == 200, answer
    status, logged = _post(server, f"/v1/models/{MODEL}/explain", {"prediction_id": "explain-me"})
    assert status == 200, logged
    (item,) = logged["explanations"]
    assert (logged["version"], logged["arm"], item["id"]) == (1, None, "explain-me")
    assert item["values"] == {f: records[1][f] for f in features}
    direct = body["explanations"][1]["attributions"]
    np.testing.assert_allclose(
        [item["attributions"][f] for f in features], [direct[f] for f in features], atol=1e-9
    )

    # Limits and errors, each a 4xx that says what to do.
    many = [dict(r) for r in demo_registry.rows[: MAX_ROWS + 1]]
    status, error = _post(server, f"/v1/models/{MODEL}/explain", many)
    assert status == 413
    assert "WATCHKEEPER_EXPLAIN_MAX_ROWS" in error["detail"][0]["problem"]
    status, error = _post(server, f"/v1/models/{MODEL}/explain", {"prediction_id": "nobody"})
    assert status == 404
    assert error["detail"][0]["field"] == "prediction_id"
    status, error = _post(server, "/v1/models/ghost/explain", records)
    assert status == 404
    status, error = _post(
        server, f"/v1/models/{MODEL}/explain", {"prediction_id": "explain-me", "extra": 1}
    )
    assert status == 422
    incomplete = {k: v for k, v in records[0].items() if k != "temp"}
    status, error = _post(server, f"/v1/models/{MODEL}/explain", incomplete)
    assert status == 422
    assert error["detail"] == [{"field": "temp", "problem": "is required"}]
    status, _ = http(
        "POST",
        server.base_url + f"/v1/models/{MODEL}/explain",
        body=json.dumps(records).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 401

    # In the OpenAPI document, with its request body and responses.
    status, raw = http("GET", server.base_url + "/openapi.json", headers=server.headers)
    assert status == 200
    operation = json.loads(raw)["paths"]["/v1/models/{name}/explain"]["post"]
    assert "requestBody" in operation
    assert {"200", "404", "413", "429", "504"} <= set(operation["responses"])
