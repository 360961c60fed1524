"""Serving fitness: the budget mechanics (never the machine's speed)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
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
        assert d["calls"] == 5
        assert 0 < d["p50_ms"] <= d["p99_ms"]
        assert r.value == d["p99_ms"]
    assert res[-1].subject == "batch 1000"


def test_tiny_budgets_fail(reg_frame: pd.DataFrame) -> None:
    cfg = ServingConfig(
        batch_sizes=(1, 100),
        repeats=3,
        p50_budget_ms={1: 1e-9},
        p99_budget_ms={100: 1e-9},
        max_memory_mb=1e-9,
    )
    lat1, lat100, mem = serving_checks(_model(reg_frame), reg_frame.drop(columns="y"), cfg)
    assert lat1.status is Status.ALERT
    assert "p50" in lat1.reason
    assert "over budget" in lat1.reason
    assert lat100.status is Status.ALERT
    assert "p99" in lat100.reason
    assert mem.status is Status.ALERT
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
    cfg = ServingConfig(batch_sizes=(1,), repeats=3, max_memory_mb=20)
    *_, mem = serving_checks(_Hog(), X, cfg)
    assert mem.status is Status.ALERT
    assert mem.value is not None
    assert 35 < mem.value < 60
    *_, mem = serving_checks(_Hog(), X, ServingConfig(batch_sizes=(1,), repeats=3))
    assert mem.status is Status.OK


class _Sleepy:
    def predict(self, X: Any) -> np.ndarray:
        time.sleep(0.02)
        return np.zeros(len(X))


def test_timing_stops_after_max_seconds_but_times_three_calls() -> None:
    got = measure_latency(_Sleepy(), np.zeros((1, 1)), repeats=50, warmup=0, max_seconds=0.001)
    assert len(got) == 3


def test_a_model_that_cannot_serve_fails() -> None:
    class Fails:
        def predict(self, X: Any) -> np.ndarray:
            raise MemoryError("out of memory")

    res = serving_checks(Fails(), np.zeros((5, 2)), ServingConfig(batch_sizes=(1,), repeats=3))
    assert [r.status for r in res] == [Status.ALERT, Status.ALERT]
    assert "MemoryError" in res[0].reason
