"""The registry's storage protocol: what any back-end must provide.

The store owns every row: versions, aliases and the audit trail. It knows nothing about model
formats or artifact files; :class:`~watchkeeper.registry.Registry` composes the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from watchkeeper.registry._records import Event, ModelSummary, ModelVersion

__all__ = ["NewVersion", "RegistryStore"]


@dataclass(frozen=True)
class NewVersion:
    """Everything about a version to register except what the store assigns."""

    name: str
    actor: str
    format: str
    artifact_sha256: str
    artifact_size: int
    output_kind: str
    flavor: Mapping[str, Any] = field(default_factory=dict)
    schema: Mapping[str, Any] | None = None
    profile_sha256: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    data_fingerprint: str | None = None
    code_version: str | None = None
    trusted: bool = False


class RegistryStore(Protocol):
    """What the registry needs from a storage back-end.

    Every method is atomic; names are validated by the implementation.
    """

    def add_version(self, new: NewVersion) -> ModelVersion: ...
    def get_version(self, name: str, ref: int | str) -> ModelVersion: ...
    def list_models(self) -> list[ModelSummary]: ...
    def list_versions(self, name: str) -> list[ModelVersion]: ...
    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str, reason: str
    ) -> Event | None: ...
    def remove_alias(self, name: str, alias: str, *, actor: str, reason: str) -> Event: ...
    def rollback(self, name: str, alias: str, *, actor: str, reason: str) -> Event: ...
    def delete_version(
        self, name: str, version: int, *, force: bool, actor: str, reason: str
    ) -> list[Event]: ...
    def history(self, name: str) -> list[Event]: ...
    def alias_at(self, name: str, alias: str, when: datetime) -> int | None: ...
    def close(self) -> None: ...
