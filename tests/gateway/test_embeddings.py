"""Embedding columns through the gateway: a vector sent with each record is checked against
the reference's length, logged, profiled per window and tested for drift by the monitor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ._apps import gateway

pytestmark = pytest.mark.anyio

DIM = 16


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    latent = rng.normal(size=(n, 3))
    mixing = np.random.default_rng(99).normal(size=(3, DIM))  # the same directions each time
    vectors = latent @ mixing + 0.3 * rng.normal(size=(n, DIM))
    vectors[:, :4] += shift
    return pd.DataFrame({"x": rng.normal(size=n), "emb": list(vectors)})


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    pairs = zip(frame.x, frame.emb, strict=True)
    return [{"x": float(x), "emb": [float(v) for v in e]} for x, e in pairs]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    from sklearn.linear_model import LinearRegression

    from watchkeeper.registry import Registry

    reference = _frame(np.random.default_rng(0), 2000)
    model = LinearRegression().fit(reference[["x"]], 2.0 * reference["x"])
    with Registry(root=tmp_path / "root") as registry:
        registry.register("vec", model, reference=reference, actor="tests")
        registry.set_alias("vec", "champion", 1, actor="tests")
    return tmp_path / "root"


async def test_embeddings_are_checked_logged_and_monitored_for_drift(root: Path) -> None:
    from watchkeeper.logstore import SQLiteLogSink
    from watchkeeper.monitor import Monitor, MonitorConfig, MonitorStore, run_cycle
    from watchkeeper.registry import Registry

    rng = np.random.default_rng(1)
    clean, shifted = _frame(rng, 300), _frame(rng, 300, shift=0.8)
    async with gateway(root) as client:
        url = "/v1/models/vec/predict"
        for frame in (clean, shifted):
            for start in range(0, 300, 100):
                resp = await client.post(url, json=_records(frame.iloc[start : start + 100]))
                assert resp.status_code == 200, resp.text
        good = _records(clean.iloc[:1])[0]
        for bad, says in [
            ({**good, "emb": good["emb"][:-1]}, f"expected an embedding of {DIM} numbers"),
            ({**good, "emb": [*good["emb"][:-1], "a"]}, "must be a number, got a string"),
            ({**good, "emb": 3.0}, "expected a non-empty list of numbers"),
            ({**good, "emb": []}, "expected a non-empty list of numbers"),
        ]:
            resp = await client.post(url, json=[good, bad])
            assert resp.status_code == 422, resp.text
            assert says in resp.text, resp.text
            assert "[1].emb" in resp.text or "emb" in resp.text

    with SQLiteLogSink(root / "predictions.db") as sink:
        rows = sink.read_window("vec", start=0, end=4e9)
        assert rows.num_rows == 600  # the refused requests logged nothing
        logged = rows.column("emb").to_pylist()
        assert logged[0] == pytest.approx(list(clean.emb.iloc[0]))
        with Registry(root=root) as registry, MonitorStore(root=root / "monitor") as store:
            config = MonitorConfig(every=300, detectors=(), estimators=())
            run_cycle(Monitor(config), sink, registry, store)
            verdicts = [r.status.value for r in store.results("vec", subject="emb")
                        if r.check.startswith("drift")]  # fmt: skip
    assert verdicts == ["ok", "alert"], verdicts
