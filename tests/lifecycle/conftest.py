"""Small seeded data and a fast gate config shared by the lifecycle tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from threadpoolctl import threadpool_limits

from watchkeeper.lifecycle import GateConfig

FAST: dict[str, Any] = {
    "generalisation": {"folds": 3, "train_sizes": [0.3, 0.65, 1.0]},
    "calibration": {"n_resamples": 100},
    "comparison": {"n_resamples": 500},
    "robustness": {"large_batch_rows": 2_000, "n_rows": 60},
    "serving": {"batch_sizes": [1, 50], "repeats": 3, "warmup": 0},
}


def fast_config(**overrides: Any) -> GateConfig:
    """FAST with sections replaced key by key by ``overrides``."""
    data: dict[str, Any] = {k: dict(v) for k, v in FAST.items()}
    for key, value in overrides.items():
        if isinstance(value, dict) and key in data:
            data[key].update(value)
        else:
            data[key] = value
    return GateConfig.from_dict(data)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # OpenMP learners (HistGradientBoosting) slow down a hundredfold when their threads
    # compete with other processes for two shared cores; results do not depend on it.
    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def clf_frame() -> pd.DataFrame:
    X, y = make_classification(600, 6, n_informative=4, n_redundant=0, flip_y=0.05, random_state=0)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]).assign(y=y)


@pytest.fixture
def reg_frame() -> pd.DataFrame:
    X, y = make_regression(500, 5, n_informative=3, noise=10.0, random_state=0)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(y=y)


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    """Numeric, integer and categorical features with a binary target."""
    rng = np.random.default_rng(0)
    n = 500
    age = rng.integers(18, 80, n)
    income = rng.lognormal(10, 0.5, n)
    city = rng.choice(["oslo", "bergen", "tromso"], n)
    logit = 0.05 * (age - 50) + 0.8 * (city == "oslo") + rng.normal(0, 1, n)
    return pd.DataFrame({"age": age, "income": income, "city": city, "y": (logit > 0).astype(int)})


@pytest.fixture
def fast() -> Any:
    """The :func:`fast_config` factory (test modules cannot import conftest by name)."""
    return fast_config
