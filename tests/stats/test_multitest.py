"""Multiple-testing procedures against scipy and straightforward reference loops."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from watchkeeper.exceptions import InputError
from watchkeeper.stats import (
    adjust_p_values,
    benjamini_hochberg,
    benjamini_yekutieli,
    bonferroni,
    holm,
)


def p_value_vectors() -> list[NDArray[np.float64]]:
    rng = np.random.default_rng(0)
    out = [np.array([0.5]), np.array([0.0, 1.0, 0.3]), np.array([0.01, 0.01, 0.01, 0.2])]
    for m in (5, 37, 500):
        p = rng.uniform(size=m)
        p[: m // 5] *= 1e-3  # some real signals
        p[m // 3 : m // 3 + 3] = p[m // 3]  # ties
        out.append(rng.permutation(p))
    return out


@pytest.mark.parametrize("p", p_value_vectors())
@pytest.mark.parametrize("method", ["bh", "by"])
def test_fdr_adjustment_matches_scipy(p: NDArray[np.float64], method: str) -> None:
    adjusted, reject = adjust_p_values(p, method=method)  # type: ignore[arg-type]
    np.testing.assert_allclose(
        adjusted, stats.false_discovery_control(p, method=method), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_array_equal(reject, adjusted <= 0.05)


def holm_loop(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def bh_reject_loop(p: list[float], alpha: float) -> list[bool]:
    m = len(p)
    ranked = sorted(p)
    k = max((i + 1 for i in range(m) if ranked[i] <= (i + 1) * alpha / m), default=0)
    cutoff = ranked[k - 1] if k else -1.0
    return [pi <= cutoff for pi in p]


@pytest.mark.parametrize("p", p_value_vectors())
def test_holm_and_bonferroni_match_reference_loops(p: NDArray[np.float64]) -> None:
    np.testing.assert_allclose(holm(p).adjusted, holm_loop(p.tolist()), rtol=1e-12, atol=0)
    expected = [min(1.0, len(p) * pi) for pi in p]
    np.testing.assert_allclose(bonferroni(p).adjusted, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("p", p_value_vectors())
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
def test_bh_rejections_are_the_step_up_procedure(p: NDArray[np.float64], alpha: float) -> None:
    result = benjamini_hochberg(p, alpha=alpha)
    assert result.reject.tolist() == bh_reject_loop(p.tolist(), alpha)
    assert (result.method, result.alpha) == ("bh", alpha)


def test_missing_p_values_are_excluded_from_the_family() -> None:
    p = [0.01, None, 0.04, float("nan"), 0.03]
    present = np.array([0.01, 0.04, 0.03])
    for func in (benjamini_hochberg, benjamini_yekutieli, holm, bonferroni):
        r = func(p)
        full = func(present)
        np.testing.assert_array_equal(r.adjusted[[0, 2, 4]], full.adjusted)
        assert np.isnan(r.adjusted[[1, 3]]).all()
        assert r.reject.tolist() == [*full.reject[:1], False, full.reject[1], False, full.reject[2]]
        assert r.excluded.tolist() == [False, True, False, True, False]
        assert r.n_tests == 3


def test_no_correction_returns_the_p_values() -> None:
    adjusted, reject = adjust_p_values([0.04, np.nan, 0.06], method="none")
    np.testing.assert_array_equal(adjusted, [0.04, np.nan, 0.06])
    assert reject.tolist() == [True, False, False]


def test_empty_and_all_missing_families() -> None:
    for p in ([], [None, None]):
        adjusted, reject = adjust_p_values(p)
        assert np.isnan(adjusted).all()
        assert not reject.any()
        assert adjusted.shape == (len(p),)


def test_result_is_immutable_and_input_untouched() -> None:
    p = np.array([0.3, 0.01, 0.2])
    r = holm(p)
    np.testing.assert_array_equal(p, [0.3, 0.01, 0.2])
    with pytest.raises(ValueError, match="read-only"):
        r.adjusted[0] = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.alpha = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p_values": [0.1, 1.2]}, r"p-values must lie in \[0, 1\]"),
        ({"p_values": [-0.1]}, r"p-values must lie in \[0, 1\]"),
        ({"p_values": [[0.1, 0.2]]}, "must be 1-D"),
        ({"p_values": ["x"]}, "sequence of numbers"),
        ({"p_values": [0.1], "alpha": 0.0}, "alpha must be a number strictly between"),
        ({"p_values": [0.1], "alpha": 1.5}, "alpha must be a number strictly between"),
        ({"p_values": [0.1], "method": "fdr"}, "unknown correction 'fdr'"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        adjust_p_values(**kwargs)  # type: ignore[arg-type]
