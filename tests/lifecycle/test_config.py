"""Gate configuration: defaults, loading from TOML/JSON, validation of every value."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle import (
    ComparisonConfig,
    GateConfig,
    GeneralisationConfig,
    RobustnessConfig,
    ServingConfig,
)


def test_defaults_are_documented_values() -> None:
    cfg = GateConfig()
    assert cfg.metrics is None
    assert cfg.generalisation.folds == 5
    assert cfg.generalisation.max_gap == 0.05
    assert cfg.calibration.max_ece == 0.05
    assert cfg.comparison.mode == "superiority"
    assert cfg.comparison.margin == 0.0
    assert cfg.robustness.large_batch_rows == 100_000
    assert cfg.serving.batch_sizes == (1, 100, 10_000)
    assert set(cfg.serving.p99_budget_ms) == {1, 100, 10_000}


def test_toml_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(
        """
metrics = ["accuracy", "log_loss"]
holdout_fraction = 0.3

[generalisation]
folds = 4
required = { accuracy = 0.8 }
overfit_status = "alert"

[comparison]
mode = "non_inferiority"
margin = 0.01
margins = { log_loss = 0.02 }

[serving.p99_budget_ms]
"1" = 20.0

[extra_checks.fairness]
max_disparity = 0.1
""",
        encoding="utf-8",
    )
    cfg = GateConfig.from_file(path)
    assert cfg.metrics == ("accuracy", "log_loss")
    assert cfg.generalisation.folds == 4
    assert cfg.generalisation.required["accuracy"] == 0.8
    assert cfg.comparison.margin_for("accuracy") == 0.01
    assert cfg.comparison.margin_for("log_loss") == 0.02
    assert cfg.serving.p99_budget_ms == {1: 20.0}
    assert cfg.extra_checks["fairness"]["max_disparity"] == 0.1
    # to_dict is plain JSON and rebuilds the same config
    again = GateConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "gate.json"
    path.write_text(json.dumps({"robustness": {"wrong_type": "either"}}), encoding="utf-8")
    assert GateConfig.from_file(path).robustness.wrong_type == "either"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"folds": 3}, "unknown gate setting 'folds'"),
        ({"generalisation": {"fold": 3}}, "generalisation.fold"),
        ({"generalisation": {"folds": 1}}, "folds must be at least 2"),
        ({"generalisation": {"folds": "three"}}, "generalisation"),
        ({"comparison": {"mode": "better"}}, "comparison.mode"),
        ({"comparison": {"margin": -0.1}}, "non-negative"),
        ({"robustness": {"missing": "maybe"}}, "robustness.missing"),
        ({"serving": {"p50_budget_ms": {"one": 3}}}, "batch sizes"),
        ({"holdout_fraction": 1.5}, "holdout_fraction"),
        ({"generalisation": 3}, "must be a table"),
    ],
)
def test_invalid_settings_say_what_is_wrong(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        GateConfig.from_dict(data)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        GateConfig.from_file(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("folds = [", encoding="utf-8")
    with pytest.raises(InputError, match="not valid"):
        GateConfig.from_file(bad)
    yaml = tmp_path / "gate.yaml"
    yaml.write_text("a: 1", encoding="utf-8")
    with pytest.raises(InputError, match=r"\.toml or \.json"):
        GateConfig.from_file(yaml)


def test_configs_are_immutable() -> None:
    cfg = GateConfig.from_dict({"generalisation": {"required": {"accuracy": 0.9}}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.generalisation.folds = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.generalisation.required["accuracy"] = 0.1  # type: ignore[index]
    with pytest.raises(TypeError):
        ServingConfig().p99_budget_ms[1] = 1.0  # type: ignore[index]
    # change by making a new one
    new = dataclasses.replace(cfg, generalisation=GeneralisationConfig(folds=3))
    assert new.generalisation.folds == 3
    assert cfg.generalisation.folds == 5


def test_helpers() -> None:
    assert ComparisonConfig(margin=0.02, margins={"auc": 0.01}).margin_for("auc") == 0.01
    assert RobustnessConfig(missing="answer").expectation("missing") == "answer"
