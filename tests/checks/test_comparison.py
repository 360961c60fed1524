"""The comparison engine in ``checks``: profiles as first-class inputs, named steps, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from watchkeeper import InputError, Profile, compare
from watchkeeper.checks import ComparisonConfig, run_comparison


def _frames(seed: int = 0, n: int = 3000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "city": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "active": rng.random(n) < 0.3,
        }
    )
    cur = pd.DataFrame(
        {
            "age": rng.normal(41, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "city": rng.choice(["a", "b", "c", "d"], n, p=[0.35, 0.3, 0.2, 0.15]),
            "active": rng.random(n) < 0.3,
        }
    )
    cur.loc[:4, "income"] = np.nan
    return ref, cur


def _verdicts(report: object) -> list[tuple[object, ...]]:
    return [
        (c.name, c.method, c.statistic, c.p_value, c.adjusted_p_value, c.status, c.n_current)
        for c in report.columns  # type: ignore[attr-defined]
    ]


def test_compare_profile_with_merged_profiles_equals_compare_with_the_data() -> None:
    ref, cur = _frames()
    reference = Profile.from_data(ref)
    shuffled = cur.sample(frac=1.0, random_state=1)
    parts = [shuffled.iloc[:700], shuffled.iloc[700:1900], shuffled.iloc[1900:]]
    merged = Profile.from_data(parts[0], reference.schema, reference=reference)
    for part in parts[1:]:
        merged = merged.merge(Profile.from_data(part, reference.schema, reference=reference))
    from_profiles = compare(reference, merged)
    from_data = compare(reference, cur)
    assert _verdicts(from_profiles) == _verdicts(from_data)
    assert [m.p_value for m in from_profiles.multivariate] == pytest.approx(
        [m.p_value for m in from_data.multivariate]
    )
    assert [(q.check, q.subject, q.status, q.value) for q in from_profiles.quality] == [
        (q.check, q.subject, q.status, q.value) for q in from_data.quality
    ]
    assert from_profiles.meta["current"] == "profile"
    assert from_data.meta["current"] == "data"
    # the engine itself gives the same numbers as the one-call convenience
    engine = run_comparison(reference, merged)
    assert _verdicts(engine) == _verdicts(from_profiles)


def test_current_profile_without_sample_uses_counts_and_says_why_exact_tests_cannot_run() -> None:
    ref, cur = _frames()
    reference = Profile.from_data(ref)
    current = Profile.from_data(cur, reference=reference, sample_size=0)
    report = compare(reference, current, multivariate="none")
    assert report.column("city").status.value in {"ok", "warn", "alert"}
    age = report.column("age")
    assert age.status.value == "insufficient_data"
    assert "sample" in age.reason
    binned = compare(reference, current, methods={"numeric": "psi"}, multivariate=None)
    assert binned.column("age").status.value != "insufficient_data"


def test_profile_of_another_reference_is_rebased_or_explained() -> None:
    ref, cur = _frames()
    reference = Profile.from_data(ref)
    alone = Profile.from_data(cur)  # its own bins and categories
    with pytest.raises(InputError, match=r"rebased\(reference\)"):
        compare(reference, alone)
    with pytest.raises(InputError, match="rebased"):
        alone.merge(Profile.from_data(cur, reference=reference))
    fixed = compare(reference, alone.rebased(reference), multivariate=None)
    assert _verdicts(fixed) == _verdicts(compare(reference, cur, multivariate=None))
    small = Profile.from_data(cur, sample_size=100)
    with pytest.raises(InputError, match="profile the data again"):
        small.rebased(reference)


def test_no_shared_column_names_expected_and_found() -> None:
    ref = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]})
    bad = pd.DataFrame({"c": [1.0, 2.0], "d": [3.0, 4.0]})
    with pytest.raises(InputError, match=r"expected a, b; found c, d"):
        compare(ref, bad)


def test_cli_no_shared_column_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "ref.csv").write_text("a,b\n1,2\n3,4\n")
    (tmp_path / "bad.csv").write_text("c,d\n1,2\n3,4\n")
    run = subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli", "compare", "ref.csv", "bad.csv"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "expected a, b; found c, d" in lines[0]


@pytest.mark.parametrize("word", ["none", "None", "NONE", None])
def test_multivariate_none_is_one_vocabulary(word: str | None) -> None:
    ref, cur = _frames(n=500)
    report = compare(ref, cur, multivariate=word)
    assert report.multivariate == ()
    assert report.meta["multivariate_methods"] == []


def test_config_is_immutable_and_results_do_not_depend_on_threads() -> None:
    ref, cur = _frames()
    one = run_comparison(ref, cur, ComparisonConfig(n_jobs=1))
    four = run_comparison(ref, cur, ComparisonConfig(n_jobs=4))
    assert _verdicts(one) == _verdicts(four)
    cfg = ComparisonConfig()
    with pytest.raises(AttributeError):
        cfg.n_jobs = 3  # type: ignore[misc]
