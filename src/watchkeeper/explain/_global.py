"""Global importance with its own noise floor.

SHAP attributions depend on the background set (and the sampling explainers on their seed),
and a mean over rows depends on which rows were explained. :func:`global_importance`
therefore explains the rows against ``n_backgrounds`` seeded backgrounds and reports, per
feature, the mean absolute attribution together with two spreads:

- ``row_std_error``: the standard error of the mean over rows (rows are a sample), computed
  from each row's attribution averaged over the backgrounds;
- ``background_std``: the standard deviation of the importance across the backgrounds (the
  spread one background choice alone would give).

Their combination, ``std_error = sqrt(row_std_error**2 + background_std**2 / R)``, is the
standard error of the reported importance, and ``noise_floor = z * std_error`` (``z = 1.96``)
is the half-width of its 95% interval. Two importances are only called different — a
ranking only called changed — when their gap exceeds the floor of the difference
(:func:`rank_changes`, :func:`~watchkeeper.explain.attribution_drift`). Path-dependent
TreeSHAP uses no background, so its background spread is zero and it is computed once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.exceptions import InputError
from watchkeeper.explain._frame import model_frame, sample_rows
from watchkeeper.explain._local import Explainer, Explanation, Method
from watchkeeper.explain._model import ModelView, Output

__all__ = ["GlobalExplanation", "RankChange", "global_importance", "rank_changes", "ranked"]

#: Normal quantile of the 95% intervals.
Z95 = 1.959963984540054


def ranked(features: tuple[str, ...], importance: NDArray[np.float64]) -> list[str]:
    """``features`` from the largest to the smallest ``importance`` (stable)."""
    order = sorted(range(len(features)), key=lambda j: (-importance[j], j))
    return [features[j] for j in order]


def _array(values: Any) -> NDArray[np.float64]:
    a = np.array(values, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class GlobalExplanation:
    """Mean absolute attribution per feature, with its spread.

    Examples
    --------
    >>> g = GlobalExplanation(features=("a", "b"), importance=np.array([2.0, 0.5]),
    ...                       row_std_error=np.array([0.1, 0.1]),
    ...                       background_std=np.array([0.2, 0.0]),
    ...                       mean_attribution=np.array([0.0, 0.1]), n_rows=100,
    ...                       n_backgrounds=4, method="permutation", output="prediction",
    ...                       output_label="prediction", expected_value=1.0)
    >>> g.ranking(), g.std_error.round(4).tolist()
    (['a', 'b'], [0.1414, 0.1])
    """

    features: tuple[str, ...]
    importance: NDArray[np.float64]
    row_std_error: NDArray[np.float64]
    background_std: NDArray[np.float64]
    mean_attribution: NDArray[np.float64]
    n_rows: int
    n_backgrounds: int
    method: str
    output: str
    output_label: str
    expected_value: float
    target_class: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    #: The explanation of the rows against the first background (not serialised).
    local: Explanation | None = field(default=None, repr=False)

    @property
    def std_error(self) -> NDArray[np.float64]:
        """Standard error of each importance (rows and backgrounds)."""
        r = max(self.n_backgrounds, 1)
        return np.sqrt(self.row_std_error**2 + self.background_std**2 / r)

    @property
    def noise_floor(self) -> NDArray[np.float64]:
        """Half-width of each importance's 95% interval: smaller gaps are noise."""
        return Z95 * self.std_error

    @property
    def lower(self) -> NDArray[np.float64]:
        """Lower 95% bound of each importance (at least 0)."""
        return np.maximum(self.importance - self.noise_floor, 0.0)

    @property
    def upper(self) -> NDArray[np.float64]:
        """Upper 95% bound of each importance."""
        return self.importance + self.noise_floor

    @property
    def shares(self) -> NDArray[np.float64]:
        """Each importance as a share of the total."""
        total = float(self.importance.sum())
        return self.importance / total if total > 0 else np.zeros_like(self.importance)

    def ranking(self) -> list[str]:
        """Features from most to least important (ties in feature order)."""
        return ranked(self.features, self.importance)

    def get(self, feature: str) -> tuple[float, float]:
        """``(importance, std_error)`` of one feature."""
        try:
            j = self.features.index(feature)
        except ValueError:
            raise InputError(
                f"{feature!r} is not an explained feature; features: {list(self.features)}"
            ) from None
        return float(self.importance[j]), float(self.std_error[j])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (:meth:`from_dict` reads it back)."""

        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {
            "features": list(self.features),
            "importance": [num(v) for v in self.importance],
            "row_std_error": [num(v) for v in self.row_std_error],
            "background_std": [num(v) for v in self.background_std],
            "mean_attribution": [num(v) for v in self.mean_attribution],
            "lower": [num(v) for v in self.lower],
            "upper": [num(v) for v in self.upper],
            "noise_floor": [num(v) for v in self.noise_floor],
            "n_rows": self.n_rows,
            "n_backgrounds": self.n_backgrounds,
            "method": self.method,
            "output": self.output,
            "output_label": self.output_label,
            "target_class": self.target_class,
            "expected_value": num(self.expected_value),
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> GlobalExplanation:
        """Inverse of :meth:`to_dict`."""

        def arr(key: str) -> NDArray[np.float64]:
            return _array([math.nan if v is None else v for v in payload[key]])

        ev = payload.get("expected_value")
        return cls(
            features=tuple(str(f) for f in payload["features"]),
            importance=arr("importance"),
            row_std_error=arr("row_std_error"),
            background_std=arr("background_std"),
            mean_attribution=arr("mean_attribution"),
            n_rows=int(payload["n_rows"]),
            n_backgrounds=int(payload["n_backgrounds"]),
            method=str(payload["method"]),
            output=str(payload["output"]),
            output_label=str(payload["output_label"]),
            expected_value=math.nan if ev is None else float(ev),
            target_class=payload.get("target_class"),
            details=dict(payload.get("details", {})),
        )


def _backgrounds(pool: Any, n: int, max_background: int, random_state: int) -> list[Any]:
    """``n`` background draws: distinct subsamples, or bootstrap resamples of a small pool."""
    out = [pool]
    for r in range(1, n):
        if len(pool) > max_background:
            out.append(pool)  # the Explainer subsamples with its own seed
        else:
            rng = np.random.default_rng([random_state, r])
            out.append(pool.iloc[rng.integers(0, len(pool), size=len(pool))])
    return out


def global_importance(
    model: Any,
    X: Any,
    *,
    background: Any = None,
    n_backgrounds: int = 5,
    method: Method = "auto",
    output: Output = "auto",
    target_class: Any = None,
    max_background: int = 100,
    max_rows: int | None = None,
    random_state: int = 0,
) -> GlobalExplanation:
    """Mean absolute attribution per feature over the rows of ``X``, with its noise floor.

    Parameters
    ----------
    model, method, output, target_class, max_background
        As for :class:`~watchkeeper.explain.Explainer`.
    X
        The rows whose attributions are averaged.
    background
        Rows the backgrounds are drawn from (default: ``X``). To compare windows, pass the
        same reference background for every window.
    n_backgrounds
        Backgrounds (seeds) to repeat the explanation over: each is a seeded subsample of
        ``background`` (a bootstrap resample when it has at most ``max_background`` rows).
    max_rows
        Explain a seeded sample of at most this many rows (default: all).
    random_state
        Seed of row sampling, backgrounds and sampling explainers.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> model = LinearRegression().fit(X, X @ [3.0, 1.0, 0.0] + rng.normal(size=400))
    >>> g = global_importance(model, X, n_backgrounds=3)
    >>> g.ranking()
    ['x0', 'x1', 'x2']
    >>> bool(g.importance[0] - g.importance[1] > g.noise_floor[0] + g.noise_floor[1])
    True
    """
    if isinstance(n_backgrounds, bool) or n_backgrounds < 1:
        raise InputError(f"n_backgrounds must be at least 1, got {n_backgrounds}")
    native = ModelView.of(model).native
    rows, _ = sample_rows(model_frame(native, X), max_rows, random_state)
    pool = rows if background is None else model_frame(native, background)
    explanations: list[Explanation] = []
    importances = []
    for r, draw in enumerate(_backgrounds(pool, n_backgrounds, max_background, random_state)):
        explainer = Explainer(
            model,
            method=method,
            output=output,
            target_class=target_class,
            max_background=max_background,
            random_state=random_state + r,
        ).fit(draw)
        e = explainer.explain(rows)
        explanations.append(e)
        importances.append(e.mean_abs())
        if e.details.get("feature_perturbation") == "tree_path_dependent":
            break  # no background: every repeat would be the same
    first = explanations[0]
    abs_rows = np.mean([np.abs(e.values) for e in explanations], axis=0)
    n = first.n_rows
    row_se = abs_rows.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(
        len(first.feature_names), math.inf
    )  # fmt: skip
    stack = np.asarray(importances)
    background_std = stack.std(axis=0, ddof=1) if len(stack) > 1 else np.zeros(stack.shape[1])
    return GlobalExplanation(
        features=first.feature_names,
        importance=_array(abs_rows.mean(axis=0)),
        row_std_error=_array(row_se),
        background_std=_array(background_std),
        mean_attribution=_array(np.mean([e.values.mean(axis=0) for e in explanations], axis=0)),
        n_rows=n,
        n_backgrounds=len(explanations),
        method=first.method,
        output=first.output,
        output_label=first.output_label,
        expected_value=float(np.mean([e.expected_value for e in explanations])),
        target_class=first.target_class,
        details=dict(first.details),
        local=first,
    )


@dataclass(frozen=True, slots=True)
class RankChange:
    """Two features whose order flipped between two explanations, beyond the noise."""

    above_before: str
    above_now: str
    gap_before: float
    gap_now: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form."""
        return {
            "above_before": self.above_before,
            "above_now": self.above_now,
            "gap_before": self.gap_before,
            "gap_now": self.gap_now,
        }


def _separated(g: GlobalExplanation, a: int, b: int) -> bool:
    """Whether feature ``a`` is more important than ``b`` in ``g`` beyond the noise."""
    se = g.std_error
    gap = g.importance[a] - g.importance[b]
    return bool(gap > Z95 * math.sqrt(se[a] ** 2 + se[b] ** 2))


def rank_changes(reference: GlobalExplanation, window: GlobalExplanation) -> list[RankChange]:
    """Pairs of features ranked one way in ``reference`` and the other way in ``window``,
    each order beyond its noise floor (a flip within the noise is not a change).

    Examples
    --------
    >>> def g(imp):
    ...     return GlobalExplanation(("a", "b"), np.array(imp), np.array([0.1, 0.1]),
    ...                              np.zeros(2), np.zeros(2), 100, 1, "tree", "prediction",
    ...                              "prediction", 0.0)
    >>> [c.above_now for c in rank_changes(g([2.0, 1.0]), g([1.0, 2.0]))]
    ['b']
    >>> rank_changes(g([2.0, 1.9]), g([1.9, 2.0]))  # within the noise
    []
    """
    common = [f for f in reference.features if f in window.features]
    ri = {f: reference.features.index(f) for f in common}
    wi = {f: window.features.index(f) for f in common}
    out = []
    for a in common:
        for b in common:
            if a == b or not _separated(reference, ri[a], ri[b]):
                continue
            if _separated(window, wi[b], wi[a]):
                out.append(
                    RankChange(
                        above_before=a,
                        above_now=b,
                        gap_before=float(reference.importance[ri[a]] - reference.importance[ri[b]]),
                        gap_now=float(window.importance[wi[b]] - window.importance[wi[a]]),
                    )
                )
    return out
