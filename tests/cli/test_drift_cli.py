"""The command line as users run it: a real subprocess, exit codes, files written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from watchkeeper.data import Profile
from watchkeeper.data.profile import PROFILE_MAGIC


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(5)
    n = 2000
    ref = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.choice(["x", "y"], n), "c": rng.normal(size=n)}
    )
    same = pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.choice(["x", "y"], n), "c": rng.normal(size=n)}
    )
    drift = same.assign(a=same["a"] + 1.0)
    paths = {"ref": d / "ref.csv", "same": d / "same.parquet", "drift": d / "drift.csv", "dir": d}
    ref.to_csv(paths["ref"], index=False)
    same.to_parquet(paths["same"], index=False)
    drift.to_csv(paths["drift"], index=False)
    return paths


def test_compare_clean_exits_0_and_writes_reports(files: dict[str, Path]) -> None:
    out = files["dir"]
    r = run("compare", str(files["ref"]), str(files["same"]), "--json", "same.json",
            "--html", "same.html", "--fail-on", "any", cwd=out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "same.json").read_text())
    assert doc["dataset"]["drifted"] is False
    assert (out / "same.html").read_text().startswith("<!DOCTYPE html>")
    assert "No drift" in r.stdout


def test_compare_with_findings_exits_1_only_with_fail_on(files: dict[str, Path]) -> None:
    r = run(
        "compare", str(files["ref"]), str(files["drift"]), "--fail-on", "drift", cwd=files["dir"]
    )
    assert r.returncode == 1, r.stderr
    assert "Drift detected" in r.stdout
    r = run("compare", str(files["ref"]), str(files["drift"]), cwd=files["dir"])
    assert r.returncode == 0


def test_profile_then_compare_against_it(files: dict[str, Path]) -> None:
    d = files["dir"]
    r = run("profile", str(files["ref"]), "--out", "ref-profile.wkp", cwd=d)
    assert r.returncode == 0, r.stderr
    r = run("compare", "ref-profile.wkp", str(files["drift"]), "--json", "p.json",
            "--method", "numeric=wasserstein", "--multivariate", "none", cwd=d)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads((d / "p.json").read_text())
    a = next(c for c in doc["columns"] if c["name"] == "a")
    assert a["method"] == "wasserstein"
    assert a["drifted"] is True
    assert doc["meta"]["reference"] == "profile"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("compare", "missing.csv", "missing2.csv"), "missing.csv"),
        (("compare", "REF", "REF", "--method", "numeric=nope"), "unknown drift method"),
        (("compare", "REF", "REF", "--rule", "magic"), "unknown rule"),
    ],
)
def test_input_errors_exit_2_with_one_line(
    files: dict[str, Path], args: tuple[str, ...], message: str
) -> None:
    args = tuple(str(files["ref"]) if a == "REF" else a for a in args)
    r = run(*args, cwd=files["dir"])
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_usage_error_exits_2(files: dict[str, Path]) -> None:
    r = run("compare", cwd=files["dir"])
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_profile_and_compare_stream_parquet(files: dict[str, Path]) -> None:
    d = files["dir"]
    r = run("profile", str(files["same"]), "--out", "same-profile.wkp", "--batch-rows", "300",
            cwd=d)  # fmt: skip
    assert r.returncode == 0, r.stderr
    saved = Profile.load(d / "same-profile.wkp")  # binary: the name does not end in .json
    assert (d / "same-profile.wkp").read_bytes().startswith(PROFILE_MAGIC)
    assert saved.n_rows == 2000
    assert saved.meta["with_reference"] is False
    r = run("compare", "same-profile.wkp", str(files["same"]), "--stream", "--batch-rows", "700",
            "--json", "streamed.json", cwd=d)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads((d / "streamed.json").read_text())
    assert doc["meta"]["current"] == "profile"
    assert doc["dataset"]["drifted"] is False


def test_profile_with_an_unknown_engine_says_what_to_install(files: dict[str, Path]) -> None:
    r = run("profile", str(files["same"]), "--out", "x.json", "--engine", "dask",
            cwd=files["dir"])  # fmt: skip
    assert r.returncode == 2
    assert "unknown engine 'dask'" in r.stderr
    assert "watchkeeper[spark]" in r.stderr
    assert "Traceback" not in r.stderr
