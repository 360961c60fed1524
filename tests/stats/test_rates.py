"""The exact conditional test for a rise of an event rate (user flags, errors)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from watchkeeper import InputError
from watchkeeper.stats import rate_increase


@pytest.mark.parametrize(
    ("k_ref", "n_ref", "k_cur", "n_cur"),
    [(10, 1000, 30, 1000), (0, 500, 6, 500), (5, 300, 5, 3000), (40, 10_000, 9, 1000)],
)
def test_agrees_with_scipy_binomtest(k_ref: int, n_ref: int, k_cur: int, n_cur: int) -> None:
    got = rate_increase(k_ref, n_ref, k_cur, n_cur)
    want = binomtest(k_cur, k_ref + k_cur, n_cur / (n_ref + n_cur), alternative="greater")
    assert got.p_value == pytest.approx(want.pvalue, rel=1e-9)
    assert got.effect_size == pytest.approx(k_cur / n_cur - k_ref / n_ref)


@pytest.mark.parametrize("n_ref", [200, 2000])
def test_false_alarm_rate_within_alpha_with_a_noisy_reference(n_ref: int) -> None:
    """Equal rates, reference of a few hundred rows: rejections at 5% stay at or below 5%
    (a one-sample test against the reference's point estimate would not)."""
    rng = np.random.default_rng(1)
    rate, n_cur, reps = 0.02, 1000, 4000
    k_ref = rng.binomial(n_ref, rate, reps)
    k_cur = rng.binomial(n_cur, rate, reps)
    p = np.array(
        [
            rate_increase(int(a), n_ref, int(b), n_cur).p_value
            for a, b in zip(k_ref, k_cur, strict=True)
        ]
    )
    assert (p < 0.05).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)
    naive = np.array(
        [binomtest(int(b), n_cur, max(a / n_ref, 1e-9), alternative="greater").pvalue
         for a, b in zip(k_ref[:1000], k_cur[:1000], strict=True)]
    )  # fmt: skip
    if n_ref == 200:
        assert (naive < 0.05).mean() > 0.1  # ignoring the reference's noise: many false alarms


def test_detects_a_doubled_rate() -> None:
    rng = np.random.default_rng(2)
    hits = [
        rate_increase(
            int(rng.binomial(2000, 0.01)), 2000, int(rng.binomial(2000, 0.03)), 2000
        ).p_value
        < 0.01
        for _ in range(300)
    ]
    assert np.mean(hits) > 0.9


def test_bad_counts_are_clear_errors() -> None:
    with pytest.raises(InputError, match="outnumber"):
        rate_increase(5, 3, 1, 10)
    with pytest.raises(InputError, match="at least one row"):
        rate_increase(0, 0, 1, 10)
    with pytest.raises(InputError, match="whole number"):
        rate_increase(1.5, 10, 1, 10)  # type: ignore[arg-type]
