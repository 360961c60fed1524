"""Label-free performance estimators of a model version: the defaults and their fitting.

``MonitorConfig(estimators="auto")`` gives a classifier that logs class scores
:class:`~watchkeeper.checks.CBPE` (every metric, calibrated on the baseline's labelled
rows) and a regressor :class:`~watchkeeper.checks.DLE` (MAE and RMSE, its loss model learnt
from the baseline's labelled rows and the features). Estimators the user passes are copied
per version, so two versions never share a fit.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper.monitor._config import MonitorConfig

__all__ = ["FittedEstimators", "default_estimators", "fit_estimators"]


def default_estimators(
    task: str, classes: Sequence[str] | None, features: Sequence[str], random_state: int = 0
) -> list[Any]:
    """The estimators ``estimators="auto"`` uses for a version (unfitted).

    The window frames hold the features, ``prediction``, ``label`` and one ``score.<class>``
    column per logged class (see :class:`~watchkeeper.monitor.MonitorConfig`).

    Examples
    --------
    >>> [type(e).__name__ for e in default_estimators("classification", ["0", "1"], ["x"])]
    ['CBPE']
    >>> default_estimators("classification", ["0", "1"], ["x"])[0].score
    'score.1'
    >>> [type(e).__name__ for e in default_estimators("regression", None, ["x"])]
    ['DLE']
    >>> default_estimators("classification", None, ["x"])  # no logged scores
    []
    """
    from watchkeeper.checks import CBPE, DLE

    if task == "classification":
        if not classes or len(classes) < 2:
            return []
        score: str | list[str] = (
            f"score.{classes[-1]}" if len(classes) == 2 else [f"score.{c}" for c in classes]
        )
        return [
            CBPE(
                score=score,
                prediction="prediction",
                target="label",
                features=tuple(features),
                classes=tuple(classes),
                random_state=random_state,
            )
        ]
    if task == "regression" and features:
        return [
            DLE(
                prediction="prediction",
                target="label",
                features=tuple(features),
                random_state=random_state,
            )
        ]
    return []


@dataclass(frozen=True)
class FittedEstimators:
    """A version's estimators fitted on ``n_labelled`` baseline rows, or why none are
    (``note``)."""

    estimators: tuple[Any, ...]
    n_labelled: int
    note: str | None = None


def fit_estimators(
    config: MonitorConfig,
    task: str,
    classes: Sequence[str] | None,
    baseline: Any,
    previous: FittedEstimators | None = None,
) -> FittedEstimators:
    """Fit a version's estimators on ``baseline`` (the labelled rows' frame).

    ``previous`` is returned as it is when it was fitted on as many labelled rows (the
    baseline rows are fixed, so the same count means the same rows): a scheduled monitor
    does not refit every cycle. Fewer labelled rows than ``config.min_rows``, or a fit that
    rejects the data, give no estimators and a note saying why.
    """
    n = len(baseline)
    if previous is not None and previous.n_labelled == n:
        return previous
    if config.estimators == "auto":
        names = [c for c in baseline.columns if c not in ("prediction", "label")]
        features = [c for c in names if not str(c).startswith("score.")]
        unfitted = default_estimators(task, classes, features, config.random_state)
    else:
        unfitted = [copy.deepcopy(e) for e in config.estimators]
    if not unfitted:
        return FittedEstimators((), n)
    if n < config.min_rows:
        return FittedEstimators(
            (),
            n,
            f"the baseline has {n:,} labelled rows; at least {config.min_rows:,} are needed "
            "to fit the label-free estimators (they are fitted once enough labels arrived)",
        )
    fitted = []
    problems = []
    from threadpoolctl import threadpool_limits

    for est in unfitted:
        try:
            with threadpool_limits(1):
                est.fit(baseline)
        except Exception as exc:  # one estimator's bad fit must not stop the monitor
            problems.append(f"{type(est).__name__}: {exc}")
        else:
            fitted.append(est)
    return FittedEstimators(tuple(fitted), n, "; ".join(problems) or None)
