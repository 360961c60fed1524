"""Local explanations: per-row, per-feature attributions through SHAP (or LIME).

:class:`Explainer` follows scikit-learn: ``Explainer(model, ...)`` stores its settings,
``fit(background)`` samples the background deterministically and picks the algorithm,
``explain(X)`` returns an immutable :class:`Explanation`. :func:`explain` does both at once.

Which algorithm (``method="auto"``): TreeSHAP for tree ensembles (scikit-learn trees,
forests, gradient boosting and histogram gradient boosting, LightGBM, XGBoost), LinearSHAP
for linear models, the Permutation explainer for anything else — in the input features of
a pipeline (see :mod:`watchkeeper.explain._model` for how pipelines are handled).

Which output (``output="auto"``): a regressor's prediction; for classifiers, the
probability of the explained class (the last class unless ``target_class``) wherever an
exact algorithm exists in probability space (forests and single trees, which average class
shares, and the model-agnostic explainers), and the class **margin** (log-odds) for boosted
trees and linear classifiers, whose exact fast algorithms work in that space (a probability
is a monotone function of it). ``output="probability"`` forces probabilities: interventional
TreeSHAP for gradient boosting, LightGBM and XGBoost (slower: it is linear in the
background size), and the Permutation explainer for histogram gradient boosting (whose
interventional TreeSHAP in shap 0.51 does not add up) and linear classifiers. Classifiers
without ``predict_proba`` are explained through ``predict``, which must return numbers.
The explained quantity is stated in :attr:`Explanation.output_label`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from watchkeeper.exceptions import InputError, NotFittedError
from watchkeeper.explain._backends import (
    LimeBackend,
    LinearBackend,
    SamplingBackend,
    Space,
    TreeBackend,
)
from watchkeeper.explain._frame import FrameCodec, as_frame
from watchkeeper.explain._model import ModelView, Output, output_groups

__all__ = ["Explainer", "Explanation", "Method", "explain"]

Method = Literal["auto", "tree", "linear", "permutation", "partition", "lime"]
_METHODS = ("auto", "tree", "linear", "permutation", "partition", "lime")
_OUTPUTS = ("auto", "probability", "margin")


def _readonly(a: NDArray[Any]) -> NDArray[Any]:
    a.setflags(write=False)
    return a


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return str(v)


@dataclass(frozen=True, eq=False)
class Explanation:
    """Per-row attributions of one model output.

    ``values[i, j]`` is the contribution of feature ``j`` to row ``i``'s output;
    ``values[i].sum() + base_values[i] == predictions[i]`` up to
    :attr:`additivity_error` (exact for the SHAP methods, not for LIME). ``data`` holds the
    explained rows' feature values (objects), for display.

    Examples
    --------
    >>> e = Explanation(values=np.array([[1.0, -0.5]]), base_values=np.array([2.0]),
    ...                 predictions=np.array([2.5]), data=np.array([[3, "a"]], dtype=object),
    ...                 feature_names=("x", "c"), method="linear", output="prediction",
    ...                 output_label="prediction")
    >>> e.expected_value, e.additivity_error, e.contributions(0)
    (2.0, 0.0, [('x', 3, 1.0), ('c', 'a', -0.5)])
    """

    values: NDArray[np.float64]
    base_values: NDArray[np.float64]
    predictions: NDArray[np.float64]
    data: NDArray[Any]
    feature_names: tuple[str, ...]
    method: str
    output: str
    output_label: str
    target_class: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        """Number of explained rows."""
        return int(self.values.shape[0])

    @property
    def expected_value(self) -> float:
        """The mean output on the background (the base value of the SHAP methods)."""
        return float(np.mean(self.base_values)) if self.base_values.size else math.nan

    @property
    def additivity_error(self) -> float:
        """Largest ``|sum(values) + base - prediction|`` over the rows."""
        if not self.n_rows:
            return 0.0
        gap = self.values.sum(axis=1) + self.base_values - self.predictions
        return float(np.max(np.abs(gap)))

    def mean_abs(self) -> NDArray[np.float64]:
        """Mean absolute attribution per feature (the usual global importance)."""
        return np.asarray(np.abs(self.values).mean(axis=0), dtype=np.float64)

    def contributions(self, row: int) -> list[tuple[str, Any, float]]:
        """``(feature, value, attribution)`` of one row, largest ``|attribution|`` first."""
        items = [
            (name, _json_value(self.data[row, j]), float(self.values[row, j]))
            for j, name in enumerate(self.feature_names)
        ]
        return sorted(items, key=lambda t: -abs(t[2]))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (:meth:`from_dict` reads it back)."""
        return {
            "feature_names": list(self.feature_names),
            "method": self.method,
            "output": self.output,
            "output_label": self.output_label,
            "target_class": self.target_class,
            "expected_value": _json_value(self.expected_value),
            "additivity_error": _json_value(self.additivity_error),
            "values": self.values.tolist(),
            "base_values": self.base_values.tolist(),
            "predictions": self.predictions.tolist(),
            "data": [[_json_value(v) for v in row] for row in self.data.tolist()],
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Explanation:
        """Inverse of :meth:`to_dict`."""
        names = tuple(str(n) for n in payload["feature_names"])
        p = len(names)
        data = np.empty((len(payload["data"]), p), dtype=object)
        for i, row in enumerate(payload["data"]):
            data[i, :] = row
        return cls(
            values=_readonly(np.asarray(payload["values"], dtype=np.float64).reshape(-1, p)),
            base_values=_readonly(np.asarray(payload["base_values"], dtype=np.float64)),
            predictions=_readonly(np.asarray(payload["predictions"], dtype=np.float64)),
            data=_readonly(data),
            feature_names=names,
            method=str(payload["method"]),
            output=str(payload["output"]),
            output_label=str(payload["output_label"]),
            target_class=payload.get("target_class"),
            details=dict(payload.get("details", {})),
        )

    def head(self, n: int) -> Explanation:
        """The first ``n`` rows."""
        return Explanation(
            values=self.values[:n],
            base_values=self.base_values[:n],
            predictions=self.predictions[:n],
            data=self.data[:n],
            feature_names=self.feature_names,
            method=self.method,
            output=self.output,
            output_label=self.output_label,
            target_class=self.target_class,
            details=self.details,
        )


class Explainer:
    """Explains a model's output per row and per input feature.

    Parameters
    ----------
    model
        A fitted model with ``predict`` (scikit-learn estimator or ``Pipeline``, LightGBM,
        XGBoost, a registry ``LoadedModel``, or anything with ``predict`` and, for
        classifiers, ``classes_`` and ``predict_proba``).
    method
        ``"auto"`` (see the module notes), ``"tree"``, ``"linear"``, ``"permutation"``,
        ``"partition"`` or ``"lime"`` (extra ``lime``).
    output
        ``"auto"``, ``"probability"`` or ``"margin"`` for classifiers (see the module notes);
        ignored for regressors.
    target_class
        The class whose probability or margin is explained (default: the last class, the
        positive one of a binary classifier).
    max_background
        Most background rows kept; more are subsampled without replacement, seeded.
    max_evals
        Model evaluations per row for the Permutation/Partition explainers (default 500).
    lime_samples
        Perturbed samples per row for LIME.
    random_state
        Seed of the background sample and of the sampling explainers.

    Attributes
    ----------
    method_ : str
        The algorithm chosen by :meth:`fit`.
    output_ : str
        ``"prediction"``, ``"probability"`` or ``"margin"``.
    feature_names_ : tuple of str
        The explained input features.
    background_ : pandas.DataFrame
        The background rows used.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))
    >>> model = LinearRegression().fit(X, X @ [2.0, -1.0])
    >>> explainer = Explainer(model).fit(X)
    >>> e = explainer.explain(X[:3])
    >>> explainer.method_, e.values.shape, e.additivity_error < 1e-9
    ('linear', (3, 2), True)
    >>> mean = explainer.background_.to_numpy().mean(axis=0)  # 100 seeded rows of X
    >>> bool(np.allclose(e.values, [2.0, -1.0] * (X[:3] - mean)))
    True
    """

    def __init__(
        self,
        model: Any,
        *,
        method: Method = "auto",
        output: Output = "auto",
        target_class: Any = None,
        max_background: int = 100,
        max_evals: int | None = None,
        lime_samples: int = 1000,
        random_state: int = 0,
    ) -> None:
        self.model = model
        self.method = method
        self.output = output
        self.target_class = target_class
        self.max_background = max_background
        self.max_evals = max_evals
        self.lime_samples = lime_samples
        self.random_state = random_state

    # -- fitting -----------------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.method not in _METHODS:
            raise InputError(f"unknown method {self.method!r}; choose one of {_METHODS}")
        if self.output not in _OUTPUTS:
            raise InputError(f"unknown output {self.output!r}; choose one of {_OUTPUTS}")
        if isinstance(self.max_background, bool) or self.max_background < 1:
            raise InputError(f"max_background must be at least 1, got {self.max_background}")

    def _feature_names(self, view: ModelView) -> tuple[str, ...] | None:
        names = getattr(view.native, "feature_names_in_", None)
        if names is not None:
            return tuple(str(n) for n in names)
        return None

    def fit(self, background: Any) -> Explainer:
        """Sample the background (seeded) and choose the algorithm.

        Parameters
        ----------
        background
            Rows representing "typical" input (usually the training or reference data);
            a DataFrame, array, Arrow table or polars frame.
        """
        self._check_params()
        view = ModelView.of(self.model)
        frame = as_frame(background, self._feature_names(view))
        if len(frame) == 0:
            raise InputError("the background data has no rows; pass at least one")
        named = getattr(view.native, "feature_names_in_", None) is not None
        self.codec_ = FrameCodec(as_frame=named).fit(frame)
        if self.codec_.categorical_ and not named and view.prefix is None:
            raise InputError(
                f"columns {list(self.codec_.categorical_)[:5]} are not numeric but "
                f"{type(view.native).__name__} takes numbers; encode them (e.g. in a "
                "scikit-learn Pipeline) before explaining, or pass a model fitted on a DataFrame"
            )
        rng = np.random.default_rng(self.random_state)
        n = len(frame)
        keep = np.sort(rng.choice(n, size=min(n, self.max_background), replace=False))
        self.background_ = frame.iloc[keep].reset_index(drop=True)
        self._Z_background = self.codec_.encode(self.background_)
        self.feature_names_ = tuple(str(c) for c in frame.columns)
        self.view_ = view
        self.class_index_ = view.class_index(self.target_class)
        self.method_, self.output_ = self._resolve(view)
        self._backend = self._build(view)
        return self

    def _groups(self, view: ModelView) -> list[int] | None:
        """How the final estimator's inputs map to the explained features."""
        p = len(self.feature_names_)
        if view.prefix is None:
            return None if self.codec_.categorical_ else list(range(p))
        return output_groups(view.prefix, self.feature_names_)

    def _resolve(self, view: ModelView) -> tuple[str, str]:
        """``(method, output)`` from the settings and the model (see the module notes)."""
        requested, wanted = self.method, self.output
        exact = view.family if self._groups(view) is not None else "other"
        if requested in ("tree", "linear") and exact != requested:
            raise InputError(
                f"method={requested!r} needs a {requested} model (or a pipeline ending in one "
                "whose preprocessing maps each column to one input feature); this is a "
                f"{type(view.final).__name__}; use method='auto' or 'permutation'"
            )
        method = exact if requested == "auto" and exact != "other" else requested
        if method == "auto":
            method = "permutation"
        if not view.is_classifier:
            return method, "prediction"
        if not view.has_proba:
            if wanted == "probability":
                raise InputError(
                    f"{type(view.native).__name__} has no predict_proba, so probabilities "
                    "cannot be explained; use output='auto' (explains predict)"
                )
            if wanted == "margin" or method in ("tree", "linear"):
                return method, "margin"
            return method, "prediction"
        if method in ("tree", "linear"):
            if wanted == "auto":
                return method, "probability" if view.probability_trees else "margin"
            if wanted == "margin" and view.probability_trees:
                raise InputError(
                    f"{type(view.final).__name__} has no margin; use output='probability'"
                )
            needs_sampling = wanted == "probability" and (
                method == "linear" or type(view.final).__name__.startswith("HistGradient")
            )
            if needs_sampling:
                if requested != "auto":
                    raise InputError(
                        f"method={requested!r} cannot explain the probability of a "
                        f"{type(view.final).__name__} exactly; use output='margin' or "
                        "method='permutation'"
                    )
                return "permutation", "probability"
            return method, wanted
        return method, "probability" if wanted == "auto" else wanted

    def _transform(self, view: ModelView) -> Any:
        codec = self.codec_

        def transform(Z: NDArray[np.float64]) -> Any:
            X = codec.decode(Z)
            return X if view.prefix is None else view.prefix.transform(X)

        return transform

    def _function(self) -> Any:
        f = self.view_.function(self.output_, self.class_index_)
        codec = self.codec_

        def on_codes(Z: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.asarray(f(codec.decode(Z)), dtype=np.float64)

        return on_codes

    def _build(self, view: ModelView) -> Any:
        p = len(self.feature_names_)
        n_classes = len(view.classes or ())
        if self.method_ in ("tree", "linear"):
            groups = self._groups(view)
            assert groups is not None
            space = Space(self._transform(view), groups, p, self.class_index_, n_classes)
            if self.method_ == "linear":
                return LinearBackend(view.final, space, self._Z_background)
            interventional = self.output_ == "probability" and not view.probability_trees
            return TreeBackend(
                view.final,
                space,
                interventional_background=self._Z_background if interventional else None,
            )
        if self.method_ == "lime":
            categorical = {
                j: [str(v) for v in self.codec_.categories(c)]
                for j, c in enumerate(self.feature_names_)
                if c in self.codec_.categorical_
            }
            return LimeBackend(
                self._function(),
                self._Z_background,
                self.feature_names_,
                categorical,
                num_samples=self.lime_samples,
                random_state=self.random_state,
            )
        return SamplingBackend(
            self._function(),
            self._Z_background,
            kind=self.method_,
            max_evals=self.max_evals,
            random_state=self.random_state,
        )

    # -- explaining --------------------------------------------------------------------------

    def explain(self, X: Any) -> Explanation:
        """Attributions of every row of ``X`` (same features as the background)."""
        if not hasattr(self, "_backend"):
            raise NotFittedError(
                "this Explainer is not fitted yet; call fit(background) before explain(X)"
            )
        frame = as_frame(X, self.feature_names_)
        if len(frame) == 0:
            raise InputError("no rows to explain; pass at least one row")
        Z = self.codec_.encode(frame)
        try:
            values, bases = self._backend(Z)
            predictions = self._function()(Z)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(
                f"the model could not be evaluated on the explained rows "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}); pass rows "
                "with the same columns and types as the model's training data"
            ) from exc
        data = np.empty(frame.shape, dtype=object)
        data[:, :] = frame.to_numpy(dtype=object)
        view = self.view_
        return Explanation(
            values=_readonly(np.asarray(values, dtype=np.float64)),
            base_values=_readonly(np.asarray(bases, dtype=np.float64)),
            predictions=_readonly(np.asarray(predictions, dtype=np.float64)),
            data=_readonly(data),
            feature_names=self.feature_names_,
            method=self.method_,
            output=self.output_,
            output_label=view.describe(self.output_, self.class_index_),
            target_class=view.class_label(self.class_index_),
            details={**self._backend.details, "background_rows": len(self.background_)},
        )


def explain(
    model: Any,
    X: Any,
    *,
    background: Any = None,
    method: Method = "auto",
    output: Output = "auto",
    target_class: Any = None,
    max_background: int = 100,
    random_state: int = 0,
) -> Explanation:
    """Explain every row of ``X``: :class:`Explainer` fitted on ``background`` (default:
    ``X`` itself), then :meth:`Explainer.explain`.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 3))
    >>> model = RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0)
    >>> model = model.fit(X, X[:, 0] > 0)
    >>> e = explain(model, X[:5])
    >>> e.method, e.output_label, e.additivity_error < 1e-6
    ('tree', "probability of class 'True'", True)
    >>> int(np.argmax(e.mean_abs()))  # the model only needs the first feature
    0
    """
    explainer = Explainer(
        model,
        method=method,
        output=output,
        target_class=target_class,
        max_background=max_background,
        random_state=random_state,
    )
    return explainer.fit(X if background is None else background).explain(X)
