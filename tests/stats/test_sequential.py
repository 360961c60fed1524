"""Confidence sequences and the mixture SPRT: reference checks, properties, simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from watchkeeper.exceptions import InputError
from watchkeeper.stats import (
    confidence_sequence,
    fixed_horizon_n,
    ipw_differences,
    msprt,
    paired_confidence_sequence,
    rho_for,
    sequential_verdict,
    two_sample_confidence_sequence,
)


def _mixture(s: float, t: float, rho: float) -> float:
    """Robbins' normal mixture of exp(l*S - l^2 t/2) over l ~ N(0, rho^2), by quadrature."""
    f = lambda lam: math.exp(lam * s - lam * lam * t / 2) * stats.norm.pdf(lam, 0, rho)  # noqa: E731
    return integrate.quad(f, -np.inf, np.inf, limit=200)[0]


@pytest.mark.parametrize("t", [50, 400, 5000])
def test_radius_is_where_the_normal_mixture_reaches_one_over_alpha(t: int) -> None:
    # With unit variance, the boundary is the sum S at which the mixture martingale equals
    # 1/alpha (Ville's inequality): check the closed form against numerical integration.
    alpha, rho = 0.05, rho_for(500, 0.05)
    x = np.tile([1.0, -1.0], t // 2 + 1)[:t]  # variance exactly 1 at even t
    x = x - x.mean()
    cs = confidence_sequence(x, alpha=alpha, t_opt=500, min_n=t)  # one interval: no intersection
    sd = float(np.sqrt(np.mean((x - x.mean()) ** 2)))
    radius = (cs.upper[-1] - cs.lower[-1]) / 2
    s_bound = radius / sd * t
    assert _mixture(s_bound, t, rho) == pytest.approx(1 / alpha, rel=1e-6)


def test_rho_is_the_closed_form() -> None:
    k = -2 * math.log(0.1)
    assert rho_for(250, 0.1) == pytest.approx(math.sqrt((k + math.log(k + 1)) / 250))


def test_msprt_matches_the_mixture_likelihood_ratio_by_quadrature() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.2, 1.5, 60)
    tau2, sigma2 = 0.3, 2.25
    p = msprt(x, tau2=tau2, sigma2=sigma2)
    for n in (1, 10, 60):
        xbar = x[:n].mean()

        def ratio(theta: float, n: int = n, xbar: float = xbar) -> float:
            log_lr = n * (theta * xbar - theta**2 / 2) / sigma2
            return math.exp(log_lr) * stats.norm.pdf(theta, 0, math.sqrt(tau2))

        lam = integrate.quad(ratio, -np.inf, np.inf)[0]
        assert min(1.0, 1 / lam) >= p[n - 1] - 1e-12
        if n == 1:
            assert p[0] == pytest.approx(min(1.0, 1 / lam), rel=1e-9)
    assert np.all(np.diff(p) <= 0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=3, max_size=200),
    st.floats(-50, 50),
    st.floats(0.1, 10),
)
def test_properties(values: list[float], shift: float, scale: float) -> None:
    x = np.array(values)
    copy = x.copy()
    cs = confidence_sequence(x, min_n=2, t_opt=50)
    assert np.array_equal(x, copy)  # input not mutated
    t = np.arange(1, len(x) + 1)
    np.testing.assert_allclose(cs.estimate, np.cumsum(x) / t, atol=1e-6 * (1 + np.abs(x).max()))
    assert np.all(np.diff(cs.lower) >= 0)
    assert np.all(np.diff(cs.upper) <= 0)
    moved = confidence_sequence(x * scale + shift, min_n=2, t_opt=50)
    tol = 1e-6 * (1 + np.abs(x).max()) * scale + 1e-6 * abs(shift)
    finite = np.isfinite(cs.lower)
    np.testing.assert_allclose(moved.lower[finite], cs.lower[finite] * scale + shift, atol=tol)
    np.testing.assert_allclose(moved.upper[finite], cs.upper[finite] * scale + shift, atol=tol)
    # vectorised over rollouts: each row equals its own 1-d sequence
    both = confidence_sequence(np.vstack([x, x[::-1]]), min_n=2, t_opt=50)
    np.testing.assert_allclose(both.lower[1], confidence_sequence(x[::-1], min_n=2, t_opt=50).lower)


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="finite"):
        confidence_sequence([1.0, math.nan, 2.0])
    with pytest.raises(InputError, match="alpha"):
        confidence_sequence([1.0, 2.0], alpha=1.5)
    with pytest.raises(InputError, match="same shape"):
        paired_confidence_sequence([1.0, 2.0], [1.0])
    with pytest.raises(InputError, match="strictly between"):
        ipw_differences([1.0], [True], [1.0])


def test_ipw_terms_are_unbiased_for_the_difference_of_means() -> None:
    rng = np.random.default_rng(5)
    p = np.repeat([0.05, 0.25, 0.5], 200_000)
    z = rng.uniform(size=p.size) < p
    loss = np.where(z, rng.exponential(1.0, p.size), rng.exponential(1.3, p.size))
    psi = ipw_differences(loss, z, p)
    assert psi.mean() == pytest.approx(0.3, abs=0.02)


def test_fixed_horizon_n_matches_the_normal_power_formula() -> None:
    n = fixed_horizon_n(0.2, 1.5, alpha=0.05, power=0.8)
    power = stats.norm.sf(stats.norm.ppf(0.975) - 0.2 / 1.5 * math.sqrt(n))
    assert power >= 0.8
    assert stats.norm.sf(stats.norm.ppf(0.975) - 0.2 / 1.5 * math.sqrt(n - 1)) < 0.8


# -- simulations: a look at every observation -------------------------------------------


def _ever(mask: np.ndarray) -> float:
    return float(mask.any(axis=-1).mean())


def test_a_a_paired_rarely_declares_better_while_a_peeked_t_test_inflates() -> None:
    rng = np.random.default_rng(12)
    rollouts, n = 300, 3000
    base = rng.exponential(1.0, (rollouts, n))
    champion = base + rng.normal(0, 0.5, (rollouts, n))
    challenger = base + rng.normal(0, 0.5, (rollouts, n))  # identical in distribution
    cs = paired_confidence_sequence(champion, challenger, t_opt=500)
    better = _ever(cs.lower > 0)
    assert better <= 0.05
    d = champion - challenger
    t = np.arange(1, n + 1)
    mean = np.cumsum(d, axis=1) / t
    var = (np.cumsum(d * d, axis=1) - t * mean**2) / np.maximum(t - 1, 1)
    look = slice(29, None)  # the same burn-in of 30 labels as the sequence
    tstat = mean[:, look] / np.sqrt(var[:, look] / t[look])
    peeked = _ever(tstat > stats.t.ppf(0.975, t[look] - 1))
    assert peeked > 3 * 0.025
    assert peeked > 3 * better


def test_a_a_canary_ramp_with_late_labels_stays_valid() -> None:
    rng = np.random.default_rng(13)
    rollouts, n = 300, 4000
    pi = np.repeat([0.05, 0.25, 0.5], [1000, 1000, 2000])
    z = rng.uniform(size=(rollouts, n)) < pi
    loss = rng.exponential(1.0, (rollouts, n))
    # labels arrive after random delays: the sequence follows label arrival, not requests
    order = np.argsort(np.arange(n) + rng.exponential(300, (rollouts, n)), axis=1)
    rows = np.arange(rollouts)[:, None]
    cs = two_sample_confidence_sequence(
        loss[rows, order], z[rows, order], np.broadcast_to(pi, (rollouts, n))[rows, order]
    )
    assert _ever(cs.lower > 0) <= 0.05


@pytest.mark.parametrize(("effect", "verdict"), [(-0.1, "worse"), (0.1, "better")])
def test_a_real_difference_is_found(effect: float, verdict: str) -> None:
    rng = np.random.default_rng(14)
    x = rng.normal(effect, 1.0, (200, 8000))
    found = [sequential_verdict(confidence_sequence(row, t_opt=1000)) for row in x]
    share = np.mean([v.verdict == verdict for v in found])
    assert share >= 0.95
    assert np.median([v.at for v in found if v.at]) < 8000 / 4


def test_equivalence_needs_minimum_exposure() -> None:
    x = np.random.default_rng(3).normal(0, 0.1, 5000)
    cs = confidence_sequence(x, t_opt=1000)
    v = sequential_verdict(cs, margin=0.05, min_exposure=2000)
    assert v.verdict == "equivalent"
    assert v.at is not None
    assert v.at >= 2000
    assert sequential_verdict(cs, margin=0.05, min_exposure=9000).verdict == "continue"
