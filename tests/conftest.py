"""Shared test plumbing.

Service tests (PostgreSQL, Prometheus, Chromium) skip when the service cannot be started on a
developer machine, but fail under ``WATCHKEEPER_REQUIRE_SERVICES=1`` (set by ``.ci/run``), so
CI never silently skips what it can run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from tests._demo_runs import demo_runs  # noqa: F401  (a session fixture of the demo tests)

REQUIRE_SERVICES = os.environ.get("WATCHKEEPER_REQUIRE_SERVICES") == "1"


def service_unavailable(reason: str) -> None:
    """Skip (developer machine) or fail (CI) because a required service is missing."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str:
    """Path of a headless-capable Chromium, or skip/fail."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    service_unavailable("chromium is not installed (apt-get install chromium)")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def chromium() -> str:
    return find_chromium()


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory, so embedded defaults (.watchkeeper/) land in tmp."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
