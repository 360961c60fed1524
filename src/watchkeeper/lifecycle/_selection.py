"""Validate a suggested feature drop through the gate before anyone applies it.

:func:`validate_feature_drop` builds the reduced model (the same model without the features)
and runs :func:`~watchkeeper.lifecycle.validate` on it with the full model as the champion,
in non-inferiority mode: the reduced model is blessed when the lower end of the interval of
its improvement over the full model is above ``-margin`` (it is not worse by more than the
margin). Both models are refitted on the same training rows and scored on the same holdout,
so the comparison isolates the dropped features.

The reduced model takes the full rows (so the gate can score both models on one holdout): a
first step keeps only the remaining columns. The model itself is rebuilt without the
features in one of two ways:

- an **estimator** is cloned; when it is a ``Pipeline`` whose first step is a
  ``ColumnTransformer`` selecting columns by name, the dropped names are removed from its
  column lists (a transformer left with no columns is removed). Column selectors
  (``make_column_selector``) pick from what is left on their own;
- a **factory**, any callable taking the list of feature names and returning an unfitted
  estimator, for models whose construction depends on the features in other ways.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle._config import GateConfig
from watchkeeper.lifecycle._gate import validate
from watchkeeper.lifecycle._inputs import _columns, read_frame
from watchkeeper.lifecycle._report import GateReport

__all__ = ["validate_feature_drop"]


def validate_feature_drop(
    model: Any | Callable[[list[str]], Any],
    data: Any,
    target: str | None = None,
    *,
    drop: Sequence[str],
    features: Sequence[str] | None = None,
    schema: Any = None,
    timestamp: str | None = None,
    margin: float | None = 0.01,
    config: GateConfig | str | Path | None = None,
    **validate_kwargs: Any,
) -> GateReport:
    """Run the validation gate on the model without ``drop``, against the model with them.

    Parameters
    ----------
    model
        A scikit-learn compatible estimator (fitted or not: it is cloned and refitted), or a
        factory ``features -> unfitted estimator``.
    data, target, features, schema, timestamp
        As for :func:`~watchkeeper.lifecycle.validate`; ``features`` (default: the schema's
        features, else every column but the target and the timestamp) are the full model's.
    drop
        Features to leave out of the reduced model.
    margin
        Non-inferiority margin of the comparison, in units of the compared metric (``None``:
        keep the margin, and any per-metric ``margins``, of ``config``).
    config
        Gate configuration (a :class:`GateConfig` or the path of one); its comparison is
        switched on in ``"non_inferiority"`` mode.
    **validate_kwargs
        Passed on to :func:`~watchkeeper.lifecycle.validate` (``holdout``, ``task``, ``name``,
        ``champion_name``, ``random_state``, ``progress``).

    Returns
    -------
    GateReport
        Candidate: the reduced model; champion: the full one. ``passed`` means the reduced
        model is not worse by more than the margin (and passes the gate's other checks).

    Raises
    ------
    InputError
        ``drop`` empty, naming unknown features or every feature; a ``ColumnTransformer``
        that selects columns by position; a ``model`` that is neither an estimator nor a
        factory.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "noise"])
    >>> df["y"] = 3 * df["a"] + df["b"] + rng.normal(size=400)
    >>> cfg = GateConfig.from_dict({"generalisation": {"enabled": False},
    ...                             "robustness": {"enabled": False},
    ...                             "serving": {"enabled": False}})
    >>> report = validate_feature_drop(LinearRegression(), df, "y", drop=["noise"], config=cfg)
    >>> report.candidate, report.passed
    ('without noise', True)
    """
    frame = read_frame(data)
    if isinstance(schema, str | Path):
        from watchkeeper.data import Schema

        schema = Schema.load(schema)
    target, timestamp, feats = _columns(frame, target, timestamp, features, schema)
    dropped = [drop] if isinstance(drop, str) else list(drop)
    unknown = [f for f in dropped if f not in feats]
    if not dropped or unknown:
        raise InputError(
            f"drop must name some of the model's features {feats[:20]}; "
            + (f"not features: {unknown}" if unknown else "it is empty")
        )
    kept = [f for f in feats if f not in dropped]
    if not kept:
        raise InputError("drop names every feature; keep at least one")
    full, reduced = _models(model, feats, kept, dropped)

    cfg = GateConfig.from_file(config) if isinstance(config, str | Path) else config
    cfg = cfg or GateConfig()
    comparison = dataclasses.replace(
        cfg.comparison,
        enabled=True,
        mode="non_inferiority",
        margin=cfg.comparison.margin if margin is None else margin,
    )
    cfg = dataclasses.replace(cfg, comparison=comparison)
    validate_kwargs.setdefault("name", f"without {', '.join(dropped)}")
    validate_kwargs.setdefault("champion_name", f"all {len(feats)} features")
    report = validate(
        _keep_columns(kept, reduced),
        frame,
        target=target,
        schema=schema,
        champion=full,
        config=cfg,
        features=feats,
        timestamp=timestamp,
        **validate_kwargs,
    )
    note = (
        f"feature drop: the candidate is the model refitted without {dropped}, the champion "
        f"the same model with all {len(feats)} features, both fitted on the same training "
        f"rows; it is blessed if not worse by more than the margin "
        f"{comparison.margin_for(report.metrics[0]):g} ({report.metrics[0]})"
    )
    return dataclasses.replace(report, notes=(*report.notes, note))


def _models(model: Any, feats: list[str], kept: list[str], dropped: list[str]) -> tuple[Any, Any]:
    """(full model, reduced model), both unfitted."""
    from sklearn.base import clone

    if hasattr(model, "fit") and hasattr(model, "get_params"):
        return clone(model), _without(clone(model), dropped)
    if callable(model):
        full, reduced = model(list(feats)), model(list(kept))
        for built in (full, reduced):
            if not (hasattr(built, "fit") and hasattr(built, "predict")):
                raise InputError(
                    f"the factory returned a {type(built).__name__}, not an estimator with fit "
                    "and predict"
                )
        return full, reduced
    raise InputError(
        f"model must be a scikit-learn compatible estimator or a factory taking the feature "
        f"names; got a {type(model).__name__}"
    )


def _keep_columns(kept: list[str], estimator: Any) -> Any:
    """``estimator`` behind a first step that keeps only the ``kept`` columns (as a frame)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    select = ColumnTransformer(
        [("keep", "passthrough", kept)], remainder="drop", verbose_feature_names_out=False
    ).set_output(transform="pandas")
    return Pipeline([("keep_features", select), ("model", estimator)])


def _without(estimator: Any, dropped: list[str]) -> Any:
    """The cloned ``estimator`` with ``dropped`` removed from a leading ColumnTransformer."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline) or not estimator.steps:
        return estimator
    step, first = estimator.steps[0]
    if not isinstance(first, ColumnTransformer):
        return estimator
    transformers = []
    for name, transformer, columns in first.transformers:
        if callable(columns):  # a selector picks from the columns that are left
            transformers.append((name, transformer, columns))
            continue
        if isinstance(columns, str):
            if columns not in dropped:
                transformers.append((name, transformer, columns))
            continue
        listed = list(columns)
        if not all(isinstance(c, str) for c in listed):
            raise InputError(
                f"the ColumnTransformer step {name!r} selects columns by position or mask, "
                "which shift when features are dropped; select them by name, or pass a factory "
                "taking the feature names"
            )
        left = [c for c in listed if c not in dropped]
        if left:
            transformers.append((name, transformer, left))
    estimator.set_params(**{step: first.set_params(transformers=transformers)})
    return estimator
