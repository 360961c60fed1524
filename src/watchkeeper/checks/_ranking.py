"""Realised ranking quality on labelled queries: nDCG@k, MAP@k, MRR and recall@k, each with
an interval over queries, judged against a reference as realised performance is.

A ranking model answers each query with a ranked list of item ids (best first); the label
of a query is its relevant items (a list of ids) or a mapping item -> graded relevance. The
metrics are those of :mod:`watchkeeper.stats` (see there for the definitions; MRR counts the
first ``k`` positions, like the others). Queries are the sampling unit: each metric is the
mean of its per-query values, with a Student t (default) or BCa bootstrap interval over
queries.

A verdict needs at least ``min_queries`` labelled queries (``insufficient_data`` below). The
decision rule is the one of :func:`~watchkeeper.checks.check_realised_performance`: against
a fixed reference value, ``alert`` when the whole interval lies below the reference by more
than the (absolute) tolerance, ``warn`` when only the estimate does; against a reference
measured on a sample (``(value, lower, upper)``), a two-sample comparison that counts the
reference's uncertainty too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from watchkeeper.checks._performance import (
    PerformanceRule,
    ReferenceValue,
    _judge,
    _Measure,
)
from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.stats import RANKING_METRICS, mean_interval, ndcg_at_k, ranking_metrics

__all__ = ["RankingConfig", "check_ranking_performance", "ndcg_losses", "ranking_reference"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RankingConfig:
    """How realised ranking quality is measured and judged.

    Parameters
    ----------
    k
        List positions that count (nDCG@k, MAP@k, MRR within k, recall@k).
    min_queries
        Labelled queries needed for a verdict; fewer give ``insufficient_data``.
    confidence
        Level of every interval.
    tolerance
        Drop that matters (absolute: every ranking metric lies in [0, 1]).
    interval
        ``"t"`` (Student t over queries) or ``"bca"`` (BCa bootstrap over queries).
    n_bootstrap
        Resamples of the BCa interval.
    random_state
        Seed of the bootstrap.
    metrics
        Which of ``ndcg_at_k``, ``map_at_k``, ``mrr``, ``recall_at_k`` to report.

    Examples
    --------
    >>> RankingConfig().k, RankingConfig(k=5, interval="bca").interval
    (10, 'bca')
    >>> RankingConfig(k=0)
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: k must be a whole number of at least 1, got 0
    """

    k: int = 10
    min_queries: int = 50
    confidence: float = 0.95
    tolerance: float = 0.02
    interval: Literal["t", "bca"] = "t"
    n_bootstrap: int = 2000
    random_state: int = 0
    metrics: tuple[str, ...] = RANKING_METRICS

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise InputError(f"k must be a whole number of at least 1, got {self.k!r}")
        if self.min_queries < 2:
            raise InputError(
                f"min_queries must be at least 2 (an interval needs two queries), got "
                f"{self.min_queries}"
            )
        if self.interval not in ("t", "bca"):
            raise InputError(f"interval must be 't' or 'bca', got {self.interval!r}")
        if self.n_bootstrap < 100:
            raise InputError(f"n_bootstrap must be at least 100, got {self.n_bootstrap}")
        unknown = [m for m in self.metrics if m not in RANKING_METRICS]
        if unknown or not self.metrics:
            raise InputError(
                f"metrics must be some of {', '.join(RANKING_METRICS)}, got {list(self.metrics)}"
            )
        object.__setattr__(self, "metrics", tuple(self.metrics))
        # the interval level and tolerance are checked by the rule they become
        self.rule()

    def rule(self) -> PerformanceRule:
        """The realised-performance rule with this minimum, level and tolerance."""
        return PerformanceRule(
            min_labels=self.min_queries,
            confidence=self.confidence,
            tolerance=self.tolerance,
            random_state=self.random_state,
        )


def _key(item: Any) -> str:
    # item ids compared as text: JSON may turn 1 into "1", and 1.0 is the same item as 1
    if isinstance(item, float) and item.is_integer():
        return str(int(item))
    return str(item)


def _as_text(ranked: Sequence[Any], relevant: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    lists: list[Any] = []
    for q, items in enumerate(ranked):
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
            raise InputError(
                f"query {q}: a prediction must be a ranked list of item ids, got "
                f"{type(items).__name__} ({items!r:.60})"
            )
        lists.append([_key(i) for i in items])
    labels: list[Any] = []
    for rel in relevant:
        if isinstance(rel, Mapping):
            labels.append({_key(i): g for i, g in rel.items()})
        elif isinstance(rel, Sequence) and not isinstance(rel, str | bytes):
            labels.append([_key(i) for i in rel])
        else:
            labels.append(rel)  # refused by the metrics with the query's number
    return lists, labels


def _measures(
    ranked: Sequence[Any], relevant: Sequence[Any], config: RankingConfig
) -> tuple[list[_Measure], int]:
    lists, labels = _as_text(ranked, relevant)
    values = ranking_metrics(lists, labels, k=config.k)
    n = len(lists)
    no_relevant = sum(
        1
        for lab in labels
        if not (any(float(g) > 0 for g in lab.values()) if isinstance(lab, Mapping) else lab)
    )
    out = []
    for metric in config.metrics:
        mean, lo, hi = mean_interval(
            values[metric],
            config.confidence,
            method=config.interval,
            n_bootstrap=config.n_bootstrap,
            random_state=config.random_state,
        )
        finite = math.isfinite(lo) and math.isfinite(hi)
        out.append(
            _Measure(
                metric,
                "model",
                mean if n else None,
                lo if finite else None,
                hi if finite else None,
                config.interval,
                {"k": config.k, "n_queries": n, "n_without_relevant": no_relevant},
            )
        )
    return out, n


def ndcg_losses(ranked: Sequence[Any], relevant: Sequence[Any], k: int) -> FloatArray:
    """``1 - nDCG@k`` of each query, item ids compared as text (the error stream of a
    ranking model, see :func:`~watchkeeper.checks.error_stream`)."""
    lists, labels = _as_text(ranked, relevant)
    return np.asarray(1.0 - ndcg_at_k(lists, labels, k=k), dtype=np.float64)


def check_ranking_performance(
    ranked: Sequence[Sequence[Any]],
    relevant: Sequence[Any],
    *,
    reference: Mapping[tuple[str, str], ReferenceValue] | None = None,
    config: RankingConfig | None = None,
) -> list[CheckResult]:
    """Realised ranking quality on labelled queries, judged against a reference.

    Parameters
    ----------
    ranked
        The model's ranked list of item ids for each labelled query, best first.
    relevant
        Each query's label: its relevant item ids, or a mapping item -> relevance (>= 0).
        Item ids are compared as text (``1``, ``1.0`` and ``"1"`` are one item).
    reference
        Reference values by ``(metric, "model")``, e.g. ``("ndcg_at_k", "model")``; a value
        measured on a sample may come as ``(value, lower, upper)`` (see
        :func:`ranking_reference`).
    config
        k, minimum queries, interval and tolerance (default :class:`RankingConfig`).

    Returns
    -------
    list of CheckResult
        ``performance.ndcg_at_k``, ``performance.map_at_k``, ``performance.mrr`` and
        ``performance.recall_at_k`` for subject ``"model"``; ``details`` holds ``k``, the
        number of queries and how many of them had no relevant item (they score 0).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> items = [f"i{j}" for j in range(20)]
    >>> ranked = [list(rng.permutation(items)) for _ in range(200)]
    >>> relevant = [list(rng.choice(items, 3, replace=False)) for _ in range(200)]
    >>> found = check_ranking_performance(ranked, relevant, config=RankingConfig(k=5),
    ...                                   reference={("ndcg_at_k", "model"): 0.6})
    >>> ndcg = found[0]
    >>> ndcg.check, ndcg.status.value, round(ndcg.value, 3), round(ndcg.lower, 3)
    ('performance.ndcg_at_k', 'alert', 0.207, 0.178)
    """
    config = config or RankingConfig()
    if isinstance(ranked, str | bytes) or isinstance(relevant, str | bytes):
        raise InputError("ranked and relevant must be sequences with one entry per query")
    if len(ranked) != len(relevant):
        raise InputError(
            f"ranked and relevant need one entry per query, got {len(ranked)} ranked lists and "
            f"{len(relevant)} labels"
        )
    rule = config.rule()
    if not len(ranked):
        return [
            CheckResult(
                f"performance.{m}", "model", Status.INSUFFICIENT_DATA, "no labelled queries yet",
                details={"n_labels": 0, "k": config.k}, rule="performance",
            )
            for m in config.metrics
        ]  # fmt: skip
    measures, n = _measures(ranked, relevant, config)
    refs = reference or {}
    return [
        _judge(m, n, refs.get((m.metric, m.subject)), rule, unit="labelled queries")
        for m in measures
    ]


def ranking_reference(
    ranked: Sequence[Sequence[Any]],
    relevant: Sequence[Any],
    config: RankingConfig | None = None,
) -> dict[tuple[str, str], tuple[float, float, float]]:
    """Reference values of the ranking metrics, measured on labelled reference queries (a
    validation set), each as ``(value, lower, upper)`` so that windows are compared with it
    as two samples.

    Examples
    --------
    >>> ref = ranking_reference([["a", "b"], ["c", "d"], ["e", "f"]], [["a"], ["d"], ["x"]],
    ...                         RankingConfig(k=2, min_queries=2))
    >>> [round(v, 3) for v in ref[("mrr", "model")]]
    [0.5, -0.742, 1.742]
    """
    config = config or RankingConfig()
    measures, _ = _measures(ranked, relevant, config)
    return {
        (m.metric, m.subject): (float(m.value), float(m.lower), float(m.upper))
        for m in measures
        if m.value is not None and m.lower is not None and m.upper is not None
    }
