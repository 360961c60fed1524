"""Outlier scores in the gateway: returned beside the prediction (v1 and v2) and logged with
the record, for versions registered with a detector; absent for the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from watchkeeper.checks import OUTLIER_FLAG_KEY, OUTLIER_SCORE_KEY, OutlierDetector
from watchkeeper.data import Schema
from watchkeeper.registry import Registry

from ._apps import CHURN_INPUTS, churn_data, churn_pipeline, churn_record, gateway, read_log

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path: Path) -> Path:
    X, y = churn_data(0, n=1500)
    schema = Schema.infer(X, roles={"region": "sensitive"})
    model = churn_pipeline(1.0).fit(X[list(CHURN_INPUTS)], y)
    with Registry(root=tmp_path) as registry:
        registry.register(
            "churn",
            model,
            reference=X,
            schema=schema,
            outliers=OutlierDetector(rate=0.02),
            actor="tests",
        )
        registry.set_alias("churn", "champion", 1, actor="tests")
        registry.register(
            "churn",
            model,
            reference=X,
            schema=schema,
            outliers=OutlierDetector(method="isolation_forest", rate=0.1, n_estimators=10),
            actor="tests",
        )
        registry.set_alias("churn", "challenger", 2, actor="tests")
        registry.register("plain", model, reference=X, schema=schema, actor="tests")
        registry.set_alias("plain", "champion", 1, actor="tests")
    return tmp_path


def _detector(root: Path, version: int = 1) -> Any:
    with Registry(root=root) as registry:
        return registry.load_outliers("churn", version)


async def test_v1_returns_and_logs_each_records_score_and_flag(root: Path) -> None:
    records = [churn_record(i) for i in range(3)] + [churn_record(3, x1=40.0, x2=-35.0)]
    async with gateway(root) as client:
        resp = await client.post("/v1/models/churn/predict", json=records)
        plain = await client.post("/v1/models/plain/predict", json=records[0])
        listing = (await client.get("/v1/models/churn")).json()
    assert resp.status_code == 200, resp.text
    body = resp.json()
    detector = _detector(root)
    columns = {c: [r[c] for r in records] for c in detector.columns_}
    assert detector.columns_ == ("x1", "x2", "active")  # plan is categorical: ignored
    expected = detector.score(columns)
    assert body["outlier_scores"] == pytest.approx(expected.tolist(), rel=1e-12)
    assert body["outliers"] == (expected > detector.threshold_).tolist()
    assert body["outliers"][3] is True
    assert body["outliers"][:3] == [False, False, False]
    logged = {row["id"]: row for row in read_log(root, "churn")}
    for i, record_id in enumerate(body["ids"]):
        assert logged[record_id][OUTLIER_SCORE_KEY] == pytest.approx(body["outlier_scores"][i])
        assert logged[record_id][OUTLIER_FLAG_KEY] is body["outliers"][i]
    # the features themselves are logged as before
    assert logged[body["ids"][3]]["x1"] == pytest.approx(40.0)
    # a version without a detector answers as before
    assert plain.status_code == 200
    assert "outlier_scores" not in plain.json()
    assert "outliers" not in plain.json()
    (plain_row,) = read_log(root, "plain")
    assert OUTLIER_SCORE_KEY not in plain_row
    # the listing states the detector and its rates
    stated = listing["arms"]["champion"]["outliers"]
    assert stated["rate"] == 0.02
    assert stated["false_positive_rate"] <= 0.02
    assert stated["columns"] == ["x1", "x2", "active"]


async def test_v2_outputs_hold_the_scores_and_flags(root: Path) -> None:
    records = [churn_record(5), churn_record(6, x2=60.0)]
    inputs = [
        {
            "name": name,
            "shape": [2],
            "datatype": {"x1": "FP64", "x2": "FP64", "plan": "BYTES", "active": "BOOL"}[name],
            "data": [r[name] for r in records],
        }
        for name in CHURN_INPUTS
    ]
    async with gateway(root) as client:
        resp = await client.post("/v2/models/churn/infer", json={"inputs": inputs})
        only = await client.post(
            "/v2/models/churn/infer",
            json={"inputs": inputs, "outputs": [{"name": "outlier"}]},
        )
    assert resp.status_code == 200, resp.text
    outputs = {o["name"]: o for o in resp.json()["outputs"]}
    detector = _detector(root)
    expected = detector.score({c: [r[c] for r in records] for c in detector.columns_})
    assert outputs["outlier_score"]["datatype"] == "FP64"
    assert outputs["outlier_score"]["shape"] == [2]
    assert np.allclose(outputs["outlier_score"]["data"], expected, rtol=1e-12)
    assert outputs["outlier"]["data"] == [False, True]
    assert [o["name"] for o in only.json()["outputs"]] == ["outlier"]


async def test_large_batches_are_scored_off_the_event_loop_the_same(root: Path) -> None:
    records = [churn_record(i) for i in range(6)] + [churn_record(9, x1=-50.0)]
    async with gateway(root) as client:
        inline = (await client.post("/v1/models/churn/predict", json=records)).json()
    async with gateway(root, inline_rows=2) as client:
        threaded = (
            await client.post(
                "/v1/models/churn/predict",
                json=[{**r, "id": f"t{i}"} for i, r in enumerate(records)],
            )
        ).json()
    assert threaded["outlier_scores"] == inline["outlier_scores"]
    assert threaded["outliers"] == inline["outliers"]
    assert threaded["outliers"][-1] is True


async def test_shadow_copies_are_scored_by_their_own_versions_detector(root: Path) -> None:
    import asyncio

    from watchkeeper.gateway import create_app

    from ._apps import serve, settings_for

    records = [churn_record(i) for i in range(4)] + [churn_record(7, x2=-45.0)]
    app = create_app(settings_for(root))
    async with serve(app) as client:
        await client.put("/v1/admin/models/churn/route", json={"mode": "shadow", "fraction": 1.0})
        answer = (await client.post("/v1/models/churn/predict", json=records)).json()
        for _ in range(500):  # shadow work runs after the response; wait for it (bounded)
            if not app.state.ctx.shadow_tasks:
                break
            await asyncio.sleep(0.01)
    rows = read_log(root, "churn", include_shadow=True)
    shadow = {r["id"]: r for r in rows if r["shadow"]}
    primary = {r["id"]: r for r in rows if not r["shadow"]}
    assert len(shadow) == len(primary) == 5
    challenger = _detector(root, 2)
    columns = {c: [r[c] for r in records] for c in challenger.columns_}
    expected = challenger.score(columns)
    got = [shadow[i][OUTLIER_SCORE_KEY] for i in answer["ids"]]
    assert got == pytest.approx(expected.tolist(), rel=1e-12)
    assert [shadow[i][OUTLIER_FLAG_KEY] for i in answer["ids"]][-1] is True
    # the answer and the primary log hold the champion's detector's scores
    assert [primary[i][OUTLIER_SCORE_KEY] for i in answer["ids"]] == pytest.approx(
        answer["outlier_scores"]
    )
    assert answer["outlier_scores"] != pytest.approx(got)
