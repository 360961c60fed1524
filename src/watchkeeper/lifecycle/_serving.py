"""Serving fitness: predict cost per batch size and peak memory, against budgets.

Same model, same verdict, whatever else the machine is doing: latency is measured as the
**CPU time** of each ``predict`` call (:func:`time.process_time`), with the numerical
libraries limited to one thread, after a few untimed warm-up calls. A neighbour that keeps
the cores busy makes a call wait longer for a core, which wall-clock time counts and CPU
time does not; one thread keeps OpenMP's busy-waiting (which burns CPU time while a thread
waits for a descheduled sibling) out of the measurement. On an otherwise idle core the
wall-clock latency of a single-threaded call is this CPU time, so budgets keep their meaning.
Calls are repeated until the median is stable (the medians of the first and second half of
the calls within 10 % of each other; at least ``repeats`` calls, at most ``4 * repeats``);
p50 and p99 are empirical quantiles over the timed calls (with few calls, p99 is close to
the maximum, which errs on the safe side). Wall-clock quantiles are kept in the details for
information and never judged. Peak memory is measured separately (tracing slows allocation
down) with :mod:`tracemalloc`, which sees allocations made through Python and NumPy but not
those of native libraries with their own allocators.

The results (``gate.latency``, ``gate.memory``) are budgets, reported apart from the
statistical checks (:attr:`GateReport.budgets`); see :class:`ServingConfig` for how they
affect the exit code.
"""

from __future__ import annotations

import time
import tracemalloc
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import pandas as pd

from watchkeeper.checks import CheckResult, Status
from watchkeeper.lifecycle._common import record_warnings
from watchkeeper.lifecycle._config import ServingConfig

__all__ = ["measure_latency", "serving_checks"]

#: Relative gap between the medians of the two halves of the calls at which timing stops.
_STABLE = 0.10


def _batch(X: Any, size: int, rng: np.random.Generator) -> Any:
    idx = rng.integers(0, len(X), size=size)
    if isinstance(X, pd.DataFrame):
        return X.iloc[idx].reset_index(drop=True)
    return np.asarray(X)[idx]


def _one_thread() -> AbstractContextManager[Any]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return nullcontext()
    limits: AbstractContextManager[Any] = threadpool_limits(1)
    return limits


def _stable(times: list[float]) -> bool:
    half = len(times) // 2
    first, second = float(np.median(times[:half])), float(np.median(times[half:]))
    return abs(first - second) <= _STABLE * max(first, second, 1e-9)


def measure_latency(
    model: Any,
    batch: Any,
    *,
    repeats: int = 15,
    warmup: int = 2,
    max_seconds: float = 2.0,
    wall: list[float] | None = None,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """CPU seconds taken by each timed call of ``model.predict(batch)`` on one thread.

    At least three calls are timed; then calls go on until ``repeats`` were made and the
    median is stable, or ``4 * repeats`` were made, or ``max_seconds`` of CPU time were
    spent. ``wall``, when given, receives the
    wall-clock seconds of the same calls.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> m = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    >>> len(measure_latency(m, [[0.5]], repeats=5)) >= 5
    True
    """
    times: list[float] = []
    with _one_thread():
        for _ in range(warmup):
            model.predict(batch)
        spent = 0.0
        while len(times) < 4 * repeats:
            w0, c0 = time.perf_counter(), time.process_time()
            model.predict(batch)
            cpu = time.process_time() - c0
            if wall is not None:
                wall.append(time.perf_counter() - w0)
            times.append(cpu)
            spent += cpu
            if len(times) >= 3 and spent > max_seconds:
                break
            if len(times) >= repeats and _stable(times):
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
        wall: list[float] = []
        try:
            with record_warnings():
                times = measure_latency(
                    model,
                    batch,
                    repeats=cfg.repeats,
                    warmup=cfg.warmup,
                    max_seconds=cfg.max_seconds,
                    wall=wall,
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
        measured = f"batch {size}: CPU time per call p50 {p50:.3g} ms, p99 {p99:.3g} ms"
        if over:
            reason = f"{measured}; over budget: {'; '.join(over)}" + (
                "" if cfg.enforce else " (a warning: serving.enforce is off)"
            )
        elif budgets:
            reason = f"{measured}; within budget ({budgets})"
        else:
            reason = f"{measured}; no budget configured"
        out.append(
            CheckResult(
                check="gate.latency",
                subject=f"batch {size}",
                status=_over_status(cfg) if over else Status.OK,
                reason=reason,
                value=p99,
                threshold=b99,
                rule="CPU time p50 and p99 within budget" if budgets else "reported, no budget",
                details={
                    "batch_size": size,
                    "clock": "process CPU time, one thread",
                    "p50_ms": p50,
                    "p99_ms": p99,
                    "calls": len(times),
                    "wall_p50_ms": float(np.quantile(wall, 0.5)) * 1000 if wall else None,
                    "wall_p99_ms": float(np.quantile(wall, 0.99)) * 1000 if wall else None,
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
            status=_over_status(cfg) if over_memory else Status.OK,
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


def _over_status(cfg: ServingConfig) -> Status:
    return Status.ALERT if cfg.enforce else Status.WARN
