"""Model registry: versions, verified artifacts in safe formats, aliases and their audit trail.

Examples
--------
>>> import tempfile
>>> from sklearn.dummy import DummyClassifier
>>> from watchkeeper.registry import Registry
>>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as registry:
...     v = registry.register("spam", DummyClassifier().fit([[0], [1]], [0, 1]), actor="ci")
...     [m.name for m in registry.list_models()]
['spam']
"""

from __future__ import annotations

from watchkeeper.registry._errors import (
    AliasInUseError,
    ArtifactIntegrityError,
    InvalidNameError,
    ModelNotFoundError,
    RegistryError,
    RegistryLockedError,
    RegistryUnavailableError,
    RollbackError,
    UnsafeFormatError,
    UnsupportedFormatError,
    VersionNotFoundError,
)
from watchkeeper.registry._formats import FORMAT_NAMES, read_model_file
from watchkeeper.registry._loaded import LoadedModel
from watchkeeper.registry._loop_store import LoopState, LoopStep, LoopStore
from watchkeeper.registry._names import validate_alias, validate_name
from watchkeeper.registry._records import Event, ModelSummary, ModelVersion
from watchkeeper.registry._registry import Registry
from watchkeeper.registry._routes import RouteTable, RoutingState
from watchkeeper.registry._sql import SqlStore
from watchkeeper.registry._store import NewVersion, RegistryStore
from watchkeeper.registry._transaction import StoreTransaction

__all__ = [
    "FORMAT_NAMES",
    "AliasInUseError",
    "ArtifactIntegrityError",
    "Event",
    "InvalidNameError",
    "LoadedModel",
    "LoopState",
    "LoopStep",
    "LoopStore",
    "ModelNotFoundError",
    "ModelSummary",
    "ModelVersion",
    "NewVersion",
    "Registry",
    "RegistryError",
    "RegistryLockedError",
    "RegistryStore",
    "RegistryUnavailableError",
    "RollbackError",
    "RouteTable",
    "RoutingState",
    "SqlStore",
    "StoreTransaction",
    "UnsafeFormatError",
    "UnsupportedFormatError",
    "VersionNotFoundError",
    "read_model_file",
    "validate_alias",
    "validate_name",
]
