"""Histogram: bucket counts agree with numpy, quantiles bracket the exact ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from watchkeeper.logstore import Histogram


def test_counts_and_quantiles_agree_with_numpy() -> None:
    rng = np.random.default_rng(0)
    values = rng.lognormal(mean=-6, sigma=1.5, size=5_000)
    h = Histogram()
    for v in values:
        h.observe(float(v))
    bounds = np.array(h.buckets)
    want = [int(np.sum(values <= b)) for b in bounds] + [values.size]
    assert [n for _, n in h.cumulative()] == want
    assert h.count == values.size
    assert h.sum == pytest.approx(values.sum(), rel=1e-12)
    assert h.max == values.max()
    for q in (0.5, 0.9, 0.99):
        exact = np.quantile(values, q)
        upper = h.quantile(q)
        assert exact <= upper
        below = bounds[bounds < upper]
        assert below.size == 0 or exact > below[-1]  # the bucket holding the exact quantile


def test_edges_and_validation() -> None:
    h = Histogram((1.0, 2.0))
    assert math.isnan(h.quantile(0.5))
    h.observe(1.0)  # a value on a bound falls in that bucket (le, as in Prometheus)
    h.observe(7.0)
    assert h.cumulative() == [(1.0, 1), (2.0, 1), (math.inf, 2)]
    assert h.quantile(1.0) == 7.0  # past the last bucket: the maximum seen
    with pytest.raises(ValueError, match="increasing"):
        Histogram((2.0, 1.0))
