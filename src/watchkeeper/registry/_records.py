"""The immutable records the registry hands out: versions, audit events, model summaries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Event", "ModelSummary", "ModelVersion"]


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model.

    Parameters
    ----------
    name, version
        Model name and its version number (1, 2, ...; never reused, even after a delete).
    created_at
        Registration time, UTC.
    actor
        Who registered it (``user@host`` by default).
    format
        Storage format: ``skops``, ``onnx``, ``lightgbm``, ``xgboost``, ``pickle`` or
        ``mlflow``.
    artifact_sha256, artifact_size
        Content address and size in bytes of the stored model; checked on every load.
    output_kind
        ``classification``, ``regression`` or ``unknown``.
    flavor
        Format details needed to load the model (class labels, objective...).
    schema
        The input schema as a dictionary (``watchkeeper.data.Schema.to_dict()``), if known.
    profile_sha256
        Content address of the reference profile stored next to the model, if any.
    metrics, params, tags, description
        Training metrics, hyper-parameters, free tags and text.
    data_fingerprint
        sha256 of the training data, if it was given.
    code_version
        Git commit of the training code (``+dirty`` when the tree had changes), if known.
    trusted
        Whether the registering caller vouched for a format that can run code (pickle).
    aliases
        Aliases pointing at this version when it was read.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> v = ModelVersion(name="churn", version=1, created_at=datetime(2024, 5, 1, tzinfo=UTC),
    ...                  actor="ana@host", format="skops", artifact_sha256="ab" * 32,
    ...                  artifact_size=1024, output_kind="classification")
    >>> v.to_dict()["created_at"]
    '2024-05-01T00:00:00+00:00'
    """

    name: str
    version: int
    created_at: datetime
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
    aliases: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary (timestamps as ISO 8601 strings).

        Examples
        --------
        >>> from datetime import UTC, datetime
        >>> v = ModelVersion(name="m", version=2, created_at=datetime(2024, 1, 1, tzinfo=UTC),
        ...                  actor="a", format="onnx", artifact_sha256="0" * 64,
        ...                  artifact_size=1, output_kind="regression", aliases=("champion",))
        >>> v.to_dict()["aliases"]
        ['champion']
        """
        return {
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "format": self.format,
            "artifact_sha256": self.artifact_sha256,
            "artifact_size": self.artifact_size,
            "output_kind": self.output_kind,
            "flavor": dict(self.flavor),
            "schema": None if self.schema is None else dict(self.schema),
            "profile_sha256": self.profile_sha256,
            "metrics": dict(self.metrics),
            "params": dict(self.params),
            "tags": dict(self.tags),
            "description": self.description,
            "data_fingerprint": self.data_fingerprint,
            "code_version": self.code_version,
            "trusted": self.trusted,
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class Event:
    """One entry of a model's audit trail.

    Parameters
    ----------
    id
        Position in the registry-wide log (increasing).
    name
        Model name.
    kind
        ``register``, ``alias`` (set or moved), ``unalias`` (removed), ``rollback`` or
        ``delete``.
    at
        When, UTC.
    actor
        Who did it.
    version
        The version registered or deleted (``None`` for alias events).
    alias
        The alias concerned (alias events only).
    from_version, to_version
        Holder of the alias before and after the event (``None`` when unset).
    reason
        Free text given by the actor.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> e = Event(id=7, name="churn", kind="alias", at=datetime(2024, 5, 1, tzinfo=UTC),
    ...           actor="ana@host", alias="champion", from_version=1, to_version=2,
    ...           reason="better AUC")
    >>> e.to_dict()["to_version"]
    2
    """

    id: int
    name: str
    kind: str
    at: datetime
    actor: str
    version: int | None = None
    alias: str | None = None
    from_version: int | None = None
    to_version: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary.

        Examples
        --------
        >>> from datetime import UTC, datetime
        >>> Event(id=1, name="m", kind="register", at=datetime(2024, 1, 1, tzinfo=UTC),
        ...       actor="a", version=1).to_dict()["kind"]
        'register'
        """
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "version": self.version,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ModelSummary:
    """A model at a glance, as listed by ``Registry.list_models``.

    Parameters
    ----------
    name
        Model name.
    n_versions
        Number of live (not deleted) versions.
    latest_version
        Highest live version, ``None`` when all were deleted.
    aliases
        Alias name to version.
    updated_at
        Time of the model's last audit event, UTC.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> ModelSummary("churn", 2, 2, {"champion": 1},
    ...              datetime(2024, 1, 1, tzinfo=UTC)).to_dict()["aliases"]
    {'champion': 1}
    """

    name: str
    n_versions: int
    latest_version: int | None
    aliases: Mapping[str, int]
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dictionary.

        Examples
        --------
        >>> from datetime import UTC, datetime
        >>> ModelSummary("m", 0, None, {}, datetime(2024, 1, 1, tzinfo=UTC)).to_dict()["name"]
        'm'
        """
        return {
            "name": self.name,
            "n_versions": self.n_versions,
            "latest_version": self.latest_version,
            "aliases": dict(self.aliases),
            "updated_at": self.updated_at.isoformat(),
        }
