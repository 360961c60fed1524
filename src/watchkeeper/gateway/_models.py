"""What a gateway worker serves: verified models loaded once, behind immutable snapshots.

A :class:`Snapshot` pairs every served model's route with the loaded versions its aliases
point at. :class:`ServingState` rebuilds it off the event loop when the registry's change
token moves (a route, alias, rollback or deletion) and swaps it in with one assignment:
requests already running keep the snapshot they started with, so a change never fails
them, and every new request sees either the old state or the new one, never a mix.
Loaded versions are cached by ``(name, version)``; a version is deserialized (after its
hash is checked by the registry) once per worker however often routes change.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from watchkeeper.data import Schema
from watchkeeper.exceptions import InputError
from watchkeeper.gateway._routes_store import RouteStore
from watchkeeper.gateway._routing import Route
from watchkeeper.gateway._validation import InputSpec
from watchkeeper.registry import LoadedModel, ModelVersion, Registry

__all__ = [
    "ServedModel",
    "ServedVersion",
    "ServingState",
    "Snapshot",
    "with_outliers",
    "without_paths",
]

logger = logging.getLogger("watchkeeper.gateway")


class ServedVersion:
    """One loaded model version with its input spec and a JSON-ready prediction call.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> from watchkeeper.registry import Registry
    >>> X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    >>> clf = LogisticRegression().fit(X, ["no", "no", "yes", "yes"])
    >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
    ...     _ = reg.register("m", clf, reference=X, actor="a")
    ...     served = ServedVersion(reg.load_model("m", 1))
    >>> served.spec.columns
    ('x',)
    >>> predictions, scores = served.infer(X.iloc[[0]])
    >>> predictions, sorted(scores[0])
    (['no'], ['no', 'yes'])
    """

    def __init__(self, model: LoadedModel, outliers: Any = None, reference: Any = None) -> None:
        self.model = model
        self.record: ModelVersion = model.version
        #: the version's outlier detector (:class:`~watchkeeper.checks.OutlierDetector`)
        self.outliers = outliers
        schema = None
        if self.record.schema is not None:
            try:
                schema = Schema.from_dict(self.record.schema)
            except InputError:
                logger.warning(
                    "model %s version %s has an unreadable schema; inputs are taken from the "
                    "model itself",
                    self.record.name,
                    self.record.version,
                )
        self.schema = schema
        # the reference profile (when the schema has embedding columns) fixes their lengths
        self.spec = InputSpec.for_model(schema, model.native).with_dims(reference)
        self.classes = model.classes
        self.class_keys = None if self.classes is None else [str(c) for c in self.classes]
        native = model.native
        # scikit-learn hides predict_proba when it is unavailable (e.g. SVC without
        # probability=True); other formats say so by raising on the first call.
        self.has_proba = self.classes is not None and (
            not hasattr(native, "get_params") or hasattr(native, "predict_proba")
        )
        self._labels = argmax_labels(native)

    @property
    def name(self) -> str:
        """Model name."""
        return self.record.name

    @property
    def version(self) -> int:
        """Version number."""
        return self.record.version

    def score_outliers(
        self, features: Sequence[Mapping[str, Any]]
    ) -> tuple[list[float], list[bool]] | None:
        """Outlier score and flag of each record (``None`` without a detector).

        The detector reads the validated values the log stores (model inputs and the
        schema's other known fields); a field a record lacks is missing (it is imputed).
        Raises :class:`~watchkeeper.exceptions.InputError` when the values do not fit it.
        """
        detector = self.outliers
        if detector is None:
            return None
        columns = {c: [f.get(c) for f in features] for c in detector.columns_}
        scores = [float(s) for s in detector.score(columns)]
        return scores, [s > detector.threshold_ for s in scores]

    def infer(self, X: Any, scores: bool = True) -> tuple[list[Any], list[dict[str, float]] | None]:
        """Predictions (and class probabilities, if asked and available) as Python values.

        For classifiers whose ``predict`` is the most probable class (see
        :func:`argmax_labels`) the labels are read off the probabilities instead of running
        the model twice; rows where the top two probabilities nearly tie are left to the
        model's own ``predict``, so the labels are always exactly the model's.
        """
        keys = self.class_keys
        if not (scores and self.has_proba and keys is not None):
            return self.model.predict(X).tolist(), None
        try:
            proba = self.model.predict_proba(X)
        except (AttributeError, NotImplementedError, InputError):
            self.has_proba = False  # a benign race: at worst one more failed attempt
            return self.model.predict(X).tolist(), None
        if not (isinstance(proba, np.ndarray) and proba.ndim == 2 and proba.shape[1] == len(keys)):
            self.has_proba = False  # multi-output or unusual shapes: labels only
            return self.model.predict(X).tolist(), None
        predictions = None
        if self._labels is not None and len(keys) > 1:
            top2 = np.partition(proba, -2, axis=1)[:, -2:]
            if bool(np.all(top2[:, 1] - top2[:, 0] > _TIE)):
                predictions = self._labels.take(proba.argmax(axis=1)).tolist()
        if predictions is None:
            predictions = self.model.predict(X).tolist()
        return predictions, [dict(zip(keys, row, strict=True)) for row in proba.tolist()]


#: Probability gap under which two classes count as tied (the model's predict decides).
_TIE = 1e-9

#: scikit-learn classifiers whose ``predict`` is the class of highest probability (up to
#: ties): forests and trees literally, boosting and logistic models through a monotone link.
_ARGMAX_CLASSIFIERS = frozenset(
    {
        "CalibratedClassifierCV",
        "DecisionTreeClassifier",
        "ExtraTreeClassifier",
        "ExtraTreesClassifier",
        "GradientBoostingClassifier",
        "HistGradientBoostingClassifier",
        "LogisticRegression",
        "LogisticRegressionCV",
        "RandomForestClassifier",
    }
)


def argmax_labels(native: Any) -> np.ndarray | None:
    """The class labels to index with ``argmax(predict_proba)``, or ``None`` when the
    model's ``predict`` may differ from its most probable class (thresholds, SVMs, ...).

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from sklearn.model_selection import FixedThresholdClassifier
    >>> from sklearn.linear_model import LogisticRegression
    >>> rf = RandomForestClassifier(n_estimators=3, random_state=0).fit([[0], [1]], ["a", "b"])
    >>> argmax_labels(rf).tolist()
    ['a', 'b']
    >>> tuned = FixedThresholdClassifier(LogisticRegression(), threshold=0.9)
    >>> argmax_labels(tuned.fit([[0], [1]], [0, 1])) is None
    True
    """
    final = native
    steps = getattr(native, "steps", None)
    if isinstance(steps, list) and steps and type(native).__name__ == "Pipeline":
        final = steps[-1][1]
    kind = type(final)
    if kind.__name__ not in _ARGMAX_CLASSIFIERS or not kind.__module__.startswith("sklearn."):
        return None
    classes = getattr(final, "classes_", None)
    if not isinstance(classes, np.ndarray) or classes.ndim != 1:
        return None  # multi-output: predict_proba is a list
    return classes


@dataclass(frozen=True)
class ServedModel:
    """A model as served: its route, the loaded version behind each alias, and problems."""

    name: str
    route: Route
    route_stored: bool
    versions: Mapping[str, ServedVersion]
    problems: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for listings."""
        return {
            "name": self.name,
            "route": {**self.route.to_dict(), "description": self.route.describe()},
            "route_source": "stored" if self.route_stored else "default",
            "arms": {
                alias: {
                    "version": served.version,
                    "format": served.record.format,
                    **({} if served.outliers is None else {"outliers": served.outliers.describe()}),
                }
                for alias, served in self.versions.items()
            },
            "problems": dict(self.problems),
        }


@dataclass(frozen=True)
class Snapshot:
    """Everything served at one moment; never mutated."""

    token: int
    models: Mapping[str, ServedModel]
    unserved: Mapping[str, str]
    built_at: float

    def readiness(self) -> list[str]:
        """Why the gateway is not ready (empty when it is)."""
        problems = [
            f"model {name!r}, alias {alias!r}: {why}"
            for name, served in self.models.items()
            for alias, why in served.problems.items()
        ]
        if not self.models:
            problems.append(
                "no model to serve: register one and point its 'champion' alias at a version "
                "(`watchkeeper models alias NAME champion VERSION`) or set a route"
            )
        return problems


_EMPTY = Snapshot(token=-1, models={}, unserved={}, built_at=0.0)


#: An absolute path (or the path part of a URL) after a space, quote, bracket, ``=`` or ``:``.
_PATH = re.compile(r"(?<![^\s'\"(=:])(?:[A-Za-z]:)?[/\\][^\s'\"(),;:]*")


def without_paths(text: str) -> str:
    """``text`` with absolute file paths replaced by ``<path>``.

    Examples
    --------
    >>> without_paths("cannot read /srv/wk/artifacts/sha256/ab/abcd: corrupted")
    'cannot read <path>: corrupted'
    >>> without_paths("unable to open sqlite:////srv/wk/registry.db, and/or retry")
    'unable to open sqlite:<path>, and/or retry'
    """
    return _PATH.sub("<path>", text)


def _one_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


class ServingState:
    """The current :class:`Snapshot` of one worker, refreshed when the registry changes.

    Parameters
    ----------
    registry
        Where models, aliases and routes live.
    routes
        The route table in the registry database.
    default_alias
        Alias served by models without a stored route.
    models
        Serve only these models (default: all).
    refresh_interval
        Seconds between change checks by :meth:`watch`.
    """

    def __init__(
        self,
        registry: Registry,
        routes: RouteStore,
        *,
        default_alias: str = "champion",
        models: tuple[str, ...] | None = None,
        refresh_interval: float = 0.5,
    ) -> None:
        self.registry = registry
        self.routes = routes
        self.default_alias = default_alias
        self.only = models
        self.refresh_interval = refresh_interval
        self.current: Snapshot = _EMPTY
        self.last_error: str | None = None
        self._cache: dict[tuple[str, int], ServedVersion] = {}
        self._stale: set[tuple[str, int]] = set()
        #: Versions that failed verification on the last reload but keep serving.
        self.reload_failures: dict[tuple[str, int], str] = {}
        self._load_lock = threading.Lock()
        self._refresh_lock: asyncio.Lock | None = None

    @property
    def loaded(self) -> bool:
        """Whether a snapshot was built at least once."""
        return self.current is not _EMPTY

    def _embedding_reference(self, loaded: LoadedModel) -> Any:
        """The version's reference profile when its schema has embedding columns (their
        lengths are checked on every request), else ``None`` (nothing more to load)."""
        schema = loaded.version.schema or {}
        columns = schema.get("columns") if isinstance(schema, dict) else None
        if not columns or not any(
            isinstance(c, dict) and c.get("kind") == "embedding" for c in columns
        ):
            return None
        load_profile = getattr(self.registry, "load_profile", None)
        return (
            None
            if load_profile is None
            else load_profile(loaded.version.name, loaded.version.version)
        )

    def load_version(self, name: str, version: int) -> ServedVersion:
        """The served form of ``name`` version ``version``, loading it at most once.

        A version marked by :meth:`forget_models` is verified and loaded again; if that
        fails while a copy is loaded (its artifact was modified on disk, say), the loaded
        copy keeps serving and the failure is kept in :attr:`reload_failures`.
        """
        key = (name, version)
        found = self._cache.get(key)
        if found is not None and key not in self._stale:
            return found
        with self._load_lock:
            found = self._cache.get(key)
            if found is not None and key not in self._stale:
                return found
            try:
                # registries that keep no detectors (wrappers, older stores) serve none
                load_outliers = getattr(self.registry, "load_outliers", None)
                loaded = self.registry.load_model(name, version)
                fresh = ServedVersion(
                    loaded,
                    None if load_outliers is None else load_outliers(name, version),
                    self._embedding_reference(loaded),
                )
            except Exception as exc:
                if found is None:
                    raise
                self._stale.discard(key)
                self.reload_failures[key] = _one_line(exc)
                logger.error(
                    "model %s version %s failed verification on reload; the copy loaded "
                    "earlier keeps serving: %s",
                    name,
                    version,
                    exc,
                )
                return found
            self._stale.discard(key)
            self.reload_failures.pop(key, None)
            self._cache[key] = fresh
            return fresh

    def forget_models(self) -> None:
        """Verify and load every version again at the next refresh; a version that fails
        keeps serving its loaded copy (see :attr:`reload_failures`)."""
        with self._load_lock:
            self._stale = set(self._cache)
            self.reload_failures = {}

    def verify_artifacts(self) -> dict[tuple[str, int], str]:
        """Check the sha256 of every served version's artifact on disk, without loading it.

        Returns the failures by ``(name, version)``; the loaded copies keep serving.
        """
        failures: dict[tuple[str, int], str] = {}
        for served in self.current.models.values():
            for version in served.versions.values():
                key = (version.name, version.version)
                if key in failures:
                    continue
                try:
                    self.registry.artifacts.get(
                        version.record.artifact_sha256,
                        what=f"the artifact of model {version.name!r} version {version.version}",
                    )
                except Exception as exc:
                    failures[key] = _one_line(exc)
        return failures

    def refresh_sync(self, force: bool = False) -> bool:
        """Rebuild the snapshot if the registry changed (or ``force``); True if swapped."""
        token = self.routes.token()
        if not force and token == self.current.token:
            return False
        state = self.routes.state()
        names = state.models if self.only is None else self.only
        models: dict[str, ServedModel] = {}
        unserved: dict[str, str] = {}
        for name in names:
            held = state.aliases.get(name, {})
            if name not in state.models:
                unserved[name] = "no live version in the registry"
                continue
            stored = state.routes.get(name)
            if stored is not None:
                try:
                    route = Route.from_dict(stored)
                except InputError as exc:
                    unserved[name] = f"its stored route is invalid ({exc}); set a new one"
                    continue
            elif self.default_alias in held:
                route = Route.single(self.default_alias)
            else:
                unserved[name] = (
                    f"no route and no {self.default_alias!r} alias: point the alias at a "
                    f"version (`watchkeeper models alias {name} {self.default_alias} VERSION`)"
                )
                continue
            versions: dict[str, ServedVersion] = {}
            problems: dict[str, str] = {}
            for alias in route.aliases:
                if alias not in held:
                    problems[alias] = f"alias {alias!r} is not set"
                    continue
                try:
                    versions[alias] = self.load_version(name, held[alias])
                except Exception as exc:  # one bad artifact must not take down other models
                    logger.exception("cannot load model %s version %s", name, held[alias])
                    # Requests and /readyz show this reason: no file paths (the log has them).
                    problems[alias] = without_paths(
                        f"version {held[alias]} cannot be loaded: {_one_line(exc)}"
                    )
            models[name] = ServedModel(name, route, stored is not None, versions, problems)
        snapshot = Snapshot(state.token, models, unserved, time.time())
        in_use = {(m.name, v.version) for m in models.values() for v in m.versions.values()}
        self.current = snapshot
        # Requests holding the previous snapshot keep their own references; dropping the
        # cache entries only lets unused versions be freed once those requests finish.
        with self._load_lock:
            for key in [k for k in self._cache if k not in in_use]:
                del self._cache[key]
        return True

    async def refresh(self, force: bool = False) -> bool:
        """:meth:`refresh_sync` in a worker thread, one refresh at a time."""
        import anyio.to_thread

        if self._refresh_lock is None:
            self._refresh_lock = asyncio.Lock()
        async with self._refresh_lock:
            try:
                swapped = await anyio.to_thread.run_sync(self.refresh_sync, force)
            except Exception as exc:
                # Keep serving the last good snapshot; readiness reports the problem.
                self.last_error = str(exc)
                logger.warning("cannot refresh the served models: %s", exc)
                return False
            self.last_error = None
            return swapped

    async def watch(self) -> None:
        """Refresh every ``refresh_interval`` seconds until cancelled."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.refresh_interval)


def with_outliers(
    features: list[dict[str, Any]], found: tuple[list[float], list[bool]] | None
) -> list[dict[str, Any]]:
    """``features`` with each record's outlier score and flag added under the reserved keys
    (copies: the originals are left as they are), or ``features`` when ``found`` is ``None``.

    Examples
    --------
    >>> with_outliers([{"x": 1.0}], ([7.5], [True]))
    [{'x': 1.0, '_outlier_score': 7.5, '_outlier': True}]
    """
    if found is None:
        return features
    from watchkeeper.checks import OUTLIER_FLAG_KEY, OUTLIER_SCORE_KEY

    scores, flags = found
    return [
        {**f, OUTLIER_SCORE_KEY: score, OUTLIER_FLAG_KEY: flag}
        for f, score, flag in zip(features, scores, flags, strict=True)
    ]
