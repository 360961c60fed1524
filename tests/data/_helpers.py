"""Comparison helpers for profile tests."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from watchkeeper.data import NumericColumnProfile, Profile

MOMENTS = ("mean", "m2", "m3", "m4")


def assert_columns_match(a: Any, b: Any, *, rel: float = 1e-9, label: str = "") -> None:
    """Every field equal, moments within float tolerance (sketches are compared elsewhere)."""
    assert type(a) is type(b), label
    for f in dataclasses.fields(a):
        if f.name == "sketch":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "descriptors":  # a text column's per-document numeric profiles
            assert list(x) == list(y), (label, f.name)
            for key in x:
                assert_columns_match(x[key], y[key], rel=rel, label=f"{label}.{key}")
            continue
        if isinstance(a, NumericColumnProfile) and f.name in MOMENTS:
            if x is None or y is None:
                assert x is y, (label, f.name)
                continue
            # Moment sums can be ~0 with cancellation: scale the tolerance by the data spread.
            scale = max(
                abs(x),
                abs(y),
                (abs(a.mean or 0.0) + 1.0) ** int(f.name[-1] if f.name != "mean" else 1),
            )
            assert math.isclose(x, y, rel_tol=rel, abs_tol=rel * scale), (label, f.name, x, y)
        else:
            assert x == y, (label, f.name, x, y)


def assert_profiles_match(a: Profile, b: Profile, *, rel: float = 1e-9) -> None:
    assert a.n_rows == b.n_rows
    assert list(a.columns) == list(b.columns)
    for name in a.columns:
        assert_columns_match(a.columns[name], b.columns[name], rel=rel, label=name)
    if a.sample is None or b.sample is None:
        assert a.sample is None
        assert b.sample is None
    else:
        assert a.sample.equals(b.sample), (a.sample.to_pandas(), b.sample.to_pandas())
