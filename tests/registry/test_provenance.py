"""Reference profile, schema, data fingerprint, code version and actor of a version."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from watchkeeper.data import Profile, Schema
from watchkeeper.exceptions import InputError
from watchkeeper.registry import ArtifactIntegrityError, Registry
from watchkeeper.registry._provenance import code_version, data_fingerprint, default_actor


@pytest.fixture(scope="module")
def training() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x1": rng.normal(size=300), "x2": rng.exponential(size=300)})
    return frame, (frame["x1"] + frame["x2"] > 1).to_numpy().astype(int)


def test_reference_profile_and_schema_round_trip(
    registry: Registry, training: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, y = training
    clf = LogisticRegression().fit(frame, y)
    version = registry.register("m", clf, reference=frame, training_data=frame, actor="a")
    expected = Profile.from_data(frame)
    assert version.schema == expected.schema.to_dict()
    assert Schema.from_dict(registry.get_version("m", 1).schema or {}) == expected.schema
    profile = registry.load_profile("m", 1)
    assert profile.n_rows == 300
    for column in ("x1", "x2"):
        assert profile.columns[column] == expected.columns[column]
    assert version.data_fingerprint == data_fingerprint(frame)


def test_precomputed_profile_and_declared_schema(
    registry: Registry, training: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, y = training
    clf = LogisticRegression().fit(frame, y)
    schema = Schema.infer(frame)
    profile = Profile.from_data(frame, schema, sample_size=10)
    version = registry.register("m", clf, reference=profile, actor="a")
    assert version.schema == schema.to_dict()
    assert registry.load_profile("m", 1).sample.num_rows == 10
    only_schema = registry.register("m", clf, schema=schema, actor="a")
    assert only_schema.schema == schema.to_dict()
    assert only_schema.profile_sha256 is None
    assert registry.load_profile("m", 2) is None


def test_corrupted_profile_is_detected(
    registry: Registry, training: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, y = training
    version = registry.register("m", LogisticRegression().fit(frame, y), reference=frame, actor="a")
    assert version.profile_sha256 is not None
    path = Path(registry.artifacts.locate(version.profile_sha256))
    path.write_bytes(path.read_bytes().replace(b"x1", b"x9", 1))
    with pytest.raises(ArtifactIntegrityError, match="reference profile"):
        registry.load_profile("m", 1)
    registry.load_model("m", 1)  # the model itself is fine


def test_fingerprint_identifies_content() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]})
    same = data_fingerprint(frame)
    assert same == data_fingerprint(frame.copy())
    assert same == data_fingerprint(pa.Table.from_pandas(frame, preserve_index=False))
    assert same == data_fingerprint(frame.set_index(pd.Index([7, 8, 9])))  # index ignored
    assert same != data_fingerprint(frame.assign(a=[1.0, 2.0, 3.5]))
    assert same != data_fingerprint(frame.rename(columns={"a": "c"}))
    assert same != data_fingerprint(frame.iloc[::-1])
    array = np.arange(6.0).reshape(2, 3)
    assert data_fingerprint(array) != data_fingerprint(array.reshape(3, 2))
    assert data_fingerprint(array) != data_fingerprint(array.astype(np.float32))


def test_fingerprint_of_a_file_is_its_sha256(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("a,b\n1,2\n")
    assert data_fingerprint(path) == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(InputError, match="does not exist"):
        data_fingerprint(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="cannot fingerprint"):
        data_fingerprint(42)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_code_version_is_the_git_commit(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    assert code_version(tmp_path) is None
    git("init", "-q")
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    head = git("rev-parse", "HEAD")
    assert code_version(tmp_path) == head
    (tmp_path / "train.py").write_text("print(2)\n")
    assert code_version(tmp_path) == head + "+dirty"


def test_default_actor_uses_user_and_host(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv("LOGNAME", "ana")
    monkeypatch.setenv("USER", "ana")
    assert default_actor() == f"ana@{socket.gethostname()}"


def test_registry_fills_actor_and_code_version(
    registry: Registry, training: tuple[pd.DataFrame, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "bob")
    frame, y = training
    version = registry.register("m", LogisticRegression().fit(frame, y))
    assert version.actor.startswith("bob@")
    assert version.code_version == code_version()
    event = registry.set_alias("m", "champion", 1)
    assert event is not None
    assert event.actor == version.actor
