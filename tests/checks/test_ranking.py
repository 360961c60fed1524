"""Realised ranking quality: values equal to scikit-learn and the per-query metrics, the
minimum number of queries, and the drop rule (no false alarm without change, an alert on a
planted degradation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from watchkeeper.checks import (
    RankingConfig,
    Status,
    check_ranking_performance,
    error_stream,
    ranking_reference,
)
from watchkeeper.exceptions import InputError
from watchkeeper.stats import map_at_k, mean_interval, mrr, ndcg_at_k, rank_items, recall_at_k

N_ITEMS = 30


def _queries(
    seed: int, n: int = 300, noise: float = 1.0
) -> tuple[list[list[str]], list[dict[str, float]], np.ndarray, np.ndarray]:
    """Queries over 30 candidates with grades 0-3; the model scores each candidate by its
    grade plus Gaussian noise (more noise: a worse ranker)."""
    rng = np.random.default_rng(seed)
    grades = rng.choice(4, size=(n, N_ITEMS), p=[0.8, 0.1, 0.06, 0.04]).astype(float)
    scores = grades + rng.normal(0, noise, size=grades.shape)
    items = [f"item{j}" for j in range(N_ITEMS)]
    ranked = rank_items(scores, items)
    labels = [{items[j]: g[j] for j in np.flatnonzero(g)} for g in grades]
    return ranked, labels, grades, scores


def _by(results: list[Any]) -> dict[str, Any]:
    return {r.check.removeprefix("performance."): r for r in results}


@pytest.mark.parametrize("k", [1, 5, 10, 30])
def test_values_equal_scikit_learn_and_the_per_query_metrics(k: int) -> None:
    ranked, labels, grades, scores = _queries(0)
    got = _by(check_ranking_performance(ranked, labels, config=RankingConfig(k=k)))
    assert set(got) == {"ndcg_at_k", "map_at_k", "mrr", "recall_at_k"}
    assert abs(got["ndcg_at_k"].value - ndcg_score(grades, scores, k=k)) <= 1e-12
    assert abs(got["map_at_k"].value - map_at_k(ranked, labels, k=k).mean()) <= 1e-12
    assert abs(got["mrr"].value - mrr(ranked, labels, k=k).mean()) <= 1e-12
    assert abs(got["recall_at_k"].value - recall_at_k(ranked, labels, k=k).mean()) <= 1e-12
    for name, r in got.items():
        assert r.status is Status.OK  # no reference: reported, not judged
        assert r.subject == "model"
        assert r.details["k"] == k
        assert r.details["n_queries"] == len(ranked)
        assert r.lower <= r.value <= r.upper, name


def test_interval_is_the_mean_interval_over_queries() -> None:
    ranked, labels, _, _ = _queries(1, n=120)
    for method in ("t", "bca"):
        config = RankingConfig(k=5, interval=method, random_state=4)  # type: ignore[arg-type]
        r = _by(check_ranking_performance(ranked, labels, config=config))["map_at_k"]
        want = mean_interval(
            map_at_k(ranked, labels, k=5), method=method, n_bootstrap=2000, random_state=4
        )
        assert (r.value, r.lower, r.upper) == pytest.approx(want, abs=1e-15)
        assert r.details["interval"] == method


def test_queries_without_relevant_items_score_zero_and_are_counted() -> None:
    ranked = [["a", "b"], ["c", "d"], ["e", "f"], ["g", "h"]]
    labels: list[Any] = [["a"], [], {"x": 0}, ["h"]]
    got = _by(check_ranking_performance(ranked, labels, config=RankingConfig(min_queries=2)))
    assert got["mrr"].value == pytest.approx((1 + 0 + 0 + 0.5) / 4)
    assert got["mrr"].details["n_without_relevant"] == 2


def test_item_ids_are_compared_as_text() -> None:
    as_numbers = check_ranking_performance(
        [[1, 2, 3], [4.0, 5, 6]], [["2"], {"4": 2}], config=RankingConfig(min_queries=2)
    )
    assert _by(as_numbers)["mrr"].value == pytest.approx((0.5 + 1) / 2)


def test_too_few_queries_are_insufficient_data() -> None:
    ranked, labels, _, _ = _queries(2, n=30)
    got = check_ranking_performance(
        ranked, labels, reference={("ndcg_at_k", "model"): 0.99}, config=RankingConfig()
    )
    assert {r.status for r in got} == {Status.INSUFFICIENT_DATA}
    assert "only 30 labelled queries; at least 50" in got[0].reason
    empty = check_ranking_performance([], [])
    assert [r.status for r in empty] == [Status.INSUFFICIENT_DATA] * 4
    assert empty[0].reason == "no labelled queries yet"


def test_fixed_reference_alert_warn_ok() -> None:
    ranked, labels, _, _ = _queries(3)
    config = RankingConfig(k=10)
    value = _by(check_ranking_performance(ranked, labels, config=config))["ndcg_at_k"]
    half = (value.upper - value.lower) / 2

    def status(ref: float) -> Status:
        found = check_ranking_performance(
            ranked, labels, reference={("ndcg_at_k", "model"): ref}, config=config
        )
        return Status(_by(found)["ndcg_at_k"].status)

    assert status(value.value) is Status.OK
    assert status(value.value + config.tolerance + half / 2) is Status.WARN
    assert status(value.value + config.tolerance + 2 * half) is Status.ALERT
    # a better window than the reference never alarms
    assert status(value.value - 0.2) is Status.OK


def test_no_false_alarm_without_change_and_an_alert_on_a_planted_degradation() -> None:
    """Reference measured on one sample of queries, windows on fresh samples of the same
    ranker: no alert in 60 seeded windows (the rule's false-alarm rate is far below 1/60 at a
    0.02 tolerance); a ranker with three times the noise alerts on every metric."""
    config = RankingConfig(k=10, min_queries=50)
    ranked, labels, _, _ = _queries(10, n=400)
    reference = ranking_reference(ranked, labels, config)
    alerts = 0
    for seed in range(60):
        r, lab, _, _ = _queries(100 + seed, n=400)
        found = check_ranking_performance(r, lab, reference=reference, config=config)
        alerts += any(x.status is Status.ALERT for x in found)
    assert alerts == 0
    worse, lab, _, _ = _queries(999, n=400, noise=3.0)
    found = check_ranking_performance(worse, lab, reference=reference, config=config)
    assert {x.status for x in found} == {Status.ALERT}
    assert "itself measured on a sample" in found[0].reason


def test_bad_input_and_config() -> None:
    with pytest.raises(InputError, match="one entry per query"):
        check_ranking_performance([["a"]], [["a"], ["b"]])
    with pytest.raises(InputError, match="ranked list"):
        check_ranking_performance(["abc", ["a"]], [["a"], ["b"]])
    with pytest.raises(InputError, match="more than once"):
        check_ranking_performance([["a", "a"], ["b"]], [["a"], ["b"]])
    with pytest.raises(InputError, match="metrics must be some of"):
        RankingConfig(metrics=("ndcg",))
    with pytest.raises(InputError, match="min_queries"):
        RankingConfig(min_queries=1)
    with pytest.raises(InputError, match="confidence"):
        RankingConfig(confidence=1.5)


def test_chosen_metrics_only() -> None:
    ranked, labels, _, _ = _queries(4, n=60)
    got = check_ranking_performance(
        ranked, labels, config=RankingConfig(metrics=("mrr", "ndcg_at_k"))
    )
    assert [r.check for r in got] == ["performance.mrr", "performance.ndcg_at_k"]


def test_error_stream_of_a_ranking_model_is_one_minus_ndcg() -> None:
    ranked, labels, _, _ = _queries(5, n=40)
    got = error_stream(labels, ranked, task="ranking", k=5)
    np.testing.assert_allclose(got, 1 - ndcg_at_k(ranked, labels, k=5), rtol=0, atol=1e-15)
    # item ids compared as text, as in the check
    assert error_stream([["1"]], [[1, 2]], task="ranking", k=2).tolist() == [0.0]
    with pytest.raises(InputError, match="ranked list"):
        error_stream([1], [1], task="ranking")
