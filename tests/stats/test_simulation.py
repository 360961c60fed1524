"""Seeded simulations with known answers: calibrated under no drift, and a clear shift is found.

Under the null hypothesis a valid p-value satisfies P(p <= alpha) <= alpha, so over R
independent repetitions the false-rejection rate at alpha = 0.05 must stay within
0.05 + 3 * sqrt(0.05 * 0.95 / R) (a 3-sigma binomial bound). A second, two-sided check at
alpha = 0.5 catches p-values that are grossly conservative (not uniform at all).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import numpy as np
import pytest

from watchkeeper.stats import TestResult, get_method

ALPHA = 0.05

NUMERIC_FAST = [
    "ks", "cramer_von_mises", "anderson_darling", "psi", "jensen_shannon", "hellinger",
]  # fmt: skip
PERMUTATION = ["wasserstein", "energy"]
CATEGORICAL = ["chi2", "g_test", "psi", "jensen_shannon", "hellinger", "l_infinity", "tvd"]


def seed_of(*parts: object) -> int:
    # A stable seed per case: str hashes are salted per process.
    return zlib.crc32(repr(parts).encode())


def upper_bound(alpha: float, reps: int) -> float:
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)


def numeric_method(name: str) -> Callable[..., TestResult]:
    func = get_method(name, "numeric").func
    if name in PERMUTATION:
        return lambda a, b, seed: func(a, b, n_permutations=199, random_state=seed)
    return lambda a, b, seed: func(a, b)


def null_p_values(name: str, n_ref: int, n_cur: int, reps: int) -> np.ndarray:
    method = numeric_method(name)
    rng = np.random.default_rng(seed_of(name, n_ref, n_cur))
    out = np.empty(reps)
    for i in range(reps):
        ref, cur = rng.gamma(2.0, size=n_ref), rng.gamma(2.0, size=n_cur)  # skewed, no drift
        p = method(ref, cur, i).p_value
        assert p is not None
        out[i] = p
    return out


def assert_calibrated(p: np.ndarray, where: str) -> None:
    reps = p.size
    rate = float(np.mean(p <= ALPHA))
    assert rate <= upper_bound(ALPHA, reps), f"{where}: false-rejection rate {rate:.3f}"
    half = float(np.mean(p <= 0.5))
    assert abs(half - 0.5) <= 4 * math.sqrt(0.25 / reps), f"{where}: P(p <= 0.5) = {half:.3f}"


@pytest.mark.parametrize(("n_ref", "n_cur"), [(200, 200), (3_000, 150)])
@pytest.mark.parametrize("name", NUMERIC_FAST)
def test_numeric_methods_are_calibrated_under_no_drift(name: str, n_ref: int, n_cur: int) -> None:
    assert_calibrated(null_p_values(name, n_ref, n_cur, reps=400), f"{name} {n_ref}/{n_cur}")


@pytest.mark.parametrize(("n_ref", "n_cur"), [(200, 200), (3_000, 150)])
@pytest.mark.parametrize("name", PERMUTATION)
def test_permutation_methods_are_calibrated_under_no_drift(
    name: str, n_ref: int, n_cur: int
) -> None:
    assert_calibrated(null_p_values(name, n_ref, n_cur, reps=300), f"{name} {n_ref}/{n_cur}")


@pytest.mark.parametrize("name", NUMERIC_FAST + PERMUTATION)
def test_numeric_methods_detect_a_half_sigma_shift(name: str) -> None:
    method = numeric_method(name)
    rng = np.random.default_rng(11)
    reps = 30
    hits = 0
    for i in range(reps):
        ref, cur = rng.normal(size=300), rng.normal(0.5, size=300)
        result = method(ref, cur, i)
        assert result.p_value is not None
        hits += (
            result.p_value <= ALPHA
            and result.effect_size >= get_method(name, "numeric").effect_floor
        )
    assert hits / reps >= 0.9, f"{name} found the shift in {hits}/{reps} runs"


P_REF = np.array([0.35, 0.25, 0.2, 0.15, 0.05])


@pytest.mark.parametrize(("n_ref", "n_cur"), [(500, 500), (20_000, 300)])
@pytest.mark.parametrize("name", CATEGORICAL)
def test_categorical_methods_are_calibrated_under_no_drift(
    name: str, n_ref: int, n_cur: int
) -> None:
    func = get_method(name, "categorical").func
    rng = np.random.default_rng(seed_of(name, n_ref, n_cur))
    reps = 400
    p = np.array(
        [
            func(rng.multinomial(n_ref, P_REF), rng.multinomial(n_cur, P_REF)).p_value
            for _ in range(reps)
        ]
    )
    assert_calibrated(p, f"{name} {n_ref}/{n_cur}")


@pytest.mark.parametrize("name", CATEGORICAL)
def test_categorical_methods_detect_a_shift(name: str) -> None:
    method = get_method(name, "categorical")
    # 20 points of mass moved: PSI 0.32, Hellinger 0.20, TVD 0.2, Cramér's V 0.27, all
    # clearly above their floors.
    q = np.full(5, 0.2)
    rng = np.random.default_rng(12)
    reps = 30
    hits = 0
    for _ in range(reps):
        r = method.func(rng.multinomial(600, P_REF), rng.multinomial(600, q))
        hits += (
            r.p_value is not None and r.p_value <= ALPHA and r.effect_size >= method.effect_floor
        )
    assert hits / reps >= 0.9, f"{name} found the shift in {hits}/{reps} runs"
