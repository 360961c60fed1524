"""The gate feeds a model the input columns it declares, whatever the schema calls them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from typer.testing import CliRunner

from watchkeeper.data import Schema
from watchkeeper.datasets import ACS_FEATURES, ACS_SENSITIVE, load_acs_employment
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle import GateConfig, validate

OFF = {"enabled": False}
FAST = {"generalisation": OFF, "calibration": OFF, "robustness": OFF, "serving": OFF}
INPUTS = [*ACS_FEATURES, *ACS_SENSITIVE]


@pytest.fixture(scope="module")
def acs() -> tuple[pd.DataFrame, object, Schema]:
    df = load_acs_employment()
    df = df[df["year"] == 2015].drop(columns="year").sample(3000, random_state=0)
    categorical = [c for c in INPUTS if c != "AGEP"]
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), categorical), (StandardScaler(), ["AGEP"])
        ),
        LogisticRegression(max_iter=300),
    ).fit(df[INPUTS], df["employed"])
    # The schema marks SEX and RAC1P as sensitive: they are not among its features, but the
    # model was trained with them.
    schema = Schema.infer(df).with_roles(
        {"employed": "target", **dict.fromkeys(ACS_SENSITIVE, "sensitive")}
    )
    assert not set(ACS_SENSITIVE) & set(schema.features)
    return df, model, schema


def test_the_gate_uses_the_model_inputs_not_the_schema_features(acs) -> None:  # type: ignore[no-untyped-def]
    df, model, schema = acs
    report = validate(model, df, schema=schema, config=GateConfig.from_dict(FAST))
    assert report.exit_code == 0, report.failures + report.errors
    holdout = report.by_check("gate.holdout")
    assert holdout
    assert all(r.status.value == "ok" for r in holdout)


def test_the_model_inputs_missing_from_the_data_are_named(acs) -> None:  # type: ignore[no-untyped-def]
    df, model, schema = acs
    with pytest.raises(InputError, match=r"the model's input columns \['SEX'\] are not in"):
        validate(model, df.drop(columns="SEX"), schema=schema, config=GateConfig.from_dict(FAST))


def test_validate_cli_with_a_sensitive_schema(acs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from watchkeeper.cli._app import _register_commands, app

    df, model, schema = acs
    sio.dump(model, tmp_path / "model.skops")
    df.to_parquet(tmp_path / "data.parquet")
    schema.save(tmp_path / "s.json")
    (tmp_path / "gate.json").write_text(json.dumps(FAST))
    _register_commands()
    result = CliRunner().invoke(
        app,
        ["validate", str(tmp_path / "model.skops"), str(tmp_path / "data.parquet"),
         "--schema", str(tmp_path / "s.json"), "--config", str(tmp_path / "gate.json"),
         "--trust-pickle", "--json", str(tmp_path / "out.json"), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads((tmp_path / "out.json").read_text())["passed"] is True
