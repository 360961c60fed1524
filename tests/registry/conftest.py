"""Fixtures of the registry suite: every backend test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests._postgres import serve_postgres

from watchkeeper.registry import Registry


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A throwaway PostgreSQL server for the whole session (skip, or fail in CI, if none)."""
    yield from serve_postgres()


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
