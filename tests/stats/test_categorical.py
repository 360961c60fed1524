"""Categorical methods against scipy and the textbook formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance
from scipy.stats.contingency import association

from watchkeeper.exceptions import InputError
from watchkeeper.stats import (
    chi2,
    g_test,
    hellinger_counts,
    jensen_shannon_counts,
    l_infinity,
    psi_counts,
    tvd,
)
from watchkeeper.stats._categorical import PSI_EPSILON

TOL = {"rtol": 1e-9, "atol": 1e-9}

TABLES = [
    ([30, 12], [25, 20]),  # 2x2: Yates' correction applies
    ([3, 1], [0, 4]),  # 2x2 with a small cell
    ([500, 300, 200], [450, 330, 220]),
    ([120, 0, 80, 5, 1], [100, 3, 90, 0, 9]),
    ([10_000, 2_000, 500, 40], [950, 230, 40, 2]),  # unequal totals
    ([5, 0, 7, 0], [4, 0, 9, 1]),  # categories empty on both sides are dropped
]


def kept(a: list[int], b: list[int]) -> np.ndarray:
    table = np.array([a, b], dtype=float)
    return table[:, table.sum(axis=0) > 0]


@pytest.mark.parametrize(("ref", "cur"), TABLES)
def test_chi2_matches_chi2_contingency(ref: list[int], cur: list[int]) -> None:
    expected = stats.chi2_contingency(kept(ref, cur))
    result = chi2(ref, cur)
    np.testing.assert_allclose(result.statistic, expected.statistic, **TOL)
    np.testing.assert_allclose(result.p_value, expected.pvalue, **TOL)
    assert result.details["dof"] == expected.dof
    assert result.details["continuity_correction"] == (expected.dof == 1)


@pytest.mark.parametrize(("ref", "cur"), TABLES)
def test_g_test_matches_chi2_contingency_log_likelihood(ref: list[int], cur: list[int]) -> None:
    expected = stats.chi2_contingency(kept(ref, cur), correction=False, lambda_="log-likelihood")
    result = g_test(ref, cur)
    np.testing.assert_allclose(result.statistic, expected.statistic, **TOL)
    np.testing.assert_allclose(result.p_value, expected.pvalue, **TOL)


def test_cramers_v_equals_scipys_when_totals_are_equal() -> None:
    ref, cur = [300, 120, 80], [260, 150, 90]
    table = np.array([ref, cur])
    v = association(table, method="cramer")
    assert chi2(ref, cur).effect_size == pytest.approx(v, rel=1e-12)
    assert chi2(ref, cur).details["cramers_v_counts"] == pytest.approx(v, rel=1e-12)


def test_cramers_v_does_not_depend_on_how_unequal_the_sample_sizes_are() -> None:
    ref, cur = np.array([4_000, 2_500, 1_500]), np.array([45, 30, 25])
    scaled_table = np.array([ref, cur * 80])  # equal totals: 8000 each
    v_balanced = association(scaled_table, method="cramer")
    r = chi2(ref, cur)
    assert r.effect_size == pytest.approx(v_balanced, rel=1e-12)
    assert g_test(ref, cur * 7).effect_size == pytest.approx(v_balanced, rel=1e-12)
    # The V of the raw count table shrinks with the imbalance; that is why it is not used.
    assert r.details["cramers_v_counts"] < 0.5 * v_balanced


def proportions(ref: list[int], cur: list[int]) -> tuple[np.ndarray, np.ndarray]:
    table = kept(ref, cur)
    return table[0] / table[0].sum(), table[1] / table[1].sum()


@pytest.mark.parametrize(("ref", "cur"), TABLES)
def test_distances_match_reference_formulas(ref: list[int], cur: list[int]) -> None:
    p, q = proportions(ref, cur)
    np.testing.assert_allclose(
        jensen_shannon_counts(ref, cur).statistic, distance.jensenshannon(p, q, base=2), **TOL
    )
    np.testing.assert_allclose(
        hellinger_counts(ref, cur).statistic,
        math.sqrt(max(1.0 - float(np.sum(np.sqrt(p * q))), 0.0)),
        rtol=1e-7,  # the reference form loses digits to cancellation for close p and q
        atol=1e-9,
    )
    np.testing.assert_allclose(tvd(ref, cur).statistic, 0.5 * distance.cityblock(p, q), **TOL)
    np.testing.assert_allclose(l_infinity(ref, cur).statistic, distance.chebyshev(p, q), **TOL)
    pe, qe = np.where(p > 0, p, PSI_EPSILON), np.where(q > 0, q, PSI_EPSILON)
    psi_ref = sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(pe, qe, strict=True))
    np.testing.assert_allclose(psi_counts(ref, cur).statistic, psi_ref, **TOL)


@pytest.mark.parametrize(
    "method", [psi_counts, jensen_shannon_counts, hellinger_counts, l_infinity, tvd]
)
@pytest.mark.parametrize(("ref", "cur"), TABLES)
def test_distance_p_value_is_the_chi2_tests(method: object, ref: list[int], cur: list[int]) -> None:
    result = method(ref, cur)  # type: ignore[operator]
    assert result.p_value == chi2(ref, cur).p_value
    assert result.details["p_value_source"] == "chi2"
    assert result.effect_size == result.statistic
    assert (result.n_reference, result.n_current) == (sum(ref), sum(cur))


def test_psi_with_an_empty_cell_is_finite() -> None:
    r = psi_counts([100, 0], [90, 10])
    expected = (0.9 - 1.0) * math.log(0.9) + (0.1 - PSI_EPSILON) * math.log(0.1 / PSI_EPSILON)
    assert r.statistic == pytest.approx(expected)


def test_a_single_observed_category_is_no_evidence() -> None:
    r = chi2([10, 0, 0], [4, 0, 0])
    assert (r.statistic, r.p_value, r.effect_size, r.details["dof"]) == (0.0, 1.0, 0.0, 0)


def test_identical_proportions_give_zero_distances() -> None:
    for method in (psi_counts, jensen_shannon_counts, hellinger_counts, l_infinity, tvd):
        r = method([20, 40, 60], [10, 20, 30])
        assert r.statistic == pytest.approx(0.0, abs=1e-12)
        assert r.p_value == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("ref", "cur", "message"),
    [
        ([1, 2], [1, 2, 3], "2 categories but current_counts has 3"),
        ([1, -2], [1, 2], "non-negative whole counts"),
        ([0.5, 0.5], [1, 2], "non-negative whole counts"),
        ([1, np.nan], [1, 2], "non-negative whole counts"),
        ([0, 0], [1, 2], "reference_counts sum to zero"),
        ([1, 2], [0, 0], "current_counts sum to zero"),
        ([], [], "non-empty 1-D"),
        ([[1, 2]], [1, 2], "non-empty 1-D"),
        (["a"], [1], "whole counts"),
    ],
)
def test_bad_counts_raise_a_clear_error(ref: object, cur: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        chi2(ref, cur)  # type: ignore[arg-type]
