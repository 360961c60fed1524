"""Data-quality checks between a reference profile and a current profile."""

from __future__ import annotations

import numpy as np
import pandas as pd

from watchkeeper.checks import QualityConfig, Status, check_quality
from watchkeeper.data import Profile, Schema


def _run(ref: pd.DataFrame, cur: pd.DataFrame, **kw: float) -> dict[tuple[str, str], object]:
    schema = Schema.infer(ref)
    rp = Profile.from_data(ref, schema, sample_size=0)
    cp = Profile.from_data(cur, schema, reference=rp, sample_size=0)
    cols = [(s.name, str(s.kind)) for s in schema]
    found = check_quality(rp, cp, cols, QualityConfig(**kw))
    return {(q.check, q.subject): q for q in found}


def test_missing_share_rise_is_alerted_only_when_large_and_significant() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=5000)})
    big = ref.copy()
    big.loc[: len(big) // 2, "x"] = np.nan  # ~50 % missing
    q = _run(ref, big)[("quality.missing_share", "x")]
    assert q.status is Status.ALERT  # type: ignore[attr-defined]
    assert q.p_value < 1e-6  # type: ignore[attr-defined]
    # With 5 % missing in the reference, 3 missing of 20 current rows (15 %) is not significant
    # at alpha=0.01 (Fisher's exact test), so there is no finding beyond ok.
    ref5 = ref.copy()
    ref5.loc[: len(ref5) // 20 - 1, "x"] = np.nan
    small = ref.iloc[:20].copy()
    small.loc[:2, "x"] = np.nan
    q2 = _run(ref5, small).get(("quality.missing_share", "x"))
    assert q2 is not None
    assert q2.status is Status.OK  # type: ignore[attr-defined]
    assert q2.p_value > 0.01  # type: ignore[attr-defined]


def test_out_of_range_share_and_examples() -> None:
    ref = pd.DataFrame({"x": np.linspace(0, 1, 1000)})
    cur = pd.DataFrame({"x": np.r_[np.linspace(0, 1, 800), np.full(200, 5.0)]})
    q = _run(ref, cur)[("quality.out_of_range", "x")]
    assert q.status is Status.ALERT  # type: ignore[attr-defined]
    assert q.value == 0.2  # type: ignore[attr-defined]
    assert q.details["examples"] == [5.0]  # type: ignore[attr-defined]


def test_unseen_categories_with_examples() -> None:
    ref = pd.DataFrame({"c": ["a", "b"] * 500})
    cur = pd.DataFrame({"c": ["a", "b"] * 450 + ["zz"] * 60 + ["yy"] * 40})
    q = _run(ref, cur)[("quality.unseen_categories", "c")]
    assert q.status is Status.ALERT  # type: ignore[attr-defined]
    assert q.value == 0.1  # type: ignore[attr-defined]
    assert q.details["examples"] == {"zz": 60, "yy": 40}  # type: ignore[attr-defined]


def test_constant_column_in_current() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x": rng.normal(size=300)})
    cur = pd.DataFrame({"x": np.full(300, 2.0)})
    assert ("quality.constant", "x") in _run(ref, cur)


def test_clean_data_gives_no_warnings() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    cur = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000)})
    worst = [q for q in _run(ref, cur).values() if q.status is not Status.OK]  # type: ignore[attr-defined]
    assert worst == []
