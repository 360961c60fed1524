"""Feature-selection suggestions: which features carry nothing the model could use.

Two views of each feature, each with its own noise measure:

- **permutation importance** (scikit-learn, through
  :func:`watchkeeper.explain.permutation_importance`): how much the model's score drops when
  the feature is shuffled, with a 95% t-interval over ``n_repeats`` shuffles. It says what
  *this model* uses; pass rows the model was not trained on, or an overfitted model's
  reliance on noise looks like importance.
- **mutual information** with the target (scikit-learn's ``mutual_info_classif`` /
  ``mutual_info_regression``, k-nearest-neighbour estimates): what the feature says about the
  target on its own, whatever the model. Its spread is taken over ``n_repeats`` seeds, and its
  noise level from ``n_null`` fits on a *permuted* target (where every feature is noise by
  construction): the ``null_quantile`` of those is the most a noise feature scores.

The rule: **drop** when both are indistinguishable from noise: the lower end of the importance
interval is at most ``importance_floor`` (``0``: the importance is not clearly positive; a
negative one means shuffling the feature even helped) *and* the mutual information
(mean over seeds) is at most the permuted-target quantile. Otherwise **keep**. Requiring both
keeps a feature that is informative but redundant (the model leans on a correlated twin, so
its importance is nil, yet its mutual information is high) and one the model uses in
interactions that mutual information alone misses.

These are suggestions only: nothing here changes a model. Check one with
:func:`watchkeeper.lifecycle.validate_feature_drop`, which refits without the features and
lets the validation gate judge the reduced model against the full one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.exceptions import InputError

__all__ = ["FeatureSuggestion", "FeatureSuggestions", "feature_suggestions"]

CHECK = "selection.suggestion"

# Integer-valued numeric features with at most this many distinct values count as discrete
# for mutual information (a contingency estimate rather than nearest neighbours).
_MAX_DISCRETE_LEVELS = 20


@dataclass(frozen=True, slots=True)
class FeatureSuggestion:
    """The evidence on one feature and the suggestion drawn from it.

    Examples
    --------
    >>> s = FeatureSuggestion("noise", "drop", 0.001, -0.002, 0.004, 0.0, 0.0, 0.003,
    ...                       "indistinguishable from noise")
    >>> s.to_dict()["suggestion"]
    'drop'
    """

    feature: str
    suggestion: Literal["keep", "drop"]
    importance: float
    importance_lower: float
    importance_upper: float
    mutual_information: float
    mutual_information_std: float
    mutual_information_null: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form."""
        return {
            "feature": self.feature,
            "suggestion": self.suggestion,
            "importance": _finite(self.importance),
            "importance_lower": _finite(self.importance_lower),
            "importance_upper": _finite(self.importance_upper),
            "mutual_information": _finite(self.mutual_information),
            "mutual_information_std": _finite(self.mutual_information_std),
            "mutual_information_null": _finite(self.mutual_information_null),
            "reason": self.reason,
        }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class FeatureSuggestions:
    """Suggestions for every feature, in the model's feature order, with the settings used.

    Examples
    --------
    >>> keep = FeatureSuggestion("x", "keep", 0.4, 0.3, 0.5, 0.6, 0.01, 0.01, "informative")
    >>> s = FeatureSuggestions((keep,), "r2", 0.9, 500, 5, 0.0, 0.95, "rule")
    >>> s.keep, s.drop
    (('x',), ())
    """

    suggestions: tuple[FeatureSuggestion, ...]
    scoring: str
    baseline_score: float
    n_rows: int
    n_repeats: int
    importance_floor: float
    null_quantile: float
    rule: str

    @property
    def drop(self) -> tuple[str, ...]:
        """Features suggested for dropping."""
        return tuple(s.feature for s in self.suggestions if s.suggestion == "drop")

    @property
    def keep(self) -> tuple[str, ...]:
        """Features suggested for keeping."""
        return tuple(s.feature for s in self.suggestions if s.suggestion == "keep")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form."""
        return {
            "suggestions": [s.to_dict() for s in self.suggestions],
            "drop": list(self.drop),
            "keep": list(self.keep),
            "scoring": self.scoring,
            "baseline_score": _finite(self.baseline_score),
            "n_rows": self.n_rows,
            "n_repeats": self.n_repeats,
            "importance_floor": self.importance_floor,
            "null_quantile": self.null_quantile,
            "rule": self.rule,
        }

    def to_checks(self) -> list[CheckResult]:
        """One ``selection.suggestion`` result per feature (subject the feature): ``warn``
        for a suggested drop, ``ok`` for keep; ``value`` is the permutation importance with
        its interval, ``details`` hold the mutual information and the suggestion."""
        return [
            CheckResult(
                check=CHECK,
                subject=s.feature,
                status=Status.WARN if s.suggestion == "drop" else Status.OK,
                reason=s.reason,
                value=s.importance,
                threshold=self.importance_floor,
                lower=s.importance_lower,
                upper=s.importance_upper,
                rule=self.rule,
                details={
                    k: v
                    for k, v in s.to_dict().items()
                    if k.startswith("mutual") or k == "suggestion"
                },
            )
            for s in self.suggestions
        ]


def _encode(frame: Any) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Numeric matrix for mutual information and which columns are discrete.

    Non-numeric columns become category codes (missing its own code); numeric missing values
    are filled with the column median.
    """
    import pandas as pd

    columns, discrete = [], []
    for name in frame.columns:
        col = frame[name]
        dtype = col.dtype
        numeric = pd.api.types.is_numeric_dtype(dtype) and not isinstance(
            dtype, pd.CategoricalDtype
        )
        if numeric and not pd.api.types.is_bool_dtype(dtype):
            x = col.to_numpy(dtype=np.float64, na_value=np.nan)
            finite = np.isfinite(x)
            x = np.where(finite, x, np.median(x[finite]) if finite.any() else 0.0)
            levels = np.unique(x)
            columns.append(x)
            discrete.append(
                bool(np.all(levels == np.round(levels)) and levels.size <= _MAX_DISCRETE_LEVELS)
            )
        else:
            codes, _ = pd.factorize(col.astype(object), use_na_sentinel=True)
            columns.append(codes.astype(np.float64))
            discrete.append(True)
    return np.column_stack(columns), np.array(discrete, dtype=bool)


def _mutual_information(
    Z: NDArray[np.float64],
    target: NDArray[Any],
    discrete: NDArray[np.bool_],
    classify: bool,
    seed: int,
) -> NDArray[np.float64]:
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    fn = mutual_info_classif if classify else mutual_info_regression
    return np.asarray(fn(Z, target, discrete_features=discrete, random_state=seed))


def feature_suggestions(
    model: Any,
    X: Any,
    y: Any,
    *,
    n_repeats: int = 5,
    random_state: int = 0,
    scoring: str | None = None,
    importance_floor: float = 0.0,
    n_null: int = 20,
    null_quantile: float = 0.95,
    max_rows: int | None = 2000,
) -> FeatureSuggestions:
    """Suggest dropping or keeping each feature from importance and mutual information.

    Parameters
    ----------
    model
        A fitted model with ``predict``; it is only scored, never changed.
    X, y
        Rows and their targets, ideally not used to train the model (a holdout).
    n_repeats
        Shuffles per feature for permutation importance, and seeds for mutual information
        (at least 2).
    random_state
        Seed of the row sample, the shuffles, the mutual-information estimates and the
        permuted targets; the same seed gives the same suggestions.
    scoring
        A scikit-learn scorer name (default ``"r2"`` for regressors, ``"accuracy"`` for
        classifiers).
    importance_floor
        Importance (in score units) a feature must clear with the lower end of its interval
        to count as used by the model.
    n_null, null_quantile
        Mutual-information fits on a permuted target, and the quantile of them that a
        feature's mutual information must exceed to count as informative.
    max_rows
        Use a seeded sample of at most this many rows (``None``: all).

    Returns
    -------
    FeatureSuggestions
        ``.drop`` and ``.keep`` name the features; ``.to_checks()`` gives
        ``selection.suggestion`` results.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> y = 2 * X[:, 0] + X[:, 1] + rng.normal(size=400)
    >>> model = LinearRegression().fit(X[:200], y[:200])
    >>> s = feature_suggestions(model, X[200:], y[200:])
    >>> s.keep, s.drop
    (('x0', 'x1'), ('x2',))
    """
    from threadpoolctl import threadpool_limits

    from watchkeeper.explain import ModelView, as_frame, permutation_importance

    if isinstance(n_repeats, bool) or n_repeats < 2:
        raise InputError(f"n_repeats must be at least 2, got {n_repeats}")
    if n_null < 1 or not 0 < null_quantile < 1:
        raise InputError("n_null must be at least 1 and null_quantile in (0, 1)")
    view = ModelView.of(model)
    names = getattr(view.native, "feature_names_in_", None)
    frame = as_frame(X, None if names is None else [str(n) for n in names])
    target = np.asarray(y)
    if target.ndim != 1 or target.size != len(frame):
        raise InputError(
            f"y must hold one target per row: {len(frame):,} rows but y has shape {target.shape}"
        )
    if max_rows is not None and len(frame) > max_rows:
        rng = np.random.default_rng(random_state)
        keep = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
        frame, target = frame.iloc[keep].reset_index(drop=True), target[keep]
    pi = permutation_importance(
        model, frame, target, n_repeats=n_repeats, scoring=scoring, max_rows=None,
        random_state=random_state,
    )  # fmt: skip
    classify = view.is_classifier or not np.issubdtype(target.dtype, np.number)
    Z, discrete = _encode(frame)
    if classify:
        import pandas as pd

        target = pd.factorize(target)[0]
    null_rng = np.random.default_rng(random_state)
    with threadpool_limits(1):
        mi = np.array(
            [
                _mutual_information(Z, target, discrete, classify, random_state + k)
                for k in range(n_repeats)
            ]
        )
        null = np.array(
            [
                _mutual_information(
                    Z, null_rng.permutation(target), discrete, classify, random_state + k
                )
                for k in range(n_null)
            ]
        )
    mi_mean, mi_std = mi.mean(axis=0), mi.std(axis=0, ddof=1)
    mi_null = np.quantile(null, null_quantile, axis=0)
    rule = (
        f"drop when the lower end of the {pi.n_repeats}-shuffle 95% interval of permutation "
        f"importance ({pi.scoring}) is at most {importance_floor:g} and mutual information "
        f"(mean of {n_repeats} seeds) is at most the {null_quantile:.0%} quantile of {n_null} "
        "fits on a permuted target; else keep"
    )
    suggestions = tuple(
        _suggest(
            feature, float(pi.importance[j]), float(pi.lower[j]), float(pi.upper[j]),
            float(mi_mean[j]), float(mi_std[j]), float(mi_null[j]), importance_floor,
        )
        for j, feature in enumerate(pi.features)
    )  # fmt: skip
    return FeatureSuggestions(
        suggestions=suggestions,
        scoring=pi.scoring,
        baseline_score=pi.baseline_score,
        n_rows=len(frame),
        n_repeats=n_repeats,
        importance_floor=importance_floor,
        null_quantile=null_quantile,
        rule=rule,
    )


def _suggest(
    feature: str,
    importance: float,
    lower: float,
    upper: float,
    mi: float,
    mi_std: float,
    mi_null: float,
    floor: float,
) -> FeatureSuggestion:
    used = lower > floor
    informative = mi > mi_null
    imp = f"permutation importance {importance:+.3g} (95% CI {lower:+.3g} to {upper:+.3g})"
    info = (
        f"mutual information {mi:.3g} (sd {mi_std:.2g}; permuted-target noise up to {mi_null:.3g})"
    )
    if used or informative:
        why = []
        if used:
            why.append("the model uses it" + (f" beyond {floor:g}" if floor else ""))
        if informative:
            why.append("it carries information about the target")
        reason = f"keep: {' and '.join(why)}; {imp}, {info}"
        suggestion: Literal["keep", "drop"] = "keep"
    else:
        reason = (
            f"drop suggested: indistinguishable from noise, {imp} and {info}; confirm with "
            "validate_feature_drop before changing the model"
        )
        suggestion = "drop"
    return FeatureSuggestion(
        feature, suggestion, importance, lower, upper, mi, mi_std, mi_null, reason
    )
