"""Properties of every univariate method: effect sizes estimate population values (so they do
not grow with the sample size), inputs are never written to, floors are documented."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.spatial import distance

from watchkeeper.stats import available_methods, get_method

DOCS = Path(__file__).resolve().parents[2] / "docs" / "methods.md"
NUMERIC = ["ks", "cramer_von_mises", "anderson_darling", "wasserstein", "energy"]
BINNED = ["psi", "jensen_shannon", "hellinger"]


def binned_population(p: np.ndarray, q: np.ndarray) -> dict[str, float]:
    return {
        "psi": float(np.sum((q - p) * np.log(q / p))),
        "jensen_shannon": float(distance.jensenshannon(p, q, base=2)),
        "hellinger": math.sqrt(0.5 * float(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2))),
        "tvd": 0.5 * float(np.sum(np.abs(p - q))),
        "l_infinity": float(np.max(np.abs(p - q))),
        "chi2": math.sqrt(0.5 * float(np.sum((p - q) ** 2 / (p + q)))),
        "g_test": math.sqrt(0.5 * float(np.sum((p - q) ** 2 / (p + q)))),
    }


def normal_shift_effects(shift: float) -> dict[str, float]:
    """Population effect sizes between N(0, 1) (reference) and N(shift, 1), equal sizes."""
    norm = stats.norm

    def gap(x: float) -> float:
        return float(norm.cdf(x) - norm.cdf(x - shift))

    def pooled_pdf(x: float) -> float:
        return 0.5 * float(norm.pdf(x) + norm.pdf(x - shift))

    def pooled_h1h(x: float) -> float:  # H (1 - H), with sf for accuracy in the upper tail
        return 0.25 * float((norm.cdf(x) + norm.cdf(x - shift)) * (norm.sf(x) + norm.sf(x - shift)))

    quad = integrate.quad
    edges = norm.ppf(np.arange(1, 10) / 10)
    p = np.full(10, 0.1)
    q = np.diff(np.concatenate([[0.0], norm.cdf(edges - shift), [1.0]]))
    return {
        "ks": 2 * float(norm.cdf(shift / 2)) - 1,
        "cramer_von_mises": math.sqrt(quad(lambda x: gap(x) ** 2 * pooled_pdf(x), -12, 12)[0]),
        "anderson_darling": math.sqrt(
            quad(lambda x: gap(x) ** 2 / pooled_h1h(x) * pooled_pdf(x), -30, 30, limit=200)[0]
        ),
        "wasserstein": shift,
        "energy": math.sqrt(2 * quad(lambda x: gap(x) ** 2, -12, 12)[0]),
        **{k: v for k, v in binned_population(p, q).items() if k in BINNED},
    }


def numeric_effect(name: str, ref: np.ndarray, cur: np.ndarray) -> float:
    func = get_method(name, "numeric").func
    if name in ("wasserstein", "energy"):
        return float(func(ref, cur, n_permutations=0).effect_size)
    return float(func(ref, cur).effect_size)


POPULATION = normal_shift_effects(0.3)


@pytest.mark.parametrize("name", NUMERIC + BINNED)
def test_numeric_effects_estimate_the_population_value(name: str) -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    estimate = numeric_effect(name, rng.normal(size=n), rng.normal(0.3, size=n))
    assert estimate == pytest.approx(POPULATION[name], rel=0.05, abs=0.003)


@pytest.mark.parametrize("name", NUMERIC + BINNED)
def test_numeric_effects_do_not_grow_with_the_sample_size(name: str) -> None:
    rng = np.random.default_rng(2)
    for shift in (0.0, 0.3):
        small = np.mean(
            [
                numeric_effect(name, rng.normal(size=1_000), rng.normal(shift, size=1_000))
                for _ in range(5)
            ]
        )
        large = numeric_effect(name, rng.normal(size=100_000), rng.normal(shift, size=100_000))
        # Sampling noise only inflates a distance, so the small-sample mean is the larger.
        assert large <= small + 0.005, f"{name}, shift {shift}: {small:.4f} -> {large:.4f}"
    assert large == pytest.approx(POPULATION[name], rel=0.05, abs=0.003)


@pytest.mark.parametrize("name", ["ks", "cramer_von_mises", "anderson_darling", "wasserstein"])
def test_floors_of_the_ecdf_methods_are_a_twentieth_sigma_shift(name: str) -> None:
    floor = get_method(name, "numeric").effect_floor
    assert normal_shift_effects(0.05)[name] == pytest.approx(floor, rel=0.05)


P_CAT = np.array([0.4, 0.3, 0.2, 0.1])
Q_CAT = np.array([0.3, 0.3, 0.25, 0.15])


@pytest.mark.parametrize("name", available_methods("categorical"))  # type: ignore[arg-type]
@pytest.mark.parametrize(("n_ref", "n_cur"), [(1_000_000, 1_000_000), (2_000_000, 20_000)])
def test_categorical_effects_estimate_the_population_value(
    name: str, n_ref: int, n_cur: int
) -> None:
    rng = np.random.default_rng(3)
    func = get_method(name, "categorical").func
    # Mean of 20 draws: its standard error (< 0.001 at 20 000 rows) is well inside the
    # tolerance, while a bias that depends on the size ratio would not be.
    effect = np.mean(
        [
            func(rng.multinomial(n_ref, P_CAT), rng.multinomial(n_cur, Q_CAT)).effect_size
            for _ in range(20)
        ]
    )
    # Whatever the ratio of the sample sizes, the effect is a property of p and q.
    expected = binned_population(P_CAT, Q_CAT)[name]
    assert effect == pytest.approx(expected, rel=0.05, abs=0.003)


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_read_only_inputs_are_never_written(kind: str) -> None:
    rng = np.random.default_rng(4)
    if kind == "numeric":
        ref, cur = np.round(rng.normal(size=3_000), 2), rng.normal(0.2, size=2_000)
    else:
        ref, cur = rng.multinomial(3_000, P_CAT), rng.multinomial(2_000, Q_CAT)
    ref.flags.writeable = False  # an in-place write (sorting, smoothing...) would raise
    cur.flags.writeable = False
    ref_copy, cur_copy = ref.copy(), cur.copy()
    for name in available_methods(kind):  # type: ignore[arg-type]
        get_method(name, kind).func(ref, cur)  # type: ignore[arg-type]
        np.testing.assert_array_equal(ref, ref_copy)
        np.testing.assert_array_equal(cur, cur_copy)


def documented_floors() -> dict[tuple[str, str], float]:
    rows = re.findall(
        r"^\| `(\w+)` \| (numeric|categorical) \|.*\| ([0-9.]+) \|[^|]*\|$",
        DOCS.read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    return {(kind, name): float(floor) for name, kind, floor in rows}


def test_docs_list_every_method_with_its_floor() -> None:
    registered = {
        (kind, name): get_method(name, kind).effect_floor  # type: ignore[arg-type]
        for kind in ("numeric", "categorical")
        for name in available_methods(kind)  # type: ignore[arg-type]
    }
    assert documented_floors() == registered
