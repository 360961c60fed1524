"""One exception hierarchy for watchkeeper.

Every message says what went wrong *and what to do next*.
"""

from __future__ import annotations

__all__ = [
    "InputError",
    "MissingExtraError",
    "NotFittedError",
    "SchemaError",
    "WatchkeeperError",
]


class WatchkeeperError(Exception):
    """Base class of every error raised by watchkeeper."""


class InputError(WatchkeeperError, ValueError):
    """Data or arguments that watchkeeper cannot use as given."""


class SchemaError(InputError):
    """Data that does not match the declared or inferred schema."""


class NotFittedError(WatchkeeperError, AttributeError):
    """An estimator-like object was used before ``fit``."""


class MissingExtraError(WatchkeeperError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the optional package {package!r}. "
            f'Install it with: pip install "watchkeeper[{extra}]"'
        )
        self.package = package
        self.extra = extra
