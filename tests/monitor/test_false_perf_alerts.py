"""False performance and concept-drift alerts per model-year under the default rules, and
power against a real drop (the simulation is in ``tests/monitor/_false_perf_alerts.py``;
docs/monitoring.md quotes it)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from tests.monitor._false_alerts import upper_rate
from tests.monitor._false_perf_alerts import (
    _classification_measures,
    _draw,
    _regression_measures,
    simulate_year,
)

from watchkeeper.checks import check_realised_performance
from watchkeeper.monitor import AlertConfig, MonitorConfig


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "rows", "runs"),
    [("classification", 1_000, 30), ("classification", 10_000, 4), ("regression", 1_000, 20)],
)
def test_at_most_one_false_performance_alert_per_model_year(
    task: str, rows: int, runs: int
) -> None:
    year = simulate_year(rows, runs, task=task, seed=rows)  # type: ignore[arg-type]
    assert upper_rate(year.firings) <= 1.0, year.firings


@pytest.mark.slow
def test_the_bound_needs_the_reference_interval() -> None:
    """Against the first window's value alone (its noise ignored) the same model-years raise
    several false performance alerts each: the test above can fail."""
    year = simulate_year(1_000, 30, seed=1_000, reference_interval=False)
    assert year.per_year > 1.0, year.firings
    assert upper_rate(year.firings) > 1.0, year.firings


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "rows", "runs"),
    [("classification", 1_000, 6), ("classification", 10_000, 3), ("regression", 10_000, 3)],
)
def test_at_most_one_false_concept_drift_alert_per_model_year(
    task: str, rows: int, runs: int
) -> None:
    year = simulate_year(rows, runs, task=task, family="concept", seed=rows)  # type: ignore[arg-type]
    assert upper_rate(year.firings) <= 1.0, year.firings


@pytest.mark.slow
def test_page_hinkley_alone_would_break_the_bound() -> None:
    """Page-Hinkley (a default detector before) on a stable 0/1 error stream: several false
    alerts per model-year, which is why the monitor's default is ADWIN alone."""
    assert MonitorConfig().detectors == ("adwin",)
    year = simulate_year(1_000, 3, family="concept", seed=1_000, detectors=("page_hinkley",))
    assert year.per_year > 1.0, year.firings


@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "task", "drop"),
    [
        ("performance", "classification", 0.05),  # accuracy 5 points lower
        ("concept", "classification", 0.05),
        ("performance", "regression", 0.1),  # noise 10 % larger: MAE, RMSE up 10 %
        ("concept", "regression", 0.1),
    ],
)
def test_a_real_drop_alerts_within_two_windows(family: str, task: str, drop: float) -> None:
    runs = 12
    year = simulate_year(10_000, runs, task=task, family=family, drop=drop, seed=3, windows=3)  # type: ignore[arg-type]
    within = [f is not None and f <= 2 for f in year.first_alert_window]
    assert np.mean(within) >= 0.9, year.first_alert_window


def test_the_simulated_rules_are_the_defaults() -> None:
    """The simulation reads ``for`` from the shipped rules and judges every result of the
    family on one key; the rules it relies on still match the monitor's check names."""
    rules = AlertConfig.default()
    assert rules.rule("performance").matches("performance.roc_auc", "model", "m")
    assert rules.rule("concept-drift").matches("concept.adwin", "model", "m")
    assert simulate_year(1_000, 1, windows=3).firings.shape == (1,)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_simulated_intervals_match_the_check(task: str) -> None:
    """Values are the check's exactly; the normal intervals standing for its bootstrap ones
    (F1, ROC AUC, log loss, MAE, RMSE, MAPE, R²) have about the same width, and Wilson's are
    the same."""
    rng = np.random.default_rng(4)
    z = float(norm.ppf(0.975))
    y, out = _draw(rng, task, 3, 1_000, 0.0)  # type: ignore[arg-type]
    if task == "classification":
        sim = _classification_measures(y, out, z)  # type: ignore[arg-type]
    else:
        sim = _regression_measures(y, out, z)  # type: ignore[arg-type]
    for w in range(3):
        if task == "classification":
            real = check_realised_performance(
                y[w].astype(int), (out[w] > 0.5).astype(int), task="classification",
                scores=np.c_[1 - out[w], out[w]], classes=[0, 1],
            )  # fmt: skip
        else:
            real = check_realised_performance(y[w], out[w], task="regression")
        by_metric = {r.check.removeprefix("performance."): r for r in real}
        assert set(by_metric) == set(sim)
        for metric, (value, lower, upper) in sim.items():
            r = by_metric[metric]
            assert value[w] == pytest.approx(r.value, rel=1e-9, abs=1e-12), metric
            width = r.upper - r.lower
            exact = metric in ("accuracy", "precision", "recall")
            tol = 1e-9 if exact else 0.15  # a bootstrap of 500 resamples wobbles
            assert upper[w] - lower[w] == pytest.approx(width, rel=tol), metric
