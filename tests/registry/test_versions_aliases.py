"""Versions, aliases, audit trail and deletion, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyRegressor

from watchkeeper.exceptions import InputError
from watchkeeper.registry import (
    AliasInUseError,
    InvalidNameError,
    ModelNotFoundError,
    ModelVersion,
    Registry,
    RollbackError,
    VersionNotFoundError,
)


def constant(value: float) -> DummyRegressor:
    return DummyRegressor().fit(np.zeros((2, 1)), [value, value])


def add(registry: Registry, name: str, value: float, **kwargs: object) -> ModelVersion:
    return registry.register(name, constant(value), actor="tester@host", **kwargs)  # type: ignore[arg-type]


def predicted(registry: Registry, name: str, ref: int | str) -> float:
    return float(registry.load_model(name, ref).predict(np.zeros((1, 1)))[0])


def test_versions_increment_per_model_and_keep_metadata(registry: Registry) -> None:
    first = add(
        registry,
        "churn",
        1.0,
        metrics={"auc": 0.91},
        params={"C": 1.0, "penalty": "l2", "n": np.int64(3)},
        tags={"team": "risk"},
        description="baseline",
        code_version="abc123",
    )
    second = add(registry, "churn", 2.0)
    other = add(registry, "fraud", 3.0)
    assert (first.version, second.version, other.version) == (1, 2, 1)

    stored = registry.get_version("churn", 1)
    assert stored.metrics == {"auc": 0.91}
    assert stored.params == {"C": 1.0, "penalty": "l2", "n": 3}
    assert stored.tags == {"team": "risk"}
    assert stored.description == "baseline"
    assert stored.code_version == "abc123"
    assert stored.actor == "tester@host"
    assert stored.format == "skops"
    assert stored.output_kind == "regression"
    assert stored.created_at.tzinfo is not None
    assert stored.created_at.microsecond == first.created_at.microsecond
    assert stored == first
    assert [v.version for v in registry.list_versions("churn")] == [1, 2]
    assert registry.get_version("churn").version == 2  # "latest" by default
    assert predicted(registry, "churn", 1) == 1.0
    assert predicted(registry, "churn", "latest") == 2.0


def test_list_models_summarises(registry: Registry) -> None:
    add(registry, "b", 1.0)
    add(registry, "a", 1.0)
    add(registry, "a", 2.0)
    registry.set_alias("a", "champion", 1, actor="x")
    summaries = {m.name: m for m in registry.list_models()}
    assert list(summaries) == ["a", "b"]
    assert summaries["a"].n_versions == 2
    assert summaries["a"].latest_version == 2
    assert dict(summaries["a"].aliases) == {"champion": 1}
    assert summaries["b"].aliases == {}


def test_unknown_model_and_missing_version_have_clear_errors(registry: Registry) -> None:
    with pytest.raises(ModelNotFoundError, match="registry is empty"):
        registry.get_version("nope", 1)
    add(registry, "churn", 1.0)
    with pytest.raises(ModelNotFoundError, match=r"no model named 'chrun'.*known models: churn"):
        registry.load_model("chrun", 1)
    with pytest.raises(VersionNotFoundError, match=r"has no version 7 .*live versions: 1"):
        registry.load_model("churn", 7)
    with pytest.raises(VersionNotFoundError, match="alias 'champion' of model 'churn' is not set"):
        registry.load_model("churn", "champion")
    with pytest.raises(InvalidNameError):
        registry.get_version("../churn", 1)


def test_alias_moves_are_audited_and_answer_alias_at(registry: Registry) -> None:
    for value in (1.0, 2.0, 3.0):
        add(registry, "m", value)
    times = {}
    times["before"] = datetime.now(UTC)
    assert registry.set_alias("m", "champion", 1, actor="ana", reason="first") is not None
    times["v1"] = datetime.now(UTC)
    registry.set_alias("m", "champion", 2, actor="bob", reason="better")
    times["v2"] = datetime.now(UTC)
    assert registry.set_alias("m", "champion", 2, actor="bob") is None  # no-op, no event
    registry.set_alias("m", "challenger", "latest", actor="bob")
    registry.set_alias("m", "champion", 3, actor="cy", reason="promoted")
    times["v3"] = datetime.now(UTC)

    assert registry.alias_at("m", "champion", times["before"]) is None
    assert registry.alias_at("m", "champion", times["v1"]) == 1
    assert registry.alias_at("m", "champion", times["v2"]) == 2
    assert registry.alias_at("m", "champion", times["v3"]) == 3
    assert registry.alias_at("m", "challenger", times["v2"]) is None
    assert registry.alias_at("m", "challenger", times["v3"]) == 3

    moves = [
        (e.actor, e.from_version, e.to_version, e.reason)
        for e in registry.history("m")
        if e.kind == "alias" and e.alias == "champion"
    ]
    assert moves == [("ana", None, 1, "first"), ("bob", 1, 2, "better"), ("cy", 2, 3, "promoted")]
    assert registry.get_version("m", 3).aliases == ("challenger", "champion")
    assert predicted(registry, "m", "champion") == 3.0


def test_alias_at_requires_an_aware_time(registry: Registry) -> None:
    add(registry, "m", 1.0)
    with pytest.raises(InputError, match="timezone-aware"):
        registry.alias_at("m", "champion", datetime(2024, 1, 1))


def test_alias_at_an_instant_matches_the_recorded_event_time(registry: Registry) -> None:
    add(registry, "m", 1.0)
    add(registry, "m", 2.0)
    e1 = registry.set_alias("m", "champion", 1, actor="a")
    e2 = registry.set_alias("m", "champion", 2, actor="a")
    assert e1 is not None
    assert e2 is not None
    assert registry.alias_at("m", "champion", e2.at) == 2
    assert registry.alias_at("m", "champion", e2.at - timedelta(microseconds=1)) == 1
    assert registry.alias_at("m", "champion", e1.at - timedelta(microseconds=1)) is None


def test_rollback_walks_back_through_history(registry: Registry) -> None:
    for value in (1.0, 2.0, 3.0):
        v = add(registry, "m", value)
        registry.set_alias("m", "champion", v.version, actor="a")
    event = registry.rollback("m", actor="ops", reason="v3 broke")
    assert (event.kind, event.from_version, event.to_version) == ("rollback", 3, 2)
    assert (event.actor, event.reason) == ("ops", "v3 broke")
    assert predicted(registry, "m", "champion") == 2.0
    assert registry.rollback("m", actor="ops").to_version == 1
    with pytest.raises(RollbackError, match="no earlier live holder"):
        registry.rollback("m", actor="ops")
    assert registry.get_version("m", "champion").version == 1  # unchanged by the failure
    # A new assignment after rollbacks starts a new branch of the stack.
    registry.set_alias("m", "champion", 3, actor="a")
    assert registry.rollback("m", actor="a").to_version == 1


def test_rollback_skips_deleted_versions(registry: Registry) -> None:
    for value in (1.0, 2.0, 3.0):
        v = add(registry, "m", value)
        registry.set_alias("m", "champion", v.version, actor="a")
    registry.set_alias("m", "staging", 2, actor="a")
    registry.set_alias("m", "staging", 1, actor="a")  # 2 no longer aliased
    registry.delete_version("m", 2, actor="a")
    assert registry.rollback("m", "champion", actor="a").to_version == 1


def test_rollback_restores_an_alias_removed_with_its_version(registry: Registry) -> None:
    for value in (1.0, 2.0):
        v = add(registry, "m", value)
        registry.set_alias("m", "champion", v.version, actor="a")
    registry.delete_version("m", 2, force=True, actor="a", reason="bad model")
    with pytest.raises(VersionNotFoundError):
        registry.get_version("m", "champion")
    assert registry.rollback("m", actor="a").to_version == 1


def test_delete_refuses_aliased_version_unless_forced(registry: Registry) -> None:
    add(registry, "m", 1.0)
    add(registry, "m", 2.0)
    registry.set_alias("m", "champion", 2, actor="a")
    with pytest.raises(AliasInUseError, match=r"champion.*force"):
        registry.delete_version("m", 2, actor="a")
    assert predicted(registry, "m", 2) == 2.0  # nothing changed
    assert registry.get_version("m", "champion").version == 2

    events = registry.delete_version("m", 2, force=True, actor="a", reason="leak")
    assert [(e.kind, e.alias) for e in events] == [("unalias", "champion"), ("delete", None)]
    with pytest.raises(VersionNotFoundError, match="was deleted"):
        registry.load_model("m", 2)
    assert [v.version for v in registry.list_versions("m")] == [1]
    # Version numbers are never reused.
    assert add(registry, "m", 3.0).version == 3


def test_delete_unaliased_version_and_unknown_version(registry: Registry) -> None:
    add(registry, "m", 1.0)
    add(registry, "m", 2.0)
    registry.delete_version("m", 1, actor="a")
    with pytest.raises(VersionNotFoundError):
        registry.delete_version("m", 1, actor="a")
    with pytest.raises(VersionNotFoundError):
        registry.delete_version("m", 9, actor="a")
    assert predicted(registry, "m", 2) == 2.0


def test_remove_alias(registry: Registry) -> None:
    add(registry, "m", 1.0)
    registry.set_alias("m", "champion", 1, actor="a")
    event = registry.remove_alias("m", "champion", actor="a", reason="retired")
    assert (event.kind, event.from_version, event.to_version) == ("unalias", 1, None)
    with pytest.raises(VersionNotFoundError):
        registry.remove_alias("m", "champion", actor="a")
    assert registry.alias_at("m", "champion", datetime.now(UTC)) is None


def test_history_records_everything_in_order(registry: Registry) -> None:
    add(registry, "m", 1.0)
    add(registry, "m", 2.0)
    registry.set_alias("m", "champion", 1, actor="a")
    registry.set_alias("m", "champion", 2, actor="a")
    registry.rollback("m", actor="a")
    registry.delete_version("m", 2, actor="a")
    kinds = [e.kind for e in registry.history("m")]
    assert kinds == ["register", "register", "alias", "alias", "rollback", "delete"]
    at = [e.at for e in registry.history("m")]
    assert at == sorted(at)
    assert all(e.to_dict()["at"].endswith("+00:00") for e in registry.history("m"))


def test_set_alias_to_missing_version_changes_nothing(registry: Registry) -> None:
    add(registry, "m", 1.0)
    registry.set_alias("m", "champion", 1, actor="a")
    with pytest.raises(VersionNotFoundError):
        registry.set_alias("m", "champion", 5, actor="a")
    with pytest.raises(InvalidNameError):
        registry.set_alias("m", "bad alias", 1, actor="a")
    assert registry.get_version("m", "champion").version == 1
    assert len(registry.history("m")) == 2


def test_registration_errors_leave_the_registry_unchanged(registry: Registry) -> None:
    add(registry, "m", 1.0)
    before = (registry.list_versions("m"), registry.history("m"))
    with pytest.raises(InputError, match="finite"):
        add(registry, "m", 2.0, metrics={"auc": float("nan")})
    with pytest.raises(InputError, match="JSON"):
        add(registry, "m", 2.0, params={"f": object()})
    with pytest.raises(InputError, match="strings"):
        add(registry, "m", 2.0, tags={"n": 1})
    with pytest.raises(InvalidNameError):
        add(registry, "m/../../x", 2.0)
    with pytest.raises(InputError, match="actor"):
        registry.register("m", constant(2.0), actor="x" * 300)
    with pytest.raises(InputError, match="output_kind"):
        add(registry, "m", 2.0, output_kind="clustering")
    with pytest.raises(InputError, match="code_version"):
        add(registry, "m", 2.0, code_version="c" * 129)
    assert (registry.list_versions("m"), registry.history("m")) == before
    # Validation happens before any artifact is written.
    stored = Path(registry.artifacts.location).rglob("*")
    assert sorted(p.name for p in stored if p.is_file()) == [before[0][0].artifact_sha256]
    with pytest.raises(InputError, match=r"reference|column|data"):
        add(registry, "m", 2.0, reference=42)
    assert sorted(p.name for p in Path(registry.artifacts.location).rglob("*") if p.is_file()) == [
        before[0][0].artifact_sha256
    ]


def test_timestamps_are_increasing_with_microseconds(registry: Registry) -> None:
    a = add(registry, "m", 1.0)
    time.sleep(0.002)
    b = add(registry, "m", 2.0)
    assert b.created_at > a.created_at
    assert registry.get_version("m", 2).created_at == b.created_at
