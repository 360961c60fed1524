"""Routes persisted in the registry database, so every worker and every replica sees them.

Each change is stored under a new revision and audited as a registry event of kind
``route`` (see :mod:`watchkeeper.registry._routes`), next to the alias moves and rollbacks it
usually accompanies in ``watchkeeper models history``.
"""

from __future__ import annotations

import json

from watchkeeper.gateway._routing import Route
from watchkeeper.registry import Event, Registry, RouteTable, RoutingState, StoreTransaction

__all__ = ["RouteStore"]


class RouteStore:
    """Read and change the routes of a registry's models.

    Parameters
    ----------
    registry
        A registry on a SQL database (SQLite or PostgreSQL).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.dummy import DummyRegressor
    >>> tmp = tempfile.TemporaryDirectory()
    >>> registry = Registry(root=tmp.name)
    >>> for value in (1.0, 2.0):
    ...     _ = registry.register("m", DummyRegressor().fit([[0]], [value]), actor="a")
    >>> _ = registry.set_alias("m", "champion", 1, actor="a")
    >>> _ = registry.set_alias("m", "challenger", 2, actor="a")
    >>> store = RouteStore(registry)
    >>> event = store.set("m", Route.canary(10), actor="ops", reason="try v2")
    >>> store.get("m").describe()
    'canary: champion 90%, challenger 10% (sticky on x-user-id)'
    >>> event.reason
    'canary: champion 90%, challenger 10% (sticky on x-user-id); try v2'
    >>> [e.kind for e in registry.history("m")][-1]
    'route'
    >>> registry.close(); tmp.cleanup()
    """

    def __init__(self, registry: Registry) -> None:
        self._table = RouteTable(registry.store)

    def set(self, name: str, route: Route, *, actor: str, reason: str = "") -> Event:
        """Store ``route`` for model ``name`` (its aliases must be set) and audit it."""
        document = json.dumps(route.to_dict(), sort_keys=True)
        return self._table.put(
            name,
            document,
            aliases=route.aliases,
            actor=actor,
            summary=route.describe(),
            reason=reason,
        )

    def set_in(
        self, tx: StoreTransaction, name: str, route: Route, *, actor: str, reason: str = ""
    ) -> Event:
        """:meth:`set` inside a registry transaction (``SqlStore.transaction``), so that the
        route commits together with the caller's other changes."""
        document = json.dumps(route.to_dict(), sort_keys=True)
        return tx.put_route(
            self._table, name, document, aliases=route.aliases, actor=actor,
            summary=route.describe(), reason=reason,
        )  # fmt: skip

    def remove(self, name: str, *, actor: str, reason: str = "") -> Event | None:
        """Drop the stored route of ``name``; the gateway's default route applies again."""
        return self._table.remove(name, actor=actor, reason=reason)

    def get(self, name: str) -> Route | None:
        """The stored route of ``name``, or ``None``."""
        stored = self._table.state().routes.get(name)
        return None if stored is None else Route.from_dict(stored)

    def token(self) -> int:
        """A number that changes whenever routes or aliases change (cheap to poll)."""
        return self._table.token()

    def state(self) -> RoutingState:
        """Routes, aliases and live models, read together."""
        return self._table.state()
