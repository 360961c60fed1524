"""Fixtures shared by the monitor tests: a throwaway PostgreSQL server per module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests._postgres import serve_postgres


@pytest.fixture(scope="module")
def monitor_postgres() -> Iterator[Any]:
    """A PostgreSQL server for the module (skip, or fail under WATCHKEEPER_REQUIRE_SERVICES=1)."""
    yield from serve_postgres()
