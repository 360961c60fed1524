"""Errors of the model registry; each message says what to do next."""

from __future__ import annotations

from watchkeeper.exceptions import InputError, WatchkeeperError

__all__ = [
    "AliasInUseError",
    "ArtifactIntegrityError",
    "InvalidNameError",
    "ModelNotFoundError",
    "RegistryError",
    "RegistryLockedError",
    "RegistryUnavailableError",
    "RollbackError",
    "UnsafeFormatError",
    "UnsupportedFormatError",
    "VersionNotFoundError",
]


class RegistryError(WatchkeeperError):
    """Base class of every registry error."""


class InvalidNameError(RegistryError, InputError):
    """A model name or alias that is not allowed (path separators, SQL metacharacters...)."""


class ModelNotFoundError(RegistryError, LookupError):
    """No model of that name was ever registered."""


class VersionNotFoundError(RegistryError, LookupError):
    """The model exists but not that version (or the alias is not set)."""


class UnsupportedFormatError(RegistryError, InputError):
    """The object or file cannot be stored in any supported format."""


class UnsafeFormatError(UnsupportedFormatError):
    """Storing or loading would run arbitrary code and the caller did not pass ``trusted=True``."""


class ArtifactIntegrityError(RegistryError):
    """A stored artifact is missing or its sha256 no longer matches the registered one."""


class AliasInUseError(RegistryError):
    """A version that an alias points at cannot be deleted without ``force=True``."""


class RollbackError(RegistryError):
    """The alias has no earlier holder to roll back to."""


class RegistryUnavailableError(RegistryError):
    """The registry database cannot be reached or opened."""


class RegistryLockedError(RegistryUnavailableError):
    """Another process held the registry database locked for longer than the timeout."""
