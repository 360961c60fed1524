"""The v1 endpoints in process: predictions against the model itself, durable logging,
validation errors, limits, feedback, listings, health, metrics and the error boundary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from watchkeeper.gateway import create_app
from watchkeeper.registry import Registry

from ._apps import CHURN_INPUTS, churn_record, fresh_root, gateway, read_log, serve, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


def _model(root: Path, name: str, ref: int | str) -> Any:
    with Registry(root=root) as registry:
        return registry.load_model(name, ref)


def _error_shape(body: dict[str, Any]) -> None:
    assert set(body) >= {"error", "detail"}
    assert isinstance(body["error"], str)
    assert body["error"]
    for entry in body["detail"]:
        assert set(entry) == {"field", "problem"}


async def test_single_record_matches_the_model_and_is_logged(root: Path) -> None:
    record = churn_record(1)
    async with gateway(root) as client:
        resp = await client.post("/v1/models/churn/predict", json=record)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    champion = _model(root, "churn", "champion")
    frame = pd.DataFrame([{k: record[k] for k in CHURN_INPUTS}])
    assert body["predictions"] == champion.predict(frame).tolist()
    expected = dict(zip(champion.classes, champion.predict_proba(frame)[0], strict=True))
    assert body["scores"][0] == pytest.approx(expected, abs=1e-12)
    assert (body["model"], body["version"], body["arm"]) == ("churn", 1, "champion")
    (logged,) = read_log(root, "churn")
    assert logged["id"] == body["ids"][0]
    assert logged["prediction"] == body["predictions"][0]
    assert (logged["version"], logged["arm"], logged["shadow"]) == (1, "champion", False)
    # Inputs and the schema's other known fields (the sensitive attribute) are logged.
    assert logged["region"] == record["region"]
    assert logged["x1"] == pytest.approx(record["x1"])


async def test_batch_answers_in_order_and_matches_the_model(root: Path) -> None:
    records = [churn_record(i) for i in range(40)]
    async with gateway(root, inline_rows=8) as client:  # 40 rows: worker-thread path
        resp = await client.post("/v1/models/churn/predict", json=records)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    frame = pd.DataFrame(records)[list(CHURN_INPUTS)]
    champion = _model(root, "churn", 1)
    assert body["predictions"] == champion.predict(frame).tolist()
    got = np.array([[s[c] for c in champion.classes] for s in body["scores"]])
    np.testing.assert_allclose(got, champion.predict_proba(frame), atol=1e-12)
    assert len(set(body["ids"])) == 40
    assert {r["id"] for r in read_log(root, "churn")} == set(body["ids"])


async def test_matrix_model_without_column_names(root: Path) -> None:
    async with gateway(root) as client:
        resp = await client.post(
            "/v1/models/price/predict", json=[{"a": 1.0, "b": 2.0}, {"b": 0, "a": 0}]
        )
    assert resp.status_code == 200, resp.text
    expected = _model(root, "price", 1).predict(np.array([[1.0, 2.0], [0.0, 0.0]])).tolist()
    assert resp.json()["predictions"] == pytest.approx(expected)
    assert resp.json()["scores"] is None


async def test_client_ids_from_records_and_request_id(root: Path) -> None:
    async with gateway(root) as client:
        one = await client.post(
            "/v1/models/churn/predict", json=churn_record(), headers={"X-Request-Id": "req-1"}
        )
        batch = await client.post(
            "/v1/models/churn/predict",
            json=[churn_record(0, id="mine"), churn_record(1)],
            headers={"X-Request-Id": "req-2"},
        )
        dup = await client.post(
            "/v1/models/churn/predict", json=[churn_record(0, id="x"), churn_record(1, id="x")]
        )
        bad = await client.post(
            "/v1/models/churn/predict", json=churn_record(), headers={"X-Request-Id": " x"}
        )
    assert one.json()["ids"] == ["req-1"]
    assert batch.json()["ids"] == ["mine", "req-2-1"]
    assert dup.status_code == 422
    assert dup.json()["detail"] == [{"field": "[1].id", "problem": "id 'x' repeats an earlier one"}]
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "header.x-request-id"
    assert {r["id"] for r in read_log(root, "churn")} == {"req-1", "mine", "req-2-1"}


async def test_every_bad_field_is_reported_at_once(root: Path) -> None:
    records = [
        churn_record(0, x1="high"),  # wrong type
        churn_record(1, active="yes"),  # not a boolean
        {k: v for k, v in churn_record(2).items() if k != "x2"},  # missing
        churn_record(3, x2=None),  # null
        churn_record(4, plan={"a": 1}),  # nested
    ]
    async with gateway(root) as client:
        resp = await client.post("/v1/models/churn/predict", json=records)
    assert resp.status_code == 422
    body = resp.json()
    _error_shape(body)
    assert {(d["field"], d["problem"]) for d in body["detail"]} == {
        ("[0].x1", "expected a number, got a string"),
        ("[1].active", "expected true or false, got a string"),
        ("[2].x2", "is required"),
        ("[3].x2", "must not be null"),
        ("[4].plan", "expected a single value, got an object"),
    }
    assert read_log(root, "churn") == []  # nothing predicted, nothing logged


async def test_unknown_and_missing_field_policies(root: Path) -> None:
    extra = churn_record(0, colour="red")
    partial = {k: v for k, v in churn_record(1).items() if k != "x2"}
    async with gateway(root) as client:
        ignored = await client.post("/v1/models/churn/predict", json=extra)
    async with gateway(root, unknown_fields="reject", missing_fields="null") as client:
        rejected = await client.post("/v1/models/churn/predict", json=extra)
        nulled = await client.post("/v1/models/churn/predict", json=partial)
    assert ignored.status_code == 200
    assert rejected.status_code == 422
    assert rejected.json()["detail"][0]["field"] == "colour"
    assert rejected.json()["detail"][0]["problem"].startswith("unknown field")
    # Missing becomes NaN for the model; LogisticRegression refuses NaN with a ValueError,
    # which the gateway reports as a 422 carrying the model's own message.
    assert nulled.status_code == 422
    assert "NaN" in nulled.json()["detail"][0]["problem"]


async def test_declared_categories_are_enforced(root: Path) -> None:
    from watchkeeper.data import ColumnSpec, Schema

    with Registry(root=root) as registry:
        from sklearn.dummy import DummyClassifier

        schema = Schema((ColumnSpec("size", "categorical", categories=["S", "M"]),))
        model = DummyClassifier().fit(pd.DataFrame({"size": [0, 1]}), [0, 1])
        registry.register("sizes", model, schema=schema, actor="t")
        registry.set_alias("sizes", "champion", 1, actor="t")
    async with gateway(root) as client:
        resp = await client.post("/v1/models/sizes/predict", json={"size": "XL"})
    assert resp.status_code == 422
    assert resp.json()["detail"] == [
        {"field": "size", "problem": "'XL' is not one of the declared categories (M, S)"}
    ]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "the body is not valid JSON"),
        (b'{"x1": NaN}', 400, "the body is not valid JSON"),
        (b"", 400, "empty body"),
        (b"[]", 422, "no records to predict"),
        (b"42", 422, "expected a JSON object (one record) or a list of objects"),
        (b"[1, 2]", 422, "every record must be a JSON object keyed by field name"),
        (b"\xff\xfe", 400, "the body is not UTF-8 text"),
    ],
)
async def test_malformed_bodies(root: Path, body: bytes, status: int, error: str) -> None:
    async with gateway(root) as client:
        resp = await client.post(
            "/v1/models/churn/predict", content=body, headers={"content-type": "application/json"}
        )
    assert resp.status_code == status
    assert resp.json()["error"] == error
    _error_shape(resp.json())


async def test_size_limits(root: Path) -> None:
    async with gateway(root, max_body_bytes=2_000, max_batch=5) as client:
        big = await client.post("/v1/models/churn/predict", content=b"[" + b" " * 3_000 + b"]")

        async def chunks() -> Any:  # no Content-Length: the running total must stop it
            for _ in range(10):
                yield b" " * 500

        streamed = await client.post("/v1/models/churn/predict", content=chunks())
        many = await client.post(
            "/v1/models/churn/predict", json=[churn_record(i) for i in range(6)]
        )
    assert big.status_code == 413
    assert streamed.status_code == 413
    assert many.status_code == 413
    assert "at most 5" in many.json()["error"]


async def test_unknown_and_invalid_model_names(root: Path) -> None:
    async with gateway(root) as client:
        unknown = await client.post("/v1/models/nope/predict", json=churn_record())
        invalid = await client.post("/v1/models/bad name!/predict", json=churn_record())
        no_route = await client.get("/v1/nothing-here")
    assert unknown.status_code == 404
    assert "churn, price" in unknown.json()["detail"][0]["problem"]
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["field"] == "path.name"
    assert no_route.status_code == 404
    _error_shape(no_route.json())


async def test_model_without_the_default_alias_is_listed_as_not_served(root: Path) -> None:
    from sklearn.dummy import DummyRegressor

    with Registry(root=root) as registry:
        registry.register("draft", DummyRegressor().fit([[0.0]], [1.0]), actor="t")
    async with gateway(root) as client:
        listing = await client.get("/v1/models")
        resp = await client.post("/v1/models/draft/predict", json={"x": 1})
    assert resp.status_code == 404
    assert "champion" in resp.json()["detail"][0]["problem"]
    assert "draft" in listing.json()["not_served"]
    assert [m["name"] for m in listing.json()["models"]] == ["churn", "price"]


async def test_model_listing_and_detail(root: Path) -> None:
    async with gateway(root) as client:
        listing = (await client.get("/v1/models")).json()
        detail = (await client.get("/v1/models/churn")).json()
    churn = listing["models"][0]
    assert churn["route"]["mode"] == "single"
    assert churn["route_source"] == "default"
    assert churn["arms"]["champion"]["version"] == 1
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["aliases"] == {"champion": 1, "challenger": 2}
    inputs = {i["name"]: i["kind"] for i in detail["inputs"]["champion"]}
    assert inputs == {"x1": "numeric", "x2": "numeric", "plan": "categorical", "active": "boolean"}
    roles = {c["name"]: c["role"] for c in detail["schema"]["champion"]["columns"]}
    assert roles["region"] == "sensitive"


async def test_feedback_labels_and_flags(root: Path) -> None:
    async with gateway(root) as client:
        answer = (
            await client.post("/v1/models/churn/predict", json=[churn_record(0), churn_record(1)])
        ).json()
        first, second = answer["ids"]
        one = await client.post("/v1/models/churn/feedback", json={"id": first, "label": "yes"})
        many = await client.post(
            "/v1/models/churn/feedback",
            json=[{"id": second, "flag": True, "note": "odd"}, {"id": "never-seen", "label": "no"}],
        )
        bad = await client.post(
            "/v1/models/churn/feedback",
            json=[{"id": first}, {"lable": 1, "id": first}, {"label": 1}],
        )
        metrics = (await client.get("/metrics")).text
    assert one.json() == {"received": 1, "matched": 1, "unknown": 0, "unknown_ids": []}
    assert many.json() == {"received": 2, "matched": 1, "unknown": 1, "unknown_ids": ["never-seen"]}
    assert bad.status_code == 422
    assert {(d["field"], d["problem"]) for d in bad.json()["detail"]} == {
        ("[0].label", "send a label, a flag, or both"),
        ("[1].lable", "unknown field; use id, label, flag, note"),
        ("[1].label", "send a label, a flag, or both"),
        ("[2].id", "is required (the prediction id)"),
    }
    rows = {r["id"]: r for r in read_log(root, "churn")}
    assert rows[first]["label"] == "yes"
    assert rows[second]["flag"] is True
    assert 'watchkeeper_feedback_total{kind="label",model="churn"} 2.0' in metrics
    assert 'watchkeeper_feedback_total{kind="flag",model="churn"} 1.0' in metrics


async def test_health_readiness_and_metrics(root: Path) -> None:
    async with gateway(root) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        await client.post("/v1/models/churn/predict", json=[churn_record(0), churn_record(1)])
        await client.post("/v1/models/churn/predict", json={"x1": "bad"})
        metrics = (await client.get("/metrics")).text
    assert ready.status_code == 200
    assert ready.json()["models"] == ["churn", "price"]
    wanted = [
        'watchkeeper_requests_total{arm="champion",code="200",model="churn",version="1"} 1.0',
        'watchkeeper_requests_total{arm="",code="422",model="churn",version=""} 1.0',
        'watchkeeper_predictions_total{arm="champion",model="churn",shadow="false",version="1"} '
        "2.0",
        'watchkeeper_request_duration_seconds_count{endpoint="predict",model="churn"} 2.0',
        'watchkeeper_model_duration_seconds_count{arm="champion",model="churn",version="1"} 1.0',
        "watchkeeper_log_write_duration_seconds_count 1.0",
        'watchkeeper_model_info{arm="champion",format="skops",model="churn",version="1"} 1.0',
        "watchkeeper_log_queue_depth 0.0",
    ]
    for line in wanted:
        assert line in metrics, line


async def test_serving_routes_share_one_request_metrics_dependency(root: Path) -> None:
    """predict, both infer routes and explain are timed and labelled by the same dependency:
    an unknown model is counted under "unknown" (never under the name sent), the status comes
    from the answer, and v2's 400 (the protocol's code for a bad request) is what is counted."""
    from watchkeeper.gateway._observe import RequestObservation

    app = create_app(settings_for(root))
    observed = {
        route.path
        for route in app.routes
        for dep in getattr(getattr(route, "dependant", None), "dependencies", ())
        if getattr(dep.call, "__qualname__", "").startswith("request_observer.")
    }
    async with serve(app) as client:
        unknown = await client.post("/v1/models/nope-404/predict", json=churn_record(0))
        bad_v2 = await client.post("/v2/models/churn/infer", json={"inputs": "x"})
        await client.post("/v2/models/churn/versions/1/infer", json={"inputs": "x"})
        metrics = (await client.get("/metrics")).text
    assert observed == {
        "/v1/models/{name}/predict",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/v1/models/{name}/explain",
    }
    assert RequestObservation().model == "unknown"
    assert unknown.status_code == 404
    assert bad_v2.status_code == 400
    assert "nope-404" not in metrics
    for line in (
        'watchkeeper_requests_total{arm="",code="404",model="unknown",version=""} 1.0',
        'watchkeeper_requests_total{arm="",code="400",model="churn",version=""} 2.0',
        'watchkeeper_request_duration_seconds_count{endpoint="infer",model="churn"} 2.0',
        'watchkeeper_request_duration_seconds_count{endpoint="predict",model="unknown"} 1.0',
    ):
        assert line in metrics, line


async def test_not_ready_without_models(tmp_path: Path) -> None:
    async with gateway(tmp_path / "empty") as client:
        resp = await client.get("/readyz")
        predict = await client.post("/v1/models/churn/predict", json={})
    assert resp.status_code == 503
    assert "no model to serve" in resp.json()["problems"][0]
    assert predict.status_code == 404


async def test_unexpected_errors_become_500_with_an_id_and_no_traceback(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings_for(root))
    async with serve(app) as client:
        served = app.state.ctx.state.current.models["churn"].versions["champion"]

        def explode(X: Any, scores: bool = True) -> Any:
            raise RuntimeError("secret internals")

        served.infer = explode
        resp = await client.post("/v1/models/churn/predict", json=churn_record())
    assert resp.status_code == 500
    body = resp.json()
    assert "secret internals" not in resp.text
    assert "Traceback" not in resp.text
    assert body["error_id"] in body["error"]
    assert any(body["error_id"] in r.getMessage() for r in caplog.records)


async def test_the_response_waits_for_the_log(root: Path) -> None:
    """A log that fails makes the request fail: no answer without a durable record."""

    class BrokenLog:
        async def log(self, records: Any) -> int:
            raise OSError("disk full")

        async def feedback(self, records: Any) -> Any:
            raise OSError("disk full")

        def stats(self) -> dict[str, Any]:
            return {}

        def close(self) -> None:
            return None  # nothing to release

    app = create_app(settings_for(root), log=BrokenLog())
    async with serve(app) as client:
        resp = await client.post("/v1/models/churn/predict", json=churn_record())
        feedback = await client.post("/v1/models/churn/feedback", json={"id": "a", "label": 1})
    assert resp.status_code == 503
    assert "predictions" not in resp.json()
    assert "disk full" in resp.json()["detail"][0]["problem"]
    assert feedback.status_code == 503


async def test_openapi_document_lists_every_endpoint(root: Path) -> None:
    async with gateway(root) as client:
        doc = (await client.get("/openapi.json")).json()
    paths = set(doc["paths"])
    assert {
        "/v1/models/{name}/predict",
        "/v1/models/{name}/feedback",
        "/v1/models",
        "/v1/models/{name}",
        "/v1/admin/models/{name}/route",
        "/v1/admin/models/{name}/promote",
        "/v1/admin/models/{name}/rollback",
        "/v1/admin/reload",
        "/v2/models/{name}/infer",
        "/v2/models/{name}",
        "/v2/health/live",
        "/v2/health/ready",
        "/metrics",
        "/healthz",
        "/readyz",
    } <= paths
    predict = doc["paths"]["/v1/models/{name}/predict"]["post"]
    assert "requestBody" in predict
    assert set(predict["responses"]) >= {"200", "400", "404", "413", "422", "503"}
    json.dumps(doc)  # serialisable as a whole


async def test_servers_without_lifespan_load_on_the_first_request(root: Path) -> None:
    import httpx

    app = create_app(settings_for(root))
    transport = httpx.ASGITransport(app)  # sends no lifespan events
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        ready = await client.get("/readyz")
        resp = await client.post("/v1/models/churn/predict", json=churn_record())
    ctx = app.state.ctx
    assert ready.status_code == 200
    assert resp.status_code == 200
    assert ctx.watcher is not None
    ctx.watcher.cancel()
    ctx.log.close()
    ctx.registry.close()


async def test_event_time_header_sets_the_logged_times(root: Path) -> None:
    # Replays and backfills: the log's times are the data's, for predictions and labels.
    async with gateway(root) as client:
        resp = await client.post(
            "/v1/models/churn/predict",
            json=[churn_record(1), churn_record(2)],
            headers={"X-Event-Time": "2011-04-01T08:00:00Z"},
        )
        assert resp.status_code == 200, resp.text
        first = resp.json()["ids"][0]
        label = await client.post(
            "/v1/models/churn/feedback",
            json={"id": first, "label": "yes"},
            headers={"X-Event-Time": "1301904000"},  # three days later, as UNIX seconds
        )
        assert label.status_code == 200, label.text
        bad = [
            await client.post(
                "/v1/models/churn/predict", json=churn_record(3), headers={"X-Event-Time": v}
            )
            for v in ("yesterday", "2011-04-01T08:00:00", "nan", "-5", "99999999999")
        ]
    rows = read_log(root, "churn")
    assert [r["ts"].timestamp() for r in rows] == [1301644800.0, 1301644800.0]
    assert {r["id"]: r["label_ts"] for r in rows}[first].timestamp() == 1301904000.0
    for resp in bad:
        assert resp.status_code == 422, resp.text
        _error_shape(resp.json())
        assert resp.json()["detail"][0]["field"] == "header.x-event-time"
    # Refused requests are not logged.
    assert len(rows) == 2
