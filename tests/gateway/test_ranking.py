"""A ranking model through the v1 API: ranked lists are answered and logged as lists; its
labels are relevant item lists or item -> relevance objects, checked strictly; other models
still refuse object labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsRegressor

from watchkeeper.registry import Registry

from ._apps import churn_record, fresh_root, gateway, read_log

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = fresh_root(tmp_path, tmp_path_factory.getbasetemp())
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    top5 = np.array([rng.permutation(8)[:5] for _ in range(40)])
    # one neighbour: each answer is a training row's ranked list of five item ids
    model = KNeighborsRegressor(n_neighbors=1).fit(X, top5)
    with Registry(root=found) as registry:
        registry.register("rank", model, reference=X, actor="tests", output_kind="ranking")
        registry.set_alias("rank", "champion", 1, actor="tests")
    return found


async def test_ranked_lists_are_answered_and_logged(root: Path) -> None:
    async with gateway(root) as client:
        answer = await client.post(
            "/v1/models/rank/predict", json=[{"a": 0.1, "b": -0.3}, {"a": 1.0, "b": 0.5}]
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert all(isinstance(p, list) and len(p) == 5 for p in body["predictions"])
    logged = {r["id"]: r["prediction"] for r in read_log(root, "rank")}
    assert [logged[i] for i in body["ids"]] == body["predictions"]


async def test_ranking_labels_are_lists_or_graded_objects(root: Path) -> None:
    async with gateway(root) as client:
        ids = (
            await client.post(
                "/v1/models/rank/predict", json=[{"a": float(i), "b": 0.0} for i in range(3)]
            )
        ).json()["ids"]
        good = await client.post(
            "/v1/models/rank/feedback",
            json=[
                {"id": ids[0], "label": ["3", "5"]},
                {"id": ids[1], "label": {"3": 2, "7": 0.5}},
                {"id": ids[2], "label": []},
            ],
        )
        bad = await client.post(
            "/v1/models/rank/feedback",
            json=[
                {"id": ids[0], "label": {"3": -1}},
                {"id": ids[0], "label": {"3": "high"}},
                {"id": ids[0], "label": ["3", "3"]},
                {"id": ids[0], "label": [["3"]]},
                {"id": ids[0], "label": [1.5]},
            ],
        )
        churn = (await client.post("/v1/models/churn/predict", json=churn_record(0))).json()["ids"][
            0
        ]
        not_ranking = await client.post(
            "/v1/models/churn/feedback", json={"id": churn, "label": {"yes": 1}}
        )
    assert good.status_code == 200, good.text
    assert good.json()["matched"] == 3
    labels = {r["id"]: r["label"] for r in read_log(root, "rank")}
    assert labels[ids[0]] == '["3","5"]'  # one window mixing lists and objects: JSON text
    assert labels[ids[1]] == '{"3":2,"7":0.5}'
    assert bad.status_code == 422
    problems = {d["field"]: d["problem"] for d in bad.json()["detail"]}
    assert set(problems) == {f"[{i}].label" for i in range(5)}
    assert "'3' must be a number >= 0" in problems["[0].label"]
    assert "'3' must be a number >= 0" in problems["[1].label"]
    assert "more than once" in problems["[2].label"]
    assert "relevant item ids" in problems["[3].label"]
    assert "relevant item ids" in problems["[4].label"]
    assert not_ranking.status_code == 422
    assert "ranking model's label" in not_ranking.json()["detail"][0]["problem"]
