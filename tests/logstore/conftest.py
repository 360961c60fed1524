"""Fixtures of the log store tests: real PostgreSQL and S3-compatible servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests._moto import serve_s3
from tests._postgres import serve_postgres


@pytest.fixture(scope="session")
def log_postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL server (skip, or fail under WATCHKEEPER_REQUIRE_SERVICES=1)."""
    yield from serve_postgres()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """moto's S3 server (skip, or fail under WATCHKEEPER_REQUIRE_SERVICES=1)."""
    yield from serve_s3()
