"""``validate``: run every configured gate check on a candidate and collect the report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from watchkeeper._version import __version__
from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle._calibration import calibration_check
from watchkeeper.lifecycle._common import make_cv, record_warnings
from watchkeeper.lifecycle._comparison import compare_models
from watchkeeper.lifecycle._config import GateConfig
from watchkeeper.lifecycle._extra import GateContext, run_gate_check
from watchkeeper.lifecycle._generalisation import cross_validation_checks, learning_curve_check
from watchkeeper.lifecycle._inputs import GateData, prepare
from watchkeeper.lifecycle._iterations import early_stopping_check
from watchkeeper.lifecycle._metrics import Predictions, Task, get_metric, predict
from watchkeeper.lifecycle._regularisation import validation_curve_check
from watchkeeper.lifecycle._report import GateReport
from watchkeeper.lifecycle._robustness import robustness_checks
from watchkeeper.lifecycle._serving import serving_checks

__all__ = ["validate"]


def validate(
    candidate: Any,
    data: Any,
    *,
    target: str | None = None,
    schema: Any = None,
    holdout: Any = None,
    champion: Any = None,
    config: GateConfig | str | Path | None = None,
    features: Sequence[str] | None = None,
    timestamp: str | None = None,
    task: Task | None = None,
    name: str | None = None,
    champion_name: str | None = None,
    random_state: int = 0,
    progress: Callable[[str], None] | None = None,
) -> GateReport:
    """Run the validation gate on ``candidate`` and return the report.

    Parameters
    ----------
    candidate
        A scikit-learn compatible model. Cross-validation refits clones of it on ``data``;
        the holdout checks use it as given (fitted on the training part first if it arrives
        unfitted). Models that cannot be refitted skip the generalisation checks.
    data
        Training data with the target column: a pandas DataFrame, an Arrow or polars table,
        or the path of a CSV/Parquet file.
    target
        Name of the target column (default: the column with the ``target`` role in
        ``schema``).
    schema
        A :class:`watchkeeper.data.Schema` (or the path of one saved as JSON) whose roles
        give the target, the timestamp and the features when those are not passed.
    holdout
        Separate holdout with the same columns. Without it, ``config.holdout_fraction`` of
        ``data`` is held out (the last rows in time when there is a timestamp).
    champion
        The model in production, compared with the candidate on the holdout.
    config
        A :class:`GateConfig`, or the path of a TOML/JSON file holding one.
    features
        Feature columns (default: the schema's features, else every column but the target
        and the timestamp).
    timestamp
        Time column: rows are ordered by it, cross-validation uses a time-series split and the
        holdout is the most recent rows.
    task
        ``"binary"``, ``"multiclass"`` or ``"regression"`` (default: inferred from the model).
    name, champion_name
        Labels in the report.
    random_state
        Seed of every random choice.
    progress
        Called with the name of each stage as it starts.

    Returns
    -------
    GateReport

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = make_classification(400, 5, random_state=0)
    >>> df = pd.DataFrame(X, columns=list("abcde")).assign(y=y)
    >>> cfg = GateConfig.from_dict({"generalisation": {"folds": 3, "learning_curve": False,
    ...                             "validation_curve": False},
    ...                             "robustness": {"large_batch_rows": 1000},
    ...                             "serving": {"batch_sizes": [1, 100], "repeats": 3}})
    >>> report = validate(LogisticRegression(), df, target="y", config=cfg)
    >>> report.task, report.exit_code in (0, 1)
    ('binary', True)
    """
    cfg = GateConfig.from_file(config) if isinstance(config, str | Path) else config
    cfg = cfg or GateConfig()
    step = progress or (lambda _stage: None)
    d = prepare(
        candidate,
        data,
        cfg=cfg,
        target=target,
        schema=schema,
        holdout=holdout,
        champion=champion,
        features=features,
        timestamp=timestamp,
        task=task,
        random_state=random_state,
    )
    notes = list(d.notes)
    results: list[CheckResult] = []

    step("holdout")
    with record_warnings():
        preds = predict(d.model, d.X_holdout, d.y_holdout, d.task)
    results.extend(_holdout_scores(preds, d.metrics))

    if cfg.generalisation.enabled:
        if hasattr(candidate, "get_params") and hasattr(candidate, "fit"):
            results.extend(_generalisation(candidate, d, cfg, step, random_state))
        else:
            notes.append(
                "generalisation checks skipped: the candidate cannot be refitted (it is not a "
                "scikit-learn compatible estimator with get_params and fit)"
            )

    if cfg.calibration.enabled and d.task != "regression" and preds.proba is not None:
        step("calibration")
        results.extend(
            _guard(
                "gate.calibration",
                lambda: calibration_check(preds, cfg.calibration, random_state=random_state),
            )
        )

    champ_preds: Predictions | None = None
    if d.champion is not None:
        with record_warnings():
            champ_preds = predict(d.champion, d.X_holdout, d.y_holdout, d.task)
        if cfg.comparison.enabled:
            step("champion comparison")
            compared = tuple(cfg.comparison.metrics or d.metrics[:1])
            for m in compared:
                get_metric(m, d.task)
            old = champ_preds
            results.extend(
                _guard(
                    "gate.comparison",
                    lambda: compare_models(
                        old, preds, compared, cfg.comparison, random_state=random_state
                    ),
                )
            )

    if cfg.robustness.enabled:
        step("robustness")
        results.extend(
            _guard(
                "gate.robustness",
                lambda: robustness_checks(
                    d.model,
                    d.X_holdout,
                    task=d.task,
                    config=cfg.robustness,
                    random_state=random_state,
                ),
            )
        )

    if cfg.serving.enabled:
        step("serving")
        results.extend(
            _guard(
                "gate.latency",
                lambda: serving_checks(
                    d.model, d.X_holdout, cfg.serving, random_state=random_state
                ),
            )
        )

    if cfg.extra_checks:
        ctx = GateContext(
            model=d.model,
            task=d.task,
            X_train=d.X_train,
            y_train=d.y_train,
            X_holdout=d.X_holdout,
            y_holdout=d.y_holdout,
            predictions=preds,
            champion=d.champion,
            champion_predictions=champ_preds,
            config=cfg,
            random_state=random_state,
            holdout_frame=d.holdout,
            schema=d.schema,
            train_frame=d.train,
        )
        for check_name, params in cfg.extra_checks.items():
            step(f"extra check {check_name}")
            results.extend(run_gate_check(check_name, ctx, params))

    return GateReport(
        candidate=name or type(candidate).__name__,
        champion=None if champion is None else champion_name or type(champion).__name__,
        task=d.task,
        metrics=d.metrics,
        n_train=len(d.X_train),
        n_holdout=len(d.X_holdout),
        results=tuple(results),
        config=cfg,
        notes=tuple(notes),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        version=__version__,
    )


def _generalisation(
    candidate: Any,
    d: GateData,
    cfg: GateConfig,
    step: Callable[[str], None],
    random_state: int,
) -> list[CheckResult]:
    gen = cfg.generalisation
    step("cross-validation")
    if len(d.X_train) < cfg.min_rows:
        return [
            CheckResult(
                check="gate.cv",
                subject=d.metrics[0],
                status=Status.INSUFFICIENT_DATA,
                reason=f"{len(d.X_train)} training rows is below min_rows={cfg.min_rows}",
            )
        ]
    cv, cv_name = make_cv(
        d.task, gen.folds, d.y_train, time_ordered=d.time_ordered, random_state=random_state
    )
    args = (candidate, d.X_train, d.y_train)
    out = _guard(
        "gate.cv",
        lambda: cross_validation_checks(
            *args, task=d.task, metrics=d.metrics, cv=cv, cv_name=cv_name, config=gen
        ),
    )
    if gen.curve_folds < gen.folds and (gen.learning_curve or gen.validation_curve):
        # The curves only advise: fewer folds than the cross-validation (see curve_folds).
        cv, _ = make_cv(
            d.task, gen.curve_folds, d.y_train, time_ordered=d.time_ordered,
            random_state=random_state,
        )  # fmt: skip
    if gen.learning_curve:
        step("learning curve")
        out += _guard(
            "gate.learning_curve",
            lambda: learning_curve_check(
                *args,
                task=d.task,
                metric=d.metrics[0],
                cv=cv,
                time_ordered=d.time_ordered,
                config=gen,
                random_state=random_state,
            ),
        )
    if gen.validation_curve:
        step("validation curve")
        out += _guard(
            "gate.validation_curve",
            lambda: validation_curve_check(
                *args, task=d.task, metric=d.metrics[0], cv=cv, config=gen
            ),
        )
    if gen.early_stopping:
        step("early stopping")
        out += _guard(
            "gate.early_stopping",
            lambda: early_stopping_check(
                *args,
                task=d.task,
                time_ordered=d.time_ordered,
                config=gen,
                random_state=random_state,
            ),
        )
    return out


def _holdout_scores(preds: Predictions, metrics: tuple[str, ...]) -> list[CheckResult]:
    out = []
    for name in metrics:
        value = get_metric(name).compute(preds)
        out.append(
            CheckResult(
                check="gate.holdout",
                subject=name,
                status=Status.OK,
                reason=f"holdout {name} {value:.4g} on {len(preds.y):,} rows",
                value=value,
                rule="reported, not judged",
            )
        )
    return out


def _guard(check: str, run: Callable[[], Any]) -> list[CheckResult]:
    """Run one check; a bug or a model failure inside it becomes an ``error`` result.

    Input errors (a misnamed parameter, an unknown metric) are the caller's to fix and
    propagate instead.
    """
    try:
        got = run()
    except InputError:
        raise
    except Exception as exc:
        return [
            CheckResult(
                check=check,
                subject="gate",
                status=Status.ERROR,
                reason=f"the check failed: {type(exc).__name__}: {exc}",
            )
        ]
    if got is None:
        return []
    return [got] if isinstance(got, CheckResult) else list(got)
