"""What kind of model is explained, and which quantity of it.

:class:`ModelView` unwraps a registry-loaded model, splits a scikit-learn ``Pipeline`` into
its preprocessing and its final estimator, recognises tree ensembles and linear models (the
two families with exact, fast SHAP algorithms) and says which output is explained: the
prediction of a regressor, a class probability, a class margin (log-odds), or ``predict``
for classifiers without ``predict_proba``.

Pipelines are explained in their **input** features. When the preprocessing maps every
transformed column back to exactly one input column (one-hot encoders, scalers, imputers,
pass-through, in a ``ColumnTransformer`` or a chain of them; see :func:`output_groups`), the
final tree or linear model is explained in the transformed space by its exact algorithm and
the attributions of the columns made from one input are summed into that input. Sums keep
additivity exactly (the attributions still add up to the prediction minus the expected
value). For a one-hot group the sum is the attribution of the raw feature with its dummy
columns treated as separate players, a close, widely used approximation of treating the
feature as one player, and the reason TreeSHAP on 10,000 rows of a pipeline takes seconds.
When the mapping cannot be recovered (polynomial features, PCA, custom transformers), the
model-agnostic Permutation explainer runs on the raw features instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from watchkeeper.exceptions import InputError

__all__ = ["ModelView", "Output", "output_groups"]

Output = Literal["auto", "probability", "margin"]

_SKLEARN_TREES = frozenset(
    {
        "DecisionTreeRegressor",
        "DecisionTreeClassifier",
        "ExtraTreeRegressor",
        "ExtraTreeClassifier",
        "RandomForestRegressor",
        "RandomForestClassifier",
        "ExtraTreesRegressor",
        "ExtraTreesClassifier",
        "GradientBoostingRegressor",
        "GradientBoostingClassifier",
        "HistGradientBoostingRegressor",
        "HistGradientBoostingClassifier",
    }
)
#: Trees whose raw TreeSHAP output is the class probability (leaves hold class shares).
_PROBABILITY_TREES = frozenset(
    {
        "DecisionTreeClassifier",
        "ExtraTreeClassifier",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
    }
)
_BOOSTER_TREES = {
    "lightgbm": frozenset({"LGBMRegressor", "LGBMClassifier", "LGBMRanker", "Booster"}),
    "xgboost": frozenset({"XGBRegressor", "XGBClassifier", "XGBRFRegressor", "XGBRFClassifier"}),
}
#: Transformers whose output names trace back to their inputs (``x`` or ``x_<suffix>``):
#: element-wise scalers and imputers, encoders that expand one column into several.
_NAME_TRACED = frozenset(
    {
        "StandardScaler",
        "MinMaxScaler",
        "MaxAbsScaler",
        "RobustScaler",
        "PowerTransformer",
        "QuantileTransformer",
        "OrdinalEncoder",
        "Binarizer",
        "SimpleImputer",
        "FunctionTransformer",
        "SplineTransformer",
        "KBinsDiscretizer",
        "OneHotEncoder",
        "TargetEncoder",
    }
)


def _family(estimator: Any) -> str:
    """``"tree"``, ``"linear"`` or ``"other"``."""
    kind = type(estimator)
    module = kind.__module__
    if module.startswith("sklearn.") and kind.__name__ in _SKLEARN_TREES:
        return "tree"
    for package, names in _BOOSTER_TREES.items():
        if module.startswith(package) and kind.__name__ in names:
            return "tree"
    if module.startswith("sklearn.linear_model") and hasattr(estimator, "coef_"):
        coef = np.asarray(estimator.coef_)
        if coef.ndim == 1 or coef.shape[0] == 1:
            return "linear"
    return "other"


def _step_groups(step: Any, n_inputs: int, names: Sequence[str]) -> list[int] | None:
    """For one fitted transformer: the input index of each output column, or ``None``."""
    if isinstance(step, str):
        if step == "passthrough":
            return list(range(n_inputs))
        return [] if step == "drop" else None
    kind = type(step).__name__
    if kind == "Pipeline":
        groups: list[int] | None = list(range(n_inputs))
        current = list(names)
        for _, sub in step.steps:
            if sub is None or sub == "passthrough":
                continue
            inner = _step_groups(sub, len(current), current)
            if inner is None or groups is None:
                return None
            groups = [groups[i] for i in inner]
            current = _names_out(sub, current, len(inner))
        return groups
    if kind == "ColumnTransformer":
        return _column_transformer_groups(step, names)
    try:
        out_names = [str(n) for n in step.get_feature_names_out(list(names))]
    except Exception:  # no names: only single-input transformers can be mapped
        return [0] * _n_outputs(step) if n_inputs == 1 and _n_outputs(step) else None
    if n_inputs == 1:
        return [0] * len(out_names)
    if kind not in _NAME_TRACED:
        return None
    if kind == "SimpleImputer" and getattr(step, "add_indicator", False):
        return None
    return _match_names(out_names, names)


def _n_outputs(step: Any) -> int:
    n = getattr(step, "n_features_out_", None)
    return int(n) if isinstance(n, int | np.integer) else 0


def _names_out(step: Any, names: Sequence[str], n_out: int) -> list[str]:
    try:
        return [str(n) for n in step.get_feature_names_out(list(names))]
    except Exception:
        return [f"f{i}" for i in range(n_out)]


def _match_names(out_names: Sequence[str], names: Sequence[str]) -> list[int] | None:
    """Each output name is an input name or ``<input>_<something>`` (longest input wins)."""
    order = sorted(range(len(names)), key=lambda i: -len(names[i]))
    groups = []
    for out in out_names:
        found = next((i for i in order if out == names[i] or out.startswith(f"{names[i]}_")), None)
        if found is None:
            return None
        groups.append(found)
    return groups


def _column_transformer_groups(ct: Any, names: Sequence[str]) -> list[int] | None:
    slices = getattr(ct, "output_indices_", None)
    inputs = getattr(ct, "_transformer_to_input_indices", None)
    if not isinstance(slices, dict) or not isinstance(inputs, dict):
        return None
    n_out = max((s.stop for s in slices.values()), default=0)
    groups = [-1] * n_out
    for name, transformer, _ in ct.transformers_:
        out = slices.get(name)
        idx = [int(i) for i in inputs.get(name, [])]
        if out is None or out.stop == out.start:
            continue
        inner = _step_groups(transformer, len(idx), [names[i] for i in idx])
        if inner is None or len(inner) != out.stop - out.start:
            return None
        for k, i in enumerate(inner):
            groups[out.start + k] = idx[i]
    return None if any(g < 0 for g in groups) else groups


def output_groups(prefix: Any, names: Sequence[str]) -> list[int] | None:
    """The input column each output column of a fitted preprocessing step is made from.

    ``None`` when some output depends on several inputs or cannot be traced.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.compose import ColumnTransformer
    >>> from sklearn.preprocessing import OneHotEncoder, StandardScaler
    >>> X = pd.DataFrame({"c": ["a", "b", "c"], "x": [1.0, 2.0, 3.0], "y": [0.0, 1.0, 0.0]})
    >>> ct = ColumnTransformer([("one_hot", OneHotEncoder(), ["c"]),
    ...                         ("scale", StandardScaler(), ["x", "y"])]).fit(X)
    >>> output_groups(ct, ["c", "x", "y"])
    [0, 0, 0, 1, 2]
    """
    return _step_groups(prefix, len(names), names)


def _positive_index(classes: Sequence[Any], target_class: Any) -> int:
    if target_class is None:
        return len(classes) - 1
    for i, c in enumerate(classes):
        if c == target_class or str(c) == str(target_class):
            return i
    raise InputError(
        f"target_class {target_class!r} is not a class of the model; its classes: "
        f"{[str(c) for c in classes][:20]}"
    )


@dataclass(frozen=True)
class ModelView:
    """A model seen by the explainers.

    ``model`` answers ``predict``/``predict_proba`` (a registry-loaded model keeps its own
    calling code); ``native`` is the estimator inspected; ``prefix`` the preprocessing of a
    pipeline (``None`` otherwise) and ``final`` its last step.
    """

    model: Any
    native: Any
    prefix: Any
    final: Any
    family: str
    classes: tuple[Any, ...] | None
    has_proba: bool

    @classmethod
    def of(cls, model: Any) -> ModelView:
        """Inspect ``model`` (an estimator, a pipeline or a registry ``LoadedModel``).

        Examples
        --------
        >>> from sklearn.ensemble import RandomForestRegressor
        >>> ModelView.of(RandomForestRegressor(n_estimators=2).fit([[0], [1]], [0, 1])).family
        'tree'
        """
        if not hasattr(model, "predict"):
            raise InputError(
                f"cannot explain a {type(model).__name__}: it has no predict method; pass a "
                "fitted model"
            )
        native = getattr(model, "native", model) if hasattr(model, "version") else model
        prefix, final = None, native
        steps = getattr(native, "steps", None)
        if type(native).__name__ == "Pipeline" and isinstance(steps, list) and steps:
            final = steps[-1][1]
            if len(steps) > 1:
                prefix = native[:-1]
        classes: tuple[Any, ...] | None = None
        found = getattr(model, "classes", None) if model is not native else None
        if found is None:
            found = getattr(native, "classes_", None)
        if found is not None and np.ndim(found) == 1:
            classes = tuple(found.tolist() if isinstance(found, np.ndarray) else found)
        has_proba = classes is not None and hasattr(model, "predict_proba")
        if has_proba and hasattr(native, "get_params") and not hasattr(native, "predict_proba"):
            has_proba = False  # scikit-learn hides predict_proba when unavailable
        return cls(model, native, prefix, final, _family(final), classes, has_proba)

    @property
    def is_classifier(self) -> bool:
        """Whether the model has classes."""
        return self.classes is not None

    @property
    def probability_trees(self) -> bool:
        """Whether TreeSHAP's raw output is the class probability (forests, single trees)."""
        return type(self.final).__name__ in _PROBABILITY_TREES

    def class_index(self, target_class: Any) -> int | None:
        """Index of the explained class (the last class unless ``target_class``)."""
        if self.classes is None:
            return None
        return _positive_index(self.classes, target_class)

    def function(self, output: str, class_index: int | None) -> Any:
        """The explained output as a function of model input: rows -> one number each."""
        model = self.model
        if output == "probability":
            assert class_index is not None

            def proba(X: Any) -> NDArray[np.float64]:
                return np.asarray(model.predict_proba(X), dtype=np.float64)[:, class_index]

            return proba
        if output == "margin":
            return self.margin_function(class_index)

        def predict(X: Any) -> NDArray[np.float64]:
            raw = np.asarray(model.predict(X))
            try:
                return raw.astype(np.float64).reshape(len(raw), -1)[:, 0]
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"the model predicts non-numeric values ({raw[:3].tolist()}) and has no "
                    "predict_proba, so there is no number to explain; use a model with "
                    "predict_proba or numeric labels"
                ) from exc

        return predict

    def margin_function(self, class_index: int | None) -> Any:
        """The class margin (log-odds, decision function) of ``class_index``."""
        native = self.native
        module = type(self.final).__module__
        n_classes = len(self.classes or ())

        def margin(X: Any) -> NDArray[np.float64]:
            if hasattr(native, "decision_function"):
                raw = np.asarray(native.decision_function(X), dtype=np.float64)
            elif module.startswith("lightgbm"):
                raw = np.asarray(native.predict(X, raw_score=True), dtype=np.float64)
            elif module.startswith("xgboost"):
                raw = np.asarray(native.predict(X, output_margin=True), dtype=np.float64)
            else:
                raise InputError(
                    f"{type(self.final).__name__} has no margin (decision function); explain "
                    "output='probability' instead"
                )
            if raw.ndim == 2 and raw.shape[1] > 1:
                return raw[:, class_index]
            raw = raw.reshape(-1)
            # One margin for two classes: the log-odds of the second class.
            return raw if n_classes < 2 or class_index == 1 else -raw

        return margin

    def describe(self, output: str, class_index: int | None) -> str:
        """Words for the explained quantity."""
        if output == "probability":
            return f"probability of class {self.class_label(class_index)!r}"
        if output == "margin":
            return f"margin (log-odds) of class {self.class_label(class_index)!r}"
        return "prediction"

    def class_label(self, class_index: int | None) -> str | None:
        """The explained class as text."""
        if self.classes is None or class_index is None:
            return None
        return str(self.classes[class_index])
