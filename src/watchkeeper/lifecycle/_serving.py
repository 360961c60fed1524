"""Serving fitness: predict latency per batch size and peak memory, against budgets.

Latency is wall-clock time of ``predict`` on batches drawn from real rows, after a few untimed
warm-up calls; p50 and p99 are empirical quantiles over the timed calls (with few calls, p99 is
close to the maximum, which errs on the safe side). Peak memory is measured separately (tracing
slows allocation down) with :mod:`tracemalloc`, which sees allocations made through Python and
NumPy but not those of native libraries with their own allocators.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.lifecycle._common import record_warnings
from watchkeeper.lifecycle._config import ServingConfig

__all__ = ["measure_latency", "serving_checks"]


def _batch(X: Any, size: int, rng: np.random.Generator) -> Any:
    idx = rng.integers(0, len(X), size=size)
    if isinstance(X, pd.DataFrame):
        return X.iloc[idx].reset_index(drop=True)
    return np.asarray(X)[idx]


def measure_latency(
    model: Any, batch: Any, *, repeats: int = 30, warmup: int = 2, max_seconds: float = 5.0
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Seconds taken by each of up to ``repeats`` calls of ``model.predict(batch)``.

    At least three calls are timed; timing stops early once ``max_seconds`` have been spent.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> m = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    >>> len(measure_latency(m, [[0.5]], repeats=5))
    5
    """
    for _ in range(warmup):
        model.predict(batch)
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(batch)
        times.append(time.perf_counter() - t0)
        if len(times) >= 3 and time.perf_counter() - start > max_seconds:
            break
    return np.asarray(times)


def _peak_memory_mb(model: Any, batch: Any) -> float:
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        model.predict(batch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(peak - base, 0) / 2**20


def serving_checks(
    model: Any, X: Any, config: ServingConfig | None = None, *, random_state: int = 0
) -> list[CheckResult]:
    """Latency per batch size and peak memory of ``predict``, each against its budget.

    One ``gate.latency`` result per batch size (``alert`` when p50 or p99 exceeds its budget)
    and one ``gate.memory`` result. The model failing to predict is an ``alert``: a model that
    cannot serve is not fit to.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> m = LinearRegression().fit(X, X[:, 0])
    >>> cfg = ServingConfig(batch_sizes=(1, 10), repeats=5, max_memory_mb=None)
    >>> [r.status.value for r in serving_checks(m, X, cfg)]
    ['ok', 'ok', 'ok']
    """
    cfg = config or ServingConfig()
    rng = np.random.default_rng(random_state)
    out: list[CheckResult] = []
    for size in cfg.batch_sizes:
        batch = _batch(X, size, rng)
        try:
            with record_warnings():
                times = measure_latency(
                    model,
                    batch,
                    repeats=cfg.repeats,
                    warmup=cfg.warmup,
                    max_seconds=cfg.max_seconds,
                )
        except Exception as exc:
            out.append(
                CheckResult(
                    check="gate.latency",
                    subject=f"batch {size}",
                    status=Status.ALERT,
                    reason=f"predict failed on a batch of {size}: {type(exc).__name__}: {exc}",
                )
            )
            continue
        p50, p99 = (float(v) * 1000 for v in np.quantile(times, [0.5, 0.99]))
        b50, b99 = cfg.p50_budget_ms.get(size), cfg.p99_budget_ms.get(size)
        over = [
            f"p{q} {v:.3g} ms > budget {b:g} ms"
            for q, v, b in ((50, p50, b50), (99, p99, b99))
            if b is not None and v > b
        ]
        budgets = ", ".join(f"p{q} {b:g} ms" for q, b in ((50, b50), (99, b99)) if b is not None)
        measured = f"batch {size}: p50 {p50:.3g} ms, p99 {p99:.3g} ms"
        if over:
            reason = f"{measured}; over budget: {'; '.join(over)}"
        elif budgets:
            reason = f"{measured}; within budget ({budgets})"
        else:
            reason = f"{measured}; no budget configured"
        out.append(
            CheckResult(
                check="gate.latency",
                subject=f"batch {size}",
                status=Status.ALERT if over else Status.OK,
                reason=reason,
                value=p99,
                threshold=b99,
                rule="p50 and p99 within their budgets" if budgets else "reported, no budget",
                details={
                    "batch_size": size,
                    "p50_ms": p50,
                    "p99_ms": p99,
                    "calls": len(times),
                    "p50_budget_ms": b50,
                    "p99_budget_ms": b99,
                    "rows_per_second": size / max(p50 / 1000, 1e-12),
                },
            )
        )
    largest = max(cfg.batch_sizes)
    try:
        with record_warnings():
            peak = _peak_memory_mb(model, _batch(X, largest, rng))
    except Exception as exc:
        out.append(
            CheckResult(
                check="gate.memory",
                subject=f"batch {largest}",
                status=Status.ALERT,
                reason=f"predict failed while tracing memory: {type(exc).__name__}: {exc}",
            )
        )
        return out
    limit = cfg.max_memory_mb
    over_memory = limit is not None and peak > limit
    out.append(
        CheckResult(
            check="gate.memory",
            subject=f"batch {largest}",
            status=Status.ALERT if over_memory else Status.OK,
            reason=(
                f"peak memory {peak:.3g} MB predicting {largest:,} rows "
                + (
                    "(no budget configured)"
                    if limit is None
                    else f"{'exceeds' if over_memory else 'is within'} the budget {limit:g} MB"
                )
            ),
            value=peak,
            threshold=limit,
            rule="peak traced memory within max_memory_mb",
            details={"batch_size": largest, "peak_mb": peak, "tracer": "tracemalloc"},
        )
    )
    return out
