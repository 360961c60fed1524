"""False drift alerts per model-year under the default rules, and power against a small shift
(the simulation is in ``tests/monitor/_false_alerts.py``; docs/monitoring.md quotes it)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.monitor._false_alerts import FOR_WINDOWS, simulate_year
from tests.monitor._false_alerts import upper_rate as _upper_rate


@pytest.mark.slow
@pytest.mark.parametrize(("rows", "runs"), [(1_000, 24), (100_000, 8)])
def test_at_most_one_false_drift_alert_per_model_year(rows: int, runs: int) -> None:
    year = simulate_year(rows, runs, seed=rows)
    assert _upper_rate(year.firings) <= 1.0, year.firings


@pytest.mark.slow
def test_a_tenth_of_a_sigma_shift_alerts_within_two_windows() -> None:
    runs = 20
    shifted = simulate_year(10_000, runs, shift=0.1, seed=5, windows=FOR_WINDOWS)
    within = [f is not None and f <= 2 for f in shifted.first_alert_window]
    assert np.mean(within) >= 0.9


def test_the_rule_needs_persistence() -> None:
    """Without drift a single alerting window is not enough to fire (a window alone can be
    a false positive at the family's alpha); the simulation counts only persistent ones."""
    from tests.monitor._false_alerts import _firings

    alerting = np.zeros((6, 2), dtype=bool)
    alerting[1, 0] = alerting[3, 0] = True  # isolated: no firing
    alerting[2:5, 1] = True  # three in a row: one firing
    assert _firings(alerting) == 1
