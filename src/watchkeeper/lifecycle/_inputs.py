"""What a gate runs on: columns, task, the train/holdout split and ready-to-predict models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle._common import record_warnings
from watchkeeper.lifecycle._config import GateConfig
from watchkeeper.lifecycle._metrics import Task, default_metrics, get_metric

__all__ = ["GateData", "prepare"]


@dataclass(frozen=True, slots=True)
class GateData:
    """Resolved inputs of one gate run (see :func:`prepare`)."""

    task: Task
    target: str
    timestamp: str | None
    features: list[str]
    train: pd.DataFrame
    holdout: pd.DataFrame
    X_train: pd.DataFrame
    y_train: NDArray[Any]
    X_holdout: pd.DataFrame
    y_holdout: NDArray[Any]
    model: Any
    champion: Any
    metrics: tuple[str, ...]
    schema: Any
    notes: tuple[str, ...]

    @property
    def time_ordered(self) -> bool:
        """Whether rows are in time order (a timestamp column was given)."""
        return self.timestamp is not None


def read_frame(data: Any) -> pd.DataFrame:
    """A pandas DataFrame from a DataFrame, an Arrow/polars table or a CSV/Parquet path."""
    if isinstance(data, pd.DataFrame):
        return data
    from watchkeeper.data import read_table

    # Arrow, polars, CSV and Parquet all go through the data layer's one reader.
    return cast(pd.DataFrame, read_table(data).to_pandas())


def infer_task(model: Any, y: NDArray[Any]) -> Task:
    """``"binary"``, ``"multiclass"`` or ``"regression"`` from the model, else the target.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> infer_task(LogisticRegression(), np.array([0, 1, 2]))
    'multiclass'
    """
    classes = getattr(model, "classes_", None)
    classifier, regressor = _sklearn_kind(model)
    if classifier or (classes is not None and not regressor):
        n = len(classes) if classes is not None else len(np.unique(y))
        return "binary" if n <= 2 else "multiclass"
    if regressor or np.issubdtype(np.asarray(y).dtype, np.floating):
        return "regression"
    raise InputError("cannot tell whether the model is a classifier or a regressor; pass task=")


def _sklearn_kind(model: Any) -> tuple[bool, bool]:
    # Duck-typed models without scikit-learn's tags make is_classifier raise; they are
    # judged by their attributes instead.
    try:
        return bool(is_classifier(model)), bool(is_regressor(model))
    except (AttributeError, TypeError):
        return False, False


def is_fitted(model: Any) -> bool:
    """Whether ``model`` can predict already (objects outside scikit-learn are assumed to)."""
    try:
        check_is_fitted(model)
    except SkNotFittedError:
        return False
    except (AttributeError, TypeError):
        return True
    return True


def model_inputs(model: Any) -> list[str] | None:
    """The input columns a fitted model declares (``feature_names_in_``, which scikit-learn
    pipelines take from their first step), or ``None`` when it declares none.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> model_inputs(LinearRegression().fit(pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 0.0]}),
    ...                                     [0.0, 1.0]))
    ['a', 'b']
    >>> model_inputs(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])) is None
    True
    """
    try:
        names = getattr(model, "feature_names_in_", None)
    except Exception:  # a property of a foreign model that cannot answer
        return None
    if names is None:
        return None
    return [str(n) for n in names]


def _columns(
    frame: pd.DataFrame,
    target: str | None,
    timestamp: str | None,
    features: Sequence[str] | None,
    schema: Any,
    declared: Sequence[str] | None = None,
) -> tuple[str, str | None, list[str]]:
    # The model's own input columns win over the schema's features: a model trained with
    # columns the schema marks otherwise (e.g. sensitive attributes) still needs them, as
    # the gateway serves it.
    if features is None and declared is not None:
        features = list(declared)
    if schema is not None:
        targets = schema.with_role("target")
        stamps = schema.with_role("timestamp")
        target = target or (targets[0] if targets else None)
        timestamp = timestamp or (stamps[0] if stamps else None)
        if features is None:
            features = list(schema.features)
    if target is None:
        raise InputError("name the target column: pass target= or a schema with a target role")
    for col, what in ((target, "target"), (timestamp, "timestamp")):
        if col is not None and col not in frame.columns:
            raise InputError(
                f"{what} column {col!r} is not in the data; columns: {list(frame.columns)[:20]}"
            )
    if frame[target].isna().any():
        raise InputError(f"the target column {target!r} has missing values; drop those rows first")
    feats = (
        list(features)
        if features is not None
        else [c for c in frame.columns if c not in (target, timestamp)]
    )
    missing = [c for c in feats if c not in frame.columns]
    if missing:
        whose = "the model's input columns" if declared is not None else "feature columns"
        raise InputError(
            f"{whose} {missing[:20]} are not in the data; its columns: {list(frame.columns)[:20]}"
        )
    if target in feats:
        raise InputError(f"the target column {target!r} is also a feature; it cannot be both")
    if not feats:
        raise InputError("no feature columns are left once the target and timestamp are set aside")
    return target, timestamp, feats


def _split(
    frame: pd.DataFrame, target: str, task: Task, fraction: float, time_ordered: bool, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if time_ordered:
        cut = round(len(frame) * (1 - fraction))
        return frame.iloc[:cut], frame.iloc[cut:]
    strat = None
    if task != "regression":
        counts = frame[target].value_counts()
        strat = frame[target] if counts.min() >= 2 else None
    train, hold = train_test_split(frame, test_size=fraction, stratify=strat, random_state=seed)
    return train, hold


def choose_metrics(cfg: GateConfig, task: Task, model: Any) -> tuple[str, ...]:
    """The configured metrics, checked against the task, or the task's defaults.

    Examples
    --------
    >>> from sklearn.svm import LinearSVC
    >>> choose_metrics(GateConfig(), "binary", LinearSVC())
    ('accuracy', 'balanced_accuracy')
    """
    if cfg.metrics is not None:
        for m in cfg.metrics:
            if get_metric(m, task).needs_proba and not hasattr(model, "predict_proba"):
                raise InputError(f"metric {m!r} needs predict_proba, which the model lacks")
        return tuple(cfg.metrics)
    if task != "regression" and not hasattr(model, "predict_proba"):
        return ("accuracy", "balanced_accuracy")
    return default_metrics(task)


def prepare(
    candidate: Any,
    data: Any,
    *,
    cfg: GateConfig,
    target: str | None,
    schema: Any,
    holdout: Any,
    champion: Any,
    features: Sequence[str] | None,
    timestamp: str | None,
    task: Task | None,
    random_state: int,
) -> GateData:
    """Resolve columns and task, split off a holdout if needed, fit unfitted models.

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> df = pd.DataFrame({"x": np.arange(40.0), "y": np.arange(40.0) * 2})
    >>> d = prepare(LinearRegression(), df, cfg=GateConfig(), target="y", schema=None,
    ...             holdout=None, champion=None, features=None, timestamp=None, task=None,
    ...             random_state=0)
    >>> d.task, len(d.X_train), len(d.X_holdout)
    ('regression', 30, 10)
    """
    if isinstance(schema, str | Path):
        from watchkeeper.data import Schema

        schema = Schema.load(schema)
    frame = read_frame(data)
    declared = model_inputs(candidate) if is_fitted(candidate) else None
    target, timestamp, feats = _columns(frame, target, timestamp, features, schema, declared)
    if timestamp is not None:
        frame = frame.sort_values(timestamp, kind="stable").reset_index(drop=True)
    the_task: Task = task or infer_task(candidate, frame[target].to_numpy())
    notes: list[str] = []
    if holdout is not None:
        train, hold = frame, read_frame(holdout)
        for col in [*feats, target]:
            if col not in hold.columns:
                raise InputError(f"the holdout has no column {col!r}; it needs the data's columns")
    else:
        train, hold = _split(
            frame, target, the_task, cfg.holdout_fraction, timestamp is not None, random_state
        )
        notes.append(
            f"holdout: {'last' if timestamp else 'random'} {cfg.holdout_fraction:.0%} of the "
            "data; cross-validation ran on the rest"
        )
    train, hold = train.reset_index(drop=True), hold.reset_index(drop=True)
    if len(hold) < 2:
        raise InputError(f"the holdout has {len(hold)} rows; the gate needs at least two")
    X_train, y_train = train[feats], train[target].to_numpy()
    models: dict[str, Any] = {"candidate": candidate, "champion": champion}
    for which, obj in list(models.items()):
        if obj is None:
            continue
        if not is_fitted(obj):
            with record_warnings():
                models[which] = clone(obj).fit(X_train, y_train)
            notes.append(f"the {which} arrived unfitted; a clone was fitted on the training rows")
        elif holdout is None:
            notes.append(
                f"the {which} arrived fitted and the holdout was split from the data: if it was "
                "trained on these rows its holdout scores are optimistic; pass a separate holdout"
            )
    return GateData(
        task=the_task,
        target=target,
        timestamp=timestamp,
        features=feats,
        train=train,
        holdout=hold,
        X_train=X_train,
        y_train=y_train,
        X_holdout=hold[feats],
        y_holdout=hold[target].to_numpy(),
        model=models["candidate"],
        champion=models["champion"],
        metrics=choose_metrics(cfg, the_task, models["candidate"]),
        schema=schema,
        notes=tuple(notes),
    )
