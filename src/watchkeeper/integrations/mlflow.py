"""Log gate and drift reports to MLflow runs: metrics, params, tags and the reports themselves.

Names follow one scheme under a ``prefix`` (``gate`` or ``drift`` by default):

* gate reports — metrics ``{prefix}.passed``, ``{prefix}.blessed`` (only when a champion was
  compared), ``{prefix}.n_failures``, ``{prefix}.n_errors`` and, per check result,
  ``{prefix}.{check}.{subject}.value`` / ``.lower`` / ``.upper`` / ``.threshold`` /
  ``.p_value`` where the result has that number (the ``gate.`` of the check name is dropped:
  ``gate.cv.roc_auc.value``); params ``{prefix}.candidate``, ``{prefix}.champion``,
  ``{prefix}.task``, ``{prefix}.n_train``, ``{prefix}.n_holdout``; tags
  ``watchkeeper.version`` and ``watchkeeper.{prefix}.status`` (``passed``, ``failed`` or
  ``error``);
* drift reports — metrics ``{prefix}.dataset_drifted``, ``{prefix}.n_drifted``,
  ``{prefix}.n_tested``, ``{prefix}.n_insufficient``, ``{prefix}.share_drifted``,
  ``{prefix}.multivariate_drifted``, ``{prefix}.quality_findings`` and, per column,
  ``{prefix}.{column}.effect_size`` / ``.p_value`` / ``.adjusted_p_value`` / ``.drifted``
  (per multivariate method the same under ``{prefix}.multivariate.{method}``), all at
  ``step`` so that repeated windows form a series; tags ``watchkeeper.version`` and
  ``watchkeeper.{prefix}.status`` (``drift`` or ``no_drift``);
* both — the JSON and HTML reports as artifacts ``{prefix}/report.json`` and
  ``{prefix}/report.html`` (``{prefix}/step_{step}/`` when a drift step is given).

Characters MLflow refuses in names become ``_``; where that makes two names equal, the later
one gets ``_2``, ``_3``... (columns in name order, so a column keeps its metric name from one
window to the next). Booleans are logged as 1/0; missing or non-finite numbers are not logged.
"""

from __future__ import annotations

import hashlib
import math
import operator
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper._extras import require
from watchkeeper._version import __version__
from watchkeeper.exceptions import InputError, WatchkeeperError

if TYPE_CHECKING:
    from watchkeeper.lifecycle import GateReport
    from watchkeeper.report import Report

__all__ = ["log_drift_report", "log_gate_report"]

# MLflow accepts word characters and ``_ - . space : /`` in names. Colons are refused on
# Windows, and a slash makes the file store nest a metric in a folder that can clash with
# another metric's file, so both are replaced with the other refused characters.
_REFUSED = re.compile(r"[^\w.\- ]")
_PREFIX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")
# MLflow refuses names over 250 characters; the longest field suffix is ".adjusted_p_value".
_MAX_STEM = 250 - len(".adjusted_p_value")
_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
_CHECK_FIELDS = ("value", "lower", "upper", "threshold", "p_value")
_DRIFT_FIELDS = ("effect_size", "p_value", "adjusted_p_value", "drifted")
_URI_HINT = "check tracking_uri (--mlflow-tracking-uri) or MLFLOW_TRACKING_URI"


def log_gate_report(
    report: GateReport,
    *,
    run_id: str | None = None,
    experiment: str | None = None,
    tracking_uri: str | None = None,
    prefix: str = "gate",
) -> str:
    """Log a validation gate report to an MLflow run and return the run id.

    Parameters
    ----------
    report
        The :class:`~watchkeeper.lifecycle.GateReport` of
        :func:`~watchkeeper.lifecycle.validate`.
    run_id
        An existing run to append to (e.g. the training run). Without it the report goes to
        the active run (``mlflow.active_run()``) when there is one and neither ``experiment``
        nor ``tracking_uri`` is given, else to a new run that is ended once logged.
    experiment
        Name of the experiment of the new run, created if missing (default:
        ``MLFLOW_EXPERIMENT_NAME`` / ``MLFLOW_EXPERIMENT_ID``, else MLflow's default
        experiment). With ``run_id``, the run must belong to it.
    tracking_uri
        Where MLflow stores runs (default: MLflow's own, e.g. ``MLFLOW_TRACKING_URI``).
    prefix
        First part of every metric, param and artifact folder name; log two reports into one
        run under different prefixes (MLflow params cannot change once logged).

    Returns
    -------
    str
        The id of the run the report was logged to.

    Raises
    ------
    InputError
        When the run does not exist or is deleted, belongs to another experiment, already
        holds different params under ``prefix``, or MLflow cannot be reached.
    MissingExtraError
        When mlflow is not installed.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from unittest import mock
    >>> from mlflow import MlflowClient
    >>> from watchkeeper.checks import CheckResult, Status
    >>> from watchkeeper.lifecycle import GateReport
    >>> cv = CheckResult(check="gate.cv", subject="roc_auc", status=Status.OK,
    ...                  reason="0.91 >= 0.8", value=0.91, lower=0.89, upper=0.93)
    >>> report = GateReport(candidate="churn@2", champion=None, task="binary",
    ...                     metrics=("roc_auc",), n_train=800, n_holdout=200, results=(cv,))
    >>> # MLflow 3 keeps its serverless file store behind this switch.
    >>> with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(
    ...     os.environ, {"MLFLOW_ALLOW_FILE_STORE": "true"}
    ... ):
    ...     uri = Path(tmp).as_uri()
    ...     run_id = log_gate_report(report, experiment="gates", tracking_uri=uri)
    ...     run = MlflowClient(uri).get_run(run_id)
    >>> run.data.metrics["gate.cv.roc_auc.lower"], run.data.tags["watchkeeper.gate.status"]
    (0.89, 'passed')
    """
    from watchkeeper.lifecycle import GateReport

    if not isinstance(report, GateReport):
        hint = "; log drift reports with log_drift_report" if _is_drift(report) else ""
        raise InputError(
            f"log_gate_report needs the GateReport of watchkeeper.lifecycle.validate, "
            f"not {type(report).__name__}{hint}"
        )
    _check_prefix(prefix)
    payload = _gate_payload(report, prefix)
    return _log(payload, run_id=run_id, experiment=experiment, tracking_uri=tracking_uri, step=0)


def log_drift_report(
    report: Report,
    *,
    run_id: str | None = None,
    experiment: str | None = None,
    tracking_uri: str | None = None,
    prefix: str = "drift",
    step: int | None = None,
) -> str:
    """Log a drift report to an MLflow run and return the run id.

    Parameters
    ----------
    report
        The :class:`~watchkeeper.report.Report` of :func:`watchkeeper.compare`.
    run_id, experiment, tracking_uri, prefix
        As in :func:`log_gate_report`.
    step
        Window number: metrics are logged at this step, so that one run holds the series of
        a monitored model, and the reports go to ``{prefix}/step_{step}/``. Without it,
        metrics are logged at step 0 and the reports to ``{prefix}/``.

    Returns
    -------
    str
        The id of the run the report was logged to.

    Raises
    ------
    InputError
        As in :func:`log_gate_report`, and when ``step`` is not a non-negative integer.
    MissingExtraError
        When mlflow is not installed.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from unittest import mock
    >>> import numpy as np, pandas as pd
    >>> from mlflow import MlflowClient
    >>> import watchkeeper as wk
    >>> rng = np.random.default_rng(0)
    >>> reference = pd.DataFrame({"x": rng.normal(size=500)})
    >>> with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(
    ...     os.environ, {"MLFLOW_ALLOW_FILE_STORE": "true"}
    ... ):
    ...     uri = Path(tmp).as_uri()
    ...     for week, shift in enumerate([0.0, 1.0]):
    ...         current = pd.DataFrame({"x": rng.normal(shift, size=500)})
    ...         report = wk.compare(reference, current, multivariate=None)
    ...         run_id = log_drift_report(report, run_id=None if week == 0 else run_id,
    ...                                   tracking_uri=uri, step=week)
    ...     history = MlflowClient(uri).get_metric_history(run_id, "drift.x.drifted")
    >>> sorted((m.step, m.value) for m in history)
    [(0, 0.0), (1, 1.0)]
    """
    from watchkeeper.report import Report

    if not isinstance(report, Report):
        hint = "; log gate reports with log_gate_report" if _is_gate(report) else ""
        raise InputError(
            f"log_drift_report needs the Report of watchkeeper.compare, "
            f"not {type(report).__name__}{hint}"
        )
    _check_prefix(prefix)
    if step is not None:
        step = _check_step(step)
    payload = _drift_payload(report, prefix, step)
    return _log(
        payload,
        run_id=run_id,
        experiment=experiment,
        tracking_uri=tracking_uri,
        step=0 if step is None else step,
    )


@dataclass
class _Payload:
    """Everything one report logs, built before MLflow is touched."""

    run_name: str
    artifact_dir: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def metric(self, key: str, value: float | bool | None) -> None:
        if value is None:
            return
        number = float(value)
        if math.isfinite(number):
            self.metrics[key] = number


class _Stems:
    """Sanitised name stems, kept distinct where sanitising makes two of them equal."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._taken: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = ".".join([self._prefix, *(_REFUSED.sub("_", part) for part in parts)])
        if len(base) > _MAX_STEM:
            digest = hashlib.sha1(base.encode(), usedforsecurity=False).hexdigest()[:8]
            base = f"{base[: _MAX_STEM - 11]}_{digest}"
        stem, n = base, 1
        while stem in self._taken:
            n += 1
            stem = f"{base}_{n}"
        self._taken.add(stem)
        return stem


def _gate_payload(report: GateReport, prefix: str) -> _Payload:
    payload = _Payload(run_name=f"{prefix} {report.candidate}", artifact_dir=prefix)
    payload.metric(f"{prefix}.passed", report.passed)
    payload.metric(f"{prefix}.blessed", report.blessed)
    payload.metric(f"{prefix}.n_failures", len(report.failures))
    payload.metric(f"{prefix}.n_errors", len(report.errors))
    stems = _Stems(prefix)
    for result in report.results:
        stem = stems(result.check.removeprefix("gate."), result.subject)
        for name in _CHECK_FIELDS:
            payload.metric(f"{stem}.{name}", getattr(result, name))
    payload.params = {
        f"{prefix}.candidate": report.candidate,
        f"{prefix}.task": report.task,
        f"{prefix}.n_train": str(report.n_train),
        f"{prefix}.n_holdout": str(report.n_holdout),
    }
    if report.champion is not None:
        payload.params[f"{prefix}.champion"] = report.champion
    status = "passed" if report.passed else ("error" if report.errors else "failed")
    payload.tags = {
        "watchkeeper.version": report.version or __version__,
        f"watchkeeper.{prefix}.status": status,
    }
    payload.files = {"report.json": report.to_json(), "report.html": report.to_html()}
    return payload


def _drift_payload(report: Report, prefix: str, step: int | None) -> _Payload:
    payload = _Payload(
        run_name=prefix,
        artifact_dir=prefix if step is None else f"{prefix}/step_{step}",
    )
    d = report.dataset
    payload.metric(f"{prefix}.dataset_drifted", d.drifted)
    payload.metric(f"{prefix}.n_drifted", d.n_drifted)
    payload.metric(f"{prefix}.n_tested", d.n_tested)
    payload.metric(f"{prefix}.n_insufficient", d.n_insufficient)
    payload.metric(f"{prefix}.share_drifted", d.share_drifted)
    payload.metric(f"{prefix}.multivariate_drifted", d.multivariate_drifted)
    payload.metric(f"{prefix}.quality_findings", len(report.quality_findings))
    stems = _Stems(prefix)
    # Name order, not the report's severity order: a column keeps its name across windows
    # even where sanitising merged it with another one.
    tested: list[tuple[str, Any]] = [
        (stems(c.name), c) for c in sorted(report.columns, key=lambda c: c.name)
    ]
    tested += [
        (stems("multivariate", m.method), m)
        for m in sorted(report.multivariate, key=lambda m: m.method)
    ]
    for stem, verdict in tested:
        for name in _DRIFT_FIELDS:
            payload.metric(f"{stem}.{name}", getattr(verdict, name))
    meta: Mapping[str, Any] = report.meta
    payload.tags = {
        "watchkeeper.version": str(meta.get("watchkeeper_version") or __version__),
        f"watchkeeper.{prefix}.status": "drift" if d.drifted else "no_drift",
    }
    payload.files = {"report.json": report.to_json(), "report.html": report.to_html()}
    return payload


def _log(
    payload: _Payload,
    *,
    run_id: str | None,
    experiment: str | None,
    tracking_uri: str | None,
    step: int,
) -> str:
    mlflow = require("mlflow", extra="mlflow", purpose="Logging reports to MLflow")
    where = tracking_uri or "the default tracking URI"
    with _mlflow_errors("connect to MLflow", where):
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        where = repr(client.tracking_uri)
    if run_id is None and experiment is None and tracking_uri is None:
        active = mlflow.active_run()
        run_id = None if active is None else active.info.run_id
    created = run_id is None
    if run_id is None:
        experiment_id = _experiment_id(client, experiment, where)
        with _mlflow_errors("create a run", where):
            run_id = str(client.create_run(experiment_id, run_name=payload.run_name).info.run_id)
    else:
        _check_run(client, run_id, experiment, payload.params, where)
    try:
        _write(client, run_id, payload, step)
    except Exception as exc:
        if created:
            _terminate(client, run_id, "FAILED")
        raise WatchkeeperError(
            f"logging to MLflow run {run_id} at {where} failed: {_first_line(exc)}; the run "
            "may hold part of the report, log it again once the cause is fixed"
        ) from exc
    if created:
        _terminate(client, run_id, "FINISHED")
    return run_id


def _experiment_id(client: Any, experiment: str | None, where: str) -> str:
    if experiment is None:
        if os.environ.get("MLFLOW_EXPERIMENT_ID"):
            return os.environ["MLFLOW_EXPERIMENT_ID"]
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or None
    if experiment is None:
        try:
            default = client.get_experiment("0")
        except Exception:
            # A file store made in an existing folder has no default experiment; the next
            # calls report the cause if the store itself is unreachable.
            default = None
        if default is not None and default.lifecycle_stage != "deleted":
            return "0"
        experiment = "Default"
    with _mlflow_errors(f"look up experiment {experiment!r}", where):
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return str(client.create_experiment(experiment))
    if found.lifecycle_stage == "deleted":
        raise InputError(
            f"MLflow experiment {experiment!r} at {where} is deleted; restore it "
            "(mlflow experiments restore) or log to another experiment"
        )
    return str(found.experiment_id)


def _check_run(
    client: Any, run_id: str, experiment: str | None, params: Mapping[str, str], where: str
) -> None:
    with _mlflow_errors(f"find run {run_id!r}", where):
        run = client.get_run(run_id)
        run_experiment = client.get_experiment(run.info.experiment_id)
    if run.info.lifecycle_stage == "deleted":
        raise InputError(
            f"MLflow run {run_id} at {where} is deleted; restore it (mlflow runs restore) or "
            "log to a new run"
        )
    if experiment is not None and run_experiment.name != experiment:
        raise InputError(
            f"MLflow run {run_id} belongs to experiment {run_experiment.name!r}, not "
            f"{experiment!r}; pass the run alone, or the experiment alone to start a new run"
        )
    # MLflow params are write-once: refuse before writing anything rather than half-log.
    existing: Mapping[str, str] = run.data.params
    for key in sorted(params):
        if key in existing and existing[key] != params[key]:
            prefix = key.rsplit(".", 1)[0]
            raise InputError(
                f"MLflow run {run_id} already has param {key}={existing[key]!r} and params "
                f"cannot change (this report has {params[key]!r}); log it under another "
                f"prefix (e.g. prefix={prefix + '_2'!r}) or to a new run"
            )


def _write(client: Any, run_id: str, payload: _Payload, step: int) -> None:
    entities = require("mlflow.entities", extra="mlflow", purpose="Logging reports to MLflow")
    timestamp = int(time.time() * 1000)
    client.log_batch(
        run_id,
        params=[entities.Param(k, v) for k, v in payload.params.items()],
        tags=[entities.RunTag(k, v) for k, v in payload.tags.items()],
    )
    metrics = [entities.Metric(k, v, timestamp, step) for k, v in payload.metrics.items()]
    for start in range(0, len(metrics), _METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _METRICS_PER_BATCH])
    with tempfile.TemporaryDirectory(prefix="wk-mlflow-") as tmp:
        for name, text in payload.files.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        client.log_artifacts(run_id, tmp, artifact_path=payload.artifact_dir)


def _terminate(client: Any, run_id: str, status: str) -> None:
    with _mlflow_errors(f"end run {run_id}", repr(client.tracking_uri)):
        client.set_terminated(run_id, status)


@contextmanager
def _mlflow_errors(what: str, where: str) -> Iterator[None]:
    try:
        yield
    except WatchkeeperError:
        raise
    except Exception as exc:  # MlflowException, transport and store errors alike
        raise InputError(f"cannot {what} at {where}: {_first_line(exc)}; {_URI_HINT}") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _check_prefix(prefix: str) -> None:
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise InputError(
            f"prefix {prefix!r} must be 1-100 letters, digits, '_', '-' or '.', starting "
            "with a letter, digit or '_' (it names metrics and an artifact folder)"
        )


def _check_step(step: Any) -> int:
    try:
        number = operator.index(step)
    except TypeError:
        number = -1
    if isinstance(step, bool) or number < 0:
        raise InputError(f"step must be a non-negative integer (the window number), not {step!r}")
    return number


def _is_drift(report: object) -> bool:
    return type(report).__name__ == "Report"


def _is_gate(report: object) -> bool:
    return type(report).__name__ == "GateReport"
