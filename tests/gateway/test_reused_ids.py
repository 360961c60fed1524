"""A reused prediction id (in process, both log front-ends): the same record again is an
idempotent retry (200, logged once), other features are a 409 saying why, and ids are
scoped per model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests._postgres import serve_postgres

from watchkeeper.gateway import create_app
from watchkeeper.gateway._log import SinkLog
from watchkeeper.logstore import ParquetLogSink, SQLiteLogSink, open_sink

from ._apps import churn_record, fresh_root, gateway, read_log, serve, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def reused_postgres() -> Iterator[Any]:
    yield from serve_postgres()


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


async def _exercise(client: object) -> None:
    record = churn_record(7, id="order-17")
    first = await client.post("/v1/models/churn/predict", json=record)  # type: ignore[attr-defined]
    retry = await client.post("/v1/models/churn/predict", json=record)  # type: ignore[attr-defined]
    clash = await client.post(  # type: ignore[attr-defined]
        "/v1/models/churn/predict", json={**record, "x1": record["x1"] + 1.0}
    )
    other_model = await client.post(  # type: ignore[attr-defined]
        "/v1/models/price/predict", json={"a": 1.0, "b": 2.0, "id": "order-17"}
    )
    assert first.status_code == 200
    assert retry.status_code == 200
    assert retry.json()["ids"] == ["order-17"]
    assert clash.status_code == 409
    assert "already logged for model 'churn' with other features" in clash.text
    assert other_model.status_code == 200


async def test_reused_ids_through_the_group_commit_writer(root: Path) -> None:
    async with gateway(root) as client:
        await _exercise(client)
        metrics = (await client.get("/metrics")).text
    assert "watchkeeper_log_duplicate_records_total 1.0" in metrics
    assert "watchkeeper_log_id_conflicts_total 1.0" in metrics
    churn = read_log(root, "churn")
    assert [r["id"] for r in churn] == ["order-17"]
    assert [r["id"] for r in read_log(root, "price")] == ["order-17"]


async def test_reused_ids_through_a_direct_sink(root: Path) -> None:
    sink = SQLiteLogSink(root / "predictions.db")
    app = create_app(settings_for(root), log=SinkLog(sink))
    async with serve(app) as client:
        await _exercise(client)
    sink.close()
    assert len(read_log(root, "churn")) == 1


@pytest.mark.parametrize("kind", ["parquet", pytest.param("postgresql", marks=pytest.mark.service)])
async def test_reused_ids_on_the_other_stores(
    root: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL and Parquet (one writer process) answer a reused id as SQLite does."""
    if kind == "parquet":
        sink: Any = ParquetLogSink(root / "parquet-log")
    else:
        sink = open_sink(request.getfixturevalue("reused_postgres").create_schema())
    app = create_app(settings_for(root), log=SinkLog(sink))
    async with serve(app) as client:
        await _exercise(client)
    assert sink.read_window("churn").column("id").to_pylist() == ["order-17"]
    assert sink.read_window("price").column("id").to_pylist() == ["order-17"]
    assert sink.duplicates_total == 1
    sink.close()
