"""Fixtures shared by the monitor tests: a throwaway PostgreSQL server per module."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _postgres_helper() -> ModuleType:
    # tests/ is not a package (--import-mode=importlib): load the shared helper by path once.
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


@pytest.fixture(scope="module")
def monitor_postgres() -> Iterator[Any]:
    """A PostgreSQL server for the module (skip, or fail under WATCHKEEPER_REQUIRE_SERVICES=1)."""
    helper = _postgres_helper()
    try:
        server = helper.start_postgres()
    except helper.PostgresUnavailableError as exc:
        if os.environ.get("WATCHKEEPER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"required service unavailable: {exc}", pytrace=False)
        pytest.skip(str(exc))
    yield server
    server.stop()
