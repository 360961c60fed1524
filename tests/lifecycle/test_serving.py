"""Serving fitness: the budget mechanics (never the machine's speed)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from watchkeeper.checks import Status
from watchkeeper.lifecycle import ServingConfig, serving_checks
from watchkeeper.lifecycle._serving import measure_latency


def _model(frame: pd.DataFrame) -> LinearRegression:
    return LinearRegression().fit(frame.drop(columns="y"), frame["y"])


def test_generous_budgets_pass_and_report_quantiles(reg_frame: pd.DataFrame) -> None:
    cfg = ServingConfig(
        batch_sizes=(1, 100, 1000),
        repeats=5,
        p50_budget_ms={1: 60_000, 100: 60_000, 1000: 60_000},
        p99_budget_ms={1: 60_000, 100: 60_000, 1000: 60_000},
        max_memory_mb=10_000,
    )
    res = serving_checks(_model(reg_frame), reg_frame.drop(columns="y"), cfg)
    assert [r.check for r in res] == ["gate.latency"] * 3 + ["gate.memory"]
    assert all(r.status is Status.OK for r in res)
    for r in res[:3]:
        d = r.details
        assert 5 <= d["calls"] <= 20  # repeated until the median is stable, at most 4x
        assert d["clock"] == "process CPU time, one thread"
        assert d["wall_p50_ms"] > 0
        assert 0 < d["p50_ms"] <= d["p99_ms"]
        assert r.value == d["p99_ms"]
    assert res[-1].subject == "batch 1000"


@pytest.mark.parametrize(("enforce", "over"), [(False, Status.WARN), (True, Status.ALERT)])
def test_tiny_budgets_are_exceeded(reg_frame: pd.DataFrame, enforce: bool, over: Status) -> None:
    cfg = ServingConfig(
        batch_sizes=(1, 100),
        repeats=3,
        p50_budget_ms={1: 1e-9},
        p99_budget_ms={100: 1e-9},
        max_memory_mb=1e-9,
        enforce=enforce,
    )
    lat1, lat100, mem = serving_checks(_model(reg_frame), reg_frame.drop(columns="y"), cfg)
    assert lat1.status is over
    assert "p50" in lat1.reason
    assert "over budget" in lat1.reason
    assert lat100.status is over
    assert "p99" in lat100.reason
    assert mem.status is over
    assert mem.value is not None
    assert mem.value > 0


def test_no_budget_is_reported_only(reg_frame: pd.DataFrame) -> None:
    cfg = ServingConfig(
        batch_sizes=(7,), repeats=3, p50_budget_ms={}, p99_budget_ms={}, max_memory_mb=None
    )
    lat, mem = serving_checks(_model(reg_frame), reg_frame.drop(columns="y"), cfg)
    assert lat.status is Status.OK
    assert lat.threshold is None
    assert "no budget" in lat.reason
    assert mem.status is Status.OK
    assert "no budget" in mem.reason


class _Hog:
    """Allocates about 40 MB per call through NumPy."""

    def predict(self, X: Any) -> np.ndarray:
        scratch = np.ones((5_000_000,))
        return np.full(len(X), scratch[0])


def test_memory_budget_sees_numpy_allocations() -> None:
    X = np.zeros((10, 2))
    cfg = ServingConfig(batch_sizes=(1,), repeats=3, max_memory_mb=20, enforce=True)
    *_, mem = serving_checks(_Hog(), X, cfg)
    assert mem.status is Status.ALERT
    assert mem.value is not None
    assert 35 < mem.value < 60
    *_, mem = serving_checks(_Hog(), X, ServingConfig(batch_sizes=(1,), repeats=3))
    assert mem.status is Status.OK


class _Busy:
    """Spends about 5 ms of CPU time per call (and waits 5 ms more, costing no CPU)."""

    def predict(self, X: Any) -> np.ndarray:
        t0 = time.process_time()
        while time.process_time() - t0 < 0.005:
            pass
        time.sleep(0.005)
        return np.zeros(len(X))


def test_timing_stops_after_max_seconds_of_cpu_time_but_times_three_calls() -> None:
    got = measure_latency(_Busy(), np.zeros((1, 1)), repeats=50, warmup=0, max_seconds=0.001)
    assert len(got) == 3


def test_latency_is_cpu_time_so_waiting_does_not_count() -> None:
    wall: list[float] = []
    got = measure_latency(_Busy(), np.zeros((1, 1)), repeats=5, warmup=0, wall=wall)
    assert len(wall) == len(got) >= 5
    # Each call spends >= 5 ms of CPU and >= 10 ms of wall-clock time; the sleep is not
    # counted (CPU time can exceed 5 ms only by the loop's last step and clock granularity).
    assert np.all(got >= 0.005)
    assert np.all(np.asarray(wall) >= 0.010)
    assert np.median(got) < np.median(wall) - 0.004


def test_a_model_that_cannot_serve_fails() -> None:
    class Fails:
        def predict(self, X: Any) -> np.ndarray:
            raise MemoryError("out of memory")

    res = serving_checks(Fails(), np.zeros((5, 2)), ServingConfig(batch_sizes=(1,), repeats=3))
    assert [r.status for r in res] == [Status.ALERT, Status.ALERT]
    assert "MemoryError" in res[0].reason
