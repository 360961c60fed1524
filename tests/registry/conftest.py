"""Fixtures of the registry suite: every backend test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from watchkeeper.registry import Registry


def _postgres_helper() -> ModuleType:
    # tests/ is not a package (pytest runs with --import-mode=importlib), so load the shared
    # helper by path once.
    name = "_watchkeeper_tests_postgres"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parents[1] / "_postgres.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A throwaway PostgreSQL server for the whole session (skip, or fail in CI, if none)."""
    helper = _postgres_helper()
    try:
        server = helper.start_postgres()
    except helper.PostgresUnavailableError as exc:
        if os.environ.get("WATCHKEEPER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"required service unavailable: {exc}", pytrace=False)
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: Any) -> str:
    """URL of the session's PostgreSQL server (default database)."""
    return str(postgres_server.url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty registry database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    server = request.getfixturevalue("postgres_server")
    return str(server.create_schema())


@pytest.fixture
def registry(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    """A registry on a fresh database with artifacts in a temporary folder."""
    with Registry(db_url, artifacts=tmp_path / "artifacts", timeout=10.0) as reg:
        yield reg
