"""Routes stored and audited in the registry database; the served state of a worker:
rebuilt only on change, swapped whole, models loaded once, problems isolated per model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from watchkeeper.gateway import Route, RouteStore
from watchkeeper.gateway._models import ServingState
from watchkeeper.registry import ModelNotFoundError, Registry, VersionNotFoundError

from ._apps import fresh_root


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


@pytest.fixture
def registry(root: Path) -> Any:
    with Registry(root=root) as reg:
        yield reg


def _revisions(root: Path) -> list[int]:
    engine = sa.create_engine(f"sqlite:///{root / 'registry.db'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT revision FROM wk_gateway_routes ORDER BY revision"))
        found = [int(r[0]) for r in rows]
    engine.dispose()
    return found


def test_routes_are_stored_with_revisions_and_audited(registry: Registry, root: Path) -> None:
    store = RouteStore(registry)
    first = store.set("churn", Route.canary(10), actor="ana", reason="try v2")
    second = store.set("churn", Route.split({"champion": 1, "challenger": 1}), actor="bob")
    store.set("price", Route.single(), actor="bob")
    assert store.get("churn") == Route.split({"champion": 1, "challenger": 1})
    assert _revisions(root) == [2, 3]  # churn's row replaced under a new revision
    events = [e for e in registry.history("churn") if e.kind == "route"]
    assert [(e.actor, e.reason) for e in events] == [
        ("ana", "canary: champion 90%, challenger 10% (sticky on x-user-id); try v2"),
        ("bob", "split: champion 50%, challenger 50% (sticky on x-user-id)"),
    ]
    assert first.id < second.id
    removed = store.remove("churn", actor="ana", reason="done")
    assert removed is not None
    assert removed.reason == "route removed (default route); done"
    assert store.get("churn") is None
    assert store.remove("churn", actor="ana") is None  # nothing to remove, nothing audited


def test_routes_need_set_aliases_and_known_models(registry: Registry) -> None:
    store = RouteStore(registry)
    with pytest.raises(VersionNotFoundError, match="alias 'canary' of model 'churn' is not set"):
        store.set("churn", Route.split({"champion": 1, "canary": 1}), actor="a")
    with pytest.raises(ModelNotFoundError):
        store.set("nope", Route.single(), actor="a")
    assert store.get("churn") is None


def test_the_change_token_moves_with_aliases_routes_and_rollbacks(registry: Registry) -> None:
    store = RouteStore(registry)
    seen = [store.token()]
    registry.set_alias("churn", "champion", 2, actor="a")
    seen.append(store.token())
    store.set("churn", Route.canary(5), actor="a")
    seen.append(store.token())
    registry.rollback("churn", actor="a")
    seen.append(store.token())
    assert seen == sorted(set(seen))  # strictly increasing
    state = store.state()
    assert state.aliases["churn"] == {"champion": 1, "challenger": 2}
    assert set(state.models) == {"churn", "price"}


class CountingRegistry:
    """A registry whose model loads are counted."""

    def __init__(self, inner: Registry) -> None:
        self.inner = inner
        self.loads: list[tuple[str, int | str]] = []
        self.store = inner.store

    def load_model(self, name: str, ref: int | str) -> Any:
        self.loads.append((name, ref))
        return self.inner.load_model(name, ref)


def _state(registry: Any, **kwargs: Any) -> ServingState:
    inner = registry.inner if isinstance(registry, CountingRegistry) else registry
    return ServingState(registry, RouteStore(inner), **kwargs)


def test_refresh_only_on_change_and_models_load_once(registry: Registry) -> None:
    counting = CountingRegistry(registry)
    state = _state(counting)
    assert state.refresh_sync()
    before = state.current
    assert sorted(counting.loads) == [("churn", 1), ("price", 1)]
    assert not state.refresh_sync()  # nothing changed: same snapshot object
    assert state.current is before
    RouteStore(registry).set("churn", Route.canary(20), actor="a")
    assert state.refresh_sync()
    after = state.current
    assert after is not before
    assert sorted(counting.loads) == [("churn", 1), ("churn", 2), ("price", 1)]
    # The old snapshot is untouched: a request holding it still sees the old route.
    assert before.models["churn"].route == Route.single()
    assert after.models["churn"].route == Route.canary(20)
    assert after.models["churn"].versions["champion"] is before.models["churn"].versions["champion"]
    registry.set_alias("churn", "challenger", 1, actor="a")  # both arms on version 1
    assert state.refresh_sync()
    assert sorted(counting.loads) == [("churn", 1), ("churn", 2), ("price", 1)]


def test_models_without_route_or_alias_are_not_served(registry: Registry) -> None:
    registry.remove_alias("price", "champion", actor="a")
    state = _state(registry)
    state.refresh_sync()
    assert set(state.current.models) == {"churn"}
    assert "no route and no 'champion' alias" in state.current.unserved["price"]
    assert state.current.readiness() == []


def test_only_listed_models_are_served(registry: Registry) -> None:
    state = _state(registry, models=("price", "ghost"))
    state.refresh_sync()
    assert set(state.current.models) == {"price"}
    assert state.current.unserved == {"ghost": "no live version in the registry"}


def test_a_corrupt_artifact_affects_only_its_model(registry: Registry, root: Path) -> None:
    RouteStore(registry).set("churn", Route.canary(10), actor="a")
    sha = registry.get_version("churn", 2).artifact_sha256
    (artifact,) = [p for p in (root / "artifacts").rglob("*") if p.is_file() and sha in p.name]
    artifact.write_bytes(b"tampered")
    state = _state(registry)
    state.refresh_sync()
    churn = state.current.models["churn"]
    assert set(churn.versions) == {"champion"}
    assert "version 2 cannot be loaded" in churn.problems["challenger"]
    assert "price" in state.current.models
    (problem,) = state.current.readiness()
    assert "challenger" in problem


def test_forget_models_reloads_verified_artifacts(registry: Registry) -> None:
    counting = CountingRegistry(registry)
    state = _state(counting)
    state.refresh_sync()
    state.forget_models()
    state.refresh_sync(force=True)
    assert sorted(counting.loads) == [("churn", 1), ("churn", 1), ("price", 1), ("price", 1)]


@pytest.mark.anyio
async def test_a_failed_refresh_keeps_the_last_snapshot(registry: Registry) -> None:
    state = _state(registry)
    await state.refresh(force=True)
    good = state.current

    def broken() -> int:
        raise OSError("database went away")

    state.routes.token = broken  # type: ignore[method-assign]
    assert not await state.refresh()
    assert state.current is good
    assert state.last_error == "database went away"
