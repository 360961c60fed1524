"""An outlier detector registered with a version: stored as JSON, verified on load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from watchkeeper.checks import OutlierDetector
from watchkeeper.exceptions import InputError
from watchkeeper.registry import ArtifactIntegrityError, Registry


def _reference(n: int = 1200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n), "plan": "a"})


def _model(reference: pd.DataFrame) -> LinearRegression:
    return LinearRegression().fit(reference[["x", "y"]], reference["x"])


def test_register_fits_stores_and_loads_the_detector(tmp_path: Path) -> None:
    reference = _reference()
    with Registry(root=tmp_path) as registry:
        v = registry.register(
            "m",
            _model(reference),
            reference=reference,
            outliers=OutlierDetector(method="isolation_forest", rate=0.02, n_estimators=10),
            actor="a",
        )
        plain = registry.register("m", _model(reference), reference=reference, actor="a")
        loaded = registry.load_outliers("m", v.version)
        assert registry.load_outliers("m", plain.version) is None
    entry = v.flavor["outliers"]
    assert (entry["method"], entry["rate"]) == ("isolation_forest", 0.02)
    # the same detector, fitted on the same reference with the same seed
    again = OutlierDetector(method="isolation_forest", rate=0.02, n_estimators=10).fit(reference)
    assert loaded.columns_ == ("x", "y")
    assert loaded.threshold_ == again.threshold_
    np.testing.assert_array_equal(loaded.score(reference), again.score(reference))
    # stored as plain JSON, content-addressed
    stored = (tmp_path / "artifacts").rglob(entry["sha256"])
    (path,) = list(stored)
    assert json.loads(path.read_bytes())["format"] == "watchkeeper.outliers/1"


def test_a_fitted_detector_is_stored_as_is_and_true_means_the_default(tmp_path: Path) -> None:
    reference = _reference()
    fitted = OutlierDetector(rate=0.05, columns=("x",)).fit(reference)
    with Registry(root=tmp_path) as registry:
        v1 = registry.register(
            "m", _model(reference), reference=reference, outliers=fitted, actor="a"
        )
        v2 = registry.register(
            "m", _model(reference), reference=reference, outliers=True, actor="a"
        )
        first, second = registry.load_outliers("m", v1.version), registry.load_outliers("m", 2)
    assert first.columns_ == ("x",)
    assert first.threshold_ == fitted.threshold_
    assert (second.method, second.rate, second.columns_) == ("mahalanobis", 0.01, ("x", "y"))
    assert v2.flavor["outliers"]["rate"] == 0.01


def test_tampered_detector_is_refused(tmp_path: Path) -> None:
    reference = _reference()
    with Registry(root=tmp_path) as registry:
        v = registry.register("m", _model(reference), reference=reference, outliers=True, actor="a")
        path = Path(registry.artifacts.locate(v.flavor["outliers"]["sha256"]))
        payload = json.loads(path.read_bytes())
        payload["threshold"] = 1e9  # would never flag anything
        path.write_bytes(json.dumps(payload).encode())
        with pytest.raises(ArtifactIntegrityError):
            registry.load_outliers("m", v.version)


def test_unusable_requests_are_refused_before_anything_is_stored(tmp_path: Path) -> None:
    reference = _reference()
    with Registry(root=tmp_path) as registry:
        from watchkeeper.data import Profile

        with pytest.raises(InputError, match="reference"):
            registry.register("m", _model(reference), outliers=True, actor="a")
        with pytest.raises(InputError, match="not a profile"):
            registry.register(
                "m",
                _model(reference),
                reference=Profile.from_data(reference),
                outliers=True,
                actor="a",
            )
        with pytest.raises(InputError, match="OutlierDetector"):
            registry.register(
                "m", _model(reference), reference=reference, outliers="yes", actor="a"
            )
        # a column named like the logged score would be overwritten by it
        clashing = reference.assign(_outlier_score=1.0)
        with pytest.raises(InputError, match="'_outlier_score' has the name the gateway logs"):
            registry.register("m", _model(reference), reference=clashing, outliers=True, actor="a")
        assert registry.list_models() == []


def test_the_register_command_opts_in_with_a_method_and_rate(tmp_path: Path) -> None:
    import skops.io as sio
    from typer.testing import CliRunner

    from watchkeeper.cli._models import app

    reference = _reference(400)[["x", "y"]]
    reference.to_csv(tmp_path / "reference.csv", index=False)
    sio.dump(_model(_reference(400)), tmp_path / "model.skops")
    base = ["--registry", f"sqlite:///{tmp_path / 'registry.db'}"]
    base += ["--artifacts", str(tmp_path / "artifacts")]
    result = CliRunner().invoke(
        app,
        [*base, "register", "m", str(tmp_path / "model.skops"), "--json", "--actor", "a",
         "--reference", str(tmp_path / "reference.csv"),
         "--outliers", "isolation_forest", "--outlier-rate", "0.05"],
    )  # fmt: skip
    assert result.exit_code == 0, (result.stdout, result.exception)
    assert json.loads(result.stdout)["flavor"]["outliers"]["method"] == "isolation_forest"
    with Registry(f"sqlite:///{tmp_path / 'registry.db'}", artifacts=tmp_path / "artifacts") as r:
        detector = r.load_outliers("m", 1)
    assert (detector.method, detector.rate, detector.columns_) == (
        "isolation_forest",
        0.05,
        ("x", "y"),
    )
    bad = CliRunner().invoke(
        app,
        [*base, "register", "m", str(tmp_path / "model.skops"), "--actor", "a",
         "--reference", str(tmp_path / "reference.csv"), "--outliers", "lof"],
    )  # fmt: skip
    assert bad.exit_code != 0
    assert "unknown outlier method" in (bad.stdout + bad.stderr)
