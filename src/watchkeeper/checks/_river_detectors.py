"""The concept-drift detectors: River's ADWIN, Page–Hinkley, DDM, EDDM and KSWIN behind
watchkeeper's :class:`~watchkeeper.checks.Detector` protocol.

Each class only validates its parameters (with errors that say what to do) and builds River's
object; streaming, counting and state live in the protocol. River is imported lazily (the
``monitor`` extra).
"""

from __future__ import annotations

from typing import Any

from watchkeeper._extras import require
from watchkeeper.checks._detectors import (
    Detector,
    DetectorWithWarning,
    detector,
    float_param,
    int_param,
)
from watchkeeper.exceptions import InputError

__all__ = ["ADWIN", "DDM", "EDDM", "KSWIN", "PageHinkley"]


def _river_drift() -> Any:
    return require("river.drift", extra="monitor", purpose="Concept-drift detection")


def _river_binary() -> Any:
    return require("river.drift.binary", extra="monitor", purpose="Concept-drift detection")


# ---------------------------------------------------------------------------------------------
# The detectors
# ---------------------------------------------------------------------------------------------


@detector("adwin")
class ADWIN(Detector):
    """ADWIN: adaptive windowing (Bifet & Gavaldà, 2007), River's implementation.

    Keeps a window of recent values as long as no split of it into an older and a newer part
    has means that differ more than a Hoeffding-style bound at confidence ``delta`` allows; a
    drift is signalled when the window is cut. Works on 0/1 errors and on losses.

    Parameters
    ----------
    delta
        Confidence of the cut; smaller means fewer false alarms and later detections.
    clock
        Check for a cut every ``clock`` values (River's speed/latency trade-off).
    max_buckets
        Buckets of each size kept before merging (memory vs precision).
    min_window_length
        Smallest sub-window considered for a cut.
    grace_period
        Values before the first check.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.checks import ADWIN
    >>> rng = np.random.default_rng(0)
    >>> errors = np.r_[rng.random(2000) < 0.1, rng.random(2000) < 0.4]
    >>> det = ADWIN()
    >>> hits = [i for i, e in enumerate(errors) if det.update(e).drift_detected]
    >>> 2000 <= hits[0] < 2300
    True
    """

    def __init__(
        self,
        *,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        super().__init__(
            delta=delta,
            clock=clock,
            max_buckets=max_buckets,
            min_window_length=min_window_length,
            grace_period=grace_period,
        )

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "delta": float_param("ADWIN", "delta", params["delta"], low=0.0, high=1.0),
            "clock": int_param("ADWIN", "clock", params["clock"], minimum=1),
            "max_buckets": int_param("ADWIN", "max_buckets", params["max_buckets"], minimum=2),
            "min_window_length": int_param(
                "ADWIN", "min_window_length", params["min_window_length"], minimum=1
            ),
            "grace_period": int_param("ADWIN", "grace_period", params["grace_period"], minimum=1),
        }

    def _build(self) -> Any:
        return _river_drift().ADWIN(**self._params)

    @property
    def warm_up(self) -> int:
        return int(self._params["grace_period"])


@detector("page_hinkley")
class PageHinkley(Detector):
    """Page–Hinkley test (Page, 1954): a CUSUM of deviations from the running mean.

    Signals when the cumulative deviation (minus the tolerance ``delta`` per value) rises more
    than ``threshold`` above its minimum (``mode="up"``), falls below its maximum (``"down"``)
    or either (``"both"``). ``threshold`` is in the units of the input: for 0/1 errors, a rise
    of the error rate by ``d`` is detected after about ``threshold / (d - delta)`` values.

    Parameters
    ----------
    min_instances
        Values before a drift can be signalled.
    delta
        Tolerated change per value.
    threshold
        Detection threshold (lambda).
    alpha
        Forgetting factor of the cumulative sums (1 = no forgetting).
    mode
        ``"up"`` (only a rise of the error), ``"down"`` or ``"both"``.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.checks import PageHinkley
    >>> rng = np.random.default_rng(0)
    >>> errors = np.r_[rng.random(2000) < 0.1, rng.random(2000) < 0.4]
    >>> det = PageHinkley(mode="up")
    >>> hits = [i for i, e in enumerate(errors) if det.update(e).drift_detected]
    >>> 2000 <= hits[0] < 2200
    True
    """

    def __init__(
        self,
        *,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        super().__init__(
            min_instances=min_instances, delta=delta, threshold=threshold, alpha=alpha, mode=mode
        )

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["mode"] not in ("up", "down", "both"):
            raise InputError(
                f"PageHinkley: mode must be 'up', 'down' or 'both'; got {params['mode']!r}"
            )
        return {
            "min_instances": int_param(
                "PageHinkley", "min_instances", params["min_instances"], minimum=1
            ),
            "delta": float_param("PageHinkley", "delta", params["delta"], low=0.0, low_open=False),
            "threshold": float_param("PageHinkley", "threshold", params["threshold"], low=0.0),
            "alpha": float_param(
                "PageHinkley", "alpha", params["alpha"], low=0.0, high=1.0, high_open=False
            ),
            "mode": params["mode"],
        }

    def _build(self) -> Any:
        return _river_drift().PageHinkley(**self._params)

    @property
    def warm_up(self) -> int:
        return int(self._params["min_instances"])


@detector("ddm")
class DDM(DetectorWithWarning):
    """DDM, the drift detection method of Gama et al. (2004), on 0/1 errors.

    Tracks the error rate ``p`` and its binomial standard deviation ``s``; warns when
    ``p + s`` exceeds its recorded minimum ``p_min + warning_threshold * s_min`` and signals a
    drift beyond ``p_min + drift_threshold * s_min``.

    Parameters
    ----------
    warm_start
        Values before a warning or drift can be signalled.
    warning_threshold
        Standard deviations above the minimum for the warning zone.
    drift_threshold
        Standard deviations above the minimum for a drift (at least ``warning_threshold``).

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.checks import DDM
    >>> rng = np.random.default_rng(0)
    >>> errors = np.r_[rng.random(2000) < 0.1, rng.random(2000) < 0.4]
    >>> det = DDM()
    >>> hits = [i for i, e in enumerate(errors) if det.update(e).drift_detected]
    >>> 2000 <= hits[0] < 2300
    True
    >>> DDM().update(0.3)
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: DDM needs 0/1 input (1 = the prediction was wrong); ...
    """

    binary = True

    def __init__(
        self, *, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        super().__init__(
            warm_start=warm_start,
            warning_threshold=warning_threshold,
            drift_threshold=drift_threshold,
        )

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        warn = float_param("DDM", "warning_threshold", params["warning_threshold"], low=0.0)
        drift = float_param("DDM", "drift_threshold", params["drift_threshold"], low=0.0)
        if drift < warn:
            raise InputError(
                f"DDM: drift_threshold ({drift}) must be at least warning_threshold ({warn})"
            )
        return {
            "warm_start": int_param("DDM", "warm_start", params["warm_start"], minimum=1),
            "warning_threshold": warn,
            "drift_threshold": drift,
        }

    def _build(self) -> Any:
        return _river_binary().DDM(**self._params)

    @property
    def warm_up(self) -> int:
        return int(self._params["warm_start"]) + 1


@detector("eddm")
class EDDM(DetectorWithWarning):
    """EDDM, the early drift detection method of Baena-García et al. (2006), on 0/1 errors.

    Tracks the mean ``p'`` and standard deviation ``s'`` of the distance between consecutive
    errors; warns when ``(p' + 2 s') / max(p' + 2 s')`` falls below ``alpha`` and signals a
    drift below ``beta``. Better than DDM at gradual drift, but it judges only at errors and
    needs ``warm_start`` of them first.

    Parameters
    ----------
    warm_start
        Errors (and values) before a warning or drift can be signalled.
    alpha
        Warning level, in (0, 1]; smaller is more conservative.
    beta
        Drift level, in (0, ``alpha``]; smaller is more conservative.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.checks import EDDM
    >>> rng = np.random.default_rng(0)
    >>> errors = np.r_[rng.random(2000) < 0.1, rng.random(2000) < 0.4]
    >>> det = EDDM(alpha=0.8, beta=0.7)
    >>> hits = [i for i, e in enumerate(errors) if det.update(e).drift_detected]
    >>> any(2000 <= i < 2300 for i in hits)
    True
    """

    binary = True

    def __init__(self, *, warm_start: int = 30, alpha: float = 0.95, beta: float = 0.9) -> None:
        super().__init__(warm_start=warm_start, alpha=alpha, beta=beta)

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        alpha = float_param("EDDM", "alpha", params["alpha"], low=0.0, high=1.0, high_open=False)
        beta = float_param("EDDM", "beta", params["beta"], low=0.0, high=1.0, high_open=False)
        if beta > alpha:
            raise InputError(f"EDDM: beta ({beta}) must not exceed alpha ({alpha})")
        return {
            "warm_start": int_param("EDDM", "warm_start", params["warm_start"], minimum=1),
            "alpha": alpha,
            "beta": beta,
        }

    def _build(self) -> Any:
        return _river_binary().EDDM(**self._params)

    @property
    def warm_up(self) -> int:
        return int(self._params["warm_start"]) + 1


@detector("kswin")
class KSWIN(Detector):
    """KSWIN (Raab et al., 2020): a Kolmogorov–Smirnov test inside a sliding window.

    Compares the last ``stat_size`` values with ``stat_size`` values drawn (seeded) from the
    older part of a ``window_size`` window; signals when the KS test rejects at ``alpha`` and the
    KS distance exceeds 0.1. Sees changes of the whole distribution of a loss, not only its
    mean; on 0/1 errors it needs large changes.

    Parameters
    ----------
    alpha
        Significance level of each KS test (one test per value once the window is full, so the
        false-alarm rate per value is about ``alpha``).
    window_size
        Length of the sliding window (at least ``2 * stat_size``).
    stat_size
        Length of the recent sample and of the older sample drawn.
    seed
        Seed of the sampling; fixed by default so runs repeat.

    Examples
    --------
    >>> import numpy as np
    >>> from watchkeeper.checks import KSWIN
    >>> rng = np.random.default_rng(0)
    >>> losses = np.r_[rng.exponential(1.0, 1000), rng.exponential(3.0, 1000)]
    >>> det = KSWIN(alpha=0.0001)
    >>> hits = [i for i, x in enumerate(losses) if det.update(x).drift_detected]
    >>> 1000 <= hits[0] < 1100
    True
    """

    def __init__(
        self, *, alpha: float = 0.005, window_size: int = 100, stat_size: int = 30, seed: int = 0
    ) -> None:
        super().__init__(alpha=alpha, window_size=window_size, stat_size=stat_size, seed=seed)

    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        stat = int_param("KSWIN", "stat_size", params["stat_size"], minimum=2)
        window = int_param("KSWIN", "window_size", params["window_size"], minimum=2 * stat)
        return {
            "alpha": float_param("KSWIN", "alpha", params["alpha"], low=0.0, high=1.0),
            "window_size": window,
            "stat_size": stat,
            "seed": int_param("KSWIN", "seed", params["seed"], minimum=0),
        }

    def _build(self) -> Any:
        return _river_drift().KSWIN(**self._params)

    @property
    def warm_up(self) -> int:
        return int(self._params["window_size"])
