"""A model loaded from the registry, with one prediction interface for every format."""

from __future__ import annotations

from typing import Any

import numpy as np

from watchkeeper.registry._formats import Predictor
from watchkeeper.registry._records import ModelVersion

__all__ = ["LoadedModel"]


class LoadedModel:
    """A verified, loaded model version.

    Obtained from :meth:`Registry.load_model`; the artifact's sha256 was checked before any
    byte of it was deserialized.

    Parameters
    ----------
    version
        The registry record of the model.
    predictor
        The format-specific loaded model.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from watchkeeper.registry import Registry
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> clf = LogisticRegression().fit(X, np.where(X[:, 0] > 0, "yes", "no"))
    >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as registry:
    ...     _ = registry.register("m", clf, actor="a")
    ...     model = registry.load_model("m", 1)
    >>> model
    LoadedModel('m', version=1, format='skops')
    >>> model.classes, model.predict_proba(X[:1]).shape
    (('no', 'yes'), (1, 2))
    """

    def __init__(self, version: ModelVersion, predictor: Predictor) -> None:
        self.version = version
        self._predictor = predictor

    @property
    def native(self) -> Any:
        """The underlying object (estimator, booster, onnxruntime session, pyfunc model)."""
        return self._predictor.native

    @property
    def classes(self) -> tuple[Any, ...] | None:
        """Class labels in :meth:`predict_proba` column order (``None`` unless a classifier)."""
        return self._predictor.classes

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for the rows of ``X`` (labels for classifiers)."""
        return self._predictor.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities for the rows of ``X``, one column per class."""
        return self._predictor.predict_proba(X)

    def __repr__(self) -> str:
        v = self.version
        return f"LoadedModel({v.name!r}, version={v.version}, format={v.format!r})"
