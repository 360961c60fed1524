"""Concept-drift detectors on a model's error stream, behind one small protocol.

The algorithms are River's (:mod:`river.drift`, :mod:`river.drift.binary`); watchkeeper wraps
them so that every detector

- validates its parameters and its input with errors that say what to do;
- follows River's streaming protocol: :meth:`~Detector.update` returns the detector, verdicts
  are read-only properties (:attr:`~Detector.drift_detected`, and
  :attr:`~DetectorWithWarning.warning_detected` where the algorithm has a warning zone);
- counts what it has seen (:attr:`~Detector.n_seen`, :attr:`~Detector.last_drift_at`);
- saves and restores its whole state as JSON (:meth:`~Detector.to_state`,
  :meth:`Detector.from_state`), so the monitor can persist detectors between runs and feed each
  labelled row exactly once.

River's detector objects have no public state format (ADWIN's is a compiled Rust object), so
the state holds River's attributes pickled and base64-encoded, next to plain JSON for the
parameters and counters. Restoring unpickles through an allow-list (River's classes, ``deque``,
``random.Random``, numpy scalars) so a tampered state cannot run code, and refuses a state
written under another River version (start a fresh detector instead).

Detectors register with ``@detector("name")``; :func:`get_detector` builds one by name.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import io
import math
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper._extras import require
from watchkeeper.exceptions import InputError

__all__ = [
    "ADWIN",
    "DDM",
    "EDDM",
    "KSWIN",
    "STATE_FORMAT",
    "Detector",
    "DetectorWithWarning",
    "PageHinkley",
    "as_stream",
    "available_detectors",
    "detector",
    "get_detector",
]

#: ``format`` field of :meth:`Detector.to_state` (bumped when the layout changes).
STATE_FORMAT = "watchkeeper.detector/1"

D = TypeVar("D", bound="type[Detector]")

_DETECTORS: dict[str, type[Detector]] = {}


def detector(name: str) -> Callable[[D], D]:
    """Register a :class:`Detector` subclass under ``name`` (a class decorator).

    Examples
    --------
    >>> from watchkeeper.checks import available_detectors
    >>> available_detectors()
    ['adwin', 'ddm', 'eddm', 'kswin', 'page_hinkley']
    """

    def register(cls: D) -> D:
        if name in _DETECTORS:
            raise RuntimeError(f"detector {name!r} is registered twice")
        cls.name = name
        _DETECTORS[name] = cls
        return cls

    return register


def available_detectors() -> list[str]:
    """Names of the registered detectors, sorted."""
    return sorted(_DETECTORS)


def get_detector(name: str, **params: Any) -> Detector:
    """A fresh detector ``name`` with ``params`` (validated; unknown names list the valid ones).

    Examples
    --------
    >>> from watchkeeper.checks import get_detector
    >>> get_detector("adwin", delta=0.001).params["delta"]
    0.001
    """
    try:
        cls = _DETECTORS[name]
    except KeyError:
        valid = ", ".join(available_detectors())
        raise InputError(
            f"unknown concept-drift detector {name!r}; choose one of: {valid}"
        ) from None
    return cls(**params)


# ---------------------------------------------------------------------------------------------
# Parameter and input validation
# ---------------------------------------------------------------------------------------------


def _int_param(owner: str, name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{owner}: {name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _float_param(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = True,
    high_open: bool = True,
) -> float:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    x = float(value) if ok else math.nan
    inside = (x > low if low_open else x >= low) and (x < high if high_open else x <= high)
    if not (ok and math.isfinite(x) and inside):
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise InputError(
            f"{owner}: {name} must be a number in {lo}{low}, {high}{hi}; got {value!r}"
        )
    return x


def as_stream(values: ArrayLike, *, binary: bool = False, owner: str = "detector") -> NDArray[Any]:
    """``values`` as a 1-D float array of finite numbers (0/1 only when ``binary``).

    Raises :class:`~watchkeeper.exceptions.InputError` naming the first bad position, before any
    detector has seen a row, so a rejected batch leaves the detector untouched.

    Examples
    --------
    >>> from watchkeeper.checks._detectors import as_stream
    >>> as_stream([True, False, 1]).tolist()
    [1.0, 0.0, 1.0]
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{owner} needs numbers (1 = error, 0 = correct, or a loss): {exc}"
        ) from None
    if arr.ndim != 1:
        raise InputError(f"{owner} needs a 1-D stream of values; got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"{owner}: value {arr[i]} at position {i} is not finite; drop rows without a label "
            "or a prediction before computing the error stream"
        )
    if binary:
        bad = (arr != 0.0) & (arr != 1.0)
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(
                f"{owner} needs 0/1 input (1 = the prediction was wrong); got {arr[i]} at "
                f"position {i}. For losses of a regressor use ADWIN, PageHinkley or KSWIN"
            )
    return arr


# ---------------------------------------------------------------------------------------------
# State: River's attributes, pickled, restored through an allow-list
# ---------------------------------------------------------------------------------------------

_SAFE_GLOBALS = {
    ("collections", "deque"),
    ("random", "Random"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "scalar"),
}


class _RiverUnpickler(pickle.Unpickler):
    """Resolves only River's own classes and a few harmless containers."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        if module == "river" or module.startswith("river."):
            obj = super().find_class(module, name)
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                return obj
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a detector state")


def _river_version() -> str:
    river = require("river", extra="monitor", purpose="Concept-drift detection")
    return str(river.__version__)


def _dump_attributes(obj: Any) -> str:
    # Bound methods (PageHinkley's test function) are rebuilt by the constructor; everything
    # else is the algorithm's state.
    attrs = {k: v for k, v in vars(obj).items() if not inspect.ismethod(v)}
    return base64.b64encode(pickle.dumps(attrs, protocol=4)).decode("ascii")


def _load_attributes(text: str) -> dict[str, Any]:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        attrs = _RiverUnpickler(io.BytesIO(raw)).load()
    except (binascii.Error, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
        raise InputError(
            f"the detector state is corrupt ({exc}); start a fresh detector with get_detector()"
        ) from None
    if not isinstance(attrs, dict):
        raise InputError(
            "the detector state is corrupt; start a fresh detector with get_detector()"
        )
    return attrs


# ---------------------------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------------------------


class Detector(ABC):
    """A concept-drift detector fed one value of a model's error stream at a time.

    Subclasses wrap a River detector: they set :attr:`binary` (input must be 0/1) and implement
    :meth:`_validate` and :meth:`_build`. The public protocol is fixed:

    - ``update(x)`` feeds one value and returns the detector;
    - ``drift_detected`` is ``True`` right after the update at which a drift was signalled (the
      detector then starts afresh on the next value, as River's do);
    - ``n_seen`` counts values fed since construction or :meth:`reset`;
      ``last_drift_at`` is the 0-based position of the latest signal, ``n_detections`` the count;
    - ``warm_up`` is the number of values before which the algorithm cannot signal at all;
    - ``to_state()`` / ``Detector.from_state(state)`` round-trip through JSON.
    """

    name: ClassVar[str] = ""
    binary: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        self._params = self._validate(dict(params))
        self._river: Any = self._build()
        self._n_seen = 0
        self._n_detections = 0
        self._last_drift_at: int | None = None

    @abstractmethod
    def _validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Check the parameters and return them, normalised."""

    @abstractmethod
    def _build(self) -> Any:
        """A fresh River detector with :attr:`params`."""

    @property
    def warm_up(self) -> int:
        """Values needed before a drift can be signalled at all."""
        return 1

    @property
    def params(self) -> Mapping[str, Any]:
        """The detector's parameters (a copy)."""
        return dict(self._params)

    @property
    def drift_detected(self) -> bool:
        """Whether the last update signalled a drift."""
        return bool(self._river.drift_detected)

    @property
    def n_seen(self) -> int:
        """Values fed since construction or :meth:`reset`."""
        return self._n_seen

    @property
    def n_detections(self) -> int:
        """Drifts signalled since construction or :meth:`reset`."""
        return self._n_detections

    @property
    def last_drift_at(self) -> int | None:
        """0-based position (among the values fed) of the latest drift signal, if any."""
        return self._last_drift_at

    def update(self, x: float) -> Detector:
        """Feed one value (1 = error and 0 = correct, or a loss for non-binary detectors)."""
        value = as_stream([x], binary=self.binary, owner=type(self).__name__)[0]
        return self._update_checked(float(value))

    def _update_checked(self, x: float) -> Detector:
        # Binary detectors compare with ``== 1``; give them ints as River's examples do.
        self._river.update(int(x) if self.binary else x)
        if self._river.drift_detected:
            self._n_detections += 1
            self._last_drift_at = self._n_seen
        self._n_seen += 1
        return self

    def reset(self) -> Detector:
        """Forget everything seen (parameters are kept)."""
        self._river = self._build()
        self._n_seen = 0
        self._n_detections = 0
        self._last_drift_at = None
        return self

    def to_state(self) -> dict[str, Any]:
        """The whole state as a JSON-serialisable dict (see the module notes on its format)."""
        return {
            "format": STATE_FORMAT,
            "detector": self.name,
            "params": self.params,
            "n_seen": self._n_seen,
            "n_detections": self._n_detections,
            "last_drift_at": self._last_drift_at,
            "river_version": _river_version(),
            "river_state": _dump_attributes(self._river),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Detector:
        """Rebuild a detector saved with :meth:`to_state`; it continues exactly where it was.

        Called on :class:`Detector` it returns the saved kind; called on a subclass it also
        checks that the state is of that kind.
        """
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise InputError(
                f"not a detector state (expected format {STATE_FORMAT!r}); "
                "pass what Detector.to_state() returned"
            )
        name = state.get("detector")
        kind = _DETECTORS.get(str(name))
        if kind is None:
            raise InputError(f"unknown detector {name!r} in state; choose one of: "
                             + ", ".join(available_detectors()))  # fmt: skip
        if cls is not Detector and kind is not cls:
            raise InputError(f"state is for detector {name!r}, not {cls.name!r}")
        saved, current = state.get("river_version"), _river_version()
        if saved != current:
            raise InputError(
                f"detector state was saved under river {saved}, this is river {current}; "
                f"start a fresh detector with get_detector({name!r}, ...)"
            )
        params = state.get("params")
        if not isinstance(params, Mapping):
            raise InputError("detector state has no params mapping")
        new = kind(**params)
        vars(new._river).update(_load_attributes(str(state.get("river_state", ""))))
        new._n_seen = _int_param("state", "n_seen", state.get("n_seen"), minimum=0)
        new._n_detections = _int_param(
            "state", "n_detections", state.get("n_detections"), minimum=0
        )
        last = state.get("last_drift_at")
        new._last_drift_at = (
            None if last is None else _int_param("state", "last_drift_at", last, minimum=0)
        )
        return new

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"


class DetectorWithWarning(Detector):
    """A detector whose algorithm also has a warning zone before a drift."""

    @property
    def warning_detected(self) -> bool:
        """Whether the stream is in the warning zone after the last update."""
        return bool(self._river.warning_detected)


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
            "delta": _float_param("ADWIN", "delta", params["delta"], low=0.0, high=1.0),
            "clock": _int_param("ADWIN", "clock", params["clock"], minimum=1),
            "max_buckets": _int_param("ADWIN", "max_buckets", params["max_buckets"], minimum=2),
            "min_window_length": _int_param(
                "ADWIN", "min_window_length", params["min_window_length"], minimum=1
            ),
            "grace_period": _int_param("ADWIN", "grace_period", params["grace_period"], minimum=1),
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
            "min_instances": _int_param(
                "PageHinkley", "min_instances", params["min_instances"], minimum=1
            ),
            "delta": _float_param("PageHinkley", "delta", params["delta"], low=0.0, low_open=False),
            "threshold": _float_param("PageHinkley", "threshold", params["threshold"], low=0.0),
            "alpha": _float_param(
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
        warn = _float_param("DDM", "warning_threshold", params["warning_threshold"], low=0.0)
        drift = _float_param("DDM", "drift_threshold", params["drift_threshold"], low=0.0)
        if drift < warn:
            raise InputError(
                f"DDM: drift_threshold ({drift}) must be at least warning_threshold ({warn})"
            )
        return {
            "warm_start": _int_param("DDM", "warm_start", params["warm_start"], minimum=1),
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
        alpha = _float_param("EDDM", "alpha", params["alpha"], low=0.0, high=1.0, high_open=False)
        beta = _float_param("EDDM", "beta", params["beta"], low=0.0, high=1.0, high_open=False)
        if beta > alpha:
            raise InputError(f"EDDM: beta ({beta}) must not exceed alpha ({alpha})")
        return {
            "warm_start": _int_param("EDDM", "warm_start", params["warm_start"], minimum=1),
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
        stat = _int_param("KSWIN", "stat_size", params["stat_size"], minimum=2)
        window = _int_param("KSWIN", "window_size", params["window_size"], minimum=2 * stat)
        return {
            "alpha": _float_param("KSWIN", "alpha", params["alpha"], low=0.0, high=1.0),
            "window_size": window,
            "stat_size": stat,
            "seed": _int_param("KSWIN", "seed", params["seed"], minimum=0),
        }

    def _build(self) -> Any:
        return _river_drift().KSWIN(**self._params)

    @property
    def warm_up(self) -> int:
        return int(self._params["window_size"])
