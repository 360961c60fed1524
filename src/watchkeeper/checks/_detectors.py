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

Detectors register with ``@detector("name")``; :func:`get_detector` builds one by name. The
built-in ones (River's algorithms) live in ``_river_detectors.py``.
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
    "STATE_FORMAT",
    "Detector",
    "DetectorWithWarning",
    "as_stream",
    "available_detectors",
    "detector",
    "float_param",
    "get_detector",
    "int_param",
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
    _load_builtin_detectors()
    return sorted(_DETECTORS)


def get_detector(name: str, **params: Any) -> Detector:
    """A fresh detector ``name`` with ``params`` (validated; unknown names list the valid ones).

    Examples
    --------
    >>> from watchkeeper.checks import get_detector
    >>> get_detector("adwin", delta=0.001).params["delta"]
    0.001
    """
    _load_builtin_detectors()
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


def int_param(owner: str, name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{owner}: {name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def float_param(
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
        _load_builtin_detectors()
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
        new._n_seen = int_param("state", "n_seen", state.get("n_seen"), minimum=0)
        new._n_detections = int_param("state", "n_detections", state.get("n_detections"), minimum=0)
        last = state.get("last_drift_at")
        new._last_drift_at = (
            None if last is None else int_param("state", "last_drift_at", last, minimum=0)
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


def _load_builtin_detectors() -> None:
    # Importing the module runs its decorators; cheap after the first call.
    from watchkeeper.checks import _river_detectors  # noqa: F401
