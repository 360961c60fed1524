"""Drift of text and embedding columns through the comparison engine (checks/_unstructured.py).

Acceptance (issue 15): a planted vocabulary shift in a generated text column is found and two
halves of one corpus stay clean at the stated false-alarm rate; a shift planted in a
64-dimensional embedding is found and the no-drift control is clean at alpha.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from watchkeeper import Profile, compare
from watchkeeper.checks import ComparisonConfig, run_comparison
from watchkeeper.stats import adjust_p_values

N_WORDS = 2_000
VOCAB = np.array([f"w{i}" for i in range(N_WORDS)])
NEW_WORDS = np.array([f"new{i}" for i in range(N_WORDS)])
#: Latent directions of the generated embeddings (fixed: every test draws from one source).
_LOADINGS = np.random.default_rng(42).normal(size=(8, 64))
_FAST = {"multivariate": None, "quality": False, "plots": False, "n_jobs": 1}


def corpus(rng: np.random.Generator, n: int, *, new_share: float = 0.0) -> list[str]:
    """Documents from five topics (Zipf word use, each topic its own ranking), 5 to 40 words
    each; ``new_share`` of the words come from a vocabulary the reference never used."""
    base = 1.0 / np.arange(1, N_WORDS + 1) ** 1.1
    ranks = [np.random.default_rng(100 + t).permutation(N_WORDS) for t in range(5)]
    docs = []
    for _ in range(n):
        p = base[ranks[rng.integers(5)]]
        words = VOCAB[rng.choice(N_WORDS, size=rng.integers(5, 40), p=p / p.sum())]
        swap = rng.random(words.size) < new_share
        words[swap] = NEW_WORDS[rng.choice(N_WORDS, size=int(swap.sum()), p=base / base.sum())]
        docs.append(" ".join(words))
    return docs


def embeddings(rng: np.random.Generator, n: int, *, shift: float = 0.0) -> list[np.ndarray]:
    """64-dimensional vectors from 8 latent factors plus noise; ``shift`` moves the mean of
    the first factor (in its standard deviations)."""
    z = rng.normal(size=(n, 8))
    z[:, 0] += shift
    return list(z @ _LOADINGS + 0.5 * rng.normal(size=(n, 64)))


def _binomial_upper(reps: int, alpha: float) -> int:
    """Rejections that ``reps`` level-``alpha`` tests exceed with probability below 0.1%."""
    return int(sps.binom.ppf(0.999, reps, alpha))


def test_text_and_embedding_columns_are_compared_not_skipped() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {"t": corpus(rng, 400), "e": embeddings(rng, 400), "x": rng.normal(size=400)}
    )
    cur = pd.DataFrame(
        {"t": corpus(rng, 300), "e": embeddings(rng, 300), "x": rng.normal(size=300)}
    )
    report = compare(ref, cur, multivariate=None)
    assert report.meta["skipped_columns"] == []
    kinds = {c.name: (c.kind, c.method) for c in report.columns}
    assert kinds == {"t": ("text", "text"), "e": ("embedding", "mmd"), "x": ("numeric", "ks")}
    subs = report.column("t").details["sub_tests"]
    assert set(subs) == {
        "t.length",
        "t.words",
        "t.oov_share",
        "t.non_letter_share",
        "t.words_hashed",
    }
    # One family: the Benjamini-Hochberg adjustment runs over the three column p-values.
    p = np.array([c.p_value for c in report.columns])
    adjusted, _ = adjust_p_values(p, alpha=0.05, method="bh")
    assert [c.adjusted_p_value for c in report.columns] == pytest.approx(list(adjusted))
    html = report.to_html()
    assert "Text sub-tests" in html
    assert "t.words_hashed" in html
    assert "Embedding projection" in html
    assert "Not compared" not in html


def test_planted_vocabulary_shift_in_text_is_found() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"t": corpus(rng, 600)})
    cur = pd.DataFrame({"t": corpus(rng, 400, new_share=0.1)})
    col = run_comparison(ref, cur, ComparisonConfig(**_FAST)).column("t")
    assert col.drifted, col.reason
    subs = col.details["sub_tests"]
    assert subs["t.oov_share"]["p_value"] < 1e-6
    assert subs["t.words_hashed"]["p_value"] < 1e-3


def test_text_verdict_from_window_profiles_equals_the_verdict_from_rows() -> None:
    rng = np.random.default_rng(2)
    ref = Profile.from_data(pd.DataFrame({"t": corpus(rng, 500)}))
    cur = pd.DataFrame({"t": corpus(rng, 400, new_share=0.05)})
    windows = [Profile.from_data(cur[i : i + 100], reference=ref) for i in range(0, 400, 100)]
    config = ComparisonConfig(**_FAST)
    from_rows = run_comparison(ref, cur, config).column("t")
    from_windows = run_comparison(ref, Profile.merge_all(windows), config).column("t")
    assert from_windows.p_value == pytest.approx(from_rows.p_value, rel=1e-9)
    assert from_windows.status is from_rows.status


@pytest.mark.slow
def test_two_halves_of_one_corpus_stay_clean_at_alpha() -> None:
    # The column's Bonferroni-combined test is level alpha; every sub-test is level alpha too
    # (documents are the units), which a word-count chi-square would not be.
    rng = np.random.default_rng(3)
    reps, alpha = 150, 0.05
    combined = 0
    sub_rejections: dict[str, int] = {}
    for _ in range(reps):
        docs = corpus(rng, 500)
        col = run_comparison(
            pd.DataFrame({"t": docs[:250]}), pd.DataFrame({"t": docs[250:]}),
            ComparisonConfig(**_FAST),
        ).column("t")  # fmt: skip
        combined += col.p_value < alpha
        for name, sub in col.details["sub_tests"].items():
            sub_rejections[name] = sub_rejections.get(name, 0) + (sub["p_value"] < alpha)
    bound = _binomial_upper(reps, alpha)
    assert combined <= bound, combined
    assert all(v <= bound for v in sub_rejections.values()), sub_rejections


def test_planted_shift_in_a_64_dimensional_embedding_is_found() -> None:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"e": embeddings(rng, 1000)})
    cur = pd.DataFrame({"e": embeddings(rng, 500, shift=1.0)})
    col = run_comparison(ref, cur, ComparisonConfig(**_FAST)).column("e")
    assert col.drifted, col.reason
    assert col.details["dim"] == 64
    assert col.details["n_components"] == 10
    # The domain classifier is the other multivariate method on offer.
    config = ComparisonConfig(**_FAST, methods={"embedding": "domain_classifier"})
    other = run_comparison(ref, cur, config).column("e")
    assert other.method == "domain_classifier"
    assert other.drifted, other.reason


def test_embedding_shift_off_the_reference_components_is_seen_by_the_residual() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"e": embeddings(rng, 1000)})
    vectors = np.array(embeddings(rng, 500))
    # Move along a direction orthogonal to every latent loading: no component score changes.
    q, _ = np.linalg.qr(np.c_[_LOADINGS.T, rng.normal(size=64)])
    vectors += 3.0 * q[:, -1]
    col = run_comparison(ref, pd.DataFrame({"e": list(vectors)}), ComparisonConfig(**_FAST))
    assert col.column("e").drifted, col.column("e").reason


def test_embedding_no_drift_control_is_clean_at_alpha() -> None:
    rng = np.random.default_rng(6)
    reps, alpha = 100, 0.05
    rejections = 0
    for r in range(reps):
        ref = pd.DataFrame({"e": embeddings(rng, 400)})
        cur = pd.DataFrame({"e": embeddings(rng, 200)})
        col = run_comparison(ref, cur, ComparisonConfig(**_FAST, random_state=r)).column("e")
        rejections += col.p_value < alpha
    assert rejections <= _binomial_upper(reps, alpha), rejections


def test_embedding_verdict_from_window_profiles_equals_the_verdict_from_rows() -> None:
    rng = np.random.default_rng(7)
    ref = Profile.from_data(pd.DataFrame({"e": embeddings(rng, 800)}))
    cur = pd.DataFrame({"e": embeddings(rng, 600, shift=0.5)})
    windows = [Profile.from_data(cur[i : i + 150], reference=ref) for i in range(0, 600, 150)]
    config = ComparisonConfig(**_FAST)
    from_rows = run_comparison(ref, cur, config).column("e")
    from_windows = run_comparison(ref, Profile.merge_all(windows), config).column("e")
    assert (from_windows.p_value, from_windows.status) == (from_rows.p_value, from_rows.status)


def test_old_text_reference_gives_insufficient_data_with_the_remedy() -> None:
    rng = np.random.default_rng(8)
    ref = Profile.from_data(pd.DataFrame({"t": corpus(rng, 200)}))
    payload = ref.to_dict()
    old = payload["columns"]["t"]
    payload["columns"]["t"] = {
        k: old[k] for k in ("kind", "count", "n_missing", "total_length", "hll")
    }
    col = run_comparison(
        Profile.from_dict(payload), pd.DataFrame({"t": corpus(rng, 100)}), ComparisonConfig(**_FAST)
    ).column("t")
    assert col.status.value == "insufficient_data"
    assert "profile it again" in col.reason


def test_the_chunks_rule_says_it_cannot_decide_text_or_embeddings() -> None:
    rng = np.random.default_rng(9)
    ref = pd.DataFrame({"t": corpus(rng, 200), "e": embeddings(rng, 200)})
    cur = pd.DataFrame({"t": corpus(rng, 100), "e": embeddings(rng, 100)})
    report = run_comparison(ref, cur, ComparisonConfig(**_FAST, rule="chunks"))
    for name in ("t", "e"):
        col = report.column(name)
        assert col.status.value == "insufficient_data"
        assert "fdr or threshold rule" in col.reason
