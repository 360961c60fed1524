"""Import of MLflow models: a local model directory or a ``models:/`` / ``runs:/`` URI.

Where the MLflow model holds a file in a safe format (ONNX, skops, native LightGBM or
XGBoost) that file is imported as such, and MLflow is not needed to load it later. Flavors
that MLflow pickles are loaded once through MLflow, only with ``trusted=True``, and stored in
the best format the model object allows; anything else is kept whole as format ``mlflow``.
"""

from __future__ import annotations

import io
import re
import shutil
import tarfile
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper._extras import require
from watchkeeper.exceptions import InputError, WatchkeeperError
from watchkeeper.registry._errors import UnsafeFormatError, UnsupportedFormatError
from watchkeeper.registry._formats import (
    Packed,
    Predictor,
    SkopsFormat,
    format_for_object,
    get_format,
)
from watchkeeper.registry._safety import check_inside, check_native_file

__all__ = ["MlflowFormat", "MlflowImport", "import_mlflow", "is_mlflow_source"]

_URI = re.compile(r"^(models|runs):/")
_MODEL_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?$")
_XGB_WRAPPERS = {"XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor"}


def is_mlflow_source(model: object) -> bool:
    """Whether ``model`` names an MLflow model (URI or directory with an ``MLmodel`` file).

    Examples
    --------
    >>> is_mlflow_source("models:/churn/3"), is_mlflow_source("model.onnx")
    (True, False)
    """
    if isinstance(model, str) and _URI.match(model):
        return True
    return isinstance(model, str | Path) and (Path(model) / "MLmodel").is_file()


@dataclass(frozen=True)
class MlflowImport:
    """What an MLflow model brings: the packed artifact and the run's metadata."""

    format: str
    packed: Packed
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""


def import_mlflow(source: str | Path, *, trusted: bool) -> MlflowImport:
    """Convert an MLflow model into a watchkeeper artifact plus metadata.

    Examples
    --------
    >>> import_mlflow("/no/such/dir", trusted=False)
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: '/no/such/dir' is not an MLflow model...
    """
    if not is_mlflow_source(source):
        raise InputError(
            f"{str(source)!r} is not an MLflow model: expected a models:/ or runs:/ URI or a "
            "folder containing an MLmodel file"
        )
    mlflow = require("mlflow", extra="mlflow", purpose="Importing MLflow models")
    with tempfile.TemporaryDirectory(prefix="wk-mlflow-") as tmp:
        meta: dict[str, Any] = {"tags": {"mlflow.source": str(source)}}
        if isinstance(source, str) and _URI.match(source):
            meta = _run_metadata(mlflow, source)
            try:
                local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp))
            except Exception as exc:  # MlflowException and transport errors alike
                raise InputError(
                    f"cannot download MLflow model {source!r}: {str(exc).splitlines()[0]}; "
                    "check MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI and the name and version"
                ) from exc
        else:
            local = Path(source)
        try:
            name, packed = _convert(mlflow, local, trusted=trusted)
        except WatchkeeperError:
            raise
        except Exception as exc:  # whatever the flavor's loader raises
            raise UnsupportedFormatError(
                f"cannot import the MLflow model {str(source)!r}: "
                f"{(str(exc).splitlines() or [type(exc).__name__])[0]}"
            ) from exc
    return MlflowImport(
        name,
        packed,
        meta.get("metrics", {}),
        meta.get("params", {}),
        meta["tags"],
        meta.get("description", ""),
    )


def _run_metadata(mlflow: Any, uri: str) -> dict[str, Any]:
    tags = {"mlflow.source": uri}
    found = _MODEL_VERSION.match(uri)
    if found is None:
        return {"tags": tags}
    client = mlflow.MlflowClient()
    try:
        if found["version"]:
            version = client.get_model_version(found["name"], found["version"])
        else:
            version = client.get_model_version_by_alias(found["name"], found["alias"])
    except Exception as exc:
        raise InputError(
            f"MLflow has no model version {uri!r}: {str(exc).splitlines()[0]}; check "
            "MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI and the name and version"
        ) from exc
    tags.update({f"mlflow.tag.{k}": str(v) for k, v in (version.tags or {}).items()})
    meta: dict[str, Any] = {"tags": tags, "description": version.description or ""}
    if version.run_id:
        tags["mlflow.run_id"] = version.run_id
        run = client.get_run(version.run_id)
        meta["metrics"] = {k: float(v) for k, v in run.data.metrics.items()}
        meta["params"] = dict(run.data.params)
    return meta


def _convert(mlflow: Any, local: Path, *, trusted: bool) -> tuple[str, Packed]:
    flavors: dict[str, Any] = mlflow.models.Model.load(str(local)).flavors
    # Every file a flavor names must be a regular file inside the model folder.
    if "onnx" in flavors:
        path = check_inside(local, flavors["onnx"].get("data", ""), "the ONNX file")
        return "onnx", get_format("onnx").pack(path.read_bytes(), trusted=trusted)
    sklearn = flavors.get("sklearn", {})
    if sklearn.get("serialization_format") == "skops":
        skops = SkopsFormat()
        path = check_inside(local, sklearn.get("pickled_model", ""), "the skops file")
        model = skops.read_file(path, trusted=trusted)
        return "skops", skops.pack(model, trusted=trusted)
    lightgbm = flavors.get("lightgbm", {})
    if str(lightgbm.get("data", "")).endswith(".lgb"):
        fmt = get_format("lightgbm")
        path = check_inside(local, lightgbm["data"], "the LightGBM file")
        return "lightgbm", fmt.pack(fmt.read_file(path, trusted=trusted), trusted=trusted)
    if "xgboost" in flavors:
        xgb = require("xgboost", extra="xgboost", purpose="Importing MLflow XGBoost models")
        flavor = flavors["xgboost"]
        path = check_inside(local, flavor.get("data", ""), "the XGBoost file")
        data = path.read_bytes()
        check_native_file("xgboost", data, repr(str(path)))
        wrapper = str(flavor.get("model_class", "")).rsplit(".", 1)[-1]
        model = getattr(xgb, wrapper)() if wrapper in _XGB_WRAPPERS else xgb.Booster()
        model.load_model(bytearray(data))
        return "xgboost", get_format("xgboost").pack(model, trusted=trusted)
    if not trusted:
        raise UnsafeFormatError(
            f"this MLflow model (flavors: {', '.join(sorted(flavors))}) can only be loaded by "
            "unpickling it, which runs code from the artifact; pass trusted=True (--trusted) "
            "if you trust where it came from, or log it with an ONNX, skops, LightGBM or "
            "XGBoost native flavor"
        )
    for flavor_name in ("sklearn", "lightgbm"):
        if flavor_name in flavors:
            model = getattr(mlflow, flavor_name).load_model(str(local))
            try:
                name = format_for_object(model)
            except UnsupportedFormatError:
                name = "pickle"
            return name, get_format(name).pack(model, trusted=trusted)
    return "mlflow", MlflowFormat().pack(local, trusted=trusted)


class MlflowFormat:
    """A whole MLflow model directory, loaded through ``mlflow.pyfunc`` (trusted only)."""

    name = "mlflow"

    def pack(self, model: Any, *, trusted: bool) -> Packed:
        """Archive an MLflow model directory reproducibly (same files, same bytes)."""
        if not trusted:
            raise UnsafeFormatError(
                "a generic MLflow model is loaded by unpickling it; pass trusted=True "
                "(--trusted) if you trust where it came from"
            )
        root = Path(model)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            links = [p for p in root.rglob("*") if p.is_symlink()]
            if links:
                raise UnsafeFormatError(
                    f"the MLflow model folder holds a symbolic link ({str(links[0])!r}); "
                    "watchkeeper archives only regular files: replace it with the file itself"
                )
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                info = tarfile.TarInfo(path.relative_to(root).as_posix())
                info.size = path.stat().st_size
                info.mode = 0o644
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
        return Packed(buffer.getvalue(), "unknown", {})

    def read_file(self, path: Path, *, trusted: bool) -> Any:
        """The directory itself."""
        return path

    def unpack(self, data: bytes, flavor: dict[str, Any], *, trusted: bool = False) -> Predictor:
        """Unpack the archive and load it with ``mlflow.pyfunc`` (trusted versions only)."""
        if not trusted:
            raise UnsafeFormatError(
                "a generic MLflow model is loaded by unpickling it; it loads only for a "
                "version registered with trusted=True (--trusted)"
            )
        mlflow = require("mlflow", extra="mlflow", purpose="Loading MLflow models")
        folder = tempfile.mkdtemp(prefix="wk-mlflow-")
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
                archive.extractall(folder, filter="data")
            predictor = _PyfuncPredictor(mlflow.pyfunc.load_model(folder))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        # The model may read its files lazily: the folder lives as long as the predictor.
        weakref.finalize(predictor, shutil.rmtree, folder, ignore_errors=True)
        return predictor


class _PyfuncPredictor:
    def __init__(self, native: Any) -> None:
        self.native = native

    @property
    def classes(self) -> tuple[Any, ...] | None:
        return None

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.native.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        raise InputError("a generic MLflow pyfunc model only offers predict")
