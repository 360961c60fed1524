"""Artifacts are verified on every load; tampering and loss are reported, never used."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from watchkeeper.registry import (
    ArtifactIntegrityError,
    NewVersion,
    Registry,
    UnsafeFormatError,
)
from watchkeeper.registry._artifacts import ArtifactStore, sha256_hex


def constant(value: float) -> DummyRegressor:
    return DummyRegressor().fit(np.zeros((2, 1)), [value, value])


def artifact_path(registry: Registry, digest: str) -> Path:
    return Path(registry.artifacts.locate(digest))


def test_corrupted_artifact_is_detected_and_repairable(
    registry: Registry,
) -> None:
    v1 = registry.register("m", constant(1.0), actor="a")
    v2 = registry.register("m", constant(2.0), actor="a")
    path = artifact_path(registry, v1.artifact_sha256)
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))

    with pytest.raises(ArtifactIntegrityError, match=r"corrupted.*registered"):
        registry.load_model("m", 1)
    assert registry.load_model("m", 2).predict(np.zeros((1, 1)))[0] == 2.0  # others unaffected
    assert registry.get_version("m", 1) == v1  # the record is untouched

    # Putting the original bytes back (a restore from backup) repairs it.
    assert registry.artifacts.put(original) == v1.artifact_sha256
    assert path.read_bytes() == original
    assert registry.load_model("m", 1).predict(np.zeros((1, 1)))[0] == 1.0
    assert v2.artifact_sha256 != v1.artifact_sha256


def test_missing_artifact_is_reported(registry: Registry) -> None:
    v = registry.register("m", constant(1.0), actor="a")
    artifact_path(registry, v.artifact_sha256).unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        registry.load_model("m", 1)


def test_skops_types_beyond_those_trusted_at_registration_are_refused(
    registry: Registry,
) -> None:
    X = np.random.default_rng(0).normal(size=(100, 3))
    y = (X[:, 0] > 0).astype(int)
    pipe = make_pipeline(StandardScaler(), lgb.LGBMClassifier(n_estimators=3, verbose=-1))
    trusted = registry.register("p", pipe.fit(X, y), trusted=True, actor="a")
    # A record that points at the same bytes but never vouched for the LightGBM types, as a
    # tampered database row would.
    forged = NewVersion(
        **{
            f.name: getattr(trusted, f.name)
            for f in dataclasses.fields(NewVersion)
            if f.name != "flavor"
        },
        flavor={"trusted_types": []},
    )
    registry.store.add_version(forged)
    with pytest.raises(UnsafeFormatError, match=r"not known to be safe: .*lightgbm"):
        registry.load_model("p", 2)


def test_pickle_record_without_trust_is_not_loaded(registry: Registry) -> None:
    clf = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    trusted = registry.register("pk", clf, format="pickle", trusted=True, actor="a")
    fields = {f.name: getattr(trusted, f.name) for f in dataclasses.fields(NewVersion)}
    registry.store.add_version(NewVersion(**{**fields, "trusted": False}))
    with pytest.raises(UnsafeFormatError, match="not registered as trusted"):
        registry.load_model("pk", 2)


def test_artifact_store_rejects_non_hash_addresses(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    for bad in ("../../etc/passwd", "A" * 64, "0" * 63, ""):
        with pytest.raises(ArtifactIntegrityError, match="not a sha256"):
            store.get(bad)


def test_artifact_store_on_fsspec_memory() -> None:
    store = ArtifactStore("memory://wk-test-artifacts")
    digest = store.put(b"hello")
    assert digest == sha256_hex(b"hello")
    assert store.get(digest) == b"hello"
    assert store.locate(digest).startswith("memory://")
    store._fs.pipe_file(store._path(digest), b"jello")
    with pytest.raises(ArtifactIntegrityError, match="corrupted"):
        store.get(digest)
    assert store.put(b"hello") == digest  # repairs
    assert store.get(digest) == b"hello"
    store.delete(digest)
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        store.get(digest)


def test_registry_with_fsspec_artifacts(db_url: str) -> None:
    with Registry(db_url, artifacts="memory://wk-registry-artifacts") as registry:
        registry.register("m", constant(4.0), actor="a")
        assert registry.load_model("m", 1).predict(np.zeros((1, 1)))[0] == 4.0
