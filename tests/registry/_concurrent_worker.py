"""Body of one registering process (run with runpy by test_concurrency.py)."""
# ruff: noqa: F821 - the free names come from runpy init_globals

from __future__ import annotations

from typing import Any

# Provided through runpy's init_globals.
url: str
artifacts: str
n: int
start: Any
results: Any
worker: int

if __name__ == "__wk_worker__":
    import numpy as np
    from sklearn.dummy import DummyRegressor

    from watchkeeper.registry import Registry

    with Registry(url, artifacts=artifacts, timeout=30.0) as registry:
        start.wait(timeout=60)
        for i in range(n):
            model = DummyRegressor().fit(np.zeros((2, 1)), [worker * 1000.0 + i] * 2)
            version = registry.register("shared", model, actor=f"worker{worker}", code_version="x")
            results.put((worker, i, version.version))
