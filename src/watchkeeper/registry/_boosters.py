"""LightGBM and XGBoost models in their own native file formats (no code runs on load).

Both are stored as the bare booster plus a flavor with the class labels, so a model saved
from the scikit-learn wrapper (``LGBMClassifier``, ``XGBClassifier``) predicts exactly as the
wrapper did, without unpickling the wrapper.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper._extras import require
from watchkeeper.exceptions import InputError, NotFittedError
from watchkeeper.registry._errors import UnsupportedFormatError
from watchkeeper.registry._formats import Packed, Predictor, output_kind_of
from watchkeeper.registry._safety import check_native_file

__all__ = ["BoosterPredictor", "LightGBMFormat", "XGBoostFormat"]

_LGB_CLASSIFIERS = {"binary", "multiclass", "multiclassova", "softmax", "ova", "ovr"}
_LGB_NON_REGRESSION = {"lambdarank", "rank_xendcg", "cross_entropy_lambda"}


class BoosterPredictor:
    """:class:`Predictor` over a booster's raw output and the recorded class labels.

    ``raw(X)`` gives probabilities of the positive class (binary, 1-D), per-class
    probabilities (multiclass, 2-D) or values (regression), which is what both libraries'
    scikit-learn wrappers turn into ``predict`` and ``predict_proba``.
    """

    def __init__(
        self,
        native: Any,
        raw: Callable[[Any], Any],
        *,
        kind: str,
        classes: list[Any] | None,
        probabilistic: bool = True,
    ) -> None:
        self.native = native
        self._raw = raw
        self._kind = kind
        self._classes = None if classes is None else tuple(classes)
        self._probabilistic = probabilistic

    @property
    def classes(self) -> tuple[Any, ...] | None:
        """Class labels in ``predict_proba`` column order, if a classifier."""
        return self._classes

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (classifiers) or values (other objectives)."""
        if self._kind != "classification" or self._classes is None:
            return np.asarray(self._raw(X))
        labels: np.ndarray = np.asarray(self._classes)
        if not self._probabilistic:
            index = np.asarray(self._raw(X)).astype(int)
        else:
            index = np.argmax(self.predict_proba(X), axis=1)
        return np.asarray(labels[index])

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per class in :attr:`classes` order."""
        if self._kind != "classification" or not self._probabilistic:
            raise InputError(
                "this model does not output class probabilities (objective is not a "
                "probabilistic classifier); use predict"
            )
        out = np.asarray(self._raw(X))
        if out.ndim == 1:
            return np.column_stack([1.0 - out, out])
        return out


class LightGBMFormat:
    """``lightgbm.Booster`` or a fitted ``LGBMModel``, stored as LightGBM's model text."""

    name = "lightgbm"

    def pack(self, model: Any, *, trusted: bool) -> Packed:
        """Serialize a LightGBM booster or scikit-learn wrapper."""
        lgb = require("lightgbm", extra="lightgbm", purpose="Storing LightGBM models")
        classes: list[Any] | None = None
        if isinstance(model, lgb.Booster):
            booster = model
        elif isinstance(model, lgb.LGBMModel):
            try:
                booster = model.booster_
            except Exception as exc:  # LightGBM raises its own NotFittedError type here.
                raise NotFittedError(
                    f"{type(model).__name__} is not fitted; call fit before registering"
                ) from exc
            if output_kind_of(model) == "classification":
                classes = np.asarray(model.classes_).tolist()
        else:
            raise UnsupportedFormatError(
                f"format 'lightgbm' needs a lightgbm.Booster or LGBMModel, got "
                f"{type(model).__name__}"
            )
        text = booster.model_to_string()
        objective, num_class = _lgb_header(text)
        kind = _lgb_kind(objective)
        if kind == "classification" and classes is None:
            classes = [0, 1] if num_class == 1 else list(range(num_class))
        flavor = {"objective": objective, "classes": classes, "class": _qualname(model)}
        return Packed(text.encode("utf-8"), kind, flavor)

    def read_file(self, path: Path, *, trusted: bool) -> Any:
        """Load a LightGBM model text file (first checked in a separate process)."""
        lgb = require("lightgbm", extra="lightgbm", purpose="Reading LightGBM models")
        data = path.read_bytes()
        check_native_file("lightgbm", data, repr(str(path)))
        return lgb.Booster(model_str=data.decode("utf-8"))

    def unpack(self, data: bytes, flavor: dict[str, Any], *, trusted: bool = False) -> Predictor:
        """Load a stored LightGBM model."""
        lgb = require("lightgbm", extra="lightgbm", purpose="Loading LightGBM models")
        booster = lgb.Booster(model_str=data.decode("utf-8"))
        return BoosterPredictor(
            booster,
            booster.predict,
            kind=_lgb_kind(str(flavor.get("objective", ""))),
            classes=flavor.get("classes"),
        )


def _lgb_header(text: str) -> tuple[str, int]:
    objective, num_class = "", 1
    for line in text.split("\n", 64)[:64]:
        if line.startswith("objective="):
            objective = line.removeprefix("objective=").split(" ")[0]
        elif line.startswith("num_class="):
            num_class = int(line.removeprefix("num_class="))
    return objective, num_class


def _lgb_kind(objective: str) -> str:
    if objective in _LGB_CLASSIFIERS:
        return "classification"
    if objective in _LGB_NON_REGRESSION or not objective:
        return "unknown"
    return "regression"


class XGBoostFormat:
    """``xgboost.Booster`` or a fitted ``XGBModel``, stored as XGBoost's UBJSON model."""

    name = "xgboost"

    def pack(self, model: Any, *, trusted: bool) -> Packed:
        """Serialize an XGBoost booster or scikit-learn wrapper."""
        xgb = require("xgboost", extra="xgboost", purpose="Storing XGBoost models")
        classes: list[Any] | None = None
        iteration_range = (0, 0)
        if isinstance(model, xgb.Booster):
            booster = model
        elif isinstance(model, xgb.XGBModel):
            try:
                booster = model.get_booster()
            except Exception as exc:  # xgboost raises sklearn's NotFittedError here.
                raise NotFittedError(
                    f"{type(model).__name__} is not fitted; call fit before registering"
                ) from exc
            if output_kind_of(model) == "classification":
                classes = np.asarray(model.classes_).tolist()
            # The wrapper predicts with the trees up to the best iteration when early stopping
            # ran; the bare booster would use all of them.
            best = (
                getattr(model, "best_iteration", None) if booster.attr("best_iteration") else None
            )
            if best is not None:
                iteration_range = (0, int(best) + 1)
        else:
            raise UnsupportedFormatError(
                f"format 'xgboost' needs an xgboost.Booster or XGBModel, got {type(model).__name__}"
            )
        objective, num_class = _xgb_objective(booster)
        kind = _xgb_kind(objective)
        if kind == "classification" and classes is None:
            classes = [0, 1] if num_class <= 1 else list(range(num_class))
        flavor = {
            "objective": objective,
            "classes": classes,
            "iteration_range": list(iteration_range),
            "class": _qualname(model),
        }
        return Packed(bytes(booster.save_raw("ubj")), kind, flavor)

    def read_file(self, path: Path, *, trusted: bool) -> Any:
        """Load an XGBoost model file (``.ubj`` or ``.json``; first checked in a separate
        process)."""
        xgb = require("xgboost", extra="xgboost", purpose="Reading XGBoost models")
        data = path.read_bytes()
        check_native_file("xgboost", data, repr(str(path)))
        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        return booster

    def unpack(self, data: bytes, flavor: dict[str, Any], *, trusted: bool = False) -> Predictor:
        """Load a stored XGBoost model."""
        xgb = require("xgboost", extra="xgboost", purpose="Loading XGBoost models")
        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        first, last = flavor.get("iteration_range", [0, 0])
        objective = str(flavor.get("objective", ""))

        def raw(X: Any) -> Any:
            return booster.inplace_predict(X, iteration_range=(int(first), int(last)))

        return BoosterPredictor(
            booster,
            raw,
            kind=_xgb_kind(objective),
            classes=flavor.get("classes"),
            probabilistic=objective != "multi:softmax",
        )


def _xgb_objective(booster: Any) -> tuple[str, int]:
    learner = json.loads(booster.save_config())["learner"]
    num_class = int(learner.get("learner_model_param", {}).get("num_class", "0") or 0)
    return str(learner["objective"]["name"]), num_class


def _xgb_kind(objective: str) -> str:
    if objective in ("binary:logistic", "multi:softprob", "multi:softmax"):
        return "classification"
    if objective.startswith(("reg:", "count:", "survival:")):
        return "regression"
    return "unknown"


def _qualname(model: object) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"
