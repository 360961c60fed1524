"""Ranking metrics per query: nDCG@k, MAP@k, MRR and recall@k (the one home of each).

A model that ranks answers one *query* (a search, a user asking for recommendations) with a
ranked list of item ids, best first; its label is the query's relevant items, either a
collection of item ids (binary relevance, grade 1) or a mapping item -> graded relevance
(numbers >= 0; grade 0 counts as not relevant). Every function returns one value per query,
so that a mean over queries gets its interval from :func:`~watchkeeper.stats.mean_interval`
(queries are the sampling unit).

Definitions, for a query whose ranked list is ``r_1, r_2, ...`` with grades ``g(r_i)``
(0 for an item not in the label) and ``R`` relevant items (grade > 0):

- **nDCG@k** = DCG@k / IDCG@k with DCG@k = sum over i <= k of ``g(r_i) / log2(i + 1)``
  (linear gain) and IDCG@k the DCG@k of the label's own grades sorted from high to low: the
  definition of :func:`sklearn.metrics.ndcg_score`. A query with no relevant item gets 0,
  as scikit-learn gives it.
- **AP@k** = (1 / min(k, R)) * sum over i <= k of ``P@i * rel(r_i)``, with ``P@i`` the share
  of relevant items among the first ``i``: average precision normalised by ``min(k, R)``, the
  common recommender-system convention (a list that puts all ``R`` relevant items first scores
  1 even when ``R < k``). **MAP@k** is its mean over queries.
- **RR** = 1 / (rank of the first relevant item) within the first ``k`` (the whole list when
  ``k`` is ``None``), 0 when none is there; **MRR** is its mean over queries.
- **recall@k** = (relevant items among the first k) / R.

A query with no relevant item scores 0 on every metric (it cannot be answered well), so every
value lies in [0, 1] and no query is silently dropped from a mean. Ranked lists must not
repeat an item; a list shorter than ``k`` simply has no items below its end (its ideal DCG and
``min(k, R)`` still count ``k`` positions).

:func:`ndcg_of_scores` is the score-matrix form (one row of candidate scores per query and
the true relevance of each candidate), which averages over tied scores as scikit-learn does
(McSherry & Najork, 2008); :func:`rank_items` turns score rows into ranked lists.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.exceptions import InputError

__all__ = [
    "RANKING_METRICS",
    "Relevance",
    "map_at_k",
    "mrr",
    "ndcg_at_k",
    "ndcg_of_scores",
    "rank_items",
    "ranking_metrics",
    "recall_at_k",
]

FloatArray = NDArray[np.float64]
#: The relevant items of one query: item ids (grade 1 each) or item -> grade (>= 0).
Relevance = Mapping[Any, float] | Collection[Any]
#: The metric names of :func:`ranking_metrics`, in the order it returns them.
RANKING_METRICS = ("ndcg_at_k", "map_at_k", "mrr", "recall_at_k")


def _discount(n: int) -> FloatArray:
    # 1 / log2(i + 1) for positions i = 1..n, written as scikit-learn writes it
    return np.asarray(1 / (np.log(np.arange(n) + 2) / np.log(2)), dtype=np.float64)


def _check_k(k: int | None, allow_none: bool = False) -> None:
    if k is None and allow_none:
        return
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"k must be a whole number of at least 1 (list positions), got {k!r}")


def _grades(relevant: Any, q: int) -> dict[Any, float]:
    """One query's label as item -> grade (> 0 only), checked."""
    if isinstance(relevant, Mapping):
        out: dict[Any, float] = {}
        for item, grade in relevant.items():
            if isinstance(grade, bool) or not isinstance(grade, int | float | np.number):
                raise InputError(
                    f"query {q}: the relevance of item {item!r} must be a number >= 0, got "
                    f"{grade!r}"
                )
            g = float(grade)
            if not math.isfinite(g) or g < 0:
                raise InputError(
                    f"query {q}: the relevance of item {item!r} must be a finite number >= 0, "
                    f"got {grade!r}"
                )
            if g > 0:
                out[item] = g
        return out
    if isinstance(relevant, str | bytes) or not isinstance(relevant, Collection):
        raise InputError(
            f"query {q}: relevant items must be a list of item ids or a mapping item -> "
            f"relevance, got {type(relevant).__name__} ({relevant!r:.60})"
        )
    return dict.fromkeys(relevant, 1.0)


def _ranked(items: Any, q: int) -> list[Any]:
    if isinstance(items, str | bytes) or not isinstance(items, Sequence | np.ndarray):
        raise InputError(
            f"query {q}: a prediction must be a ranked list of item ids, got "
            f"{type(items).__name__} ({items!r:.60})"
        )
    out = list(items.tolist() if isinstance(items, np.ndarray) else items)
    try:
        unique = len(set(out)) == len(out)
    except TypeError as exc:
        raise InputError(f"query {q}: item ids must be hashable (text or numbers): {exc}") from exc
    if not unique:
        seen: set[Hashable] = set()
        twice = next(i for i in out if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise InputError(
            f"query {q}: the ranked list names item {twice!r} more than once; send each item "
            "once, best first"
        )
    return out


def _gain_table(
    ranked: Sequence[Any], relevant: Sequence[Any], k: int | None
) -> tuple[FloatArray, FloatArray, FloatArray, int]:
    """Grades of the first ``k`` positions of every query (``q x k``, 0-padded), the number
    of relevant items of every query and each query's grades sorted high to low (``q x k``,
    0-padded, for the ideal DCG); ``k=None`` means the longest list."""
    if isinstance(ranked, str | bytes) or isinstance(relevant, str | bytes):
        raise InputError("ranked and relevant must be sequences with one entry per query")
    if len(ranked) != len(relevant):
        raise InputError(
            f"ranked and relevant need one entry per query, got {len(ranked)} ranked lists and "
            f"{len(relevant)} labels"
        )
    lists = [_ranked(items, q) for q, items in enumerate(ranked)]
    labels = [_grades(rel, q) for q, rel in enumerate(relevant)]
    width = max((len(x) for x in lists), default=0) if k is None else int(k)
    width = max(width, 1)
    gains = np.zeros((len(lists), width))
    ideal = np.zeros((len(lists), width))
    n_relevant = np.zeros(len(lists))
    for q, (items, grades) in enumerate(zip(lists, labels, strict=True)):
        top = items[:width]
        gains[q, : len(top)] = [grades.get(i, 0.0) for i in top]
        best = sorted(grades.values(), reverse=True)[:width]
        ideal[q, : len(best)] = best
        n_relevant[q] = len(grades)
    return gains, n_relevant, ideal, width


def _ndcg(gains: FloatArray, ideal: FloatArray) -> FloatArray:
    disc = _discount(gains.shape[1])
    dcg, idcg = gains @ disc, ideal @ disc
    return np.asarray(
        np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), 0.0), dtype=np.float64
    )


def _ap(gains: FloatArray, n_relevant: FloatArray, k: int) -> FloatArray:
    hits = (gains > 0).astype(np.float64)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    den = np.minimum(float(k), n_relevant)
    return np.asarray(
        np.where(den > 0, (precision * hits).sum(axis=1) / np.where(den > 0, den, 1.0), 0.0),
        dtype=np.float64,
    )


def _rr(gains: FloatArray) -> FloatArray:
    hits = gains > 0
    first = hits.argmax(axis=1)
    return np.asarray(np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0), dtype=np.float64)


def _recall(gains: FloatArray, n_relevant: FloatArray) -> FloatArray:
    found = (gains > 0).sum(axis=1)
    return np.asarray(
        np.where(n_relevant > 0, found / np.where(n_relevant > 0, n_relevant, 1.0), 0.0),
        dtype=np.float64,
    )


def ndcg_at_k(ranked: Sequence[Any], relevant: Sequence[Relevance], k: int = 10) -> FloatArray:
    """nDCG@k of each query (linear gain, log2 discount; 0 without relevant items).

    Parameters
    ----------
    ranked
        One ranked list of item ids per query, best first.
    relevant
        One label per query: its relevant item ids, or a mapping item -> relevance grade.
    k
        Positions that count.

    Returns
    -------
    numpy.ndarray
        One value in [0, 1] per query.

    Examples
    --------
    >>> ndcg_at_k([["a", "b", "c"]], [{"b": 2, "c": 1}], k=3).round(4)
    array([0.6697])
    >>> ndcg_at_k([["a", "b"], ["x"]], [["a"], []], k=2)
    array([1., 0.])
    """
    _check_k(k)
    gains, _, ideal, _ = _gain_table(ranked, relevant, k)
    return _ndcg(gains, ideal)


def map_at_k(ranked: Sequence[Any], relevant: Sequence[Relevance], k: int = 10) -> FloatArray:
    """AP@k of each query, normalised by ``min(k, number of relevant items)``.

    Grades above 0 count as relevant. The mean of the returned values is MAP@k.

    Examples
    --------
    >>> map_at_k([["a", "b", "c", "d"]], [["b", "d"]], k=4)  # (1/2 + 2/4) / 2
    array([0.5])
    >>> map_at_k([["a", "b"]], [["a"]], k=10)  # one relevant item, ranked first
    array([1.])
    """
    _check_k(k)
    gains, n_relevant, _, _ = _gain_table(ranked, relevant, k)
    return _ap(gains, n_relevant, int(k))


def mrr(ranked: Sequence[Any], relevant: Sequence[Relevance], k: int | None = None) -> FloatArray:
    """Reciprocal rank of the first relevant item of each query (0 when none is in the list,
    or within its first ``k`` items); their mean is the MRR.

    Examples
    --------
    >>> mrr([["a", "b", "c"], ["x", "y"], ["p"]], [["c"], ["x", "y"], ["q"]])
    array([0.33333333, 1.        , 0.        ])
    >>> mrr([["a", "b", "c"]], [["c"]], k=2)
    array([0.])
    """
    _check_k(k, allow_none=True)
    gains, _, _, _ = _gain_table(ranked, relevant, k)
    return _rr(gains)


def recall_at_k(ranked: Sequence[Any], relevant: Sequence[Relevance], k: int = 10) -> FloatArray:
    """Share of each query's relevant items found in its first ``k`` items (0 without
    relevant items).

    Examples
    --------
    >>> recall_at_k([["a", "b", "c"]], [["c", "z"]], k=2), recall_at_k([["a", "b", "c"]], [["c", "z"]], k=3)
    (array([0.]), array([0.5]))
    """  # noqa: E501
    _check_k(k)
    gains, n_relevant, _, _ = _gain_table(ranked, relevant, k)
    return _recall(gains, n_relevant)


def ranking_metrics(
    ranked: Sequence[Any], relevant: Sequence[Relevance], k: int = 10
) -> dict[str, FloatArray]:
    """nDCG@k, AP@k, RR (within the first ``k``) and recall@k of each query, from one pass
    over the lists (keys as in :data:`RANKING_METRICS`).

    Examples
    --------
    >>> found = ranking_metrics([["a", "b", "c"], ["x", "y"]], [{"b": 1}, ["z"]], k=2)
    >>> {name: values.round(3).tolist() for name, values in found.items()}
    {'ndcg_at_k': [0.631, 0.0], 'map_at_k': [0.5, 0.0], 'mrr': [0.5, 0.0], 'recall_at_k': [1.0, 0.0]}
    """  # noqa: E501
    _check_k(k)
    gains, n_relevant, ideal, _ = _gain_table(ranked, relevant, k)
    return {
        "ndcg_at_k": _ndcg(gains, ideal),
        "map_at_k": _ap(gains, n_relevant, int(k)),
        "mrr": _rr(gains),
        "recall_at_k": _recall(gains, n_relevant),
    }


def rank_items(scores: ArrayLike, items: Sequence[Any] | None = None) -> list[list[Any]]:
    """Ranked lists from score rows: each row's items (column positions, or ``items``) by
    decreasing score; tied scores keep their column order (a strict order is needed for a
    ranked list; :func:`ndcg_of_scores` averages over ties instead).

    Examples
    --------
    >>> rank_items([[0.1, 0.9, 0.5]], items=["a", "b", "c"])
    [['b', 'c', 'a']]
    >>> rank_items([[1.0, 2.0, 1.0]])
    [[1, 0, 2]]
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise InputError(f"scores must be a matrix (one row per query), got shape {s.shape}")
    names = list(range(s.shape[1])) if items is None else list(items)
    if len(names) != s.shape[1]:
        raise InputError(f"items must name the {s.shape[1]} score columns, got {len(names)}")
    order = np.argsort(-s, axis=1, kind="stable")
    return [[names[j] for j in row] for row in order.tolist()]


def ndcg_of_scores(
    y_true: ArrayLike, y_score: ArrayLike, k: int | None = None, ignore_ties: bool = False
) -> FloatArray:
    """nDCG of each query from score rows, as :func:`sklearn.metrics.ndcg_score` computes it
    (whose value is the mean of these).

    ``y_true[q, j]`` is the relevance (>= 0) of candidate ``j`` of query ``q`` and
    ``y_score[q, j]`` the model's score. Tied scores share the average gain of their positions
    (McSherry & Najork, 2008) unless ``ignore_ties``; a query whose relevances are all 0 gets
    0.

    Examples
    --------
    >>> from sklearn.metrics import ndcg_score
    >>> y_true = [[3, 2, 0, 1], [0, 0, 1, 0]]
    >>> y_score = [[0.9, 0.9, 0.1, 0.5], [0.2, 0.7, 0.1, 0.4]]
    >>> mine = ndcg_of_scores(y_true, y_score, k=3)
    >>> mine.round(4), bool(abs(mine.mean() - ndcg_score(y_true, y_score, k=3)) < 1e-12)
    (array([0.9612, 0.    ]), True)
    """
    truth = np.asarray(y_true, dtype=np.float64)
    score = np.asarray(y_score, dtype=np.float64)
    if truth.ndim != 2 or truth.shape != score.shape:
        raise InputError(
            f"y_true and y_score must be matrices of one shape (queries x candidates), got "
            f"{truth.shape} and {score.shape}"
        )
    if not (np.isfinite(truth).all() and np.isfinite(score).all()):
        raise InputError("y_true and y_score must be finite numbers")
    if (truth < 0).any():
        raise InputError("relevance (y_true) must be >= 0; shift or clip negative grades")
    _check_k(k, allow_none=True)
    disc = _discount(truth.shape[1])
    if k is not None:
        disc[k:] = 0
    rows = np.arange(truth.shape[0])[:, None]
    if ignore_ties:
        # the order scikit-learn takes: argsort's order reversed (ties as argsort leaves them)
        ranking = np.argsort(score)[:, ::-1]
        gain = disc.dot(truth[rows, ranking].T)
    else:
        cum = np.cumsum(disc)
        gain = np.array([_tie_averaged(t, s, cum) for t, s in zip(truth, score, strict=True)])
    ideal = disc.dot(truth[rows, np.argsort(truth)[:, ::-1]].T)
    return np.asarray(
        np.where(ideal > 0, gain / np.where(ideal > 0, ideal, 1.0), 0.0), dtype=np.float64
    )


def _tie_averaged(truth: FloatArray, score: FloatArray, discount_cumsum: FloatArray) -> float:
    """DCG of one query with every group of tied scores given its mean gain over the
    positions the group spans."""
    _, inv, counts = np.unique(-score, return_inverse=True, return_counts=True)
    mean_gain = np.bincount(inv, weights=truth, minlength=len(counts)) / counts
    ends = np.cumsum(counts) - 1
    spans = np.diff(discount_cumsum[ends], prepend=0.0)
    return float((mean_gain * spans).sum())
