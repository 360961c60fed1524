"""The :class:`Registry` facade: formats and artifacts on top of a storage back-end."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from watchkeeper.exceptions import InputError
from watchkeeper.registry._artifacts import ArtifactStore
from watchkeeper.registry._errors import UnsafeFormatError, UnsupportedFormatError
from watchkeeper.registry._formats import (
    FORMAT_NAMES,
    Packed,
    format_for_file,
    format_for_object,
    get_format,
)
from watchkeeper.registry._loaded import LoadedModel
from watchkeeper.registry._names import parse_ref, validate_alias, validate_name
from watchkeeper.registry._provenance import code_version as detect_code_version
from watchkeeper.registry._provenance import data_fingerprint, default_actor
from watchkeeper.registry._records import Event, ModelSummary, ModelVersion
from watchkeeper.registry._reference import describe_reference, profile_from_bytes
from watchkeeper.registry._safety import check_regular_file
from watchkeeper.registry._sql import SqlStore
from watchkeeper.registry._store import NewVersion, RegistryStore

__all__ = ["Registry"]

_OUTPUT_KINDS = ("classification", "regression", "ranking", "unknown")
#: Formats whose loading executes code stored in the artifact.
_CODE_FORMATS = ("pickle", "mlflow")
#: Flavor key of a version's outlier detector (digest, size, method and stated rate).
_OUTLIERS = "outliers"


class Registry:
    """Versioned, verified, audited model storage.

    Parameters
    ----------
    url
        Database URL (``sqlite:///...`` or ``postgresql://...``), or a ready
        :class:`RegistryStore`. Default: SQLite at ``<root>/registry.db``.
    artifacts
        Folder or fsspec URL for model artifacts. Default: ``<root>/artifacts``.
    root
        Project folder of the embedded defaults.
    timeout
        Seconds to wait for a locked database or a connection before failing.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> clf = LogisticRegression().fit(X, X[:, 0] > 0)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> registry = Registry(root=tmp.name)
    >>> v1 = registry.register("churn", clf, metrics={"auc": 0.91}, actor="ana@laptop")
    >>> v1.version, v1.format, v1.output_kind
    (1, 'skops', 'classification')
    >>> registry.set_alias("churn", "champion", 1, actor="ana@laptop", reason="first model").kind
    'alias'
    >>> model = registry.load_model("churn", "champion")
    >>> bool((model.predict(X) == clf.predict(X)).all())
    True
    >>> registry.close(); tmp.cleanup()
    """

    def __init__(
        self,
        url: str | RegistryStore | None = None,
        *,
        artifacts: str | Path | None = None,
        root: str | Path = ".watchkeeper",
        timeout: float = 10.0,
    ) -> None:
        base = Path(root).absolute()
        if url is None:
            url = f"sqlite:///{base / 'registry.db'}"
        self.store: RegistryStore = SqlStore(url, timeout=timeout) if isinstance(url, str) else url
        self.artifacts = ArtifactStore(base / "artifacts" if artifacts is None else artifacts)

    def close(self) -> None:
        """Release database connections."""
        self.store.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- registration -------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any,
        *,
        format: str | None = None,
        reference: Any = None,
        schema: Any = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        description: str = "",
        training_data: Any = None,
        output_kind: str | None = None,
        code_version: str | None = None,
        trusted: bool = False,
        actor: str | None = None,
        outliers: Any = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name``.

        Parameters
        ----------
        name
            Model name (letters, digits, ``.``, ``_``, ``-``).
        model
            A fitted model object (scikit-learn, LightGBM, XGBoost, ``onnx.ModelProto``), a
            model file (``.skops``, ``.onnx``, ``.lgb``, ``.ubj``, ``.pkl``/``.joblib``), an
            MLflow model folder, or a ``models:/name/version`` URI.
        format
            One of ``skops``, ``onnx``, ``lightgbm``, ``xgboost``, ``pickle``; inferred when
            omitted (safe formats only).
        reference
            Training or validation data (or a ``Profile``) whose profile is stored with the
            model as the reference for drift checks.
        schema
            Input schema (``Schema`` or its dict); inferred from ``reference`` when omitted.
        metrics, params, tags, description
            Training metrics (finite numbers), hyper-parameters (JSON values), free tags and
            text. For MLflow models they default to the run's.
        training_data
            Data (or a file) whose fingerprint identifies what the model was trained on.
        output_kind
            ``classification``, ``regression``, ``ranking`` (a ranked list of item ids per
            record) or ``unknown``; inferred when omitted.
        code_version
            Commit of the training code; the git commit of the working directory when omitted.
        trusted
            Vouch for a model whose loading runs code (pickle, joblib, pickled MLflow flavors,
            skops types outside its safe list). Refused without it.
        actor
            Who registers; ``user@host`` by default.
        outliers
            An outlier detector to serve with the version
            (:class:`~watchkeeper.checks.OutlierDetector`; ``True`` for the default one): an
            unfitted one is fitted on ``reference`` (data, not a profile). It is stored as
            plain JSON next to the model; the gateway returns and logs each record's score
            and the monitor checks each window's outlier share (:meth:`load_outliers`).

        Returns
        -------
        ModelVersion
            The new version.

        Examples
        --------
        >>> import tempfile
        >>> import pandas as pd
        >>> from sklearn.linear_model import LinearRegression
        >>> train = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [1.0, 3.0, 5.0, 7.0]})
        >>> model = LinearRegression().fit(train[["x"]], train["y"])
        >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
        ...     v = reg.register("price", model, reference=train[["x"]], training_data=train,
        ...                      metrics={"r2": 1.0}, params={"fit_intercept": True},
        ...                      tags={"team": "pricing"}, actor="ana@laptop")
        ...     reg.load_profile("price", v.version).n_rows
        4
        >>> v.version, v.format, v.output_kind, v.data_fingerprint[:7]
        (1, 'skops', 'regression', 'sha256:')
        """
        validate_name(name)
        if output_kind is not None and output_kind not in _OUTPUT_KINDS:
            raise InputError(f"output_kind must be one of {_OUTPUT_KINDS}, got {output_kind!r}")
        if not isinstance(description, str):
            raise InputError("description must be a string")
        who = _actor(actor)
        code = _short("code_version", code_version, 128) or detect_code_version()
        fmt_name, packed, imported = self._pack(model, format, trusted)
        # Load it back before recording anything: a version that cannot be loaded must not
        # become a version at all.
        get_format(fmt_name).unpack(packed.data, packed.flavor, trusted=trusted)
        checked_metrics = _metrics({**imported.get("metrics", {}), **(metrics or {})})
        checked_params = _params({**imported.get("params", {}), **(params or {})})
        checked_tags = _tags({**imported.get("tags", {}), **(tags or {})})
        fingerprint = None if training_data is None else data_fingerprint(training_data)
        schema_dict, profile = describe_reference(reference, schema)
        detector = _outlier_detector(outliers, reference, schema_dict)
        # Everything is validated: only now write artifacts (idempotent, content-addressed),
        # then the row that makes them a version.
        new = NewVersion(
            name=name,
            actor=who,
            format=fmt_name,
            artifact_sha256=self.artifacts.put(packed.data),
            artifact_size=len(packed.data),
            output_kind=output_kind or packed.output_kind,
            flavor=packed.flavor if detector is None else {**packed.flavor, **self._put(detector)},
            schema=schema_dict,
            profile_sha256=None if profile is None else self.artifacts.put(profile),
            metrics=checked_metrics,
            params=checked_params,
            tags=checked_tags,
            description=description or imported.get("description", ""),
            data_fingerprint=fingerprint,
            code_version=code,
            trusted=trusted,
        )
        return self.store.add_version(new)

    def _put(self, detector: Any) -> dict[str, Any]:
        data = detector.to_bytes()
        return {
            _OUTLIERS: {
                "sha256": self.artifacts.put(data),
                "size": len(data),
                "method": detector.method,
                "rate": float(detector.rate),
            }
        }

    def _pack(
        self, model: Any, format: str | None, trusted: bool
    ) -> tuple[str, Packed, dict[str, Any]]:
        if format is not None and format not in FORMAT_NAMES:
            raise UnsupportedFormatError(
                f"unknown format {format!r}; choose one of {', '.join(FORMAT_NAMES)}"
            )
        from watchkeeper.registry._mlflow import import_mlflow, is_mlflow_source

        if isinstance(model, str | Path) and Path(model).is_symlink():
            check_regular_file(Path(model))  # refuses links to files and folders alike
        if format in (None, "mlflow") and is_mlflow_source(model):
            found = import_mlflow(model, trusted=trusted)
            meta = {
                "metrics": found.metrics,
                "params": found.params,
                "tags": found.tags,
                "description": found.description,
            }
            return found.format, found.packed, meta
        if isinstance(model, str | Path):
            path = Path(model)
            check_regular_file(path)
            name = format or format_for_file(path)
            fmt = get_format(name)
            return name, fmt.pack(fmt.read_file(path, trusted=trusted), trusted=trusted), {}
        name = format or format_for_object(model)
        return name, get_format(name).pack(model, trusted=trusted), {}

    # -- reading ------------------------------------------------------------------------

    def get_version(self, name: str, ref: int | str = "latest") -> ModelVersion:
        """The record of version ``ref`` (number, alias or ``"latest"``) of model ``name``.

        Examples
        --------
        >>> import tempfile
        >>> from sklearn.dummy import DummyRegressor
        >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
        ...     _ = reg.register("m", DummyRegressor().fit([[0]], [1.0]), actor="a")
        ...     reg.get_version("m", "latest").version
        1
        """
        return self.store.get_version(name, ref)

    def load_model(self, name: str, ref: int | str) -> LoadedModel:
        """Verify and load version ``ref`` of model ``name``.

        The artifact's sha256 is checked against the registered one before anything is
        deserialized; a mismatch raises :class:`ArtifactIntegrityError`.

        Examples
        --------
        >>> import tempfile
        >>> from sklearn.dummy import DummyRegressor
        >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
        ...     _ = reg.register("m", DummyRegressor().fit([[0]], [2.5]), actor="a")
        ...     reg.load_model("m", 1).predict([[7]])
        array([2.5])
        """
        version = self.store.get_version(name, ref)
        data = self.artifacts.get(
            version.artifact_sha256,
            what=f"the artifact of model {version.name!r} version {version.version}",
        )
        if version.format in _CODE_FORMATS and not version.trusted:
            raise UnsafeFormatError(
                f"model {version.name!r} version {version.version} is stored as "
                f"{version.format} but was not registered as trusted; refusing to load it"
            )
        predictor = get_format(version.format).unpack(
            data, dict(version.flavor), trusted=version.trusted
        )
        return LoadedModel(version, predictor)

    def load_profile(self, name: str, ref: int | str) -> Any:
        """The verified reference ``Profile`` of a version, or ``None`` if none was stored."""
        version = self.store.get_version(name, ref)
        if version.profile_sha256 is None:
            return None
        payload = self.artifacts.get(
            version.profile_sha256,
            what=f"the reference profile of model {version.name!r} version {version.version}",
        )
        return profile_from_bytes(payload)

    def load_outliers(self, name: str, ref: int | str) -> Any:
        """The verified outlier detector of a version
        (:class:`~watchkeeper.checks.OutlierDetector`), or ``None`` if none was registered.

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np, pandas as pd
        >>> from sklearn.dummy import DummyRegressor
        >>> reference = pd.DataFrame({"x": np.random.default_rng(0).normal(size=1000)})
        >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
        ...     v = reg.register("m", DummyRegressor().fit(reference, reference["x"]),
        ...                      reference=reference, outliers=True, actor="a")
        ...     detector = reg.load_outliers("m", v.version)
        >>> detector.columns_, detector.predict({"x": [0.0, 9.0]}).tolist()
        (('x',), [False, True])
        """
        version = self.store.get_version(name, ref)
        found = version.flavor.get(_OUTLIERS)
        if not isinstance(found, Mapping):
            return None
        from watchkeeper.checks import OutlierDetector

        payload = self.artifacts.get(
            str(found.get("sha256")),
            what=f"the outlier detector of model {version.name!r} version {version.version}",
        )
        return OutlierDetector.from_bytes(payload)

    def list_models(self) -> list[ModelSummary]:
        """Every model in the registry, by name.

        Examples
        --------
        >>> import tempfile
        >>> from sklearn.dummy import DummyRegressor
        >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
        ...     for name in ("b", "a", "a"):
        ...         _ = reg.register(name, DummyRegressor().fit([[0]], [1.0]), actor="x")
        ...     [(m.name, m.n_versions) for m in reg.list_models()]
        [('a', 2), ('b', 1)]
        """
        return self.store.list_models()

    def list_versions(self, name: str) -> list[ModelVersion]:
        """The live versions of ``name``, oldest first."""
        return self.store.list_versions(name)

    def history(self, name: str) -> list[Event]:
        """The full audit trail of ``name``: registrations, alias moves, rollbacks, deletions.

        Examples
        --------
        >>> import tempfile
        >>> from sklearn.dummy import DummyRegressor
        >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
        ...     _ = reg.register("m", DummyRegressor().fit([[0]], [1.0]), actor="ana")
        ...     _ = reg.set_alias("m", "champion", 1, actor="bob", reason="go live")
        ...     [(e.kind, e.actor, e.to_version) for e in reg.history("m")]
        [('register', 'ana', None), ('alias', 'bob', 1)]
        """
        return self.store.history(name)

    def alias_at(self, name: str, alias: str, when: datetime) -> int | None:
        """The version ``alias`` pointed at, at time ``when`` (timezone-aware).

        Examples
        --------
        >>> import tempfile
        >>> from datetime import UTC, datetime
        >>> from sklearn.dummy import DummyRegressor
        >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
        ...     _ = reg.register("m", DummyRegressor().fit([[0]], [1.0]), actor="a")
        ...     before = datetime.now(UTC)
        ...     _ = reg.set_alias("m", "champion", 1, actor="a")
        ...     after = datetime.now(UTC)
        ...     reg.alias_at("m", "champion", before), reg.alias_at("m", "champion", after)
        (None, 1)
        """
        return self.store.alias_at(name, alias, when)

    # -- changes ------------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | str,
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> Event | None:
        """Point ``alias`` at ``version`` (audited); ``None`` if it already pointed there.

        ``version`` may also be another alias or ``"latest"``.

        Examples
        --------
        >>> import tempfile
        >>> from sklearn.dummy import DummyRegressor
        >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
        ...     _ = reg.register("m", DummyRegressor().fit([[0]], [1.0]), actor="a")
        ...     event = reg.set_alias("m", "challenger", "latest", actor="a", reason="canary")
        ...     again = reg.set_alias("m", "challenger", 1, actor="a")
        >>> (event.from_version, event.to_version), again
        ((None, 1), None)
        """
        ref = parse_ref(version)
        target = ref if isinstance(ref, int) else self.store.get_version(name, ref).version
        return self.store.set_alias(
            name, validate_alias(alias), target, actor=_actor(actor), reason=reason
        )

    def remove_alias(
        self, name: str, alias: str, *, actor: str | None = None, reason: str = ""
    ) -> Event:
        """Remove ``alias`` from model ``name`` (audited)."""
        return self.store.remove_alias(name, alias, actor=_actor(actor), reason=reason)

    def rollback(
        self, name: str, alias: str = "champion", *, actor: str | None = None, reason: str = ""
    ) -> Event:
        """Point ``alias`` back at its previous live holder (audited).

        Repeated rollbacks walk further back through the alias's history.

        Examples
        --------
        >>> import tempfile
        >>> from sklearn.dummy import DummyRegressor
        >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
        ...     for value in (1.0, 2.0):
        ...         v = reg.register("m", DummyRegressor().fit([[0]], [value]), actor="a")
        ...         _ = reg.set_alias("m", "champion", v.version, actor="a")
        ...     event = reg.rollback("m", actor="a", reason="v2 misbehaves")
        ...     event.from_version, event.to_version
        (2, 1)
        """
        return self.store.rollback(name, alias, actor=_actor(actor), reason=reason)

    def delete_version(
        self,
        name: str,
        version: int,
        *,
        force: bool = False,
        actor: str | None = None,
        reason: str = "",
    ) -> list[Event]:
        """Delete a version (audited); refused while an alias points at it unless ``force``.

        The version number is never reused. The artifact file is kept: it is
        content-addressed and may be shared with other versions, and keeping it lets a
        deleted version be inspected after the fact.

        Examples
        --------
        >>> import tempfile
        >>> from sklearn.dummy import DummyRegressor
        >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
        ...     for value in (1.0, 2.0):
        ...         _ = reg.register("m", DummyRegressor().fit([[0]], [value]), actor="a")
        ...     _ = reg.delete_version("m", 1, actor="a", reason="superseded")
        ...     [v.version for v in reg.list_versions("m")]
        [2]
        """
        ref = parse_ref(version)
        if not isinstance(ref, int):
            raise InputError(f"delete_version needs a version number, got {version!r}")
        return self.store.delete_version(
            validate_name(name), ref, force=force, actor=_actor(actor), reason=reason
        )


def _short(what: str, value: str | None, limit: int) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise InputError(f"{what} must be a string of at most {limit} characters")
    return value


def _actor(actor: str | None) -> str:
    return _short("actor", actor, 256) or default_actor()


def _metrics(values: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number):
            raise InputError(f"metric {key!r} must be a finite number, got {value!r}")
        out[str(key)] = number
    return out


def _params(values: Mapping[str, Any]) -> dict[str, Any]:
    import json

    out = {str(k): v.item() if isinstance(v, np.generic) else v for k, v in values.items()}
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"params must be JSON values (numbers, strings, lists, dicts): {exc}"
        ) from exc
    return out


def _tags(values: Mapping[str, Any]) -> dict[str, str]:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
        raise InputError("tags must map strings to strings")
    return dict(values)


def _outlier_detector(outliers: Any, reference: Any, schema: Mapping[str, Any] | None) -> Any:
    """The fitted detector to store with a version, or ``None``."""
    if outliers is None or outliers is False:
        return None
    from watchkeeper.checks import OUTLIER_FLAG_KEY, OUTLIER_SCORE_KEY, OutlierDetector
    from watchkeeper.data import Profile

    names = {
        str(c.get("name")) for c in (schema or {}).get("columns", ()) if isinstance(c, Mapping)
    }
    clash = sorted(names & {OUTLIER_SCORE_KEY, OUTLIER_FLAG_KEY})
    if clash:
        raise InputError(
            f"column {clash[0]!r} has the name the gateway logs each record's outlier score or "
            "flag under; rename that column to register the version with outliers="
        )
    detector = OutlierDetector() if outliers is True else outliers
    if not isinstance(detector, OutlierDetector):
        raise InputError(
            "outliers must be True or a watchkeeper.checks.OutlierDetector, got "
            f"{type(outliers).__name__}"
        )
    if hasattr(detector, "threshold_"):
        return detector
    if reference is None or isinstance(reference, Profile):
        raise InputError(
            "an unfitted outlier detector is fitted on the reference rows: pass reference= "
            "data (not a profile), or a detector already fitted with .fit(reference)"
        )
    return detector.fit(reference, schema)
