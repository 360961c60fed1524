"""The ``explanations`` gate check: SHAP importance with its noise floor and a surrogate, in
the gate's results and its HTML report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from watchkeeper.lifecycle import GateConfig, validate


def _config(**params: object) -> GateConfig:
    return GateConfig.from_dict(
        {
            "generalisation": {"enabled": False},
            "robustness": {"enabled": False},
            "serving": {"enabled": False},
            "extra_checks": {"explanations": {"max_rows": 200, "backgrounds": 3, **params}},
        }
    )


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    df["c"] = rng.choice(["x", "y"], 600)
    df["y"] = 3 * df["a"] + 1.0 * (df["c"] == "y") + 0.1 * rng.normal(size=600)
    return df


def test_explanations_rank_the_features_the_model_uses(tmp_path: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    model = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [("c", OneHotEncoder(), ["c"]), ("num", "passthrough", ["a", "b"])]
                ),
            ),
            ("model", LinearRegression()),
        ]
    )
    report = validate(model, _data(), target="y", config=_config())
    (result,) = report.by_check("gate.explanations")
    assert result.status.value == "ok"
    explained = result.details["global"]
    ranked = sorted(
        zip(explained["features"], explained["importance"], explained["noise_floor"], strict=True),
        key=lambda t: -t[1],
    )
    # a (coefficient 3, unit spread) matters most, then c (a 1.0 step), b not at all.
    assert [f for f, _, _ in ranked] == ["a", "c", "b"]
    assert ranked[0][1] > 2.0
    assert ranked[2][1] < 0.05
    assert all(floor >= 0 for _, _, floor in ranked)
    assert "surrogate" in result.details
    assert "a" in result.details["surrogate"]["rules"]
    report.to_html(tmp_path / "gate.html")
    html = (tmp_path / "gate.html").read_text(encoding="utf-8")
    assert "What the candidate relies on" in html
    assert "Global surrogate" in html


def test_bad_settings_are_an_error_result_not_a_crash() -> None:
    from sklearn.linear_model import LinearRegression

    report = validate(
        LinearRegression(), _data()[["a", "b", "y"]], target="y", config=_config(rows=5)
    )
    (result,) = [r for r in report.results if "explanations" in r.check]
    assert result.status.value == "error"
    assert "unknown explanations gate settings" in result.reason
