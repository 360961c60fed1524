"""Every storage format round-trips with identical predictions, on both backends."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from watchkeeper.exceptions import NotFittedError
from watchkeeper.registry import Registry, UnsafeFormatError, UnsupportedFormatError


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=300, n_features=5, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def multiclass() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(
        n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=1
    )
    return X, y


def assert_same_classifier(loaded: Any, native: Any, X: Any) -> None:
    np.testing.assert_array_equal(loaded.predict(X), native.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), native.predict_proba(X))
    assert loaded.classes == tuple(np.asarray(native.classes_).tolist())


def test_skops_pipeline_with_mixed_columns(registry: Registry) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.normal(40, 10, 200), "plan": rng.choice(["a", "b", "c"], 200)})
    y = np.where((frame["age"] > 40) | (frame["plan"] == "a"), "churn", "stay")
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("num", StandardScaler(), ["age"]), ("cat", OneHotEncoder(), ["plan"])]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(frame, y)
    version = registry.register("churn", pipe, actor="a")
    assert (version.format, version.output_kind) == ("skops", "classification")
    assert version.flavor["trusted_types"] == []  # nothing outside scikit-learn
    assert_same_classifier(registry.load_model("churn", 1), pipe, frame)


def test_skops_regressor(registry: Registry, binary: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = binary
    forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, y)
    version = registry.register("reg", forest, actor="a")
    assert version.output_kind == "regression"
    # skops leaves scikit-learn's Tree off its default list. Tree is a reviewed class, so the
    # forest loads without trusted=True; the name is recorded with the version. A function of
    # the same namespace is never trusted (tests/registry/test_hostile_models.py).
    assert version.flavor["trusted_types"] == ["sklearn.tree._tree.Tree"]
    assert not version.trusted
    loaded = registry.load_model("reg", 1)
    np.testing.assert_array_equal(loaded.predict(X), forest.predict(X))
    assert loaded.classes is None
    with pytest.raises(Exception, match="predict_proba"):
        loaded.predict_proba(X)


def test_skops_untrusted_types_need_trust(
    registry: Registry, binary: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = binary
    pipe = make_pipeline(StandardScaler(), lgb.LGBMClassifier(n_estimators=5, verbose=-1)).fit(X, y)
    with pytest.raises(UnsafeFormatError, match=r"lightgbm.*trusted=True"):
        registry.register("p", pipe, actor="a")
    with pytest.raises(Exception, match="no model named"):
        registry.get_version("p")
    version = registry.register("p", pipe, trusted=True, actor="a")
    assert "lightgbm.sklearn.LGBMClassifier" in version.flavor["trusted_types"]
    assert_same_classifier(registry.load_model("p", 1), pipe, X)


def test_onnx_from_skl2onnx(registry: Registry, multiclass: tuple[np.ndarray, np.ndarray]) -> None:
    import onnxruntime as ort
    from skl2onnx import to_onnx

    X, y = multiclass
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    proto = to_onnx(pipe, X[:1].astype(np.float32))
    version = registry.register("onnx-model", proto, actor="a")
    assert (version.format, version.output_kind) == ("onnx", "classification")
    assert version.flavor["classes"] == [0, 1, 2]
    loaded = registry.load_model("onnx-model", 1)

    # Identical to running the original graph directly...
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    labels, probas = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32)})
    np.testing.assert_array_equal(loaded.predict(X), labels)
    expected = np.array([[row[c] for c in (0, 1, 2)] for row in probas])
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    # ...and to scikit-learn up to float32 arithmetic.
    np.testing.assert_allclose(loaded.predict_proba(X), pipe.predict_proba(X), atol=1e-4)
    assert (loaded.predict(X) == pipe.predict(X)).mean() > 0.99


def test_onnx_regressor_file(registry: Registry, tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 3))
    model = LinearRegression().fit(X, X @ [1.0, -2.0, 0.5])
    path = tmp_path / "lin.onnx"
    path.write_bytes(to_onnx(model, X[:1].astype(np.float32)).SerializeToString())
    version = registry.register("lin", str(path), actor="a")
    assert (version.format, version.output_kind) == ("onnx", "regression")
    got = registry.load_model("lin", 1).predict(X)
    assert got.shape == (50,)
    np.testing.assert_allclose(got, model.predict(X), rtol=1e-4, atol=1e-4)


def test_lightgbm_sklearn_wrapper(
    registry: Registry, multiclass: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = multiclass
    labels = np.array(["low", "mid", "high"])[y]
    clf = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, labels)
    version = registry.register("lgb", clf, actor="a")
    assert (version.format, version.output_kind) == ("lightgbm", "classification")
    assert_same_classifier(registry.load_model("lgb", 1), clf, X)


def test_lightgbm_booster_binary_and_file(
    registry: Registry, binary: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = binary
    booster = lgb.train(
        {"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), num_boost_round=10
    )
    registry.register("booster", booster, actor="a")
    loaded = registry.load_model("booster", 1)
    p = booster.predict(X)
    np.testing.assert_array_equal(loaded.predict_proba(X)[:, 1], p)
    np.testing.assert_array_equal(loaded.predict(X), (p > 0.5).astype(int))
    path = tmp_path / "model.lgb"
    booster.save_model(str(path))
    assert registry.register("booster", path, actor="a").format == "lightgbm"
    np.testing.assert_array_equal(registry.load_model("booster", 2).predict_proba(X)[:, 1], p)


def test_lightgbm_regression_booster(
    registry: Registry, binary: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = binary
    booster = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(X, y * 2.0), 5)
    version = registry.register("lgbr", booster, actor="a")
    assert version.output_kind == "regression"
    np.testing.assert_array_equal(registry.load_model("lgbr", 1).predict(X), booster.predict(X))


def test_xgboost_classifier_and_booster(
    registry: Registry, multiclass: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = multiclass
    clf = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y)
    version = registry.register("xgb", clf, actor="a")
    assert (version.format, version.output_kind) == ("xgboost", "classification")
    assert_same_classifier(registry.load_model("xgb", 1), clf, X)

    Xb, yb = X, (y == 1).astype(int)
    binary_clf = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(Xb, yb)
    registry.register("xgb", binary_clf, actor="a")
    assert_same_classifier(registry.load_model("xgb", 2), binary_clf, Xb)

    regressor = xgb.XGBRegressor(n_estimators=10).fit(X, y * 1.5)
    path = tmp_path / "reg.ubj"
    regressor.save_model(str(path))
    version = registry.register("xgbr", path, actor="a")
    assert (version.format, version.output_kind) == ("xgboost", "regression")
    np.testing.assert_array_equal(registry.load_model("xgbr", 1).predict(X), regressor.predict(X))


def test_xgboost_early_stopping_uses_best_iteration(
    registry: Registry, binary: tuple[np.ndarray, np.ndarray]
) -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = binary
    clf = xgb.XGBClassifier(n_estimators=200, early_stopping_rounds=3, learning_rate=0.5)
    clf.fit(X[:200], y[:200], eval_set=[(X[200:], y[200:])], verbose=False)
    assert clf.best_iteration < 199
    registry.register("xgb-es", clf, actor="a")
    assert_same_classifier(registry.load_model("xgb-es", 1), clf, X)


def test_pickle_only_when_trusted(
    registry: Registry, binary: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = binary
    clf = HistGradientBoostingClassifier(max_iter=5).fit(X, y)
    with pytest.raises(UnsafeFormatError, match="arbitrary code"):
        registry.register("pk", clf, format="pickle", actor="a")
    path = tmp_path / "model.joblib"
    joblib.dump(clf, path)
    with pytest.raises(UnsafeFormatError, match="trusted=True"):
        registry.register("pk", path, actor="a")
    with pytest.raises(Exception, match="no model named"):
        registry.get_version("pk")

    version = registry.register("pk", path, trusted=True, actor="a")
    assert (version.format, version.trusted) == ("pickle", True)
    assert_same_classifier(registry.load_model("pk", 1), clf, X)
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(clf))
    assert registry.register("pk", pkl, trusted=True, actor="a").version == 2
    assert_same_classifier(registry.load_model("pk", 2), clf, X)


def test_unsupported_objects_and_files(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match="safe format"):
        registry.register("x", {"weights": [1, 2]}, actor="a")
    with pytest.raises(UnsupportedFormatError, match="cannot pickle"):
        registry.register("x", lambda v: v, format="pickle", trusted=True, actor="a")
    weird = tmp_path / "model.bin"
    weird.write_bytes(b"\x00\x01")
    with pytest.raises(UnsupportedFormatError, match="suffix"):
        registry.register("x", weird, actor="a")
    with pytest.raises(UnsupportedFormatError, match="not a valid ONNX model"):
        registry.register("x", weird, format="onnx", actor="a")
    with pytest.raises(UnsupportedFormatError, match="unknown format"):
        registry.register("x", weird, format="tensorflow", actor="a")
    with pytest.raises(Exception, match="does not exist"):
        registry.register("x", tmp_path / "missing.onnx", actor="a")
    with pytest.raises(NotFittedError, match="fit"):
        registry.register("x", lgb.LGBMClassifier(), actor="a")
    assert registry.list_models() == []


def test_skops_file_registration(
    registry: Registry, binary: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = binary
    clf = LogisticRegression().fit(X, y)
    path = tmp_path / "clf.skops"
    sio.dump(clf, path)
    registry.register("f", path, actor="a")
    assert_same_classifier(registry.load_model("f", 1), clf, X)
