"""Route logic: shares match weights, assignment is sticky and stable under ramps, shadow
fractions hold, and bad routes are refused with a clear message."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.exceptions import InputError
from watchkeeper.gateway import Arm, Route, choose
from watchkeeper.gateway._routing import unit_hash

N_KEYS = 20_000


def _within(observed: int, n: int, p: float, z: float = 5.0) -> bool:
    """Binomial count within z standard deviations of n*p (false alarm ~ 6e-7 at z=5)."""
    return abs(observed - n * p) <= z * math.sqrt(n * p * (1 - p))


def test_split_shares_follow_the_weights() -> None:
    route = Route.split({"a": 1, "b": 3, "c": 0.5})
    counts = {"a": 0, "b": 0, "c": 0}
    for i in range(N_KEYS):
        counts[choose(route, "churn", f"user-{i}").alias] += 1
    for alias, share in route.shares().items():
        assert _within(counts[alias], N_KEYS, share), (alias, counts)


def test_random_draws_without_a_key_follow_the_weights() -> None:
    route = Route.canary(20)
    rng = random.Random(7)
    hits = sum(choose(route, "m", None, rng).alias == "challenger" for _ in range(N_KEYS))
    assert _within(hits, N_KEYS, 0.2)


def test_assignment_is_sticky_and_survives_serialisation() -> None:
    route = Route.split({"a": 1, "b": 1})
    rebuilt = Route.from_dict(route.to_dict())
    for i in range(500):
        key = f"user-{i}"
        first = choose(route, "churn", key).alias
        assert {choose(route, "churn", key).alias for _ in range(3)} == {first}
        assert choose(rebuilt, "churn", key).alias == first


def test_raising_a_canary_only_moves_users_to_the_challenger() -> None:
    keys = [f"u{i}" for i in range(N_KEYS)]
    at = {
        p: {k for k in keys if choose(Route.canary(p), "m", k).alias == "challenger"}
        for p in (5, 10, 50)
    }
    assert at[5] <= at[10] <= at[50]
    for p, users in at.items():
        assert _within(len(users), N_KEYS, p / 100), p


def test_arms_are_independent_across_models() -> None:
    route = Route.split({"a": 1, "b": 1})
    both = sum(
        choose(route, "m1", f"u{i}").alias == "b" and choose(route, "m2", f"u{i}").alias == "b"
        for i in range(N_KEYS)
    )
    assert _within(both, N_KEYS, 0.25)


def test_zero_weight_arm_never_answers() -> None:
    route = Route.split({"a": 0, "b": 1, "c": 0})
    rng = random.Random(1)
    assert {choose(route, "m", f"k{i}").alias for i in range(2_000)} == {"b"}
    assert {choose(route, "m", None, rng).alias for _ in range(2_000)} == {"b"}


def test_shadow_fraction_and_the_answering_arm() -> None:
    route = Route.shadow_of("champion", "challenger", fraction=0.25)
    decisions = [choose(route, "m", f"k{i}") for i in range(N_KEYS)]
    assert {d.alias for d in decisions} == {"champion"}
    shadowed = sum(d.shadow == "challenger" for d in decisions)
    assert _within(shadowed, N_KEYS, 0.25)
    assert all(d.shadow is None for d in (choose(Route.shadow_of(fraction=0.0), "m", "k"),))
    full = Route.shadow_of(fraction=1.0)
    assert all(choose(full, "m", f"k{i}").shadow == "challenger" for i in range(200))


def test_unit_hash_is_uniform() -> None:
    values = sorted(unit_hash("m", f"k{i}") for i in range(N_KEYS))
    # Kolmogorov-Smirnov distance to U(0, 1); the 0.1% critical value is 1.95 / sqrt(n).
    d = max(max((i + 1) / N_KEYS - v, v - i / N_KEYS) for i, v in enumerate(values))
    assert d < 1.95 / math.sqrt(N_KEYS)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"mode": "blue-green"}, "unknown route mode"),
        ({"mode": "split", "weights": {"a": 1}}, "at least two arms"),
        ({"mode": "split", "weights": {"a": 0, "b": 0}}, "must not all be zero"),
        ({"mode": "split", "weights": {"a": -1, "b": 2}}, "must be >= 0"),
        ({"mode": "split", "weights": {"a": "x", "b": 2}}, "expected a number"),
        ({"mode": "canary", "percent": 120}, "in [0, 100]"),
        ({"mode": "canary"}, "a canary route needs 'percent'"),
        ({"mode": "canary", "percent": "10"}, "expected a number"),
        ({"mode": "shadow", "shadow": "champion"}, "cannot shadow itself"),
        ({"mode": "shadow", "fraction": 2}, "shadow_fraction must be in [0, 1]"),
        ({"mode": "single", "alias": "../x"}, "invalid alias"),
        ({"mode": "single", "alias": "latest"}, "'latest' is reserved"),
        ({"mode": "single", "sticky_header": "x user"}, "not a valid header name"),
        ({"mode": "split", "arms": [{"alias": "a"}, {"alias": "a"}]}, "same alias twice"),
        ([1, 2], "must be a JSON object"),
        ("{oops", "must be a JSON object"),
    ],
)
def test_invalid_routes_are_refused(payload: object, message: str) -> None:
    with pytest.raises(InputError) as info:
        Route.from_dict(payload)
    assert message in str(info.value)


def test_shorthand_and_full_forms_agree() -> None:
    assert Route.from_dict({"mode": "single"}) == Route.single("champion")
    assert Route.from_dict({"mode": "split", "weights": {"a": 1, "b": 2}}) == Route(
        "split", (Arm("a", 1.0), Arm("b", 2.0))
    )
    shadow = Route.from_dict({"mode": "shadow", "alias": "v", "shadow": "w", "fraction": 0.5})
    assert shadow == Route.shadow_of("v", "w", fraction=0.5)
    assert Route.from_dict(shadow.to_dict()) == shadow
    assert Route.canary(10, sticky_header="X-Session").sticky_header == "x-session"


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(
        st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=2, max_size=6
    ).filter(lambda w: sum(w) > 0),
    keys=st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=20),
)
def test_choice_is_always_an_arm_that_takes_traffic(weights: list[float], keys: list[str]) -> None:
    route = Route.split({f"a{i}": w for i, w in enumerate(weights)})
    assert math.isclose(sum(route.shares().values()), 1.0)
    taking = {arm.alias for arm in route.arms if arm.weight > 0}
    for key in keys:
        assert choose(route, "m", key).alias in taking
