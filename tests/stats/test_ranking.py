"""Ranking metrics (watchkeeper.stats) against scikit-learn's ndcg_score, hand computation
and a brute-force implementation written from the definitions."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import ndcg_score

from watchkeeper.exceptions import InputError
from watchkeeper.stats import (
    RANKING_METRICS,
    map_at_k,
    mean_interval,
    mrr,
    ndcg_at_k,
    ndcg_of_scores,
    rank_items,
    ranking_metrics,
    recall_at_k,
)

KS = [None, 1, 2, 3, 5, 8, 20]


def _graded(rng: np.random.Generator, q: int, n: int, zero_rows: int = 2) -> np.ndarray:
    truth = rng.integers(0, 4, size=(q, n)) * (rng.random((q, n)) < 0.4)
    truth[:zero_rows] = 0  # queries with no relevant item
    return truth.astype(float)


def _sk_per_query(truth: np.ndarray, score: np.ndarray, **kw: Any) -> np.ndarray:
    return np.array([ndcg_score(t[None], s[None], **kw) for t, s in zip(truth, score, strict=True)])


# -- nDCG against scikit-learn -----------------------------------------------------------


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("seed", range(3))
def test_ndcg_of_scores_with_ties_equals_scikit_learn(k: int | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = _graded(rng, 40, 12)
    score = np.round(rng.random((40, 12)), 1)  # rounding makes many ties
    assert (np.diff(np.sort(score, axis=1), axis=1) == 0).any()
    mine = ndcg_of_scores(truth, score, k=k)
    assert abs(mine.mean() - ndcg_score(truth, score, k=k)) <= 1e-12
    np.testing.assert_allclose(mine, _sk_per_query(truth, score, k=k), rtol=0, atol=1e-12)
    assert (mine[:2] == 0).all()  # all-zero relevance: 0, as scikit-learn gives


@pytest.mark.parametrize("k", KS)
def test_ndcg_of_scores_ignoring_ties_equals_scikit_learn(k: int | None) -> None:
    rng = np.random.default_rng(7)
    truth = _graded(rng, 30, 9)
    score = np.round(rng.random((30, 9)), 1)
    mine = ndcg_of_scores(truth, score, k=k, ignore_ties=True)
    want = ndcg_score(truth, score, k=k, ignore_ties=True)
    assert abs(mine.mean() - want) <= 1e-12
    np.testing.assert_allclose(
        mine, _sk_per_query(truth, score, k=k, ignore_ties=True), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("k", [1, 2, 3, 5, 10, 15])
@pytest.mark.parametrize("seed", range(3))
def test_ndcg_at_k_of_ranked_lists_equals_scikit_learn_without_ties(k: int, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = 15
    truth = _graded(rng, 50, n)
    score = rng.random((50, n))  # continuous: no ties
    items = [f"item{j}" for j in range(n)]
    ranked = rank_items(score, items)
    labels = [{items[j]: t[j] for j in range(n) if t[j] > 0} for t in truth]
    mine = ndcg_at_k(ranked, labels, k=k)
    assert abs(mine.mean() - ndcg_score(truth, score, k=k)) <= 1e-12
    np.testing.assert_allclose(mine, _sk_per_query(truth, score, k=k), rtol=0, atol=1e-12)
    # the ignore_ties path of scikit-learn agrees too when there are no ties
    assert abs(mine.mean() - ndcg_score(truth, score, k=k, ignore_ties=True)) <= 1e-12
    np.testing.assert_allclose(ranking_metrics(ranked, labels, k=k)["ndcg_at_k"], mine, atol=0)


def test_binary_labels_as_item_lists_equal_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    truth = (rng.random((60, 10)) < 0.2).astype(float)
    score = rng.random((60, 10))
    ranked = rank_items(score)
    labels = [list(np.flatnonzero(t).tolist()) for t in truth]
    for k in (1, 3, 10):
        got = ndcg_at_k(ranked, labels, k=k).mean()
        assert abs(got - ndcg_score(truth, score, k=k)) <= 1e-12


@pytest.mark.parametrize("k", [1, 2, 4, None])
def test_tie_averaged_ndcg_is_the_mean_over_every_tie_order(k: int | None) -> None:
    """scikit-learn's tie averaging is the expected nDCG of the ranked list over a random
    order of each group of tied scores: both forms tie together."""
    truth = np.array([3.0, 0.0, 2.0, 1.0, 0.0, 2.0])
    score = np.array([0.5, 0.9, 0.5, 0.2, 0.5, 0.9])
    groups = [np.flatnonzero(score == s).tolist() for s in sorted(set(score), reverse=True)]
    label = {j: truth[j] for j in range(len(truth)) if truth[j] > 0}
    values = [
        ndcg_at_k([list(itertools.chain(*order))], [label], k=k or len(truth))[0]
        for order in itertools.product(*(itertools.permutations(g) for g in groups))
    ]
    want = ndcg_score(truth[None], score[None], k=k)
    assert abs(np.mean(values) - want) <= 1e-12
    assert abs(ndcg_of_scores(truth[None], score[None], k=k)[0] - want) <= 1e-12


def test_ndcg_by_hand() -> None:
    # grades b=2, c=1 ranked a, b, c: DCG = 2/log2(3) + 1/log2(4); ideal = 2 + 1/log2(3)
    want = (2 / math.log2(3) + 0.5) / (2 + 1 / math.log2(3))
    assert ndcg_at_k([["a", "b", "c"]], [{"b": 2, "c": 1}], k=3)[0] == pytest.approx(
        want, abs=1e-15
    )
    # k=1: ideal is the best grade alone; the list's first item has none
    assert ndcg_at_k([["a", "b", "c"]], [{"b": 2, "c": 1}], k=1)[0] == 0.0
    # a relevant item missing from a short list still counts in the ideal
    short = ndcg_at_k([["b"]], [{"b": 2, "z": 2}], k=5)[0]
    assert short == pytest.approx(2 / (2 + 2 / math.log2(3)), abs=1e-15)


# -- MAP, MRR and recall: by hand and by brute force ------------------------------------


def _brute(ranked: list[Any], label: Any, k: int | None) -> dict[str, float]:
    """Each metric straight from its definition, one query, plain Python."""
    grades = dict(label) if isinstance(label, dict) else dict.fromkeys(label, 1.0)
    relevant = {i for i, g in grades.items() if g > 0}
    cut = ranked if k is None else ranked[:k]
    n_rel = len(relevant)
    # AP@k normalised by min(k, R)
    hits, total = 0, 0.0
    for pos, item in enumerate(cut, start=1):
        if item in relevant:
            hits += 1
            total += hits / pos
    kk = len(ranked) if k is None else k
    ap = total / min(kk, n_rel) if n_rel and kk else 0.0
    rr = 0.0
    for pos, item in enumerate(cut, start=1):
        if item in relevant:
            rr = 1.0 / pos
            break
    recall = sum(item in relevant for item in cut) / n_rel if n_rel else 0.0
    dcg = sum(grades.get(item, 0.0) / math.log2(pos + 1) for pos, item in enumerate(cut, 1))
    best = sorted((g for g in grades.values() if g > 0), reverse=True)[:kk]
    idcg = sum(g / math.log2(pos + 1) for pos, g in enumerate(best, 1))
    return {
        "map_at_k": ap,
        "mrr": rr,
        "recall_at_k": recall,
        "ndcg_at_k": dcg / idcg if idcg else 0.0,
    }


def _random_queries(seed: int, q: int = 80) -> tuple[list[list[Any]], list[Any]]:
    rng = np.random.default_rng(seed)
    pool = [f"i{j}" for j in range(30)]
    ranked, labels = [], []
    for i in range(q):
        length = int(rng.integers(0, 15))  # some lists are empty or shorter than k
        ranked.append([str(x) for x in rng.choice(pool, size=length, replace=False)])
        n_rel = int(rng.integers(0, 6))
        rel = [str(x) for x in rng.choice(pool, size=n_rel, replace=False)]
        if i % 2:
            labels.append({r: float(rng.integers(0, 4)) for r in rel})  # grade 0 is not relevant
        else:
            labels.append(rel)
    return ranked, labels


@pytest.mark.parametrize("k", [1, 3, 5, 10, 25])
@pytest.mark.parametrize("seed", range(3))
def test_metrics_equal_brute_force(k: int, seed: int) -> None:
    ranked, labels = _random_queries(seed)
    want = {m: np.array([_brute(r, lab, k)[m] for r, lab in zip(ranked, labels, strict=True)])
            for m in RANKING_METRICS}  # fmt: skip
    got = ranking_metrics(ranked, labels, k=k)
    assert list(got) == list(RANKING_METRICS)
    for m in RANKING_METRICS:
        np.testing.assert_allclose(got[m], want[m], rtol=0, atol=1e-12, err_msg=m)
    np.testing.assert_allclose(map_at_k(ranked, labels, k=k), want["map_at_k"], atol=1e-12)
    np.testing.assert_allclose(mrr(ranked, labels, k=k), want["mrr"], atol=1e-12)
    np.testing.assert_allclose(recall_at_k(ranked, labels, k=k), want["recall_at_k"], atol=1e-12)
    np.testing.assert_allclose(ndcg_at_k(ranked, labels, k=k), want["ndcg_at_k"], atol=1e-12)
    assert all(((v >= 0) & (v <= 1)).all() for v in got.values())


def test_mrr_over_the_whole_list_equals_brute_force() -> None:
    ranked, labels = _random_queries(9)
    want = [_brute(r, lab, None)["mrr"] for r, lab in zip(ranked, labels, strict=True)]
    np.testing.assert_allclose(mrr(ranked, labels), want, rtol=0, atol=1e-12)


def test_map_mrr_recall_by_hand() -> None:
    ranked = [["a", "b", "c", "d", "e"], ["x", "y", "z"], ["p", "q"], ["m"]]
    labels = [["b", "d", "q"], {"z": 3, "y": 0}, [], ["m", "n", "o", "r"]]
    # query 0: hits at 2 and 4 -> (1/2 + 2/4) / min(5, 3) = 1/3; RR 1/2; recall 2/3
    # query 1: y has grade 0 (not relevant); z at 3 -> (1/3) / 1; RR 1/3; recall 1
    # query 2: nothing relevant -> 0 everywhere
    # query 3: m at 1 -> 1 / min(5, 4) = 1/4; RR 1; recall 1/4
    np.testing.assert_allclose(
        map_at_k(ranked, labels, k=5), [1 / 3, 1 / 3, 0, 1 / 4], rtol=0, atol=1e-15
    )
    np.testing.assert_allclose(mrr(ranked, labels), [1 / 2, 1 / 3, 0, 1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        recall_at_k(ranked, labels, k=5), [2 / 3, 1, 0, 1 / 4], rtol=0, atol=1e-15
    )
    # k=2: query 0 keeps one hit at 2 -> (1/2) / min(2, 3); query 1 none; recall 1/3
    np.testing.assert_allclose(map_at_k(ranked, labels, k=2), [1 / 4, 0, 0, 1 / 2], atol=1e-15)
    np.testing.assert_allclose(recall_at_k(ranked, labels, k=2), [1 / 3, 0, 0, 1 / 4], atol=1e-15)
    np.testing.assert_allclose(mrr(ranked, labels, k=2), [1 / 2, 0, 0, 1], atol=1e-15)


def test_numbers_and_numpy_lists_are_item_ids() -> None:
    got = ranking_metrics([np.array([3, 1, 2]), [7, 8]], [[1], {8: 1.0}], k=2)
    assert got["mrr"].tolist() == [0.5, 0.5]


@pytest.mark.parametrize(
    ("ranked", "labels", "k", "match"),
    [
        ([["a", "b", "a"]], [["a"]], 3, "more than once"),
        ([["a"]], [{"a": -1}], 3, ">= 0"),
        ([["a"]], [{"a": float("nan")}], 3, "finite"),
        ([["a"]], [{"a": "high"}], 3, "number"),
        (["abc"], [["a"]], 3, "ranked list"),
        ([["a"]], ["a"], 3, "list of item ids or a mapping"),
        ([["a"], ["b"]], [["a"]], 3, "one entry per query"),
        ([["a"]], [["a"]], 0, "at least 1"),
        ([["a"]], [["a"]], True, "at least 1"),
        ([[["a"], "b"]], [["a"]], 3, "hashable"),
    ],
)
def test_bad_input_says_what_to_do(ranked: Any, labels: Any, k: Any, match: str) -> None:
    with pytest.raises(InputError, match=match):
        ranking_metrics(ranked, labels, k=k)


def test_bad_score_matrices() -> None:
    with pytest.raises(InputError, match=">= 0"):
        ndcg_of_scores([[1.0, -1.0]], [[0.1, 0.2]])
    with pytest.raises(InputError, match="one shape"):
        ndcg_of_scores([[1.0, 0.0]], [[0.1, 0.2, 0.3]])
    with pytest.raises(InputError, match="name the 2"):
        rank_items([[0.1, 0.2]], items=["a"])


# -- the mean over queries and its interval ---------------------------------------------


def test_t_interval_equals_scipy() -> None:
    x = np.random.default_rng(0).random(57)
    m, lo, hi = mean_interval(x, 0.9)
    want = sps.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert m == pytest.approx(x.mean(), abs=1e-15)
    assert (lo, hi) == pytest.approx(want, abs=1e-12)


def test_bca_interval_agrees_with_scipy_bootstrap() -> None:
    # skewed per-query values (many zeros), as nDCG per query often is
    rng = np.random.default_rng(1)
    x = np.where(rng.random(300) < 0.4, 0.0, rng.beta(5, 1, 300))
    _, lo, hi = mean_interval(x, method="bca", n_bootstrap=20_000, random_state=3)
    ref = sps.bootstrap((x,), np.mean, method="BCa", n_resamples=20_000, random_state=4)
    ci = ref.confidence_interval
    # both are Monte Carlo estimates of the same interval
    assert lo == pytest.approx(ci.low, abs=0.004)
    assert hi == pytest.approx(ci.high, abs=0.004)
    assert mean_interval(x, method="bca", random_state=5) == mean_interval(
        x, method="bca", random_state=5
    )


@pytest.mark.parametrize("method", ["t", "bca"])
def test_interval_covers_the_true_mean_at_its_level(method: str) -> None:
    """Per-query reciprocal ranks of a known population: the 90% interval of their mean
    covers the true mean in about 90% of seeded samples of 200 queries."""
    rng = np.random.default_rng(11)
    # first relevant position 1..5 with known probabilities, or none (RR 0)
    probs = np.array([0.3, 0.2, 0.1, 0.1, 0.05, 0.25])
    rr = np.array([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 0.0])
    truth = float(probs @ rr)
    reps, covered = 300, 0
    for i in range(reps):
        x = rr[rng.choice(6, size=200, p=probs)]
        _, lo, hi = mean_interval(x, 0.9, method=method, n_bootstrap=500, random_state=i)
        covered += lo <= truth <= hi
    # 0.9 +- 3.5 binomial standard errors over 300 repetitions
    assert abs(covered / reps - 0.9) <= 3.5 * math.sqrt(0.9 * 0.1 / reps)


def test_interval_edge_cases() -> None:
    assert all(math.isnan(v) for v in mean_interval([]))
    m, lo, hi = mean_interval([0.5])
    assert m == 0.5
    assert math.isnan(lo)
    assert math.isnan(hi)
    assert mean_interval([1.0, 1.0, 1.0], method="bca") == (1.0, 1.0, 1.0)
    with pytest.raises(InputError, match="finite"):
        mean_interval([0.1, float("nan")])
    with pytest.raises(InputError, match="'t' or 'bca'"):
        mean_interval([0.1, 0.2], method="normal")  # type: ignore[arg-type]
