"""A model file is data, not code: hostile artifacts are refused on every load path, with a
one-line error and no side effect (the marker their payload would create never appears)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from typer.testing import CliRunner

from watchkeeper.cli._models import app as models_app
from watchkeeper.exceptions import InputError, WatchkeeperError
from watchkeeper.registry import (
    ModelNotFoundError,
    NewVersion,
    Registry,
    UnsafeFormatError,
    read_model_file,
)
from watchkeeper.registry._safety import PUBLIC_HOMES, REVIEWED_TYPES, reviewed_types

sys.path.insert(0, str(Path(__file__).parent))
import _hostile

CASES = [
    "sklearn-testing-function.skops",
    "builtins-exec.skops",
    "os-system.skops",
    "sklearn-public-function.skops",
    "sklearn-private-module.skops",
    "nested-in-estimator.skops",
    "bomb.skops",
    "not-a-zip.skops",
    "reduce.pkl",
    "reduce.joblib",
    "pickle-as.lgb",
    "pickle-as.onnx",
    "external-relative.onnx",
    "external-absolute.onnx",
    "external-sibling.onnx",
    "truncated.lgb",
    "aborting.lgb",
    "garbage.lgb",
    "truncated.ubj",
    "garbage.ubj",
    "link.skops",
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    tmp = tmp_path_factory.mktemp("hostile")
    marker = tmp / "marker"
    files = _hostile.corpus(tmp / "files", marker)
    assert sorted(files) == sorted(CASES)
    return files, marker


@pytest.mark.parametrize("case", CASES)
def test_python_api_refuses_hostile_files(
    case: str, hostile: tuple[dict[str, Path], Path], tmp_path: Path
) -> None:
    files, marker = hostile
    with Registry(root=tmp_path) as registry:
        with pytest.raises(InputError) as caught:
            registry.register("m", files[case], actor="attacker")
        assert not marker.exists(), "the payload ran"
        message = str(caught.value)
        assert "\n" not in message
        assert len(message) < 600
        with pytest.raises(ModelNotFoundError):
            registry.get_version("m")
    if case not in NATIVE:  # the same check again, in a child process: slow
        with pytest.raises(InputError):
            read_model_file(files[case])
        assert not marker.exists(), "the payload ran"


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in CASES
        if c.endswith(".skops") and c not in ("bomb.skops", "link.skops", "not-a-zip.skops")
    ],
)
def test_code_payloads_say_how_to_vouch(case: str, hostile: tuple[dict[str, Path], Path]) -> None:
    files, marker = hostile
    with pytest.raises(InputError, match=r"trusted=True \(--trusted\) only if you trust"):
        read_model_file(files[case])
    assert not marker.exists()


#: Cases checked in a child process (a fresh interpreter importing LightGBM or XGBoost each).
NATIVE = ("truncated.lgb", "aborting.lgb", "truncated.ubj", "garbage.ubj")


@pytest.mark.parametrize("case", [c for c in CASES if c not in NATIVE[1:]])
def test_cli_refuses_hostile_files_in_one_line(
    case: str, hostile: tuple[dict[str, Path], Path], tmp_path: Path
) -> None:
    files, marker = hostile
    result = CliRunner().invoke(
        models_app, ["--root", str(tmp_path), "register", "m", str(files[case])]
    )
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stdout + result.stderr
    assert not marker.exists()


def test_cli_in_a_real_process(hostile: tuple[dict[str, Path], Path], tmp_path: Path) -> None:
    files, marker = hostile
    for case in ("sklearn-testing-function.skops",):
        argv = [sys.executable, "-m", "watchkeeper.cli", "models", "--root", str(tmp_path)]
        done = subprocess.run(
            [*argv, "register", "m", str(files[case])], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert not marker.exists()
    # validate loads model files too, with the same checks.
    data = tmp_path / "data.csv"
    pd.DataFrame({"x": [0.0, 1.0] * 20, "y": [0, 1] * 20}).to_csv(data, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli", "validate",
         str(files["sklearn-testing-function.skops"]), str(data), "--target", "y"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "--trust-pickle" in done.stderr
    assert not marker.exists()


def _smuggle(registry: Registry, data: bytes, flavor: dict[str, Any], *, trusted: bool) -> None:
    """A version stored as an older, laxer release would have stored it."""
    registry.store.add_version(
        NewVersion(
            name="m",
            actor="attacker",
            format="skops",
            artifact_sha256=registry.artifacts.put(data),
            artifact_size=len(data),
            output_kind="regression",
            flavor=flavor,
            trusted=trusted,
        )
    )


def test_loading_a_stored_version_checks_again(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    payload = _hostile.skops_payloads(marker)["sklearn-public-function"]
    with Registry(root=tmp_path / "reg") as registry:
        # Recorded as trusted types by a release that trusted every sklearn.* name, but the
        # version itself was never registered as trusted.
        _smuggle(
            registry,
            payload,
            {"trusted_types": ["sklearn.datasets.get_data_home"]},
            trusted=False,
        )
        with pytest.raises(UnsafeFormatError, match="get_data_home") as caught:
            registry.load_model("m", 1)
        assert "\n" not in str(caught.value)
    assert not marker.exists()


def test_zip_bomb_is_refused_before_expanding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.skops"
    bomb.write_bytes(_hostile.zip_bomb())
    assert bomb.stat().st_size < 1024**2  # a small file...
    with pytest.raises(InputError, match="zip bomb"):  # ...that would expand to 64 MiB
        read_model_file(bomb)


def test_mlflow_import_checks_the_files_it_names(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    marker = tmp_path / "marker"
    outside = tmp_path / "outside.skops"
    outside.write_bytes(_hostile.skops_payloads(marker)["sklearn-testing-function"])
    cases = {
        "payload": ("model.skops", outside.read_bytes()),
        "escape": ("../outside.skops", None),
        "absolute": (str(outside), None),
    }
    for name, (relative, data) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        if data is not None:
            (folder / relative).write_bytes(data)
        (folder / "MLmodel").write_text(
            "flavors:\n"
            "  sklearn:\n"
            f"    pickled_model: {json.dumps(relative)}\n"
            "    serialization_format: skops\n"
            "    sklearn_version: 1.5.0\n"
        )
        with (
            Registry(root=tmp_path / f"reg-{name}") as registry,
            pytest.raises(InputError) as caught,
        ):
            registry.register("m", folder, actor="attacker")
        assert "\n" not in str(caught.value)
        assert name != "payload" or "trusted=True" in str(caught.value)
        assert name == "payload" or "not inside the model folder" in str(caught.value)
    assert not marker.exists()


# -- what still loads without trusted=True -------------------------------------------------------


def test_reviewed_types_are_classes_from_no_testing_module() -> None:
    from sklearn.base import BaseEstimator

    assert reviewed_types() == frozenset(REVIEWED_TYPES)
    for name in REVIEWED_TYPES:
        module, _, attribute = name.rpartition(".")
        obj = getattr(importlib.import_module(module), attribute)
        assert isinstance(obj, type), f"{name} is not a class"
        assert "test" not in obj.__module__
        assert not attribute.startswith("_")
        assert module.split(".")[0] in ("numpy", "scipy", "sklearn")
        if issubclass(obj, BaseEstimator):
            assert name in PUBLIC_HOMES
        home = PUBLIC_HOMES.get(name)
        if home is not None:
            assert getattr(importlib.import_module(home), attribute) is obj
    # Functions are never reviewed, whatever module they live in.
    from watchkeeper.registry._safety import refused_types

    assert refused_types(
        ["sklearn.datasets.get_data_home", "sklearn.feature_selection.f_classif"]
    ) == ["sklearn.datasets.get_data_home", "sklearn.feature_selection.f_classif"]


def _legit_models() -> dict[str, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def pipe(model: Any) -> Any:
        prep = ColumnTransformer(
            [
                ("num", Pipeline([("fill", SimpleImputer()), ("scale", StandardScaler())]), ["a"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["b"]),
            ]
        )
        return Pipeline([("prep", prep), ("model", model)])

    return {
        "logistic": pipe(LogisticRegression()),
        "gradient-boosting": pipe(GradientBoostingClassifier(n_estimators=5, random_state=0)),
        "hist-gradient-boosting": pipe(HistGradientBoostingClassifier(max_iter=5)),
        "hist-regressor": pipe(HistGradientBoostingRegressor(max_iter=5)),
        "random-forest": pipe(RandomForestClassifier(n_estimators=3, random_state=0)),
        "neighbours": pipe(KNeighborsClassifier(n_neighbors=3)),
    }


def test_legitimate_models_load_without_trust(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=120), "b": rng.choice(["x", "y", "z"], 120)})
    y = (X["a"] > 0).astype(int).to_numpy()
    with Registry(root=tmp_path / "reg") as registry:
        for name, model in _legit_models().items():
            model.fit(X, y)
            path = tmp_path / f"{name}.skops"
            sio.dump(model, path)
            version = registry.register(name, path, actor="a")
            assert not version.trusted
            loaded = registry.load_model(name, version.version)
            np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
            np.testing.assert_array_equal(read_model_file(path).predict(X), model.predict(X))


def test_a_trusted_registration_still_loads_foreign_types(tmp_path: Path) -> None:
    import lightgbm as lgb
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 3))
    pipe = make_pipeline(StandardScaler(), lgb.LGBMClassifier(n_estimators=3, verbose=-1))
    pipe.fit(X, (X[:, 0] > 0).astype(int))
    path = tmp_path / "lgb.skops"
    sio.dump(pipe, path)
    with Registry(root=tmp_path / "reg") as registry:
        with pytest.raises(UnsafeFormatError, match="lightgbm"):
            registry.register("p", path, actor="a")
        version = registry.register("p", path, trusted=True, actor="a")
        np.testing.assert_array_equal(registry.load_model("p", version.version).predict(X),
                                      pipe.predict(X))  # fmt: skip


def test_errors_are_watchkeeper_errors() -> None:
    assert issubclass(UnsafeFormatError, WatchkeeperError)
    assert issubclass(UnsafeFormatError, InputError)
