"""Concept-drift verdicts: run detectors over a model's error stream, return CheckResults.

The monitor calls :func:`check_concept_drift_detectors` once per window with the errors of the rows
whose labels arrived since the last run, and persists each detector with
:meth:`~watchkeeper.checks.Detector.to_state` so every labelled row is fed exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.checks._detectors import Detector, DetectorWithWarning, as_stream, get_detector
from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.exceptions import InputError

__all__ = [
    "DEFAULT_DETECTORS",
    "DetectorRun",
    "check_concept_drift",
    "check_concept_drift_detectors",
    "error_stream",
    "run_detector",
]

#: Detectors the monitor runs when none are named: ADWIN for any error stream (0/1 or loss),
#: DDM for classifiers' 0/1 errors (see docs/detectors.md for their delay and false alarms).
DEFAULT_DETECTORS: tuple[str, ...] = ("adwin", "ddm")


@dataclass(frozen=True, slots=True)
class DetectorRun:
    """What a detector signalled over one batch of the error stream.

    ``drift_indices`` and ``warning_onsets`` are 0-based positions within the batch (a warning
    onset is a value at which the warning zone was entered); ``first_row`` is the position of
    the batch's first value in everything the detector has seen, so ``first_row + i`` is the
    detector-lifetime position of batch position ``i``.

    Examples
    --------
    >>> from watchkeeper.checks import get_detector, run_detector
    >>> run = run_detector(get_detector("ddm"), [0] * 50 + [1] * 20)
    >>> run.n_rows, run.drift_indices
    (70, (50,))
    """

    detector: str
    first_row: int
    n_rows: int
    drift_indices: tuple[int, ...]
    warning_onsets: tuple[int, ...]
    warning_at_end: bool


def run_detector(detector: Detector, stream: ArrayLike) -> DetectorRun:
    """Feed ``stream`` to ``detector`` (in place; validated first, so a bad batch changes
    nothing) and record where it signalled.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.checks import ADWIN, run_detector
    >>> rng = np.random.default_rng(1)
    >>> det = ADWIN()
    >>> first = run_detector(det, rng.random(1000) < 0.1)
    >>> second = run_detector(det, rng.random(1000) < 0.5)
    >>> first.drift_indices, second.first_row, len(second.drift_indices) > 0
    ((), 1000, True)
    """
    values = as_stream(stream, binary=detector.binary, owner=type(detector).__name__)
    first_row = detector.n_seen
    warns = detector if isinstance(detector, DetectorWithWarning) else None
    was_warning = warns is not None and warns.warning_detected
    drifts: list[int] = []
    onsets: list[int] = []
    for i, x in enumerate(values.tolist()):
        detector._update_checked(x)
        if detector.drift_detected:
            drifts.append(i)
        if warns is not None:
            warning = warns.warning_detected
            if warning and not was_warning:
                onsets.append(i)
            was_warning = warning
    return DetectorRun(
        detector=detector.name,
        first_row=first_row,
        n_rows=int(values.size),
        drift_indices=tuple(drifts),
        warning_onsets=tuple(onsets),
        warning_at_end=bool(was_warning),
    )


def check_concept_drift(detector: Detector, stream: ArrayLike) -> CheckResult:
    """Feed one batch of the error stream to ``detector`` and judge it.

    ``alert`` when the detector signalled a drift in this batch, ``warn`` when it ends the
    batch in its warning zone (DDM, EDDM), ``insufficient_data`` while it has seen fewer values
    than it needs to signal at all (again after each drift: the detector then starts afresh),
    ``ok`` otherwise. ``value`` is the number of values seen
    since the latest drift signal (``None`` if there was none yet); ``details`` hold the signal
    positions within the batch and over the detector's lifetime.

    Examples
    --------
    >>> from watchkeeper.checks import check_concept_drift, get_detector
    >>> det = get_detector("ddm")
    >>> r = check_concept_drift(det, [0] * 50 + [1] * 20)
    >>> r.check, r.status.value, r.value, r.details["drift_indices"]
    ('concept.ddm', 'alert', 19.0, [50])
    >>> check_concept_drift(det, [0] * 5).status.value
    'insufficient_data'
    """
    run = run_detector(detector, stream)
    check = f"concept.{detector.name}"
    since = None if detector.last_drift_at is None else detector.n_seen - 1 - detector.last_drift_at
    # Like River's, a detector starts afresh after each drift and needs its warm-up again.
    since_start = detector.n_seen if since is None else since
    details = {
        "detector": detector.name,
        "params": dict(detector.params),
        "n_rows": run.n_rows,
        "first_row": run.first_row,
        "n_seen": detector.n_seen,
        "drift_indices": list(run.drift_indices),
        "drift_positions": [run.first_row + i for i in run.drift_indices],
        "warning_onsets": list(run.warning_onsets),
        "n_detections_total": detector.n_detections,
        "last_drift_at": detector.last_drift_at,
    }
    label = type(detector).__name__
    if run.drift_indices:
        where = ", ".join(f"{i:,}" for i in run.drift_indices[:5])
        more = "" if len(run.drift_indices) <= 5 else f" and {len(run.drift_indices) - 5} more"
        status = Status.ALERT
        reason = (
            f"{label} signalled a change in the error stream at row {where}{more} of "
            f"{run.n_rows:,} new labelled rows; check whether the model still fits the data "
            "and consider retraining on recent rows"
        )
    elif since_start < detector.warm_up:
        status = Status.INSUFFICIENT_DATA
        restarted = "" if detector.last_drift_at is None else " since it restarted after a drift"
        reason = (
            f"{label} has seen {since_start:,} labelled rows{restarted}; it needs "
            f"{detector.warm_up:,} before it can signal a change"
        )
    elif run.warning_at_end:
        status = Status.WARN
        reason = (
            f"{label} is in its warning zone after {run.n_rows:,} new labelled rows: the error "
            "rate is rising but has not crossed the drift level yet"
        )
    else:
        status = Status.OK
        reason = f"{label} saw no change in the error stream over {run.n_rows:,} new labelled rows"
    return CheckResult(
        check=check,
        subject="model",
        status=status,
        reason=reason,
        value=None if since is None else float(since),
        rule=detector.name,
        details=details,
    )


def check_concept_drift_detectors(
    stream: ArrayLike,
    detectors: Mapping[str, Detector] | Iterable[str] | None = None,
) -> tuple[list[CheckResult], dict[str, Detector]]:
    """Run several detectors over the same batch of the error stream.

    ``detectors`` is either a mapping name -> detector (restored from the previous run's
    states, updated in place) or names of fresh detectors with default parameters
    (:data:`DEFAULT_DETECTORS` when ``None``; binary detectors are skipped for a non-0/1
    stream). Returns the results and the detectors to persist.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.checks import check_concept_drift_detectors
    >>> rng = np.random.default_rng(2)
    >>> errors = np.r_[rng.random(3000) < 0.1, rng.random(1000) < 0.5]
    >>> results, dets = check_concept_drift_detectors(errors)
    >>> [(r.check, r.status.value) for r in results]
    [('concept.adwin', 'alert'), ('concept.ddm', 'alert')]
    >>> results, _ = check_concept_drift_detectors(rng.random(4000) < 0.1, dets)  # continues
    """
    values = as_stream(stream)
    is_binary = bool(np.all((values == 0.0) | (values == 1.0)))
    if detectors is None or not isinstance(detectors, Mapping):
        names = list(DEFAULT_DETECTORS if detectors is None else detectors)
        dets = {name: get_detector(name) for name in names}
        if detectors is None and not is_binary:
            dets = {name: d for name, d in dets.items() if not d.binary}
    else:
        dets = dict(detectors)
    for name, det in dets.items():
        if not isinstance(det, Detector):
            raise InputError(f"detector {name!r} is a {type(det).__name__}, not a Detector")
    return [check_concept_drift(det, values) for det in dets.values()], dets


def error_stream(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    task: str = "classification",
    loss: str = "absolute",
    k: int = 10,
) -> NDArray[np.float64]:
    """The error stream detectors watch: 1/0 for wrong/right class predictions, a
    regressor's ``"absolute"`` or ``"squared"`` loss per row, or for ``task="ranking"``
    (``y_true`` each query's relevant items, ``y_pred`` its ranked list) ``1 - nDCG@k`` per
    query.

    Examples
    --------
    >>> from watchkeeper.checks import error_stream
    >>> error_stream(["a", "b", "b"], ["a", "a", "b"]).tolist()
    [0.0, 1.0, 0.0]
    >>> error_stream([1.0, 2.0], [1.5, 2.0], task="regression", loss="squared").tolist()
    [0.25, 0.0]
    >>> error_stream([["a"], ["z"]], [["a", "b"], ["a", "b"]], task="ranking", k=2).tolist()
    [0.0, 1.0]
    """
    if task == "ranking":
        from watchkeeper.checks._ranking import ndcg_losses

        return ndcg_losses(y_pred, y_true, k)  # type: ignore[arg-type]
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise InputError(
            f"y_true and y_pred must be 1-D and aligned; got shapes {t.shape} and {p.shape}"
        )
    if task == "classification":
        out: NDArray[np.float64] = (t != p).astype(np.float64)
        return out
    if task != "regression":
        raise InputError(f"task must be 'classification', 'regression' or 'ranking'; got {task!r}")
    diff = np.asarray(t, dtype=np.float64) - np.asarray(p, dtype=np.float64)
    if loss == "absolute":
        return np.asarray(np.abs(diff), dtype=np.float64)
    if loss == "squared":
        return np.asarray(np.square(diff), dtype=np.float64)
    raise InputError(f"loss must be 'absolute' or 'squared'; got {loss!r}")
