"""Acceptance of the default decision rule by seeded simulation (issue: foundation).

- no drift, 20 independent N(0,1) columns: the dataset-level false-alarm rate is at most
  alpha + 2 * sqrt(alpha * (1 - alpha) / R);
- power >= 0.9 for a 0.1-sigma mean shift in one column at n = 10,000;
- at n = 1,000,000 a 0.01-sigma shift is statistically detectable but not alerted.

The whole default pipeline runs (``compare`` with its default multivariate check), so these
numbers are the ones users get.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from watchkeeper import compare

ALPHA = 0.05


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0, d: int = 20) -> pd.DataFrame:
    x = rng.standard_normal((n, d))
    x[:, 0] += shift
    return pd.DataFrame(x, columns=[f"x{i:02d}" for i in range(d)])


def _false_alarm_rate(n: int, reps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    alarms = 0
    for r in range(reps):
        report = compare(_frame(rng, n), _frame(rng, n), random_state=r)
        alarms += report.drifted
    return alarms / reps


def _bound(reps: int) -> float:
    return ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / reps)


@pytest.mark.slow
def test_false_alarm_rate_n1000() -> None:
    reps = 400
    rate = _false_alarm_rate(1_000, reps, seed=11)
    assert rate <= _bound(reps), f"false-alarm rate {rate:.3f} > {_bound(reps):.3f}"


@pytest.mark.slow
def test_false_alarm_rate_n100000() -> None:
    reps = 100
    rate = _false_alarm_rate(100_000, reps, seed=12)
    assert rate <= _bound(reps), f"false-alarm rate {rate:.3f} > {_bound(reps):.3f}"


@pytest.mark.slow
def test_power_for_a_tenth_sigma_shift_at_n10000() -> None:
    rng = np.random.default_rng(13)
    reps = 60
    hits = 0
    for r in range(reps):
        report = compare(_frame(rng, 10_000), _frame(rng, 10_000, shift=0.1), random_state=r)
        hits += report.column("x00").drifted
    assert hits / reps >= 0.9, f"power {hits / reps:.2f} < 0.9"


@pytest.mark.slow
def test_negligible_shift_at_one_million_is_detectable_but_not_alerted() -> None:
    rng = np.random.default_rng(14)
    ref = _frame(rng, 1_000_000, d=3)
    cur = _frame(rng, 1_000_000, shift=0.01, d=3)
    report = compare(ref, cur, multivariate=None)
    col = report.column("x00")
    assert col.significant is True, col.reason
    assert col.adjusted_p_value is not None
    assert col.adjusted_p_value < ALPHA
    assert not col.drifted
    assert not report.drifted
    assert "below the practical floor" in col.reason
