"""Stored routes on both registry backends, with concurrent writers: every change lands
under its own revision with its own audit event (SQLite here, PostgreSQL as a service)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.dummy import DummyRegressor
from tests._postgres import serve_postgres

from watchkeeper.gateway import Route, RouteStore
from watchkeeper.gateway._models import ServingState
from watchkeeper.registry import Registry


@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    yield from serve_postgres()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = str(request.getfixturevalue("postgres").create_schema())
    with Registry(url, artifacts=tmp_path / "artifacts") as reg:
        for value in (1.0, 2.0):
            reg.register("m", DummyRegressor().fit([[0.0]], [value]), actor="t")
        reg.set_alias("m", "champion", 1, actor="t")
        reg.set_alias("m", "challenger", 2, actor="t")
        yield reg


def test_concurrent_route_changes_each_get_a_revision_and_an_event(registry: Registry) -> None:
    stores = [RouteStore(registry) for _ in range(4)]
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(8):
                stores[k].set("m", Route.canary(k * 10 + i), actor=f"w{k}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    events = [e for e in registry.history("m") if e.kind == "route"]
    assert len(events) == 32
    assert {e.actor for e in events} == {"w0", "w1", "w2", "w3"}
    # One row per model, holding the last change; its revision is the number of changes.
    state = RouteStore(registry).state()
    assert (list(state.routes), state.revision) == (["m"], 32)
    last = events[-1].reason.split(";")[0]
    assert RouteStore(registry).get("m").describe() == last  # type: ignore[union-attr]


def test_a_worker_follows_changes_on_every_backend(registry: Registry) -> None:
    state = ServingState(registry, RouteStore(registry))
    assert state.refresh_sync()
    assert state.current.models["m"].route == Route.single()
    RouteStore(registry).set("m", Route.shadow_of(fraction=0.5), actor="ops")
    assert state.refresh_sync()
    served = state.current.models["m"]
    assert served.route == Route.shadow_of(fraction=0.5)
    assert {alias: v.version for alias, v in served.versions.items()} == {
        "champion": 1,
        "challenger": 2,
    }
    assert not state.refresh_sync()
