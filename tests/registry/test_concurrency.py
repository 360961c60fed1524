"""Concurrent writers, locked and unreachable databases, schema versions."""

from __future__ import annotations

import multiprocessing
import queue
import runpy
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sklearn.dummy import DummyRegressor

from watchkeeper.exceptions import InputError
from watchkeeper.registry import (
    Registry,
    RegistryError,
    RegistryLockedError,
    RegistryUnavailableError,
    _tables,
)

WORKER = Path(__file__).with_name("_concurrent_worker.py")


def constant(value: float) -> DummyRegressor:
    return DummyRegressor().fit(np.zeros((2, 1)), [value, value])


def test_two_processes_never_get_the_same_version(db_url: str, tmp_path: Path) -> None:
    n = 8
    # forkserver: one clean server process pays the imports once, workers fork from it
    # (no inherited database connections, unlike plain fork).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["sklearn.dummy", "watchkeeper.registry"])
    start, results = ctx.Barrier(3), ctx.Queue()
    artifacts = str(tmp_path / "artifacts")
    Registry(db_url, artifacts=artifacts).close()  # create the tables once, up front
    processes = [
        ctx.Process(
            target=runpy.run_path,
            args=(str(WORKER),),
            kwargs={
                "run_name": "__wk_worker__",
                "init_globals": {
                    "url": db_url,
                    "artifacts": artifacts,
                    "n": n,
                    "start": start,
                    "results": results,
                    "worker": worker,
                },
            },
        )
        for worker in (1, 2)
    ]
    for process in processes:
        process.start()
    start.wait(timeout=120)  # both workers have opened the registry: go
    got: list[tuple[int, int, int]] = []
    try:
        while len(got) < 2 * n:
            got.append(results.get(timeout=120))
    except queue.Empty:
        pytest.fail(f"workers stopped early after {len(got)} registrations")
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    versions = sorted(version for _, _, version in got)
    assert versions == list(range(1, 2 * n + 1))
    with Registry(db_url, artifacts=artifacts) as registry:
        stored = registry.list_versions("shared")
        assert [v.version for v in stored] == versions
        # Each version holds the model its worker registered under that number.
        for worker, i, version in got:
            model = registry.load_model("shared", version)
            assert model.predict(np.zeros((1, 1)))[0] == worker * 1000.0 + i
            assert model.version.actor == f"worker{worker}"
        assert [e.kind for e in registry.history("shared")] == ["register"] * (2 * n)


@contextmanager
def hold_write_lock(db_url: str) -> Iterator[None]:
    """Keep the registry's version table write-locked from another connection."""
    url = sa.make_url(db_url)
    if url.get_backend_name() == "sqlite":
        raw = sqlite3.connect(str(url.database), isolation_level=None)
        raw.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            raw.execute("ROLLBACK")
            raw.close()
        return
    import psycopg

    with psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        dbname=url.database,
        options=url.query.get("options", ""),
    ) as conn:
        conn.execute("LOCK TABLE wk_model_versions IN ACCESS EXCLUSIVE MODE")
        yield
        conn.rollback()


def test_locked_database_gives_a_clear_error_and_loses_nothing(db_url: str, tmp_path: Path) -> None:
    with Registry(db_url, artifacts=tmp_path / "a", timeout=0.3) as registry:
        registry.register("m", constant(1.0), actor="a")
        with hold_write_lock(db_url), pytest.raises(RegistryLockedError, match="locked"):
            registry.register("m", constant(2.0), actor="a")
        assert [v.version for v in registry.list_versions("m")] == [1]
        assert registry.register("m", constant(3.0), actor="a").version == 2
        assert registry.load_model("m", 1).predict(np.zeros((1, 1)))[0] == 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_unreachable_postgres_is_a_clear_error(scheme: str, tmp_path: Path) -> None:
    url = f"{scheme}://wk:secret@127.0.0.1:{free_port()}/registry"
    with pytest.raises(RegistryUnavailableError, match="cannot use the registry") as info:
        Registry(url, artifacts=tmp_path, timeout=2.0)
    assert "secret" not in str(info.value)
    assert "***" in str(info.value)


@pytest.mark.service
def test_missing_postgres_database_is_a_clear_error(postgres_server: Any, tmp_path: Path) -> None:
    with pytest.raises(RegistryUnavailableError, match="does not exist"):
        Registry(postgres_server.database_url("no_such_db"), artifacts=tmp_path, timeout=2.0)


def test_unopenable_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RegistryUnavailableError):
        Registry(f"sqlite:///{blocker / 'registry.db'}", artifacts=tmp_path)
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(RegistryUnavailableError, match="not a database"):
        Registry(f"sqlite:///{not_a_db}", artifacts=tmp_path)


@pytest.mark.parametrize("url", ["mysql://h/db", "not a url", "oracle://x"])
def test_unsupported_urls(url: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="registry database URL"):
        Registry(url, artifacts=tmp_path)


def test_default_location_is_the_project_folder(project_dir: Path) -> None:
    with Registry() as registry:
        registry.register("m", constant(1.0), actor="a")
    assert (project_dir / ".watchkeeper" / "registry.db").is_file()
    assert list((project_dir / ".watchkeeper" / "artifacts" / "sha256").glob("*/*"))


def test_reopening_keeps_data_and_newer_schema_is_refused(db_url: str, tmp_path: Path) -> None:
    with Registry(db_url, artifacts=tmp_path) as registry:
        registry.register("m", constant(1.0), actor="a")
    with Registry(db_url, artifacts=tmp_path) as registry:
        assert [v.version for v in registry.list_versions("m")] == [1]
    with Registry(db_url, artifacts=tmp_path) as registry:
        engine = registry.store._engine  # type: ignore[attr-defined]
        with engine.begin() as conn:
            conn.execute(sa.update(_tables.meta).values(value=str(_tables.SCHEMA_VERSION + 1)))
    with pytest.raises(RegistryError, match="upgrade watchkeeper"):
        Registry(db_url, artifacts=tmp_path)


def test_migrations_run_once_in_order(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Registry(db_url, artifacts=tmp_path) as registry:
        registry.register("m", constant(1.0), actor="a")
    calls: list[int] = []

    def step(conn: sa.Connection) -> None:
        calls.append(1)
        conn.execute(sa.text("CREATE TABLE wk_migration_probe (x INTEGER)"))

    monkeypatch.setattr(_tables, "SCHEMA_VERSION", _tables.SCHEMA_VERSION + 1)
    monkeypatch.setitem(_tables.MIGRATIONS, _tables.SCHEMA_VERSION - 1, step)
    for _ in range(2):
        with Registry(db_url, artifacts=tmp_path) as registry:
            assert registry.get_version("m", 1).version == 1
    assert calls == [1]
    with Registry(db_url, artifacts=tmp_path) as registry:
        engine = registry.store._engine  # type: ignore[attr-defined]
        assert sa.inspect(engine).has_table("wk_migration_probe")
        with engine.connect() as conn:
            stored = conn.execute(sa.select(_tables.meta.c.value)).scalar()
    assert stored == str(_tables.SCHEMA_VERSION)
