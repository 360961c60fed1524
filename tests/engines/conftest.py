"""One local SparkSession for every Spark test (starting one takes seconds)."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import service_unavailable


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    if importlib.util.find_spec("pyspark") is None:
        service_unavailable('pyspark is not installed (pip install "watchkeeper[spark]")')
    if shutil.which("java") is None:
        service_unavailable("java is not installed (apt-get install openjdk-17-jre-headless)")
    from watchkeeper.engines.spark import local_session

    session = local_session(cores=2)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
