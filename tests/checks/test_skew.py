"""Training–serving skew: each planted transformation is named; ordinary drift is not skew."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from watchkeeper.checks import Status, check_skew, detect_skew
from watchkeeper.data import Profile

N_REF, N_CUR = 3_000, 600


def _reference(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "weight": rng.gamma(4.0, 20.0, N_REF),
            "temp": rng.normal(15.0, 6.0, N_REF),
            "income": np.where(rng.random(N_REF) < 0.15, np.nan, rng.lognormal(10, 0.5, N_REF)),
            "colour": rng.choice(["red", "green", "blue"], N_REF, p=[0.6, 0.3, 0.1]),
        }
    )


def _current(seed: int, n: int = N_CUR) -> pd.DataFrame:
    return _reference(seed + 100).iloc[:n].reset_index(drop=True)


def _finding(column: str, ref: pd.DataFrame, cur: pd.DataFrame) -> Any:
    r = Profile.from_data(ref)
    c = Profile.from_data(cur, r.schema, reference=r)
    if r.schema[column].kind.value != "numeric":
        return detect_skew(column, r.columns[column], c.columns[column])
    return detect_skew(
        column,
        r.columns[column],
        c.columns[column],
        reference_values=r.sample_values(column),
        current_values=c.sample_values(column),
    )


def _with(cur: pd.DataFrame, column: str, fn: Callable[[pd.Series], Any]) -> pd.DataFrame:
    out = cur.copy()
    out[column] = fn(out[column])
    return out


SEEDS = [0, 1, 2]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("factor", "word"), [(1000.0, "x1000"), (0.001, "x1000"), (100.0, "x100"), (2.54, "x2.54")]
)
def test_unit_change(seed: int, factor: float, word: str) -> None:
    ref = _reference(seed)
    f = _finding("weight", ref, _with(_current(seed), "weight", lambda s: s * factor))
    assert f.kind == "scale"
    assert word in f.transformation
    assert f.value == pytest.approx(factor, rel=0.05)
    assert f.evidence["mean_ratio"] == pytest.approx(f.evidence["std_ratio"], rel=0.15)


@pytest.mark.parametrize("seed", SEEDS)
def test_celsius_to_kelvin_offset(seed: int) -> None:
    f = _finding("temp", _reference(seed), _with(_current(seed), "temp", lambda s: s + 273.15))
    assert f.kind == "offset"
    assert "Kelvin" in f.transformation
    assert f.value == pytest.approx(273.15, abs=2.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_celsius_to_fahrenheit(seed: int) -> None:
    f = _finding("temp", _reference(seed), _with(_current(seed), "temp", lambda s: s * 1.8 + 32))
    assert f.kind == "affine"
    assert "Fahrenheit" in f.transformation


@pytest.mark.parametrize("seed", SEEDS)
def test_constant_default_value_filled(seed: int) -> None:
    def fill(s: pd.Series) -> pd.Series:
        out = s.copy()
        out.iloc[: int(0.8 * len(s))] = 0.0
        return out

    f = _finding("weight", _reference(seed), _with(_current(seed), "weight", fill))
    assert f.kind == "constant_fill"
    assert f.value == pytest.approx(0.8, abs=0.05)


@pytest.mark.parametrize("seed", SEEDS)
def test_missing_values_served_as_a_sentinel(seed: int) -> None:
    f = _finding(
        "income", _reference(seed), _with(_current(seed), "income", lambda s: s.fillna(-1))
    )
    assert f.kind == "missing_encoding"
    assert f.value == -1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_sentinel_served_as_missing(seed: int) -> None:
    ref = _with(_reference(seed), "income", lambda s: s.fillna(-1))
    cur = _with(_current(seed), "income", lambda s: s.where(s.notna(), np.nan))
    f = _finding("income", ref, cur)
    assert f.kind == "missing_encoding"
    assert f.value == -1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_categorical_missing_served_as_token(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = _reference(seed)
    ref.loc[rng.random(N_REF) < 0.2, "colour"] = None
    cur = _current(seed)
    cur.loc[rng.random(N_CUR) < 0.2, "colour"] = "N/A"
    f = _finding("colour", ref, cur)
    assert f.kind == "missing_encoding"
    assert "N/A" in f.transformation


@pytest.mark.parametrize("seed", SEEDS)
def test_swapped_categories(seed: int) -> None:
    swap = {"red": "green", "green": "red", "blue": "blue"}
    f = _finding("colour", _reference(seed), _with(_current(seed), "colour", lambda s: s.map(swap)))
    assert f.kind == "category_swap"
    assert "'red'" in f.transformation
    assert "'green'" in f.transformation


@pytest.mark.parametrize("seed", SEEDS)
def test_recoded_categories(seed: int) -> None:
    upper = _finding(
        "colour", _reference(seed), _with(_current(seed), "colour", lambda s: s.str.upper())
    )
    assert upper.kind == "category_recode"
    assert upper.evidence["mapping"]["RED"] == "red"
    codes = {"red": "R1", "green": "G2", "blue": "B3"}
    renamed = _finding(
        "colour", _reference(seed), _with(_current(seed), "colour", lambda s: s.map(codes))
    )
    assert renamed.kind == "category_recode"
    assert renamed.evidence["mapping"] == {"R1": "red", "G2": "green", "B3": "blue"}


@pytest.mark.parametrize("seed", SEEDS)
def test_ordinary_drift_and_no_change_are_not_skew(seed: int) -> None:
    ref, cur = _reference(seed), _current(seed)
    for column in ("weight", "temp", "income", "colour"):
        assert not _finding(column, ref, cur).is_skew, column
    rng = np.random.default_rng(seed)
    drifted = cur.copy()
    drifted["weight"] = rng.gamma(6.0, 15.0, N_CUR)  # other shape, mean x1.1
    drifted["temp"] = drifted["temp"] + 3.0  # half a standard deviation warmer
    drifted["colour"] = rng.choice(["red", "green", "blue"], N_CUR, p=[0.45, 0.35, 0.2])
    for column in ("weight", "temp", "colour"):
        f = _finding(column, ref, drifted)
        assert f.kind == "drift", (column, f)


def test_skew_checks_results() -> None:
    ref = Profile.from_data(_reference(0))
    cur_df = _with(_current(0), "weight", lambda s: s * 1000)
    cur = Profile.from_data(cur_df, ref.schema, reference=ref)
    results = {r.subject: r for r in check_skew(ref, cur)}
    assert results["weight"].status is Status.ALERT
    assert results["weight"].check == "skew.training_serving"
    assert "training-serving skew" in results["weight"].reason
    assert results["temp"].status is Status.OK
    for r in results.values():
        json.dumps(r.to_dict(), allow_nan=False)
    small = Profile.from_data(_current(0, n=50), ref.schema, reference=ref)
    assert {r.status for r in check_skew(ref, small)} == {Status.INSUFFICIENT_DATA}


def test_feature_not_computed_online() -> None:
    f = _finding("weight", _reference(0), _with(_current(0), "weight", lambda s: s * np.nan))
    assert f.kind == "constant_fill"
    assert "not to be computed" in f.transformation


def test_categorical_default_filled() -> None:
    def fill(s: pd.Series) -> pd.Series:
        out = s.copy()
        out.iloc[: int(0.8 * len(s))] = "blue"
        return out

    f = _finding("colour", _reference(0), _with(_current(0), "colour", fill))
    assert f.kind == "constant_fill"
    assert "'blue'" in f.transformation
