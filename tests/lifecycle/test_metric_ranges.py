"""Confidence intervals never leave the values a metric can take."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold

from watchkeeper.lifecycle import cross_validation_checks
from watchkeeper.lifecycle._metrics import get_metric


def test_ranges() -> None:
    assert get_metric("mae").value_range == (0.0, math.inf)
    assert get_metric("r2").value_range == (-math.inf, 1.0)
    assert get_metric("accuracy").value_range == (0.0, 1.0)


def test_cv_interval_is_clipped_to_the_metric_range() -> None:
    # Few, very different folds: the raw t-interval of MAE spills below 0 and R2's above 1.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 1))
    noise = np.r_[np.zeros(30), rng.normal(0, 30, 10)]
    y = 3 * x[:, 0] + noise
    results = cross_validation_checks(
        LinearRegression(), pd.DataFrame(x, columns=["x"]), y, task="regression",
        metrics=["mae", "r2"], cv=KFold(4),
    )  # fmt: skip
    by_metric = {r.subject: r for r in results if r.check == "gate.cv"}
    assert by_metric["mae"].lower is not None
    assert by_metric["mae"].lower >= 0.0
    assert by_metric["r2"].upper is not None
    assert by_metric["r2"].upper <= 1.0
