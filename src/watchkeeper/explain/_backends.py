"""The SHAP (and LIME) algorithms behind :class:`~watchkeeper.explain.Explainer`.

Each backend turns a float matrix of rows (see :class:`~watchkeeper.explain._frame.FrameCodec`)
into ``(attributions, base values)``: one row of per-feature attributions and one base value
per explained row. SHAP and LIME are imported lazily (extras ``explain`` and ``lime``).

- :class:`TreeBackend`: TreeSHAP. Path-dependent (no background: it uses the trees' own
  training cover, is exact and fast) for regressors and for class margins or forest
  probabilities; interventional against the background where a booster's probability is
  asked for (``model_output="probability"`` needs it).
- :class:`LinearBackend`: exact interventional SHAP of a linear model,
  ``coef * (x - mean(background))``.
- :class:`SamplingBackend`: the model-agnostic Permutation (or Partition) explainer on the
  raw features, seeded; its attributions add up exactly to the output minus the mean output
  on the background.
- :class:`LimeBackend`: LIME's local linear surrogate per row; its weights do not add up to
  the prediction (LIME is not a Shapley method), which :attr:`Explanation.additivity_error`
  shows.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper._extras import require
from watchkeeper.exceptions import InputError

__all__ = [
    "LimeBackend",
    "LinearBackend",
    "SamplingBackend",
    "Space",
    "TreeBackend",
    "load_shap",
]

Attributions = tuple[NDArray[np.float64], NDArray[np.float64]]
#: Rows per TreeSHAP call: bounds memory and keeps SHAP's progress bar (shown after 10 s)
#: from ever starting.
_CHUNK = 2_000


def load_shap() -> ModuleType:
    """Import shap (extra ``explain``) without its import-time warnings."""
    with warnings.catch_warnings():
        # shap imports matplotlib, which warns about deprecated settings on import.
        warnings.simplefilter("ignore")
        return require("shap", extra="explain", purpose="SHAP explanations")


def _dense(Z: Any) -> NDArray[np.float64]:
    if hasattr(Z, "toarray"):
        Z = Z.toarray()
    elif hasattr(Z, "to_numpy"):
        Z = Z.to_numpy()
    return np.asarray(Z, dtype=np.float64)


def _group_matrix(groups: Sequence[int], n_features: int) -> NDArray[np.float64]:
    """``G`` with ``G[k, j] = 1`` when transformed column ``k`` comes from input ``j``."""
    G = np.zeros((len(groups), n_features))
    G[np.arange(len(groups)), np.asarray(groups, dtype=np.int64)] = 1.0
    return G


def _pick(values: Any, expected: Any, class_index: int | None, n_classes: int) -> Attributions:
    """One output's attributions and base value from SHAP's per-output shapes."""
    v = np.asarray(values, dtype=np.float64)
    e = np.atleast_1d(np.asarray(expected, dtype=np.float64))
    if v.ndim == 3:  # (rows, features, outputs)
        k = 0 if class_index is None else class_index
        return v[:, :, k], np.full(v.shape[0], e[k] if e.size > k else e[0])
    base = np.full(v.shape[0], e[0])
    if n_classes == 2 and class_index == 0:
        return -v, -base  # one margin for two classes: that of the second class
    return v, base


@dataclass(frozen=True)
class Space:
    """Where the final estimator of a pipeline works, and how its attributions map back.

    ``transform`` turns encoded input rows into the estimator's input; transformed column
    ``k`` comes from input feature ``groups[k]`` (of ``n_features``); ``class_index`` and
    ``n_classes`` pick the explained output of a classifier.
    """

    transform: Callable[[NDArray[np.float64]], Any]
    groups: Sequence[int]
    n_features: int
    class_index: int | None
    n_classes: int

    def inputs(self, Z: NDArray[np.float64]) -> NDArray[np.float64]:
        """The estimator's (dense) input for encoded rows ``Z``."""
        return _dense(self.transform(Z))

    def project(self, raw: Any, expected: Any) -> Attributions:
        """Attributions of the explained output, summed into the input features."""
        v, b = _pick(raw, expected, self.class_index, self.n_classes)
        return v @ _group_matrix(self.groups, self.n_features), b


class TreeBackend:
    """TreeSHAP on the final tree model, in the transformed space of a pipeline."""

    def __init__(
        self,
        final: Any,
        space: Space,
        *,
        interventional_background: NDArray[np.float64] | None = None,
    ) -> None:
        shap = load_shap()
        self.space = space
        self.interventional = interventional_background is not None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*TreeExplainer shap values output")
            if interventional_background is None:
                self.explainer = shap.TreeExplainer(
                    final, feature_perturbation="tree_path_dependent"
                )
            else:
                self.explainer = shap.TreeExplainer(
                    final,
                    data=space.inputs(interventional_background),
                    feature_perturbation="interventional",
                    model_output="probability",
                )

    @property
    def details(self) -> dict[str, Any]:
        """How the attributions were computed."""
        return {
            "algorithm": "TreeSHAP",
            "feature_perturbation": (
                "interventional" if self.interventional else "tree_path_dependent"
            ),
            "transformed_features": len(self.space.groups),
        }

    def __call__(self, Z: NDArray[np.float64]) -> Attributions:
        values, bases = [], []
        for start in range(0, len(Z), _CHUNK):
            Zt = self.space.inputs(Z[start : start + _CHUNK])
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*TreeExplainer shap values output")
                raw = self.explainer.shap_values(Zt, check_additivity=False)
            if isinstance(raw, list):  # older per-class lists
                raw = np.stack(raw, axis=-1)
            v, b = self.space.project(raw, self.explainer.expected_value)
            values.append(v)
            bases.append(b)
        return np.vstack(values), np.concatenate(bases)


class LinearBackend:
    """Exact SHAP of a linear model (interventional, independent features)."""

    def __init__(self, final: Any, space: Space, background: NDArray[np.float64]) -> None:
        shap = load_shap()
        self.space = space
        bg = space.inputs(background)
        self.explainer = shap.LinearExplainer(
            final, shap.maskers.Independent(bg, max_samples=len(bg))
        )

    @property
    def details(self) -> dict[str, Any]:
        """How the attributions were computed."""
        return {
            "algorithm": "LinearSHAP",
            "feature_perturbation": "interventional",
            "transformed_features": len(self.space.groups),
        }

    def __call__(self, Z: NDArray[np.float64]) -> Attributions:
        raw = self.explainer.shap_values(self.space.inputs(Z))
        return self.space.project(raw, self.explainer.expected_value)


class SamplingBackend:
    """shap's Permutation or Partition explainer on the raw features (seeded)."""

    def __init__(
        self,
        function: Callable[[NDArray[np.float64]], NDArray[np.float64]],
        background: NDArray[np.float64],
        *,
        kind: str,
        max_evals: int | None,
        random_state: int,
    ) -> None:
        shap = load_shap()
        n_features = background.shape[1]
        self.kind = kind
        # shap needs at least 2 p + 1 evaluations per row for one forward-backward permutation.
        self.max_evals = max(max_evals or 500, 2 * n_features + 1)
        if kind == "partition":
            masker = shap.maskers.Partition(background, max_samples=len(background))
            self.explainer = shap.explainers.Partition(function, masker)
        else:
            masker = shap.maskers.Independent(background, max_samples=len(background))
            self.explainer = shap.explainers.Permutation(function, masker, seed=random_state)

    @property
    def details(self) -> dict[str, Any]:
        """How the attributions were computed."""
        return {"algorithm": f"{self.kind.capitalize()}SHAP", "max_evals": self.max_evals}

    def __call__(self, Z: NDArray[np.float64]) -> Attributions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FutureWarning)
            out = self.explainer(Z, max_evals=self.max_evals, silent=True)
        values = np.asarray(out.values, dtype=np.float64)
        bases = np.asarray(out.base_values, dtype=np.float64).reshape(len(Z))
        return values, bases


class LimeBackend:
    """LIME's local linear surrogates (extra ``lime``), seeded."""

    def __init__(
        self,
        function: Callable[[NDArray[np.float64]], NDArray[np.float64]],
        background: NDArray[np.float64],
        feature_names: Sequence[str],
        categorical: dict[int, list[str]],
        *,
        num_samples: int,
        random_state: int,
    ) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lime = require("lime.lime_tabular", extra="lime", purpose="LIME explanations")
        if len(background) < 2:
            raise InputError("LIME needs at least 2 background rows to learn feature scales")
        self.function = function
        self.num_samples = num_samples
        self.random_state = random_state
        self.n_features = len(feature_names)
        self.explainer = lime.LimeTabularExplainer(
            background,
            mode="regression",
            feature_names=list(feature_names),
            categorical_features=sorted(categorical),
            categorical_names={j: list(v) for j, v in categorical.items()},
            discretize_continuous=True,
            random_state=random_state,
        )

    @property
    def details(self) -> dict[str, Any]:
        """How the attributions were computed."""
        return {"algorithm": "LIME", "num_samples": self.num_samples}

    def __call__(self, Z: NDArray[np.float64]) -> Attributions:
        values = np.zeros((len(Z), self.n_features))
        bases = np.zeros(len(Z))
        for i, row in enumerate(Z):
            # Seeded per row so that a row's explanation does not depend on the rows before.
            self.explainer.random_state = np.random.RandomState(self.random_state)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = self.explainer.explain_instance(
                    row,
                    self.function,
                    num_features=self.n_features,
                    num_samples=self.num_samples,
                )
            # In regression mode LIME files the explanation under label 1 (label 0 holds
            # the negated weights).
            for j, w in found.local_exp[1]:
                values[i, j] = w
            bases[i] = float(found.intercept[1])
        return values, bases
