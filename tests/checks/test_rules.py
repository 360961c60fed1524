from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from watchkeeper.checks import (
    ColumnTest,
    ReferenceChunksRule,
    StatisticalRule,
    Status,
    ThresholdRule,
)
from watchkeeper.checks._rules import resolve_rule
from watchkeeper.exceptions import InputError
from watchkeeper.stats import TestResult


def _test(name: str, p: float | None, effect: float, n: int = 1000, method: str = "ks",
          floor: float = 0.02, chunks: tuple[float, ...] = ()) -> ColumnTest:  # fmt: skip
    return ColumnTest(
        name,
        method,
        "numeric",
        floor,
        TestResult(method, effect, p, effect, n, n),
        chunk_effects=chunks,
    )


def test_statistical_rule_adjusts_like_scipy_bh() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.1, size=25)
    tests = [_test(f"c{i}", float(pi), 0.5) for i, pi in enumerate(p)]
    decisions = StatisticalRule(alpha=0.05).decide(tests)
    expected = sps.false_discovery_control(p, method="bh")
    got = np.array([d.adjusted_p_value for d in decisions])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert [d.drifted for d in decisions] == list(expected <= 0.05)


def test_significant_but_negligible_is_ok_and_flagged() -> None:
    (d,) = StatisticalRule().decide([_test("x", 1e-12, 0.004)])
    assert d.status is Status.OK
    assert not d.drifted
    assert d.significant is True
    assert "below the practical floor" in d.reason


def test_floor_override_per_method() -> None:
    t = _test("x", 1e-12, 0.004)
    (d,) = StatisticalRule(effect_floors={"ks": 0.0}).decide([t])
    assert d.drifted
    assert d.threshold == 0.0


def test_small_samples_are_insufficient_not_a_verdict() -> None:
    (d,) = StatisticalRule(min_samples=50).decide([_test("x", 1e-9, 0.9, n=20)])
    assert d.status is Status.INSUFFICIENT_DATA
    assert not d.drifted
    assert "20" in d.reason


def test_insufficient_tests_leave_the_family() -> None:
    # An insufficient column must not dilute the correction of the others.
    good = _test("a", 0.03, 0.5)
    empty = ColumnTest("b", "ks", "numeric", 0.02, None, insufficient="no values")
    d_good, d_empty = StatisticalRule().decide([good, empty])
    assert d_good.adjusted_p_value == pytest.approx(0.03)
    assert d_empty.status is Status.INSUFFICIENT_DATA


def test_missing_p_value_is_insufficient_for_the_statistical_rule() -> None:
    (d,) = StatisticalRule().decide([_test("x", None, 0.9)])
    assert d.status is Status.INSUFFICIENT_DATA


@pytest.mark.parametrize("alpha", [0.0, 1.0, -1.0])
def test_bad_alpha(alpha: float) -> None:
    with pytest.raises(InputError, match="alpha"):
        StatisticalRule(alpha=alpha)


def test_threshold_rule_uses_p_for_tests_and_distance_for_distances() -> None:
    rule = ThresholdRule()
    d_ks, d_psi_low, d_psi_high = rule.decide(
        [
            _test("a", 0.01, 0.01, method="ks"),
            _test("b", 1e-9, 0.05, method="psi", floor=0.1),
            _test("c", 0.5, 0.15, method="psi", floor=0.1),
        ]
    )
    assert d_ks.drifted
    assert d_ks.threshold == 0.05
    assert not d_psi_low.drifted
    assert d_psi_high.drifted
    assert d_psi_high.threshold == 0.1


def test_reference_chunks_threshold_is_mean_plus_k_sd() -> None:
    chunks = (0.02, 0.03, 0.025, 0.035, 0.03)
    rule = ReferenceChunksRule(n_std=3.0)
    thr = float(np.mean(chunks) + 3 * np.std(chunks, ddof=1))
    above, below = rule.decide(
        [_test("a", None, thr + 1e-6, chunks=chunks), _test("b", None, thr - 1e-6, chunks=chunks)]
    )
    assert above.drifted
    assert above.threshold == pytest.approx(thr)
    assert not below.drifted


def test_reference_chunks_without_chunks_is_insufficient() -> None:
    (d,) = ReferenceChunksRule().decide([_test("a", 0.01, 0.5)])
    assert d.status is Status.INSUFFICIENT_DATA


def test_resolve_rule_by_name() -> None:
    assert isinstance(resolve_rule(None), StatisticalRule)
    assert isinstance(resolve_rule("threshold"), ThresholdRule)
    assert isinstance(resolve_rule("chunks"), ReferenceChunksRule)
    with pytest.raises(InputError, match="fdr, threshold, chunks"):
        resolve_rule("magic")
