"""The document-presence test of hashed word buckets (stats/_presence.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from watchkeeper.exceptions import InputError
from watchkeeper.stats import chi2, presence_test


def _summary(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    x = x.astype(np.float64)
    return x.sum(axis=0), x.T @ x, x.shape[0]


def test_copies_of_one_bucket_give_the_two_proportion_test_of_scipy() -> None:
    # B identical buckets: R is all ones, so g = B, h = 1 and T / g is the Pearson X^2 of
    # the 2x2 table of one bucket; the p-value must be scipy's (no continuity correction).
    rng = np.random.default_rng(0)
    a = (rng.random(400) < 0.3)[:, None].repeat(6, axis=1)
    b = (rng.random(300) < 0.38)[:, None].repeat(6, axis=1)
    sa, pa_, na = _summary(a)
    sb, pb, nb = _summary(b)
    r = presence_test(sa, sb, pa_, pb, na, nb)
    table = [[sa[0], na - sa[0]], [sb[0], nb - sb[0]]]
    expected = sps.chi2_contingency(table, correction=False)
    assert r.details["h"] == pytest.approx(1.0, abs=1e-9)
    assert r.details["g"] == pytest.approx(6.0, abs=1e-9)
    assert r.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert r.statistic / 6 == pytest.approx(expected.statistic, rel=1e-9)


def _topic_documents(
    rng: np.random.Generator, n: int, n_buckets: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Token counts per bucket of ``n`` documents drawn from three topics (words of one
    document go together, so buckets are correlated and token counts overdispersed)."""
    topics = np.random.default_rng(99).dirichlet(np.full(n_buckets, 0.3), size=3)
    which = rng.integers(3, size=n)
    lengths = rng.integers(5, 60, size=n)
    counts = np.array([rng.multinomial(k, topics[t]) for k, t in zip(lengths, which, strict=True)])
    return counts, counts > 0


def test_false_alarm_rate_holds_where_a_word_count_chi2_over_rejects() -> None:
    rng = np.random.default_rng(1)
    reps, alpha = 400, 0.05
    presence_rejects = naive_rejects = 0
    for _ in range(reps):
        counts, present = _topic_documents(rng, 400)
        sa, pa_, na = _summary(present[:200])
        sb, pb, nb = _summary(present[200:])
        presence_rejects += presence_test(sa, sb, pa_, pb, na, nb).p_value < alpha
        naive = chi2(counts[:200].sum(axis=0), counts[200:].sum(axis=0))
        naive_rejects += naive.p_value < alpha
    # Binomial(400, 0.05): mean 20, P(X >= 34) < 0.002.
    assert presence_rejects < 34, presence_rejects
    assert naive_rejects > 3 * reps * alpha, naive_rejects  # why the test counts documents


def test_finds_a_shift_in_bucket_use() -> None:
    rng = np.random.default_rng(2)
    _, a = _topic_documents(rng, 500)
    _, b = _topic_documents(rng, 500)
    common = int(np.argmax(b.mean(axis=0)))
    b[rng.random(500) < 0.3, common] = False  # the words of one bucket fall out of use
    sa, pa_, na = _summary(a)
    sb, pb, nb = _summary(b)
    r = presence_test(sa, sb, pa_, pb, na, nb)
    assert r.p_value < 1e-3
    assert r.effect_size > 0.05


def test_bad_input_says_what_to_fix() -> None:
    with pytest.raises(InputError, match="same number of buckets"):
        presence_test([1, 2], [1, 2, 3], np.eye(2), np.eye(3), 5, 5)
    with pytest.raises(InputError, match="at least two documents"):
        presence_test([1, 0], [1, 0], np.diag([1, 0]), np.diag([1, 0]), 1, 5)
    with pytest.raises(InputError, match="2 x 2"):
        presence_test([1, 0], [1, 0], np.eye(3), np.eye(2), 5, 5)
