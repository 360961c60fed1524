"""Lazy imports of pieces that live elsewhere.

* :func:`require`: optional third-party dependencies, with an error naming the extra to install.
* :func:`render`: the render hook. How objects of lower layers (a gate report, a model card, an
  explanation) reach the HTML renderers, which all live in ``watchkeeper.report``. A lower layer
  never imports ``report``: it asks for a renderer by kind, and the renderer is found from a
  ``"module:function"`` target that the composition root (the top-level ``watchkeeper``
  package, which every import of a submodule runs first) registers with :func:`register`. The
  target is imported only when something is rendered, so registering costs nothing.

Examples
--------
>>> register("shout", "builtins:str")
>>> render("shout", 42)
'42'
>>> render("nothing-registered", 1)
Traceback (most recent call last):
...
LookupError: no HTML renderer is registered for 'nothing-registered'; ...
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from watchkeeper.exceptions import MissingExtraError

__all__ = ["register", "render", "require", "resolve"]


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
