"""The explain endpoint in process: linear models with text and boolean inputs, a known
linear structure, the per-request deadline and the bounded queue."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import watchkeeper.gateway._explain as explain_module
from watchkeeper.registry import Registry

from ._apps import CHURN_INPUTS, churn_record, fresh_root, gateway

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


async def test_a_linear_pipeline_with_text_and_booleans(root: Path) -> None:
    records = [churn_record(i) for i in range(4)]
    async with gateway(root) as client:
        resp = await client.post("/v1/models/churn/explain", json=records)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["method"], body["output"], body["target_class"]) == ("linear", "margin", "yes")
    for item, record in zip(body["explanations"], records, strict=True):
        assert list(item["attributions"]) == list(CHURN_INPUTS)
        assert item["values"]["plan"] == record["plan"]
        total = item["base_value"] + sum(item["attributions"].values())
        assert total == pytest.approx(item["prediction"], abs=1e-9)


async def test_a_linear_model_gets_coef_times_distance_from_the_reference_mean(
    root: Path,
) -> None:
    with Registry(root=root) as registry:
        model = registry.load_model("price", 1).native
        sample = registry.load_profile("price", 1).sample.to_pandas()[["a", "b"]].to_numpy()
    records = [{"a": 0.5, "b": -1.0}, {"a": 2.0, "b": 0.25}]
    async with gateway(root) as client:
        resp = await client.post("/v1/models/price/explain", json=records)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["background"] == f"reference sample ({len(sample)} rows)"
    x = np.array([[r["a"], r["b"]] for r in records])
    expected = model.coef_ * (x - sample.mean(axis=0))
    got = np.array([[e["attributions"]["a"], e["attributions"]["b"]] for e in body["explanations"]])
    np.testing.assert_allclose(got, expected, atol=1e-8)


async def test_the_deadline_answers_504(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHKEEPER_EXPLAIN_TIMEOUT", "0.01")

    def slow(explainer: Any, frame: Any, deadline: float) -> list[Any]:
        while True:  # the real loop checks the deadline between chunks, as this one
            explain_module.time.sleep(0.005)
            if explain_module.time.monotonic() > deadline:
                raise TimeoutError

    monkeypatch.setattr(explain_module, "_explain_rows", slow)
    async with gateway(root) as client:
        resp = await client.post("/v1/models/churn/explain", json=churn_record(0))
    assert resp.status_code == 504
    assert "WATCHKEEPER_EXPLAIN_TIMEOUT" in resp.json()["detail"][0]["problem"]


async def test_a_full_queue_answers_429(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHKEEPER_EXPLAIN_QUEUE", "1")  # one running, one waiting
    release, submitted = threading.Event(), []
    real = explain_module._explain_rows

    def blocked(explainer: Any, frame: Any, deadline: float) -> list[Any]:
        release.wait(30)
        return real(explainer, frame, deadline + 60)

    class Recording(ThreadPoolExecutor):
        def submit(self, *args: Any, **kwargs: Any) -> Any:
            submitted.append(args)
            return super().submit(*args, **kwargs)

    monkeypatch.setattr(explain_module, "_explain_rows", blocked)
    monkeypatch.setattr(explain_module, "ThreadPoolExecutor", Recording)
    async with gateway(root) as client:
        url = "/v1/models/churn/explain"
        first = asyncio.create_task(client.post(url, json=churn_record(0)))
        second = asyncio.create_task(client.post(url, json=churn_record(1)))
        for _ in range(3000):
            if len(submitted) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(submitted) == 2
        third = await client.post(url, json=churn_record(2))
        release.set()
        answers = await asyncio.gather(first, second)
    assert third.status_code == 429
    assert third.headers["retry-after"] == "1"
    assert [a.status_code for a in answers] == [200, 200]
