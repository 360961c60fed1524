"""Calibration of a classifier: expected calibration error and the reliability curve.

For a binary classifier the curve is that of the positive-class probability; for more
classes it is the top-label curve (confidence of the predicted class against whether it was
right), as in Guo et al. (2017). The curve itself comes from
:func:`sklearn.calibration.calibration_curve`; the ECE is its bin-size-weighted mean absolute
gap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle._config import CalibrationConfig
from watchkeeper.lifecycle._metrics import Predictions

__all__ = ["calibration_check", "expected_calibration_error", "reliability_inputs"]


def reliability_inputs(p: Predictions) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The (outcome, probability) pairs whose calibration is judged.

    Binary: (is positive, P(positive)). Multiclass: (predicted class is right, its probability).

    Examples
    --------
    >>> p = Predictions(y=np.array([0, 1]), label=np.array([0, 1]),
    ...                 proba=np.array([[0.7, 0.3], [0.2, 0.8]]), classes=np.array([0, 1]))
    >>> reliability_inputs(p)[1].tolist()
    [0.3, 0.8]
    """
    if p.proba is None or p.classes is None:
        raise InputError("calibration needs a classifier with predict_proba and classes_")
    if p.proba.shape[1] == 2:
        return (p.y == p.classes[1]).astype(float), p.proba[:, 1]
    top = np.argmax(p.proba, axis=1)
    return (p.classes[top] == p.y).astype(float), p.proba[np.arange(len(top)), top]


def _bin_ids(prob: NDArray[np.float64], n_bins: int, strategy: str) -> NDArray[np.intp]:
    # The same binning as sklearn.calibration.calibration_curve, so that counts line up with
    # the curve it returns (which drops empty bins).
    if strategy == "quantile":
        edges = np.percentile(prob, np.linspace(0, 100, n_bins + 1))
    else:
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], prob)


def expected_calibration_error(
    outcome: NDArray[np.float64],
    prob: NDArray[np.float64],
    *,
    n_bins: int = 10,
    strategy: str = "uniform",
) -> float:
    """Expected calibration error: sum over bins of (bin share) x |mean outcome - mean prob|.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> prob = rng.random(100_000)
    >>> outcome = (rng.random(100_000) < prob).astype(float)
    >>> expected_calibration_error(outcome, prob) < 0.01
    True
    """
    ids = _bin_ids(np.asarray(prob, dtype=float), n_bins, strategy)
    total = np.bincount(ids, minlength=n_bins).astype(float)
    # sum_b (n_b / n) |mean_y_b - mean_p_b| = sum_b |sum_y_b - sum_p_b| / n
    sum_y = np.bincount(ids, weights=outcome, minlength=n_bins)
    sum_p = np.bincount(ids, weights=prob, minlength=n_bins)
    return float(np.sum(np.abs(sum_y - sum_p)) / max(total.sum(), 1.0))


def calibration_check(
    predictions: Predictions,
    config: CalibrationConfig | None = None,
    *,
    random_state: int = 0,
) -> CheckResult:
    """Expected calibration error on the holdout against ``config.max_ece``, with the curve.

    The ECE is biased upwards on small samples: even a perfectly calibrated model scores
    above zero. The check therefore alerts only when the ECE exceeds ``max_ece`` *and* a
    consistency-resampling test (Bröcker & Smith, 2007: outcomes simulated from the model's
    own probabilities) rejects perfect calibration at level ``1 - confidence``; it warns when
    only the ECE exceeds ``max_ece``. The p-value is that of the test.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p1 = rng.random(5000)
    >>> y = (rng.random(5000) < p1).astype(int)
    >>> pred = Predictions(y=y, label=(p1 > 0.5).astype(int),
    ...                    proba=np.column_stack([1 - p1, p1]), classes=np.array([0, 1]))
    >>> calibration_check(pred).status.value
    'ok'
    """
    cfg = config or CalibrationConfig()
    outcome, prob = reliability_inputs(predictions)
    n = len(outcome)
    alpha = 1 - cfg.confidence
    rule = (
        f"ECE > {cfg.max_ece:g} and perfect calibration rejected at {alpha:g} "
        "(consistency resampling) -> alert; ECE > max_ece alone -> warn"
    )
    if n < 2 * cfg.n_bins:
        return CheckResult(
            check="gate.calibration",
            subject="probabilities",
            status=Status.INSUFFICIENT_DATA,
            reason=f"{n} holdout rows are too few for {cfg.n_bins} calibration bins",
            threshold=cfg.max_ece,
            rule=rule,
        )

    def ece_of(o: NDArray[np.float64], p: NDArray[np.float64]) -> float:
        return expected_calibration_error(o, p, n_bins=cfg.n_bins, strategy=cfg.strategy)

    ece = ece_of(outcome, prob)
    rng = np.random.default_rng(random_state)
    lower = upper = p_value = noise = None
    if cfg.n_resamples > 0:
        # Percentile bootstrap of the ECE: descriptive only, as the ECE is biased upwards and
        # resampling adds to that bias.
        boot = np.array(
            [ece_of(outcome[i], prob[i]) for i in rng.integers(0, n, (cfg.n_resamples, n))]
        )
        lower, upper = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
        # Consistency resampling (Broecker & Smith 2007): outcomes drawn from the model's own
        # probabilities show the ECE a perfectly calibrated model gets on this many rows.
        null = np.array(
            [ece_of((rng.random(n) < prob).astype(float), prob) for _ in range(cfg.n_resamples)]
        )
        p_value = float((1 + np.sum(null >= ece)) / (1 + len(null)))
        noise = float(np.mean(null))
    prob_true, prob_pred = calibration_curve(
        outcome, prob, n_bins=cfg.n_bins, strategy=cfg.strategy
    )
    counts = np.bincount(_bin_ids(prob, cfg.n_bins, cfg.strategy), minlength=cfg.n_bins)
    two = predictions.proba is not None and predictions.proba.shape[1] == 2
    details: dict[str, Any] = {
        "curve": "positive class" if two else "top label",
        "mean_predicted": prob_pred.tolist(),
        "fraction_positive": prob_true.tolist(),
        "bin_counts": counts[counts > 0].tolist(),
        "n_bins": cfg.n_bins,
        "strategy": cfg.strategy,
        "ece_expected_from_noise": noise,
        "interval": "percentile bootstrap (descriptive; the ECE is biased upwards)",
    }
    noise_txt = "" if noise is None else f" (a calibrated model would score about {noise:.4f})"
    real = p_value is None or p_value < alpha
    if ece > cfg.max_ece and real:
        status = Status.ALERT
        reason = (
            f"ECE {ece:.4f} is above {cfg.max_ece:g}{noise_txt} and more than noise; "
            "recalibrate (e.g. CalibratedClassifierCV)"
        )
    elif ece > cfg.max_ece:
        status = Status.WARN
        reason = (
            f"ECE {ece:.4f} is above {cfg.max_ece:g}{noise_txt}, but a perfectly calibrated "
            "model could score that on this few rows"
        )
    else:
        status = Status.OK
        reason = f"ECE {ece:.4f} is within {cfg.max_ece:g}{noise_txt}"
    return CheckResult(
        check="gate.calibration",
        subject="probabilities",
        status=status,
        reason=reason,
        value=ece,
        threshold=cfg.max_ece,
        lower=lower,
        upper=upper,
        p_value=p_value,
        rule=rule,
        details=details,
    )
