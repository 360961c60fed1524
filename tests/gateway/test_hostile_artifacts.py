"""The gateway re-checks every artifact it loads: at start-up, on reload, after tampering.

A version whose artifact changed on disk keeps serving the copy loaded before and the reload
answers an error naming it; a hostile artifact smuggled into the registry is never loaded;
the unauthenticated ``/readyz`` never shows a file path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.registry import NewVersion, Registry

from ._apps import churn_record, fresh_root, gateway
from .conftest import MODEL, DemoRegistry, StartGateway, http

sys.path.insert(0, str(Path(__file__).parents[1] / "registry"))
import _hostile


def _artifact(root: Path, name: str, version: int) -> Path:
    with Registry(root=root) as registry:
        sha = registry.get_version(name, version).artifact_sha256
    (path,) = list((root / "artifacts").rglob(sha))
    return path


def _post(server: Any, path: str, body: Any, admin: bool = False) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    headers.update(server.admin_headers if admin else server.headers)
    status, raw = http(
        "POST", server.base_url + path, body=json.dumps(body).encode(), headers=headers
    )
    return status, json.loads(raw)


def test_reload_after_tampering_keeps_serving_and_names_the_version(
    start_gateway: StartGateway, demo_registry: DemoRegistry
) -> None:
    server = start_gateway(workers=1)
    row = demo_registry.rows[0]
    status, before = _post(server, f"/v1/models/{MODEL}/predict", row)
    assert status == 200
    assert before["version"] == 1

    _artifact(server.root, MODEL, 1).write_bytes(b"tampered")

    for body in ({"models": True}, {}):
        status, answer = _post(server, "/v1/admin/reload", body, admin=True)
        assert status == 409, answer
        problems = {p["field"]: p["problem"] for p in answer["detail"]}
        assert f"models.{MODEL}.versions.1" in problems, answer
        assert "sha256" in problems[f"models.{MODEL}.versions.1"]
        assert "still serving" in answer["error"]
        status, after = _post(server, f"/v1/models/{MODEL}/predict", row)
        assert status == 200, after
        assert (after["version"], after["predictions"]) == (1, before["predictions"])

    status, raw = http("GET", server.base_url + "/readyz")
    assert status == 200
    assert str(server.root) not in raw.decode()
    assert "/tmp" not in raw.decode()


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


@pytest.mark.anyio
async def test_readyz_reports_a_tampered_artifact_without_paths(root: Path) -> None:
    _artifact(root, "churn", 1).write_bytes(b"tampered")
    async with gateway(root) as client:
        ready = await client.get("/readyz")
        v2 = await client.get("/v2/health/ready")
        predict = await client.post("/v1/models/churn/predict", json=churn_record())
    assert ready.status_code == 503
    text = json.dumps(ready.json())
    assert "corrupted" in text
    assert "version 1" in text
    assert str(root) not in text, text
    assert "/artifacts/" not in text
    assert str(root) not in v2.text
    assert predict.status_code == 503
    assert str(root) not in predict.text


@pytest.mark.anyio
async def test_a_smuggled_hostile_artifact_is_never_loaded(root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    payload = _hostile.skops_payloads(marker)["sklearn-testing-function"]
    with Registry(root=root) as registry:
        # As a laxer release would have stored it: the function recorded as "trusted".
        stored = registry.store.add_version(
            NewVersion(
                name="churn",
                actor="attacker",
                format="skops",
                artifact_sha256=registry.artifacts.put(payload),
                artifact_size=len(payload),
                output_kind="classification",
                flavor={
                    "trusted_types": [
                        "sklearn.utils._testing.assert_run_python_script_without_output"
                    ]
                },
            )
        )
        registry.set_alias("churn", "champion", stored.version, actor="attacker")
    async with gateway(root) as client:
        ready = await client.get("/readyz")
        predict = await client.post("/v1/models/churn/predict", json=churn_record())
        reload = await client.post("/v1/admin/reload", json={"models": True})
        price = await client.post("/v1/models/price/predict", json={"a": 1.0, "b": 2.0})
    assert not marker.exists(), "the payload ran"
    assert ready.status_code == 503
    assert "not known to be safe" in json.dumps(ready.json())
    assert predict.status_code == 503
    assert reload.status_code == 200  # nothing was loaded before: nothing to keep serving
    assert price.status_code == 200  # other models are not affected
    assert not marker.exists(), "the payload ran"
