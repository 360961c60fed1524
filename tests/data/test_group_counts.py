"""Per-group counts in profiles: exact, mergeable, serializable, with a `missing` group."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from watchkeeper.data import GroupCounts, Profile, Schema
from watchkeeper.data._group_counts import MISSING_GROUP
from watchkeeper.exceptions import InputError


def _frame(n: int, seed: int, *, regression: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["1", "2"], n)
    race = rng.choice(["1", "2", "6", "9"], n, p=[0.7, 0.15, 0.1, 0.05]).astype(object)
    race[rng.random(n) < 0.02] = None
    if regression:
        y = rng.normal(size=n)
        pred = y + rng.normal(scale=0.5, size=n)
    else:
        y = rng.integers(0, 2, n)
        pred = np.where(rng.random(n) < 0.8, y, 1 - y)
    return pd.DataFrame({"x": rng.normal(size=n), "SEX": sex, "RAC1P": race, "y": y, "p": pred})


def _schema(df: pd.DataFrame) -> Schema:
    roles = {"SEX": "sensitive", "RAC1P": "sensitive", "y": "target", "p": "prediction"}
    return Schema.infer(df, roles=roles)


def _brute_force(df: pd.DataFrame, attrs: list[str]) -> dict[tuple[str, ...], dict[str, int]]:
    out: dict[tuple[str, ...], dict[str, int]] = {}
    keys = df[attrs].astype(object).where(df[attrs].notna(), MISSING_GROUP).astype(str)
    for key, part in df.groupby([keys[a] for a in attrs]):
        y, p = part["y"].to_numpy(), part["p"].to_numpy()
        out[tuple(key)] = {
            "tp": int(((y == 1) & (p == 1)).sum()),
            "fp": int(((y == 0) & (p == 1)).sum()),
            "fn": int(((y == 1) & (p == 0)).sum()),
            "tn": int(((y == 0) & (p == 0)).sum()),
        }
    return out


def test_profile_keeps_counts_by_intersection_and_rolls_up_exactly() -> None:
    df = _frame(3000, 0)
    gc = Profile.from_data(df, _schema(df), sample_size=0).group_counts
    assert gc is not None
    assert gc.attributes == ("SEX", "RAC1P")
    assert gc.task == "classification"
    assert gc.positive_label == "1"
    for attrs in (["SEX", "RAC1P"], ["SEX"], ["RAC1P"]):
        expected = _brute_force(df, attrs)
        rolled = gc.rollup(attrs)
        assert set(rolled.keys) == set(expected)
        for key, counts in expected.items():
            cell = rolled.cell(key)
            assert {k: cell[k] for k in counts} == counts
    assert (MISSING_GROUP,) in gc.rollup(["RAC1P"]).keys
    assert gc.n_rows == len(df)


@pytest.mark.parametrize("regression", [False, True])
def test_merged_profiles_count_what_the_concatenation_counts(regression: bool) -> None:
    df = _frame(2000, 1, regression=regression)
    schema = _schema(df)
    ref = Profile.from_data(df[:500], schema, sample_size=0)
    whole = Profile.from_data(df, schema, reference=ref, sample_size=0).group_counts
    parts = [
        Profile.from_data(df[a:b], schema, reference=ref, sample_size=0)
        for a, b in ((0, 700), (700, 701), (701, 2000))
    ]
    merged = parts[0].merge(parts[1]).merge(parts[2]).group_counts
    other_order = parts[2].merge(parts[0].merge(parts[1])).group_counts
    assert whole is not None
    assert merged is not None
    assert other_order is not None
    assert merged.keys == whole.keys == other_order.keys
    np.testing.assert_allclose(merged.counts, whole.counts, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(other_order.counts, whole.counts, rtol=1e-12, atol=1e-9)
    if not regression:
        assert merged == whole  # integer counts are exact


def test_json_round_trip_of_the_profile_keeps_the_counts() -> None:
    df = _frame(500, 2, regression=True)
    p = Profile.from_data(df, _schema(df), sample_size=0)
    q = Profile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q.group_counts == p.group_counts
    assert q.group_counts is not None
    assert q.group_counts.task == "regression"


def test_regression_sums() -> None:
    gc = GroupCounts.from_arrays(
        {"g": ["a", "a", "b", "b"]}, [1.0, 2.0, None, 4.0], [2.0, 1.0, 3.0, None]
    )
    a, b = gc.cell(("a",)), gc.cell(("b",))
    assert a == {
        "n_labelled": 2.0,
        "sum_error": 0.0,
        "sum_abs_error": 2.0,
        "sum_sq_error": 2.0,
        "n_predicted": 2.0,
        "sum_prediction": 3.0,
        "sum_sq_prediction": 5.0,
        "no_prediction": 0.0,
    }
    assert (b["n_labelled"], b["n_predicted"], b["sum_prediction"], b["no_prediction"]) == (
        0.0,
        1.0,
        3.0,
        1.0,
    )


def test_unlabelled_rows_still_count_for_selection() -> None:
    gc = GroupCounts.from_arrays({"g": ["a", "a", "a"]}, None, [1, 0, 1], task="classification",
                                 positive_label=1)  # fmt: skip
    cell = gc.cell(("a",))
    assert cell["predicted_positive_unlabelled"] == 2
    assert cell["predicted_negative_unlabelled"] == 1
    assert cell["tp"] == 0


def test_profiles_without_sensitive_roles_keep_no_counts() -> None:
    df = _frame(100, 3)
    assert Profile.from_data(df, sample_size=0).group_counts is None
    assert "group_counts" not in Profile.from_data(df, sample_size=0).to_dict()


def test_multiclass_targets_keep_no_counts_in_profiles() -> None:
    df = pd.DataFrame({"g": ["a", "b", "c"], "y": ["u", "v", "w"], "p": ["u", "u", "w"]})
    schema = Schema.infer(df, roles={"g": "sensitive", "y": "target", "p": "prediction"})
    assert Profile.from_data(df, schema).group_counts is None
    with pytest.raises(InputError, match="positive_label"):
        GroupCounts.from_arrays({"g": df["g"]}, df["y"], df["p"])
    gc = GroupCounts.from_arrays({"g": df["g"]}, df["y"], df["p"], positive_label="u")
    assert gc.cell(("b",))["fp"] == 1


def test_merging_mismatched_counts_is_refused() -> None:
    a = GroupCounts.from_arrays({"g": ["x"]}, [1], [1])
    b = GroupCounts.from_arrays({"h": ["x"]}, [1], [1])
    with pytest.raises(InputError, match="same schema"):
        a.merge(b)
    df = _frame(50, 4)
    with_counts = Profile.from_data(df, _schema(df), sample_size=0)
    without = Profile.from_data(df, Schema.infer(df), sample_size=0)
    with pytest.raises(InputError):
        with_counts.merge(without)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="align"):
        GroupCounts.from_arrays({"g": ["a", "b"]}, [1, 0, 1], [1, 0, 1])
    with pytest.raises(InputError, match="mapping"):
        GroupCounts.from_arrays({}, [1], [1])
    many = [str(i) for i in range(1500)]
    with pytest.raises(InputError, match="distinct values"):
        GroupCounts.from_arrays({"id": many}, [1] * 1500, [0] * 1500)
    with pytest.raises(InputError, match="damaged"):
        GroupCounts.from_dict({"task": "classification"})
