"""Host, Origin and content-type checks (in process), and schema-known fields that are not
model inputs checked by their kind before they are logged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._apps import churn_record, fresh_root, gateway, read_log

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


async def test_foreign_host_names_are_refused(root: Path) -> None:
    async with gateway(root) as client:
        for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example", "10.0.0.5"):
            resp = await client.get("/v1/models", headers={"host": host})
            assert resp.status_code == 421, (host, resp.text)
            assert resp.json()["detail"][0]["field"] == "header.host"
        for host in ("localhost:8080", "127.0.0.1", "[::1]:9000"):
            assert (await client.get("/v1/models", headers={"host": host})).status_code == 200
    async with gateway(root, allowed_hosts=("models.example.com",)) as client:
        ok = await client.get("/v1/models", headers={"host": "models.example.com:443"})
        assert ok.status_code == 200
        assert (await client.get("/v1/models")).status_code == 421  # only what is configured


async def test_cross_origin_writes_are_refused_and_cors_is_off(root: Path) -> None:
    promote = "/v1/admin/models/churn/promote"
    async with gateway(root) as client:
        plain = await client.post(
            promote, content=b'{"version": 2}', headers={"content-type": "text/plain"}
        )
        assert plain.status_code == 415
        for origin in ("http://evil.example", "null", "http://127.0.0.1:9999"):
            resp = await client.post(promote, json={"version": 2}, headers={"origin": origin})
            assert resp.status_code == 403, origin
        fetch = await client.post(
            promote, json={"version": 2}, headers={"sec-fetch-site": "cross-site"}
        )
        assert fetch.status_code == 403
        same = await client.post(
            "/v1/models/churn/predict", json=churn_record(), headers={"origin": "http://127.0.0.1"}
        )
        assert same.status_code == 200
        preflight = await client.options(
            promote,
            headers={"origin": "http://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers
        champion = (await client.get("/v1/models/churn")).json()["aliases"]["champion"]
        assert champion == 1  # nothing moved


async def test_configured_cors_origins(root: Path) -> None:
    app_origin = "https://app.example.com"
    async with gateway(root, cors_origins=(app_origin,)) as client:
        preflight = await client.options(
            "/v1/models/churn/predict",
            headers={"origin": app_origin, "access-control-request-method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == app_origin
        resp = await client.post(
            "/v1/models/churn/predict", json=churn_record(), headers={"origin": app_origin}
        )
        assert resp.status_code == 200
        assert resp.headers["access-control-allow-origin"] == app_origin
        other = await client.post(
            "/v1/models/churn/predict", json=churn_record(), headers={"origin": "https://x.io"}
        )
        assert other.status_code == 403


async def test_known_fields_that_are_not_inputs_are_checked_by_kind(root: Path) -> None:
    async with gateway(root) as client:
        bad = [
            churn_record(1, region={"nested": 1e308}),
            churn_record(2, region=[1, 2]),
            churn_record(3, region="\ud800"),
        ]
        for record in bad:
            # ASCII escapes: the surrogate travels as \ud800, as a hostile client sends it
            raw = json.dumps(record).encode()
            resp = await client.post("/v1/models/churn/predict", content=raw)
            assert resp.status_code == 422, resp.text
            assert resp.json()["detail"][0]["field"] == "region"
        ok = await client.post("/v1/models/churn/predict", json=churn_record(4, region="north"))
        assert ok.status_code == 200
    logged = read_log(root, "churn")
    assert [row["region"] for row in logged] == ["north"]
