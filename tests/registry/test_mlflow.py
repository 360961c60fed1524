"""Import of MLflow models from folders and from a local file-based MLflow registry."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from watchkeeper.exceptions import InputError
from watchkeeper.registry import Registry, UnsafeFormatError, UnsupportedFormatError

with warnings.catch_warnings():
    # mlflow's own modules warn about their type hints at import time; not ours to fix.
    warnings.simplefilter("ignore", UserWarning)
    mlflow = pytest.importorskip("mlflow")
    for _flavor in ("lightgbm", "onnx", "pyfunc", "sklearn", "xgboost"):
        importlib.import_module(f"mlflow.{_flavor}")


# Declaring requirements skips MLflow's inference of them, which loads the model in a
# subprocess and takes seconds.
FAST: dict[str, Any] = {"pip_requirements": ["watchkeeper"]}


@pytest.fixture
def local_registry(tmp_path: Path) -> Iterator[Registry]:
    with Registry(f"sqlite:///{tmp_path / 'r.db'}", artifacts=tmp_path / "artifacts") as reg:
        yield reg


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_classification(n_samples=200, n_features=4, random_state=0)


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # MLflow 3 keeps the file store only behind this switch; it is what a serverless test
    # can use without the full mlflow package.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


def same(loaded: Any, native: Any, X: np.ndarray) -> None:
    np.testing.assert_array_equal(loaded.predict(X), native.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), native.predict_proba(X))


def test_sklearn_folder_in_skops_is_imported_safely(
    local_registry: Registry, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = data
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    folder = tmp_path / "model"
    mlflow.sklearn.save_model(pipe, str(folder), serialization_format="skops", **FAST)
    version = local_registry.register("m", str(folder), actor="a")
    assert (version.format, version.trusted) == ("skops", False)
    assert version.tags["mlflow.source"] == str(folder)
    same(local_registry.load_model("m", 1), pipe, X)


def test_pickled_sklearn_folder_needs_trust_and_is_stored_as_skops(
    local_registry: Registry, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = data
    clf = LogisticRegression().fit(X, y)
    folder = tmp_path / "pickled"
    mlflow.sklearn.save_model(clf, str(folder), serialization_format="cloudpickle", **FAST)
    with pytest.raises(UnsafeFormatError, match="unpickling"):
        local_registry.register("m", folder, actor="a")
    version = local_registry.register("m", folder, trusted=True, actor="a")
    assert version.format == "skops"
    same(local_registry.load_model("m", 1), clf, X)


def test_lightgbm_xgboost_and_onnx_folders(
    local_registry: Registry, data: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    import lightgbm as lgb
    from skl2onnx import to_onnx

    X, y = data
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), 5)
    mlflow.lightgbm.save_model(booster, str(tmp_path / "lgb"), **FAST)
    assert local_registry.register("lgb", tmp_path / "lgb", actor="a").format == "lightgbm"
    np.testing.assert_array_equal(
        local_registry.load_model("lgb", 1).predict_proba(X)[:, 1], booster.predict(X)
    )

    xgb = pytest.importorskip("xgboost")
    clf = xgb.XGBClassifier(n_estimators=5).fit(X, y)
    mlflow.xgboost.save_model(clf, str(tmp_path / "xgb"), **FAST)
    assert local_registry.register("xgb", tmp_path / "xgb", actor="a").format == "xgboost"
    same(local_registry.load_model("xgb", 1), clf, X)

    pytest.importorskip("onnx")
    proto = to_onnx(LogisticRegression().fit(X, y), X[:1].astype(np.float32))
    mlflow.onnx.save_model(proto, str(tmp_path / "onnx"), **FAST)
    assert local_registry.register("onnx", tmp_path / "onnx", actor="a").format == "onnx"
    assert local_registry.load_model("onnx", 1).predict(X).shape == (200,)


class Doubler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    # MLflow validates input against these hints (and warns when there are none).
    def predict(
        self, context: Any, model_input: list[list[float]], params: Any = None
    ) -> list[float]:
        return [2 * sum(row) for row in model_input]


def test_generic_pyfunc_is_kept_whole_only_when_trusted(
    local_registry: Registry, tmp_path: Path
) -> None:
    folder = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(str(folder), python_model=Doubler(), **FAST)
    with pytest.raises(UnsafeFormatError, match="trusted=True"):
        local_registry.register("f", folder, actor="a")
    version = local_registry.register("f", folder, trusted=True, actor="a")
    assert version.format == "mlflow"
    again = local_registry.register("f", folder, trusted=True, actor="a")
    assert again.artifact_sha256 == version.artifact_sha256  # reproducible archive
    rows = [[1.0, 2.0], [3.0, 4.0]]
    np.testing.assert_array_equal(local_registry.load_model("f", 1).predict(rows), [6.0, 14.0])


def test_broken_mlflow_folder_is_a_clear_error(local_registry: Registry, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: missing.pkl\n")
    with pytest.raises(UnsupportedFormatError, match="cannot import the MLflow model"):
        local_registry.register("b", folder, trusted=True, actor="a")
    assert local_registry.list_models() == []


def test_models_uri_brings_run_metrics_and_params(
    local_registry: Registry, data: tuple[np.ndarray, np.ndarray], tracking: str
) -> None:
    X, y = data
    clf = LogisticRegression(C=0.5).fit(X, y)
    with mlflow.start_run() as run:
        mlflow.log_metric("auc", 0.93)
        mlflow.log_param("C", 0.5)
        mlflow.sklearn.log_model(clf, name="model", registered_model_name="churn", **FAST)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("churn", "prod", "1")

    version = local_registry.register("churn", "models:/churn/1", actor="a", tags={"x": "y"})
    assert version.metrics == {"auc": 0.93}
    assert version.params == {"C": "0.5"}
    assert version.tags["mlflow.run_id"] == run.info.run_id
    assert version.tags["x"] == "y"
    same(local_registry.load_model("churn", 1), clf, X)

    by_alias = local_registry.register(
        "churn", "models:/churn@prod", metrics={"auc": 0.5}, actor="a"
    )
    assert by_alias.metrics == {"auc": 0.5}  # the caller's values win
    with pytest.raises(InputError, match="no model version"):
        local_registry.register("churn", "models:/churn/9", actor="a")
    assert [v.version for v in local_registry.list_versions("churn")] == [1, 2]
