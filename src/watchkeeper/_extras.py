"""Lazy imports of pieces that live elsewhere.

* :func:`require`: optional third-party dependencies, with an error naming the extra to install.
* :func:`render`: the render hook. How objects of lower layers (a gate report, a model card, an
  explanation) reach the HTML renderers, which all live in ``watchkeeper.report``. A lower layer
  never imports ``report``: it asks for a renderer by kind, and the renderer is found from a
  ``"module:function"`` target that the composition root (the top-level ``watchkeeper``
  package, which every import of a submodule runs first) registers with :func:`register`. The
  target is imported only when something is rendered, so registering costs nothing.
* :func:`renamed`: old public names, resolved by each package's module ``__getattr__`` to the
  new object with a ``FutureWarning``. Checks are functions named ``check_<what>`` returning
  :class:`~watchkeeper.checks.CheckResult` objects; configuration objects end in ``Config``.
  Each package maps its old names to the new ones (``_RENAMED``).
* :func:`usable_cores`: how many threads a CPU-bound stage should use (see its docstring).

Examples
--------
>>> register("shout", "builtins:str")
>>> render("shout", 42)
'42'
>>> render("nothing-registered", 1)
Traceback (most recent call last):
...
LookupError: no HTML renderer is registered for 'nothing-registered'; ...
>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     value = renamed("watchkeeper.checks", "quality_checks", "check_quality", len)
>>> value is len, caught[0].category.__name__
(True, 'FutureWarning')
>>> print(caught[0].message)  # doctest: +NORMALIZE_WHITESPACE
watchkeeper.checks.quality_checks is renamed check_quality; the old name will be removed
in watchkeeper 0.3
"""

from __future__ import annotations

import importlib
import math
import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from watchkeeper.exceptions import MissingExtraError

__all__ = [
    "RENAMED_REMOVED_IN",
    "register",
    "renamed",
    "render",
    "require",
    "resolve",
    "usable_cores",
]

#: Release that drops the old names resolved by :func:`renamed`.
RENAMED_REMOVED_IN = "0.3"


def renamed(module: str, old: str, new: str, value: Any) -> Any:
    """Warn that ``module.old`` is now ``module.new`` and return ``value`` (the new object)."""
    warnings.warn(
        f"{module}.{old} is renamed {new}; the old name will be removed in "
        f"watchkeeper {RENAMED_REMOVED_IN}",
        FutureWarning,
        stacklevel=3,
    )
    return value


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], extra, purpose) from exc


_TARGETS: dict[str, str] = {}


def register(kind: str, target: str) -> None:
    """Render objects of ``kind`` with ``target``, a ``"package.module:function"`` string."""
    if ":" not in target:
        raise ValueError(f"render target must be 'module:function', got {target!r}")
    _TARGETS[kind] = target


def resolve(kind: str) -> Any | None:
    """The callable registered for ``kind`` (imported now), or ``None`` when none is."""
    target = _TARGETS.get(kind)
    if target is None:
        return None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def render(kind: str, *args: Any, **kwargs: Any) -> Any:
    """Call the renderer registered for ``kind`` with ``args`` and ``kwargs``."""
    target = _TARGETS.get(kind)
    if target is None:
        raise LookupError(
            f"no HTML renderer is registered for {kind!r}; import watchkeeper (the top-level "
            "package registers the renderers of watchkeeper.report)"
        )
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota.

    The thread pools of profiling and of the per-column tests have this many threads (at most
    8): in a container ``os.cpu_count()`` reports the host's CPUs, not the quota. Sizing the
    pool from the cores other work leaves idle was measured and rejected: beside one or three
    CPU-bound neighbours on 2 cores, two threads finished ``compare`` 5-11 % sooner than the
    idle-core count (the scheduler shares cores per thread; BENCHMARKS.md, *Thread pool and a
    busy neighbour*). Results never depend on the count: every threaded stage gives identical
    output for any number of threads (tests/checks/test_comparison.py,
    tests/data/test_profile_threads.py).

    Examples
    --------
    >>> usable_cores() >= 1
    True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = _CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)
