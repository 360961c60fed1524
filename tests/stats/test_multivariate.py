"""Multivariate drift methods: agreement with reference implementations, valid p-values under
no drift, power on a change no single column shows, bounded memory, and clear input errors."""

from __future__ import annotations

import json
import math
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist
from scipy.stats import ks_2samp, mannwhitneyu
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from watchkeeper.exceptions import InputError
from watchkeeper.stats import (
    MultivariateMethod,
    TestResult,
    available_multivariate_methods,
    domain_classifier,
    get_multivariate_method,
    mmd,
    pca_reconstruction,
)
from watchkeeper.stats._domain_classifier import fold_auc_test
from watchkeeper.stats._mmd import _mmd2_per_labelling
from watchkeeper.stats._pca_reconstruction import _principal_axes, reconstruction_errors

Method = Callable[..., TestResult]

# Cheap settings for the many small runs below (the defaults are for real data).
FAST: dict[str, dict[str, Any]] = {
    "domain_classifier": {},
    "mmd": {"n_permutations": 99},
    "pca_reconstruction": {},
}
METHODS = [domain_classifier, mmd, pca_reconstruction]
IDS = [m.__name__ for m in METHODS]


def correlated(n: int, rho: float, rng: np.random.Generator, d: int = 5) -> np.ndarray:
    """N(0, I_d) except that features 0 and 1 have correlation ``rho``: every marginal is
    N(0, 1) whatever ``rho`` is, so univariate tests cannot see a change of ``rho``."""
    x = rng.standard_normal((n, d))
    x[:, 1] = rho * x[:, 0] + math.sqrt(1.0 - rho**2) * x[:, 1]
    return x


def rejection_bound(alpha: float, reps: int) -> float:
    return alpha + 3.0 * math.sqrt(alpha * (1.0 - alpha) / reps)


# --- registry -----------------------------------------------------------------------------


def test_registry_lists_the_methods_with_their_floors() -> None:
    assert {"domain_classifier", "mmd", "pca_reconstruction"} <= set(
        available_multivariate_methods()
    )
    floors = {"domain_classifier": 0.05, "mmd": 0.05, "pca_reconstruction": 0.1}
    for name, floor in floors.items():
        method = get_multivariate_method(name)
        assert isinstance(method, MultivariateMethod)
        assert method.name == name
        assert method.effect_floor == floor
        assert method.has_p_value
        assert method.description


def test_unknown_method_lists_the_valid_names() -> None:
    with pytest.raises(InputError, match=r"'ks'.*domain_classifier, mmd, pca_reconstruction"):
        get_multivariate_method("ks")


@pytest.mark.parametrize("name", ["domain_classifier", "mmd", "pca_reconstruction"])
def test_registered_method_is_callable_like_the_function(name: str) -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=(80, 3)), rng.normal(size=(80, 3))
    via_registry = get_multivariate_method(name)(ref, cur, random_state=3, **FAST[name])
    direct = get_multivariate_method(name).func(ref, cur, random_state=3, **FAST[name])
    assert via_registry == direct
    assert via_registry.method == name
    json.dumps(via_registry.to_dict())


# --- agreement with reference implementations -------------------------------------------------


@pytest.mark.parametrize("kernel", ["rbf", "laplacian"])
def test_mmd2_matches_the_direct_unbiased_estimate(kernel: str) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(55, 3)) + 0.3
    h = 1.7

    def direct(a: np.ndarray, b: np.ndarray) -> float:
        def k(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            if kernel == "rbf":
                return np.exp(-cdist(u, v, "sqeuclidean") / (2 * h * h))
            return np.exp(-cdist(u, v) / h)

        kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
        m, n = len(a), len(b)
        return float(
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
            + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * kxy.mean()
        )

    r = mmd(x, y, kernel=kernel, bandwidth=h, standardize=False, n_permutations=10)
    assert r.statistic == pytest.approx(direct(x, y), abs=1e-12)
    assert r.effect_size == pytest.approx(math.sqrt(max(direct(x, y), 0.0)), abs=1e-12)

    # Every relabelling column is the same estimate on the relabelled rows.
    z = np.vstack([x, y])
    labels = np.zeros((len(z), 4))
    for j in range(4):
        labels[rng.permutation(len(z))[: len(x)], j] = 1.0
    got = _mmd2_per_labelling(z, labels, len(x), kernel, h)
    for j in range(4):
        s = labels[:, j] == 1.0
        assert got[j] == pytest.approx(direct(z[s], z[~s]), abs=1e-12)


def test_mmd_median_bandwidth_is_the_median_pooled_distance() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 4)) * [1, 10, 100, 1], rng.normal(size=(70, 4))
    z = np.vstack([x, y])
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    r = mmd(x, y, n_permutations=10)
    assert r.details["bandwidth"] == pytest.approx(float(np.median(pdist(z))), rel=1e-12)


def test_mmd_permutation_p_value_agrees_with_a_naive_permutation_test() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + np.array([0.4, 0.0])
    r = mmd(x, y, bandwidth=1.0, standardize=False, n_permutations=999, random_state=0)

    def stat(a: np.ndarray, b: np.ndarray) -> float:
        kxx, kyy = np.exp(-cdist(a, a, "sqeuclidean") / 2), np.exp(-cdist(b, b, "sqeuclidean") / 2)
        kxy = np.exp(-cdist(a, b, "sqeuclidean") / 2)
        return float((kxx.sum() - 30) / 870 + (kyy.sum() - 30) / 870 - 2 * kxy.mean())

    z, observed = np.vstack([x, y]), stat(x, y)
    naive_rng = np.random.default_rng(123)
    hits = 0
    for _ in range(999):
        perm = naive_rng.permutation(60)
        hits += stat(z[perm[:30]], z[perm[30:]]) >= observed
    naive_p = (hits + 1) / 1000
    # Two independent Monte Carlo p-values with 999 permutations each: sd <= 0.016 apiece.
    assert abs(r.p_value - naive_p) < 0.06
    assert 0.001 < naive_p < 0.5  # the case is informative, not trivially 0 or 1


def test_fold_auc_test_matches_sklearn_and_scipy_with_ties() -> None:
    rng = np.random.default_rng(3)
    cur = np.round(rng.normal(0.3, 1, 70), 1)  # rounding makes ties
    ref = np.round(rng.normal(0.0, 1, 90), 1)
    auc, p = fold_auc_test(cur, ref)
    y = np.r_[np.ones(70), np.zeros(90)]
    assert auc == pytest.approx(roc_auc_score(y, np.r_[cur, ref]), abs=1e-12)
    assert p == pytest.approx(mannwhitneyu(cur, ref, alternative="greater").pvalue, rel=1e-12)
    assert fold_auc_test(np.zeros(5), np.zeros(5)) == (0.5, 1.0)


def test_pca_axes_and_errors_match_sklearn() -> None:
    rng = np.random.default_rng(4)
    mix = rng.normal(size=(6, 6))
    fit = rng.normal(size=(300, 6)) @ mix
    fit = (fit - fit.mean(axis=0)) / fit.std(axis=0)
    new = rng.normal(size=(50, 6)) @ mix

    ours_k = _principal_axes(fit, 0.9)[0].shape[1]
    assert ours_k == PCA(n_components=0.9, svd_solver="full").fit(fit).n_components_

    basis, share = _principal_axes(fit, 3)
    pca = PCA(n_components=3, svd_solver="full").fit(fit)
    assert share == pytest.approx(pca.explained_variance_ratio_.sum(), rel=1e-10)
    expected = ((new - pca.inverse_transform(pca.transform(new))) ** 2).sum(axis=1)
    # sklearn re-centres with the fit mean, which is 0 up to rounding for the centred fit rows.
    np.testing.assert_allclose(reconstruction_errors(new, basis), expected, rtol=1e-8)


def test_pca_keeps_at_most_n_features_minus_one_components() -> None:
    rng = np.random.default_rng(6)
    r = pca_reconstruction(rng.normal(size=(200, 2)), rng.normal(size=(100, 2)), n_components=0.99)
    assert r.details["n_components"] == 1


# --- validity under no drift ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "n", "reps", "kwargs"),
    [
        (mmd, 60, 200, {"n_permutations": 99}),
        (pca_reconstruction, 120, 300, {}),
        pytest.param(domain_classifier, 60, 100, {}, marks=pytest.mark.slow),  # ~10 s
    ],
    ids=["mmd", "pca_reconstruction", "domain_classifier"],
)
def test_false_alarm_rate_under_no_drift(
    method: Method, n: int, reps: int, kwargs: dict[str, Any]
) -> None:
    # Ten features with a correlation structure, the same distribution on both sides.
    rng = np.random.default_rng(2024)
    mix = np.eye(10) + 0.5 * rng.normal(size=(10, 10))
    p_values = []
    for rep in range(reps):
        ref = rng.standard_normal((n, 10)) @ mix
        cur = rng.standard_normal((n, 10)) @ mix
        p_values.append(method(ref, cur, random_state=rep, **kwargs).p_value)
    p = np.array(p_values, dtype=float)
    for alpha in (0.05, 0.2):
        assert np.mean(p <= alpha) <= rejection_bound(alpha, reps), (alpha, np.mean(p <= alpha))
    if method is not domain_classifier:
        # Exact tests (not Bonferroni-conservative) also reject about as often as they may.
        assert np.mean(p <= 0.2) >= 0.2 - 3 * math.sqrt(0.2 * 0.8 / reps)


# --- power on a change no single column shows ----------------------------------------------


@pytest.fixture(scope="module")
def correlation_break() -> tuple[np.ndarray, np.ndarray]:
    """Reference: features 0 and 1 correlated 0.9; current: independent. Same marginals."""
    rng = np.random.default_rng(7)
    return correlated(1000, 0.9, rng), correlated(1000, 0.0, rng)


def test_correlation_break_is_invisible_to_univariate_tests(
    correlation_break: tuple[np.ndarray, np.ndarray],
) -> None:
    ref, cur = correlation_break
    p = [ks_2samp(ref[:, j], cur[:, j]).pvalue for j in range(ref.shape[1])]
    assert min(p) * len(p) > 0.05


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_correlation_break_is_detected(
    method: Method, correlation_break: tuple[np.ndarray, np.ndarray]
) -> None:
    ref, cur = correlation_break
    r = method(ref, cur)
    floor = get_multivariate_method(method.__name__).effect_floor
    assert r.p_value is not None
    assert r.p_value < 0.01
    assert r.effect_size >= floor
    assert r.n_reference == 1000
    assert r.n_current == 1000


@pytest.mark.parametrize("method", [domain_classifier, mmd], ids=["domain_classifier", "mmd"])
def test_new_correlation_is_detected(method: Method) -> None:
    # The opposite direction (independent -> correlated), which PCA reconstruction by design
    # does not flag; the domain classifier and MMD see any change.
    rng = np.random.default_rng(8)
    r = method(correlated(1000, 0.0, rng), correlated(1000, 0.9, rng))
    assert r.p_value is not None
    assert r.p_value < 0.01


def test_domain_classifier_separates_perfectly_and_names_the_feature() -> None:
    rng = np.random.default_rng(9)
    ref, cur = rng.normal(size=(200, 4)), rng.normal(size=(150, 4))
    cur[:, 2] += 100.0
    r = domain_classifier(ref, cur, estimator=RandomForestClassifier(20, random_state=0))
    assert r.statistic == 1.0
    assert r.effect_size == 0.5
    assert r.p_value is not None
    assert r.p_value < 1e-10
    assert r.details["top_features"][0] == 2
    assert sum(r.details["top_feature_importances"]) <= 1.0 + 1e-12
    # Linear models report |coef|; the default model exposes no importances.
    r_lin = domain_classifier(ref, cur, estimator=LogisticRegression())
    assert r_lin.details["top_features"][0] == 2
    assert "top_features" not in domain_classifier(ref, cur).details


def test_domain_classifier_is_insensitive_to_class_imbalance() -> None:
    rng = np.random.default_rng(10)
    ref, cur = rng.normal(size=(1500, 3)), rng.normal(size=(150, 3))
    r = domain_classifier(ref, cur)
    assert abs(r.effect_size) < 0.05  # AUC near 0.5 even though 91% of rows are reference


def test_pca_effect_size_is_the_error_ratio_minus_one() -> None:
    rng = np.random.default_rng(11)
    ref = correlated(2000, 0.95, rng, d=3)
    cur = correlated(1000, 0.95, rng, d=3) * 1.5  # same structure, errors scale by 1.5^2
    r = pca_reconstruction(ref, cur, n_components=2)
    assert r.effect_size == pytest.approx(1.25, rel=0.1)
    assert r.statistic == pytest.approx((1 + r.effect_size) * r.details["reference_error"])


# --- determinism, inputs, memory -----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_same_seed_same_result_and_inputs_untouched(method: Method) -> None:
    rng = np.random.default_rng(12)
    ref, cur = rng.normal(size=(300, 4)), rng.normal(size=(250, 4)) + 0.1
    ref_copy, cur_copy = ref.copy(), cur.copy()
    ref.setflags(write=False)
    kwargs = {**FAST[method.__name__], "max_samples": 200}  # subsampling is seeded too
    a = method(ref, cur, random_state=1, **kwargs)
    b = method(ref, cur, random_state=1, **kwargs)
    assert a.to_dict() == b.to_dict()
    assert a.n_reference == 200
    assert a.n_current == 200
    np.testing.assert_array_equal(ref, ref_copy)
    np.testing.assert_array_equal(cur, cur_copy)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
def test_integer_and_list_inputs_are_accepted(method: Method) -> None:
    rng = np.random.default_rng(13)
    ref = rng.integers(0, 5, size=(100, 3))
    cur = rng.integers(0, 5, size=(100, 3)).tolist()
    r = method(ref, cur, **FAST[method.__name__])
    assert r.p_value is not None
    assert 0.0 < r.p_value <= 1.0


def test_mmd_memory_stays_bounded_on_a_million_rows() -> None:
    rng = np.random.default_rng(14)
    ref = rng.standard_normal((1_000_000, 5))
    cur = rng.standard_normal((1_000_000, 5))
    cur[:, 0] += 0.5
    mmd(ref[:50], cur[:50], n_permutations=10)  # warm caches and lazy imports first
    tracemalloc.start()
    try:
        r = mmd(ref, cur)  # defaults: 1,000 rows per side, 500 permutations
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Stated bound: 32 MB, less than one 1M x 5 copy (40 MB); about 16 MB are expected.
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.1f} MB"
    assert r.n_reference == 1000
    assert r.n_current == 1000
    assert r.p_value == 1 / 501


# --- bad input and insufficient data -------------------------------------------------------


@pytest.mark.parametrize("method", METHODS, ids=IDS)
@pytest.mark.parametrize(
    ("ref", "cur", "message"),
    [
        (np.zeros(50), np.zeros((50, 2)), r"2-D array.*reshape\(-1, 1\)"),
        (np.zeros((50, 2)), np.zeros((50, 3)), "2 features but current has 3"),
        (np.zeros((50, 0)), np.zeros((50, 0)), "no feature columns"),
        (np.zeros((50, 2)), np.array([["a", "b"]] * 50), "must be numeric.*encode"),
    ],
    ids=["1-D", "mismatched", "no-features", "strings"],
)
def test_bad_shapes_raise_input_error(
    method: Method, ref: np.ndarray, cur: np.ndarray, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        method(ref, cur)


@pytest.mark.parametrize("method", METHODS, ids=IDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_raise_input_error_naming_the_row(method: Method, bad: float) -> None:
    cur = np.zeros((100_000, 2))
    cur[70_001, 1] = bad
    with pytest.raises(InputError, match=r"current contains NaN.*row 70001.*impute"):
        method(np.zeros((50, 2)), cur)


@pytest.mark.parametrize(
    ("method", "kwargs", "message"),
    [
        (domain_classifier, {"n_splits": 1}, "n_splits must be an integer >= 2"),
        (domain_classifier, {"max_samples": 0}, "max_samples must be a positive integer"),
        (mmd, {"kernel": "cosine"}, "kernel must be 'rbf' or 'laplacian'"),
        (mmd, {"bandwidth": -1.0}, "bandwidth must be 'median' or a positive number"),
        (mmd, {"bandwidth": "mean"}, "bandwidth must be 'median' or a positive number"),
        (mmd, {"n_permutations": 0}, "n_permutations must be a positive integer"),
        (pca_reconstruction, {"n_components": 1.0}, r"must be in \(0, 1\)"),
        (pca_reconstruction, {"n_components": 3}, "between 1 and n_features - 1 = 2"),
        (pca_reconstruction, {"n_components": "all"}, "float in"),
    ],
)
def test_bad_options_raise_input_error(
    method: Method, kwargs: dict[str, Any], message: str
) -> None:
    rng = np.random.default_rng(15)
    with pytest.raises(InputError, match=message):
        method(rng.normal(size=(60, 3)), rng.normal(size=(60, 3)), **kwargs)


def test_pca_needs_two_features() -> None:
    with pytest.raises(InputError, match="at least 2 features"):
        pca_reconstruction(np.zeros((100, 1)), np.zeros((100, 1)))


def test_domain_classifier_fewer_rows_than_folds_is_an_input_error() -> None:
    rng = np.random.default_rng(16)
    with pytest.raises(InputError, match="3 rows on one side cannot fill 5 folds"):
        domain_classifier(rng.normal(size=(100, 2)), rng.normal(size=(3, 2)))


def test_domain_classifier_rejects_an_estimator_without_scores() -> None:
    class NoScores:
        def get_params(self, deep: bool = True) -> dict[str, Any]:
            return {}

        def fit(self, x: np.ndarray, y: np.ndarray) -> NoScores:
            return self

    rng = np.random.default_rng(17)
    with pytest.raises(InputError, match="predict_proba or decision_function"):
        domain_classifier(rng.normal(size=(60, 2)), rng.normal(size=(60, 2)), estimator=NoScores())


@pytest.mark.parametrize(
    ("method", "n_ref", "n_cur", "kwargs"),
    [
        (domain_classifier, 100, 24, {}),  # 5 folds need 25 rows per side
        (domain_classifier, 100, 19, {"n_splits": 2}),  # and never fewer than 20
        (mmd, 19, 100, {}),
        (mmd, 0, 100, {}),
        (pca_reconstruction, 39, 100, {}),  # 20 to fit, 20 as the null
        (pca_reconstruction, 100, 19, {}),
    ],
)
def test_too_few_rows_give_no_p_value_and_say_why(
    method: Method, n_ref: int, n_cur: int, kwargs: dict[str, Any]
) -> None:
    rng = np.random.default_rng(18)
    r = method(rng.normal(size=(n_ref, 3)), rng.normal(size=(n_cur, 3)), **kwargs)
    assert r.p_value is None
    assert math.isnan(r.statistic)
    assert math.isnan(r.effect_size)
    assert (r.n_reference, r.n_current) == (n_ref, n_cur)
    assert r.details["insufficient_data"] is True
    assert "at least" in r.details["reason"]
    assert r.to_dict()["p_value"] is None
