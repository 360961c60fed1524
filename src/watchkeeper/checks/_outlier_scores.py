"""The two outlier scores of :class:`~watchkeeper.checks.OutlierDetector` as plain arrays.

- Mahalanobis: robust standardisation (median, IQR) and a Ledoit-Wolf shrunk covariance.
- Isolation forest (Liu, Ting and Zhou 2008): scikit-learn's forest, fitted with a fixed
  seed and exported as node arrays (children, feature, threshold, and the path length of each
  leaf), scored in numpy exactly as ``-IsolationForest.score_samples``; plus how far a value
  lies outside the fit rows' range.

Stored states are checked (:func:`checked_state`) before they are used: a stored detector is
data, and a bad node index must raise, not loop or read out of bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "checked_state",
    "fit_forest",
    "fit_mahalanobis",
    "forest_scores",
    "mahalanobis_scores",
    "range_excess",
]

_EULER = 0.5772156649015329


def fit_mahalanobis(X: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    """Location, scale and shrunk precision of the standardised rows ``X``."""
    from sklearn.covariance import LedoitWolf

    center = np.median(X, axis=0)
    q75, q25 = np.percentile(X, [75, 25], axis=0)
    scale = (q75 - q25) / 1.3489795003921634  # the IQR of a standard normal
    std = X.std(axis=0)
    scale = np.where(scale > 0, scale, np.where(std > 0, std, 1.0))
    z = (X - center) / scale
    lw = LedoitWolf().fit(z)
    return {
        "center": center,
        "scale": scale,
        "location": np.asarray(lw.location_, dtype=float),
        "precision": np.asarray(lw.precision_, dtype=float),
    }


# -- isolation forest -----------------------------------------------------------------------


def _average_path_length(n: NDArray[np.float64]) -> NDArray[np.float64]:
    """Expected path length of an unsuccessful search in a binary search tree of ``n``
    points (Liu et al. 2008, eq. 1), as scikit-learn computes it."""
    n = np.asarray(n, dtype=float)
    out = np.zeros_like(n)
    two = n == 2
    many = n > 2
    out[two] = 1.0
    m = n[many]
    out[many] = 2.0 * (np.log(m - 1.0) + _EULER) - 2.0 * (m - 1.0) / m
    return out


def fit_forest(
    X: NDArray[np.float64], n_estimators: int, max_samples: int, seed: int
) -> dict[str, Any]:
    """A seeded isolation forest on ``X``, exported as node arrays, with the fit range."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(
        n_estimators=n_estimators,
        max_samples=min(max_samples, X.shape[0]),
        random_state=seed,
    ).fit(X)
    lefts, rights, features, thresholds, paths = [], [], [], [], []
    for tree, used in zip(forest.estimators_, forest.estimators_features_, strict=True):
        t = tree.tree_
        left, right = t.children_left, t.children_right
        depth = np.zeros(t.node_count)
        for node in range(t.node_count):  # children come after their parent
            if left[node] >= 0:
                depth[left[node]] = depth[right[node]] = depth[node] + 1
        leaf = left < 0
        path = np.where(leaf, depth + _average_path_length(t.n_node_samples), 0.0)
        lefts.append(np.asarray(left, dtype=np.int64))
        rights.append(np.asarray(right, dtype=np.int64))
        features.append(np.where(leaf, -1, np.asarray(used)[np.maximum(t.feature, 0)]))
        thresholds.append(np.where(leaf, 0.0, t.threshold))
        paths.append(path)
    low, high = X.min(axis=0), X.max(axis=0)
    return {
        "low": low,
        "high": high,
        "left": lefts,
        "right": rights,
        "feature": features,
        "threshold": thresholds,
        "path": paths,
        "sample_size": np.array([float(forest.max_samples_)]),
    }


def range_excess(
    X: NDArray[np.float64], low: NDArray[np.float64], high: NDArray[np.float64]
) -> NDArray[np.float64]:
    """How far each row lies outside ``[low, high]``, in units of each column's range."""
    width = np.where(high > low, high - low, 1.0)
    excess = np.maximum(X - high, 0.0) + np.maximum(low - X, 0.0)
    return np.asarray((excess / width).sum(axis=1), dtype=float)


def forest_scores(X: NDArray[np.float64], state: Mapping[str, Any]) -> NDArray[np.float64]:
    """``-IsolationForest.score_samples`` of the rows ``X`` from a :func:`fit_forest` state."""
    # Trees split float32 values (as scikit-learn's trees do), hence the cast.
    X32 = X.astype(np.float32).astype(np.float64)
    rows = np.arange(X.shape[0])
    total = np.zeros(X.shape[0])
    for left, right, feature, threshold, path in zip(
        state["left"], state["right"], state["feature"], state["threshold"], state["path"],
        strict=True,
    ):  # fmt: skip
        node = np.zeros(X.shape[0], dtype=np.int64)
        for _ in range(len(left)):  # a path visits each node at most once
            inner = left[node] >= 0
            if not inner.any():
                break
            go_left = X32[rows, np.maximum(feature[node], 0)] <= threshold[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        total += path[node]
    c = _average_path_length(np.asarray(state["sample_size"]))[0]
    return np.asarray(2.0 ** (-total / (len(state["left"]) * c)), dtype=float)


def checked_state(method: str, raw: Mapping[str, Any], n_columns: int) -> dict[str, Any]:
    """A stored state as arrays, after checking shapes, finiteness and node indices
    (``ValueError`` says what is wrong)."""
    median = np.asarray(raw["median"], dtype=float)
    if median.shape != (n_columns,) or not np.isfinite(median).all():
        raise ValueError("median must hold one finite number per column")
    if method == "mahalanobis":
        out: dict[str, Any] = {"median": median}
        for key, shape in (
            ("center", (n_columns,)),
            ("scale", (n_columns,)),
            ("location", (n_columns,)),
            ("precision", (n_columns, n_columns)),
        ):
            value = np.asarray(raw[key], dtype=float)
            if value.shape != shape or not np.isfinite(value).all():
                raise ValueError(f"{key} must be finite numbers of shape {shape}")
            out[key] = value
        if (out["scale"] <= 0).any():
            raise ValueError("scale must be positive")
        return out
    trees = len(raw["left"])
    if trees < 1 or any(len(raw[k]) != trees for k in ("right", "feature", "threshold", "path")):
        raise ValueError("every tree needs left, right, feature, threshold and path arrays")
    state: dict[str, Any] = {"median": median, "sample_size": np.asarray(raw["sample_size"])}
    for key in ("low", "high"):
        value = np.asarray(raw[key], dtype=float)
        if value.shape != (n_columns,) or not np.isfinite(value).all():
            raise ValueError(f"{key} must hold one finite number per column")
        state[key] = value
    for key in ("left", "right", "feature", "threshold", "path"):
        state[key] = []
    for i in range(trees):
        left = np.asarray(raw["left"][i], dtype=np.int64)
        right = np.asarray(raw["right"][i], dtype=np.int64)
        feature = np.asarray(raw["feature"][i], dtype=np.int64)
        threshold = np.asarray(raw["threshold"][i], dtype=float)
        path = np.asarray(raw["path"][i], dtype=float)
        n = left.shape[0]
        if n < 1 or any(a.shape != (n,) for a in (right, feature, threshold, path)):
            raise ValueError(f"tree {i}: node arrays must have the same length")
        inner = left >= 0
        if (
            (left >= n).any()
            or (right >= n).any()
            or (right[inner] < 0).any()
            or (feature[inner] < 0).any()
            or (feature >= n_columns).any()
            or not np.isfinite(threshold).all()
            or not np.isfinite(path).all()
        ):
            raise ValueError(f"tree {i}: node indices or values out of range")
        for key, value in (
            ("left", left),
            ("right", right),
            ("feature", feature),
            ("threshold", threshold),
            ("path", path),
        ):
            state[key].append(value)
    if state["sample_size"].shape != (1,) or not state["sample_size"][0] >= 2:
        raise ValueError("sample_size must be one number >= 2")
    return state


def mahalanobis_scores(X: NDArray[np.float64], state: Mapping[str, Any]) -> NDArray[np.float64]:
    """Squared Mahalanobis distance of each row under a :func:`fit_mahalanobis` state."""
    z = (X - state["center"]) / state["scale"] - state["location"]
    return np.asarray(np.einsum("ij,jk,ik->i", z, state["precision"], z), dtype=float)
