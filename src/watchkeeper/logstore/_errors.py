"""Errors of the prediction log; each message says what to do next."""

from __future__ import annotations

from watchkeeper.exceptions import InputError, WatchkeeperError

__all__ = ["IdConflictError", "LogClosedError", "LogFullError", "LogStoreError"]


class LogStoreError(WatchkeeperError):
    """Base class of every prediction-log error."""


class LogClosedError(LogStoreError, RuntimeError):
    """Records were submitted to a writer (or sink) that was already closed."""


class LogFullError(LogStoreError, TimeoutError):
    """The writer's queue stayed full for longer than the caller's ``timeout``."""


class IdConflictError(LogStoreError, InputError):
    """A prediction id already logged for the model with other features (not stored).

    ``ids`` are the conflicting ids of the submission; its other records were committed.
    """

    def __init__(self, message: str, ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.ids = ids
