"""Model storage formats: what can be saved, how, and how it is loaded back.

Each format turns a model into bytes plus a small JSON ``flavor`` (class labels, objective,
trusted types...) and back into a :class:`Predictor` with the same ``predict`` /
``predict_proba`` whatever the format. Safe formats (skops, ONNX, native LightGBM and XGBoost
files) never execute code from the artifact; ``pickle`` does and needs ``trusted=True``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from watchkeeper._extras import require
from watchkeeper.exceptions import InputError
from watchkeeper.registry._errors import UnsafeFormatError, UnsupportedFormatError
from watchkeeper.registry._safety import check_archive, check_regular_file, refused_types

__all__ = [
    "FORMAT_NAMES",
    "ModelFormat",
    "Packed",
    "Predictor",
    "format_for_file",
    "format_for_object",
    "get_format",
    "output_kind_of",
    "read_model_file",
]

#: Every format name, safe ones first.
FORMAT_NAMES = ("skops", "onnx", "lightgbm", "xgboost", "mlflow", "pickle")

_SUFFIXES = {
    ".skops": "skops",
    ".onnx": "onnx",
    ".lgb": "lightgbm",
    ".ubj": "xgboost",
    ".xgb": "xgboost",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".joblib": "pickle",
}

_SAFER = (
    "safe alternatives: skops for scikit-learn, ONNX, native LightGBM or XGBoost files; or, if "
    "you trust where the model came from, pass trusted=True (--trusted) to store it as pickle"
)


@dataclass(frozen=True)
class Packed:
    """A model serialized for storage."""

    data: bytes
    output_kind: str
    flavor: dict[str, Any] = field(default_factory=dict)


class Predictor(Protocol):
    """A loaded model with a uniform prediction interface."""

    native: Any

    @property
    def classes(self) -> tuple[Any, ...] | None: ...
    def predict(self, X: Any) -> np.ndarray: ...
    def predict_proba(self, X: Any) -> np.ndarray: ...


class ModelFormat(Protocol):
    """One storage format."""

    name: str

    def pack(self, model: Any, *, trusted: bool) -> Packed: ...
    def read_file(self, path: Path, *, trusted: bool) -> Any: ...
    def unpack(
        self, data: bytes, flavor: dict[str, Any], *, trusted: bool = False
    ) -> Predictor: ...


def _modules(model: object) -> list[str]:
    return [cls.__module__ for cls in type(model).__mro__]


def _from(model: object, package: str) -> bool:
    # Looking at module names avoids importing lightgbm, xgboost or onnx just to ask.
    return any(m == package or m.startswith(package + ".") for m in _modules(model))


def output_kind_of(model: object) -> str:
    """``classification``, ``regression`` or ``unknown`` for a model object.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression, LogisticRegression
    >>> output_kind_of(LogisticRegression()), output_kind_of(LinearRegression())
    ('classification', 'regression')
    """
    from sklearn.base import BaseEstimator, is_classifier, is_regressor

    if isinstance(model, BaseEstimator):
        if is_classifier(model):
            return "classification"
        if is_regressor(model):
            return "regression"
        return "unknown"
    if hasattr(model, "predict_proba"):
        return "classification"
    return "unknown"


def format_for_object(model: object) -> str:
    """Name of the safe format a model object is stored in by default.

    Examples
    --------
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> format_for_object(DecisionTreeClassifier())
    'skops'
    >>> format_for_object(lambda x: x)
    Traceback (most recent call last):
    ...
    watchkeeper.registry._errors.UnsupportedFormatError: cannot store an object of type ...
    """
    if _from(model, "lightgbm"):
        return "lightgbm"
    if _from(model, "xgboost"):
        return "xgboost"
    if _from(model, "onnx"):
        return "onnx"
    if _from(model, "sklearn"):
        return "skops"
    raise UnsupportedFormatError(
        f"cannot store an object of type {type(model).__module__}.{type(model).__qualname__} "
        f"in a safe format; {_SAFER}"
    )


def format_for_file(path: Path) -> str:
    """Name of the format of a model file, from its suffix.

    Examples
    --------
    >>> format_for_file(Path("model.onnx"))
    'onnx'
    """
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise UnsupportedFormatError(
            f"cannot tell the format of {str(path)!r} from its suffix; name it "
            f"{', '.join(sorted(_SUFFIXES))} or pass format= (--format) with one of "
            f"{', '.join(FORMAT_NAMES)}"
        )
    return found


def get_format(name: str) -> ModelFormat:
    """The format called ``name``.

    Examples
    --------
    >>> get_format("skops").name
    'skops'
    """
    # Imported here: each module pulls its heavy library only when that format is used.
    if name == "skops":
        return SkopsFormat()
    if name == "pickle":
        return PickleFormat()
    if name == "onnx":
        from watchkeeper.registry._onnx import OnnxFormat

        return OnnxFormat()
    if name in ("lightgbm", "xgboost"):
        from watchkeeper.registry._boosters import LightGBMFormat, XGBoostFormat

        return LightGBMFormat() if name == "lightgbm" else XGBoostFormat()
    if name == "mlflow":
        from watchkeeper.registry._mlflow import MlflowFormat

        return MlflowFormat()
    raise UnsupportedFormatError(
        f"unknown model format {name!r}; choose one of {', '.join(FORMAT_NAMES)}"
    )


def read_model_file(path: str | Path, *, format: str | None = None, trusted: bool = False) -> Any:
    """Load a model file with the checks of registration (safe types only unless ``trusted``).

    Parameters
    ----------
    path
        A regular file (not a symbolic link): ``.skops``, ``.onnx``, ``.lgb``, ``.ubj``, or
        ``.pkl``/``.joblib`` with ``trusted=True``.
    format
        The format, when the suffix does not tell it.
    trusted
        Vouch for a file whose loading may run code from it.

    Examples
    --------
    >>> import tempfile
    >>> import skops.io as sio
    >>> from sklearn.dummy import DummyRegressor
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "m.skops"
    ...     sio.dump(DummyRegressor().fit([[0]], [2.0]), path)
    ...     read_model_file(path).predict([[1]])
    array([2.])
    """
    file = Path(path)
    check_regular_file(file)
    return get_format(format or format_for_file(file)).read_file(file, trusted=trusted)


class EstimatorPredictor:
    """:class:`Predictor` around any object with scikit-learn's ``predict``/``predict_proba``."""

    def __init__(self, native: Any) -> None:
        self.native = native

    @property
    def classes(self) -> tuple[Any, ...] | None:
        """Class labels in ``predict_proba`` column order, if a classifier."""
        found = getattr(self.native, "classes_", None)
        return None if found is None else tuple(np.asarray(found).tolist())

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the wrapped model."""
        return np.asarray(self.native.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the wrapped model."""
        if not hasattr(self.native, "predict_proba"):
            raise InputError(
                f"{type(self.native).__name__} has no predict_proba; it is not a probabilistic "
                "classifier, use predict"
            )
        return np.asarray(self.native.predict_proba(X))


class SkopsFormat:
    """scikit-learn estimators and pipelines in skops format (no code runs on load).

    skops refuses, on load, any type it does not know to be safe. Beyond its own list, only
    the classes reviewed in :data:`~watchkeeper.registry._safety.REVIEWED_TYPES` (internal
    data structures of scikit-learn estimators, such as their trees) are accepted; any
    other type (a LightGBM step inside a pipeline, and above all a function, which skops
    would call with arguments from the file) only when the registering caller passes
    ``trusted=True``. The accepted list is recorded with the version, and every load checks
    the artifact again against the review and that record.
    """

    name = "skops"

    def pack(self, model: Any, *, trusted: bool) -> Packed:
        """Serialize ``model`` with skops."""
        sio = require("skops.io", extra="skops", purpose="Storing scikit-learn models")
        try:
            data = sio.dumps(model)
        except (TypeError, AttributeError, ValueError) as exc:
            raise UnsupportedFormatError(
                f"skops cannot serialize {type(model).__name__}: {exc}; {_SAFER}"
            ) from exc
        untrusted = self._untrusted(data, trusted=trusted)
        return Packed(
            data,
            output_kind_of(model),
            {"class": _qualname(model), "trusted_types": untrusted},
        )

    def read_file(self, path: Path, *, trusted: bool) -> Any:
        """Load a ``.skops`` file for registration."""
        data = path.read_bytes()
        return self._load(data, self._untrusted(data, trusted=trusted, what=repr(str(path))))

    def unpack(self, data: bytes, flavor: dict[str, Any], *, trusted: bool = False) -> Predictor:
        """Load a stored skops artifact, trusting only reviewed types and, for a version
        registered with ``trusted=True``, the types recorded at registration."""
        untrusted = self._untrusted(
            data,
            trusted=False,
            accepted=frozenset(flavor.get("trusted_types", [])) if trusted else frozenset(),
            what="the stored skops artifact",
            remedy="register it again with trusted=True (--trusted) only if you trust its author",
        )
        return EstimatorPredictor(self._load(data, untrusted))

    @staticmethod
    def _load(data: bytes, untrusted: list[str]) -> Any:
        import skops.io as sio

        try:
            return sio.loads(data, trusted=untrusted)
        except Exception as exc:  # malformed content of an archive whose types passed
            raise UnsupportedFormatError(
                f"skops cannot load this file: {_first_line(exc)}; save the model again with "
                "skops.io.dump"
            ) from None

    @staticmethod
    def _untrusted(
        data: bytes,
        *,
        trusted: bool,
        accepted: frozenset[str] = frozenset(),
        what: str = "the skops file",
        remedy: str = "pass trusted=True (--trusted) only if you trust its author",
    ) -> list[str]:
        sio = require("skops.io", extra="skops", purpose="Reading skops files")
        check_archive(data, what)
        try:
            untrusted = sorted(sio.get_untrusted_types(data=data))
        except Exception as exc:  # a zip without a readable skops schema
            raise UnsupportedFormatError(
                f"{what} is not a skops file: {_first_line(exc)}; save the model with skops.io.dump"
            ) from None
        refused = refused_types(untrusted, accepted)
        if refused and not trusted:
            shown = ", ".join(name[:200] for name in refused[:10])
            more = f" and {len(refused) - 10} more" if len(refused) > 10 else ""
            raise UnsafeFormatError(
                f"{what} asks to load types that are not known to be safe: {shown}{more}. "
                f"Loading them may run code from the file; {remedy}"
            )
        return untrusted


class PickleFormat:
    """Any picklable model; loading runs code from the artifact, hence ``trusted=True``."""

    name = "pickle"

    def pack(self, model: Any, *, trusted: bool) -> Packed:
        """Pickle ``model`` (only with ``trusted=True``)."""
        _require_trust(trusted)
        try:
            data = pickle.dumps(model, protocol=5)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise UnsupportedFormatError(
                f"cannot pickle {type(model).__name__}: {exc}; {_SAFER}"
            ) from exc
        return Packed(data, output_kind_of(model), {"class": _qualname(model)})

    def read_file(self, path: Path, *, trusted: bool) -> Any:
        """Load a pickle or joblib file (only with ``trusted=True``)."""
        _require_trust(trusted)
        import joblib

        return joblib.load(path)

    def unpack(self, data: bytes, flavor: dict[str, Any], *, trusted: bool = False) -> Predictor:
        """Unpickle a stored artifact (its hash was verified by the caller)."""
        _require_trust(trusted)
        return EstimatorPredictor(pickle.loads(data))  # trusted at registration


def _require_trust(trusted: bool) -> None:
    if not trusted:
        raise UnsafeFormatError(
            "pickle and joblib files run arbitrary code when loaded, so watchkeeper stores "
            "them only when you pass trusted=True (--trusted) to vouch for their origin; "
            "safe alternatives: skops for scikit-learn, ONNX, native LightGBM or XGBoost files"
        )


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def _qualname(model: object) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"
