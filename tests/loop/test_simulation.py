"""Acceptance by seeded simulation: many rollouts, a look at every label, decided as the
runner decides (same sequences, same verdict rule). The figures are in docs/loop.md
(benchmarks/loop_simulations.py prints them with more rollouts)."""

from __future__ import annotations

import pytest

from watchkeeper.loop import simulate_rollouts

ALPHA = 0.05
SMALL = 0.1  # effect in standard deviations of the per-request loss (difference)


def test_a_a_shadow_rarely_declares_better_and_a_peeked_t_test_inflates() -> None:
    s = simulate_rollouts(mode="shadow", effect=0.0, rollouts=300, requests=5000, peeked=True,
                          seed=11)  # fmt: skip
    assert s.better <= ALPHA
    assert s.peeked_better is not None
    assert s.peeked_better >= 3 * ALPHA
    assert s.peeked_better > 4 * max(s.better, 0.01)


def test_a_a_canary_ramp_rarely_declares_better() -> None:
    s = simulate_rollouts(mode="canary", effect=0.0, rollouts=300, requests=8000, seed=12)
    assert s.better <= ALPHA


@pytest.mark.parametrize("mode", ["shadow", "canary"])
def test_a_worse_challenger_is_rolled_back(mode: str) -> None:
    requests = 10_000 if mode == "shadow" else 30_000
    s = simulate_rollouts(mode=mode, effect=-SMALL, rollouts=200, requests=requests, seed=13)
    assert s.worse >= 0.95
    assert s.better <= ALPHA
    assert s.median_requests is not None
    assert s.p95_requests is not None
    assert s.median_requests <= s.p95_requests < requests


def test_a_better_challenger_is_promoted_with_labels_near_a_fixed_horizon() -> None:
    s = simulate_rollouts(mode="shadow", effect=SMALL, rollouts=200, requests=10_000, seed=14)
    assert s.better >= 0.90
    assert s.fixed_horizon_labels == 1051
    # Looking at every label costs little: the median rollout needs no more than 1.5 times
    # the labels of a test that may look only once.
    assert s.median_labels is not None
    assert s.median_labels <= 1.5 * s.fixed_horizon_labels


def test_late_labels_keep_the_guarantee_and_delay_only_the_verdict() -> None:
    on_time = simulate_rollouts(mode="shadow", effect=-SMALL, rollouts=200, requests=10_000,
                                seed=15)  # fmt: skip
    late = simulate_rollouts(mode="shadow", effect=-SMALL, rollouts=200, requests=10_000,
                             label_delay=1500, seed=15)  # fmt: skip
    # the same labels decide, later: the challenger sees the delay's requests on top
    assert late.median_labels == on_time.median_labels
    assert late.median_requests == on_time.median_requests + 1500
    canary = simulate_rollouts(mode="canary", effect=-SMALL, rollouts=200, requests=30_000,
                               label_delay=1500, seed=15)  # fmt: skip
    assert canary.worse >= 0.95
    a_a = simulate_rollouts(mode="canary", effect=0.0, rollouts=300, requests=8000,
                            label_delay=1500, seed=16)  # fmt: skip
    assert a_a.better <= ALPHA
