"""KS: statistic and p-value agree with scipy.stats.ks_2samp(method="auto") to 1e-9."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import special, stats

from watchkeeper.exceptions import InputError
from watchkeeper.stats import _ks as ks_module
from watchkeeper.stats import ks
from watchkeeper.stats._ks import kstwo_sf, smirnov_sf

TOL = {"rtol": 1e-9, "atol": 1e-9}

Pair = tuple[NDArray[np.float64], NDArray[np.float64]]


def scipy_ks(a: NDArray[np.float64], b: NDArray[np.float64]) -> object:
    # scipy warns when its exact computation gives up and it switches to 'asymp'; that
    # switch is part of the behaviour we reproduce, so the warning is expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return stats.ks_2samp(a, b)


def samples(kind: str, n1: int, n2: int, seed: int) -> Pair:
    rng = np.random.default_rng(seed)
    if kind == "continuous":
        return rng.normal(size=n1), rng.normal(size=n2)
    if kind == "shifted":
        return rng.normal(size=n1), rng.normal(0.15, size=n2)
    if kind == "rounded":  # many ties within and across samples
        return np.round(rng.normal(size=n1), 1), np.round(rng.normal(0.05, size=n2), 1)
    if kind == "discrete":
        return rng.poisson(3.0, n1).astype(float), rng.poisson(3.3, n2).astype(float)
    assert kind == "separated"
    return rng.normal(size=n1), rng.normal(6.0, size=n2)


SIZES = [
    (1, 1), (1, 7), (5, 3), (20, 20), (50, 37), (300, 1000), (2000, 2000),
    (10_000, 3_001), (10_000, 10_000), (10_001, 40), (10_001, 10_001), (30_000, 20_000),
]  # fmt: skip
KINDS = ["continuous", "shifted", "rounded", "discrete", "separated"]


@pytest.mark.parametrize(("n1", "n2"), SIZES)
@pytest.mark.parametrize("kind", KINDS)
def test_statistic_and_p_value_match_scipy(kind: str, n1: int, n2: int) -> None:
    a, b = samples(kind, n1, n2, seed=7 * n1 + n2)
    expected = scipy_ks(a, b)
    result = ks(a, b)
    np.testing.assert_allclose(result.statistic, expected.statistic, **TOL)  # type: ignore[attr-defined]
    np.testing.assert_allclose(result.p_value, expected.pvalue, **TOL)  # type: ignore[attr-defined]
    assert result.details["statistic_sign"] == expected.statistic_sign  # type: ignore[attr-defined]
    assert result.effect_size == result.statistic
    if max(n1, n2) > 10_000:
        assert result.details["p_value_method"] == "asymp"


def test_location_is_where_the_ecdfs_differ_most() -> None:
    a, b = samples("shifted", 400, 300, seed=1)
    r = ks(a, b)
    x = r.details["statistic_location"]
    gap = np.mean(a <= x) - np.mean(b <= x)
    assert gap == pytest.approx(r.details["statistic_sign"] * r.statistic, abs=1e-12)


@pytest.mark.parametrize("n", [141, 1_000, 5_000, 20_000, 100_000])
@pytest.mark.parametrize("n_d2", [0.3, 1.0, 2.19, 2.2, 3.0, 10.0, 50.0, 200.0, 369.0, 371.0])
def test_kstwo_sf_matches_scipy(n: int, n_d2: float) -> None:
    d = math.sqrt(n_d2 / n)
    np.testing.assert_allclose(kstwo_sf(d, float(n)), stats.kstwo.sf(d, n), **TOL)


@pytest.mark.parametrize(("n", "d"), [(400_000, 0.0025), (400_000, 0.004), (10, 0.6), (141, 0.55)])
def test_kstwo_sf_matches_scipy_at_the_extremes(n: int, d: float) -> None:
    np.testing.assert_allclose(kstwo_sf(d, float(n)), stats.kstwo.sf(d, n), **TOL)


@pytest.mark.parametrize("n", [141, 777, 2_048, 2_100, 12_345, 60_000])
@pytest.mark.parametrize("x", [0.01, 0.05, 0.2, 0.5, 0.7])
def test_smirnov_sum_matches_scipy_special(n: int, x: float) -> None:
    # Relative agreement: the quadrature branch (> 2049 terms) must not lose digits.
    expected = special.smirnov(n, x)
    assert smirnov_sf(n, x) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_exact_p_value_without_scipys_private_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = samples("rounded", 60, 45, seed=3)
    expected = ks(a, b)
    monkeypatch.setattr(ks_module, "_scipy_exact_helper", lambda: None)
    fallback = ks(a, b)
    assert fallback.p_value == pytest.approx(expected.p_value, rel=1e-12)
    assert fallback.details["p_value_method"] == "exact"


def test_sorted_reference_gives_the_same_result() -> None:
    a, b = samples("rounded", 3_000, 2_000, seed=4)
    assert ks(np.sort(a), b, reference_sorted=True) == ks(a, b)
    assert ks(a, np.sort(b)) == ks(a, b)  # an already sorted current is detected


def test_a_false_sorted_claim_raises() -> None:
    with pytest.raises(InputError, match="reference_sorted=True but reference is not sorted"):
        ks([3.0, 1.0, 2.0], [1.0, 2.0], reference_sorted=True)


def test_read_only_inputs_are_not_mutated() -> None:
    a, b = samples("continuous", 500, 400, seed=5)
    a_copy, b_copy = a.copy(), b.copy()
    a.flags.writeable = False  # any in-place write, e.g. a.sort(), would raise
    b.flags.writeable = False
    ks(a, b)
    np.testing.assert_array_equal(a, a_copy)
    np.testing.assert_array_equal(b, b_copy)


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        ([], [1.0], "reference is empty"),
        ([1.0], [], "current is empty"),
        ([1.0, np.nan], [1.0], "reference contains 1 NaN or infinite"),
        ([1.0], [np.inf, 2.0, -np.inf], "current contains 2 NaN or infinite"),
        ([[1.0, 2.0]], [1.0], "1-D array"),
        (["a", "b"], [1.0], "array of numbers"),
    ],
)
def test_bad_input_raises_a_clear_error(reference: object, current: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        ks(reference, current)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("nx", "ny"), [(1, 1), (3, 50), (40, 41), (500, 300)])
def test_both_ways_of_finding_the_largest_gaps_agree(kind: str, nx: int, ny: int) -> None:
    x, y = (np.sort(s) for s in samples(kind, nx, ny, seed=nx + ny))
    by_keys = ks_module._gaps_at_keys(x, y)
    by_histogram = ks_module._largest_gaps(x, y)
    assert (by_keys[0], by_keys[2]) == (by_histogram[0], by_histogram[2])
