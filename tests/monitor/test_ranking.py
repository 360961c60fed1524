"""The monitor over a ranking model's log: one record per query (its prediction a ranked list
of item ids), labels (relevant item lists or item -> grade mappings) joined by id.

Known answers: each window's nDCG@k equals scikit-learn's ndcg_score on the window's
labelled queries (and MAP/MRR/recall the per-query metrics' means); a window with too few
labelled queries is insufficient_data; a ranker degraded in window 3 alerts there and not
before, against registered metrics or, without them, against the first labelled window.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.metrics import ndcg_score

from watchkeeper.checks import RankingConfig, Status
from watchkeeper.logstore import FeedbackRecord, PredictionRecord, SQLiteLogSink
from watchkeeper.monitor import Monitor, MonitorConfig, MonitorStore
from watchkeeper.registry import Registry
from watchkeeper.stats import map_at_k, mrr, ranking_metrics, recall_at_k

T0 = 1_700_006_400.0  # on the hour
HOUR = 3600.0
N = 300  # queries per hourly window
N_ITEMS = 50
SHOWN = 20  # items in each ranked list
LABELLED = (N, 40, N)  # labelled queries per window: window 2 has too few
NOISE = (1.0, 1.0, 3.0)  # the ranker degrades in window 3


def _queries(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    grades = rng.choice(4, size=(n, N_ITEMS), p=[0.8, 0.1, 0.06, 0.04]).astype(float)
    return grades, grades + rng.normal(0, noise, size=grades.shape)


def _ranked(scores: np.ndarray) -> list[list[int]]:
    return np.argsort(-scores, axis=1, kind="stable")[:, :SHOWN].tolist()


def _label(i: int, grades: np.ndarray) -> Any:
    relevant = np.flatnonzero(grades)
    if i % 3 == 0:  # graded relevance as an object (JSON keys are text)
        return {f"{j}": float(grades[j]) for j in relevant}
    return relevant.tolist()  # binary relevance: the relevant item ids


def _binary(i: int, grades: np.ndarray) -> np.ndarray:
    return grades if i % 3 == 0 else (grades > 0).astype(float)


def _build(tmp_path: Path, metrics: dict[str, float] | None) -> dict[str, Any]:
    rng = np.random.default_rng(5)
    registry = Registry(root=tmp_path)
    registry.register(
        "search",
        DummyRegressor().fit([[0.0]], [0.0]),
        reference=pd.DataFrame({"u": rng.normal(size=1000)}),
        metrics=metrics,
        actor="test",
        output_kind="ranking",
    )
    sink = SQLiteLogSink(tmp_path / "predictions.db", synchronous="normal")
    store = MonitorStore(root=tmp_path)
    windows: list[dict[str, Any]] = []
    for w in range(3):
        grades, scores = _queries(rng, N, NOISE[w])
        ranked = _ranked(scores)
        ids = [f"w{w}-{i}" for i in range(N)]
        sink.write_predictions(
            [
                PredictionRecord(
                    rid, T0 + w * HOUR + i * (HOUR / N), "search", 1, "champion",
                    {"u": float(rng.normal())}, ranked[i],
                )
                for i, rid in enumerate(ids)
            ]
        )  # fmt: skip
        sink.write_feedback(
            [
                FeedbackRecord(ids[i], T0 + 4 * HOUR, label=_label(i, grades[i]))
                for i in range(LABELLED[w])
            ]
        )
        windows.append({"grades": grades, "scores": scores, "ranked": ranked})
    return {"registry": registry, "sink": sink, "store": store, "windows": windows}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    found = _build(tmp_path, _holdout_metrics())
    yield found
    found["sink"].close()
    found["registry"].close()
    found["store"].close()


def _holdout_metrics(k: int = 10) -> dict[str, float]:
    """The ranker's metrics on a held-out sample, as a training job would register them."""
    grades, scores = _queries(np.random.default_rng(99), 2000, 1.0)
    ranked = [[str(j) for j in r] for r in _ranked(scores)]
    labels = [
        lab if isinstance(lab, dict) else [str(j) for j in lab]
        for lab in (_label(i, g) for i, g in enumerate(grades))
    ]
    values = ranking_metrics(ranked, labels, k=k)
    return {
        f"holdout.ndcg_at_{k}": float(values["ndcg_at_k"].mean()),
        f"holdout.map_at_{k}": float(values["map_at_k"].mean()),
        "holdout.mrr": float(values["mrr"].mean()),
        f"holdout.recall_at_{k}": float(values["recall_at_k"].mean()),
    }


def _run(world: dict[str, Any], config: MonitorConfig | None = None) -> Any:
    config = config or MonitorConfig(every="1h", baseline_rows=N)
    return Monitor(config).run(world["sink"], world["registry"], world["store"], now=T0 + 5 * HOUR)


def _perf(store: MonitorStore) -> dict[tuple[int, str], Any]:
    return {
        (int((r.window_start.timestamp() - T0) // HOUR), r.check.removeprefix("performance.")): r
        for r in store.results("search", check="performance.")
    }


def test_window_metrics_equal_scikit_learn_and_the_per_query_metrics(
    world: dict[str, Any],
) -> None:
    _run(world)
    found = _perf(world["store"])
    for w in (0, 2):
        data = world["windows"][w]
        grades = np.array([_binary(i, g) for i, g in enumerate(data["grades"])])
        # item ids as text, as they come back from the log's JSON (object keys are text)
        labels = [
            lab if isinstance(lab, dict) else [str(j) for j in lab]
            for lab in (_label(i, g) for i, g in enumerate(data["grades"]))
        ]
        ranked = [[str(j) for j in r] for r in data["ranked"]]
        # the top-10 of each logged list is the top-10 of all candidates' scores
        want = ndcg_score(grades, data["scores"], k=10)
        assert abs(found[(w, "ndcg_at_k")].value - want) <= 1e-12
        assert abs(found[(w, "map_at_k")].value - map_at_k(ranked, labels, k=10).mean()) <= 1e-12
        assert abs(found[(w, "mrr")].value - mrr(ranked, labels, k=10).mean()) <= 1e-12
        assert (
            abs(found[(w, "recall_at_k")].value - recall_at_k(ranked, labels, k=10).mean()) <= 1e-12
        )
        assert found[(w, "ndcg_at_k")].details["k"] == 10
        assert found[(w, "ndcg_at_k")].details["n_queries"] == N
        assert found[(w, "ndcg_at_k")].lower < found[(w, "ndcg_at_k")].value


def test_too_few_labelled_queries_then_an_alert_on_the_degraded_window(
    world: dict[str, Any],
) -> None:
    summary = _run(world)
    found = _perf(world["store"])
    metrics = ("ndcg_at_k", "map_at_k", "mrr", "recall_at_k")
    assert {found[(0, m)].status for m in metrics} == {Status.OK}
    assert {found[(1, m)].status for m in metrics} == {Status.INSUFFICIENT_DATA}
    assert "only 40 labelled queries; at least 50" in found[(1, "mrr")].reason
    assert {found[(2, m)].status for m in metrics} == {Status.ALERT}
    assert found[(2, "ndcg_at_k")].details["reference"] == pytest.approx(
        _holdout_metrics()["holdout.ndcg_at_10"]
    )
    # the rest of the window's checks ran on ranked lists too: prediction drift on the
    # first-ranked item, no detector or estimator failing on lists
    statuses = [r.status for rs in summary.results.values() for r in rs]
    assert Status.ERROR not in statuses
    checks = {(r.check, r.subject) for rs in summary.results.values() for r in rs}
    assert any(c.startswith("drift.") and s == "prediction" for c, s in checks)


def test_without_registered_metrics_the_first_labelled_window_is_the_reference(
    tmp_path: Path,
) -> None:
    world = _build(tmp_path, None)
    try:
        config = MonitorConfig(every="1h", baseline_rows=N, ranking=RankingConfig(k=5))
        _run(world, config)
        found = _perf(world["store"])
        assert found[(0, "ndcg_at_k")].status is Status.OK
        assert found[(0, "ndcg_at_k")].details["k"] == 5
        assert found[(2, "ndcg_at_k")].status is Status.ALERT
        assert "itself measured on a sample" in found[(2, "ndcg_at_k")].reason
        assert found[(2, "ndcg_at_k")].details["reference"] == pytest.approx(
            found[(0, "ndcg_at_k")].value
        )
    finally:
        world["sink"].close()
        world["registry"].close()
        world["store"].close()


def test_unusable_records_are_left_out_and_counted(tmp_path: Path) -> None:
    world = _build(tmp_path, None)
    try:
        sink = world["sink"]
        sink.write_predictions(
            [PredictionRecord("odd", T0 + 10.0, "search", 1, "champion", {"u": 0.0}, 3.5)]
        )
        sink.write_feedback([FeedbackRecord("odd", T0 + 4 * HOUR, label=["1"])])
        _run(world)
        first = _perf(world["store"])[(0, "mrr")]
        assert first.details["n_unusable"] == 1
        assert first.details["n_queries"] == N
    finally:
        world["sink"].close()
        world["registry"].close()
        world["store"].close()


def test_detectors_watch_one_minus_ndcg_and_fire_on_the_degraded_window(
    world: dict[str, Any],
) -> None:
    _run(world)
    found = {
        int((r.window_start.timestamp() - T0) // HOUR): r
        for r in world["store"].results("search", check="concept.adwin")
    }
    assert found[0].status is Status.OK
    assert found[2].status is Status.ALERT
    # every scorable labelled query fed once: 300 + 40 + 300
    states = world["store"].detector_states("search", 1, "champion")
    assert states["adwin"].n_fed == sum(LABELLED)
    _run(world)  # nothing new to feed
    assert world["store"].detector_states("search", 1, "champion")["adwin"].n_fed == sum(LABELLED)
