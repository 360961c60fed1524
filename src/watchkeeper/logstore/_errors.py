"""Errors of the prediction log; each message says what to do next."""

from __future__ import annotations

from watchkeeper.exceptions import WatchkeeperError

__all__ = ["LogClosedError", "LogFullError", "LogStoreError"]


class LogStoreError(WatchkeeperError):
    """Base class of every prediction-log error."""


class LogClosedError(LogStoreError, RuntimeError):
    """Records were submitted to a writer (or sink) that was already closed."""


class LogFullError(LogStoreError, TimeoutError):
    """The writer's queue stayed full for longer than the caller's ``timeout``."""
