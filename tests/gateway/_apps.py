"""In-process gateway plumbing for the unit and endpoint tests.

A small registry (built once per session, copied per test because tests move aliases and
routes) with:

- ``churn`` — a scikit-learn pipeline (numeric, boolean and categorical inputs, named
  columns) in two versions: 1 = ``champion``, 2 = ``challenger``; its schema also knows a
  ``region`` column with role ``sensitive`` that the model does not take.
- ``price`` — a linear regression fitted on a bare matrix (no column names) with a
  declared two-column numeric schema; version 1 = ``champion``.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from watchkeeper.data import Schema
from watchkeeper.gateway import GatewayConfig, create_app
from watchkeeper.registry import Registry

CHURN_INPUTS = ("x1", "x2", "plan", "active")
PLANS = ("basic", "pro", "team")

_TEMPLATE: dict[str, Path] = {}


def churn_data(seed: int, n: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    """Features (with the non-input ``region``) and labels yes/no."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "plan": rng.choice(PLANS, size=n),
            "active": rng.random(n) < 0.5,
            "region": rng.choice(["north", "south"], size=n),
        }
    )
    signal = X["x1"] + 0.5 * X["x2"] + (X["plan"] == "pro") - 0.5 * X["active"]
    y = np.where(signal + rng.normal(scale=0.5, size=n) > 0.3, "yes", "no")
    return X, y


def churn_pipeline(C: float) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = ColumnTransformer(
        [
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ("rest", "passthrough", ["x1", "x2", "active"]),
        ]
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression(C=C))])


def build_registry(root: Path) -> None:
    """Register the models described in the module docstring under ``root``."""
    from sklearn.linear_model import LinearRegression

    X, y = churn_data(0)
    schema = Schema.infer(X, roles={"region": "sensitive"})
    with Registry(root=root) as registry:
        for C in (1.0, 0.05):
            model = churn_pipeline(C).fit(X[list(CHURN_INPUTS)], y)
            registry.register("churn", model, reference=X, schema=schema, actor="tests")
        registry.set_alias("churn", "champion", 1, actor="tests")
        registry.set_alias("churn", "challenger", 2, actor="tests")
        rng = np.random.default_rng(1)
        A = rng.normal(size=(100, 2))
        price = LinearRegression().fit(A, 3.0 * A[:, 0] - A[:, 1] + 2.0)
        registry.register(
            "price", price, reference=pd.DataFrame(A, columns=["a", "b"]), actor="tests"
        )
        registry.set_alias("price", "champion", 1, actor="tests")


def fresh_root(tmp_path: Path, template_dir: Path) -> Path:
    """A private copy of the session's template registry."""
    if "root" not in _TEMPLATE:
        build_registry(template_dir / "root")
        _TEMPLATE["root"] = template_dir / "root"
    dest = tmp_path / "root"
    shutil.copytree(_TEMPLATE["root"], dest)
    return dest


def settings_for(root: Path, **overrides: Any) -> GatewayConfig:
    """Loopback settings with a fast refresh, for tests."""
    values: dict[str, Any] = {"root": str(root), "refresh_interval": 0.05}
    values.update(overrides)
    return GatewayConfig(**values)


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's start-up and shutdown around an in-process HTTP client."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app),
            base_url="http://127.0.0.1",
            headers={"content-type": "application/json"},
        ) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def gateway(root: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a fresh gateway over ``root``."""
    async with serve(create_app(settings_for(root, **overrides))) as client:
        yield client


def churn_record(i: int = 0, **changes: Any) -> dict[str, Any]:
    """A valid churn record (deterministic in ``i``)."""
    X, _ = churn_data(100 + i, n=1)
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in X.iloc[0].items()}
    record.update(changes)
    return record


def read_log(root: Path, model: str, *, include_shadow: bool = False) -> list[dict[str, Any]]:
    """Rows of the prediction log of ``model`` (the gateway's default log under ``root``)."""
    from watchkeeper.logstore import SQLiteLogSink

    sink = SQLiteLogSink(root / "predictions.db")
    try:
        rows: list[dict[str, Any]] = sink.read_window(
            model, last=100_000, include_shadow=include_shadow
        ).to_pylist()
        return rows
    finally:
        sink.close()
