"""Which model version answers a request: single, split, canary and shadow routes.

Pure logic, no I/O. A :class:`Route` names aliases, never versions, so promoting or rolling
back an alias changes what a route serves without touching the route.

Sticky assignment hashes ``model + key`` to a point ``u`` in ``[0, 1)`` and walks the arms'
cumulative weights in their declared order. A user therefore always lands on the same arm
while the weights stay the same; and in a canary, where the challenger's slice sits at the
top of the interval, raising the percentage only moves users from the champion to the
challenger, never back.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from watchkeeper.exceptions import InputError

__all__ = ["Arm", "Decision", "Route", "choose", "unit_hash"]

Mode = Literal["single", "split", "canary", "shadow"]
_MODES: tuple[str, ...] = ("single", "split", "canary", "shadow")
_HEADER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class Arm:
    """One alias answering a share of the traffic; its name in responses is the alias."""

    alias: str
    weight: float = 1.0


@dataclass(frozen=True)
class Decision:
    """Where one request goes: the answering arm and, maybe, a shadow alias."""

    alias: str
    shadow: str | None = None


@dataclass(frozen=True)
class Route:
    """How a model's traffic is routed among its aliases.

    Build routes with :meth:`single`, :meth:`split`, :meth:`canary` and :meth:`shadow_of`
    rather than by hand; the constructor checks that the parts fit the mode.

    Parameters
    ----------
    mode
        ``single`` (one alias), ``split`` (weighted arms), ``canary`` (champion and
        challenger, the challenger getting a percentage) or ``shadow`` (one alias answers, a
        second one gets a copy of a fraction of the traffic off the response path).
    arms
        Answering aliases and weights (weights are normalised).
    sticky_header
        Request header whose value keeps one caller on one arm (lower case); without it in a
        request, the arm is drawn at random.
    shadow
        Alias receiving copies (``shadow`` mode only).
    shadow_fraction
        Share of requests copied to the shadow alias.

    Examples
    --------
    >>> route = Route.canary(10, champion="champion", challenger="challenger")
    >>> route.describe()
    'canary: champion 90%, challenger 10% (sticky on x-user-id)'
    >>> Route.from_dict(route.to_dict()) == route
    True
    """

    mode: Mode
    arms: tuple[Arm, ...]
    sticky_header: str = "x-user-id"
    shadow: str | None = None
    shadow_fraction: float = 1.0

    def __post_init__(self) -> None:
        from watchkeeper.registry import validate_alias

        if self.mode not in _MODES:
            raise InputError(f"unknown route mode {self.mode!r}; use one of {', '.join(_MODES)}")
        arms = tuple(self.arms)
        object.__setattr__(self, "arms", arms)
        if not arms:
            raise InputError("a route needs at least one arm")
        expected = {"single": 1, "shadow": 1, "canary": 2}.get(self.mode)
        if expected is not None and len(arms) != expected:
            raise InputError(f"a {self.mode} route has {expected} arm(s), got {len(arms)}")
        if self.mode == "split" and len(arms) < 2:
            raise InputError("a split route needs at least two arms (use a single route for one)")
        aliases = [validate_alias(arm.alias) for arm in arms]
        if len(set(aliases)) != len(aliases):
            raise InputError(f"a route lists the same alias twice: {aliases}")
        for arm in arms:
            weight = arm.weight
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise InputError(f"the weight of arm {arm.alias!r} must be a number")
            if not (math.isfinite(weight) and weight >= 0):
                raise InputError(f"the weight of arm {arm.alias!r} must be >= 0, got {weight}")
        if sum(arm.weight for arm in arms) <= 0:
            raise InputError("the weights of a route's arms must not all be zero")
        if (self.mode == "shadow") != (self.shadow is not None):
            raise InputError("a shadow alias is given exactly for shadow routes")
        if self.shadow is not None:
            validate_alias(self.shadow)
            if self.shadow in aliases:
                raise InputError(f"alias {self.shadow!r} cannot shadow itself")
        if not (0.0 <= self.shadow_fraction <= 1.0):
            raise InputError(f"shadow_fraction must be in [0, 1], got {self.shadow_fraction}")
        header = self.sticky_header.lower()
        if not 0 < len(header) <= 64 or not set(header) <= _HEADER_CHARS:
            raise InputError(
                f"sticky_header {self.sticky_header!r} is not a valid header name "
                "(1-64 letters, digits, '-' and '_')"
            )
        object.__setattr__(self, "sticky_header", header)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def single(cls, alias: str = "champion") -> Route:
        """Every request to ``alias``.

        Examples
        --------
        >>> Route.single().describe()
        'single: champion'
        """
        return cls("single", (Arm(alias),))

    @classmethod
    def split(cls, weights: Mapping[str, float], *, sticky_header: str = "x-user-id") -> Route:
        """Requests shared among aliases in proportion to ``weights`` (A/B tests).

        Examples
        --------
        >>> Route.split({"a": 1, "b": 3}).describe()
        'split: a 25%, b 75% (sticky on x-user-id)'
        """
        return cls("split", tuple(Arm(a, float(w)) for a, w in weights.items()), sticky_header)

    @classmethod
    def canary(
        cls,
        percent: float,
        *,
        champion: str = "champion",
        challenger: str = "challenger",
        sticky_header: str = "x-user-id",
    ) -> Route:
        """``percent`` % of requests to ``challenger``, the rest to ``champion``.

        Examples
        --------
        >>> Route.canary(5).arms[1]
        Arm(alias='challenger', weight=5.0)
        """
        if not 0 <= percent <= 100:
            raise InputError(f"a canary percentage is in [0, 100], got {percent}")
        arms = (Arm(champion, 100.0 - percent), Arm(challenger, float(percent)))
        return cls("canary", arms, sticky_header)

    @classmethod
    def shadow_of(
        cls,
        alias: str = "champion",
        shadow: str = "challenger",
        *,
        fraction: float = 1.0,
        sticky_header: str = "x-user-id",
    ) -> Route:
        """``alias`` answers; ``shadow`` gets a copy of ``fraction`` of the requests.

        Examples
        --------
        >>> Route.shadow_of(fraction=0.25).describe()
        'shadow: champion answers, challenger shadows 25%'
        """
        return cls("shadow", (Arm(alias),), sticky_header, shadow, fraction)

    # -- reading ----------------------------------------------------------------------------

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every alias the route uses (answering arms, then the shadow)."""
        out = tuple(arm.alias for arm in self.arms)
        return out if self.shadow is None else (*out, self.shadow)

    def shares(self) -> dict[str, float]:
        """Share of traffic each answering alias gets (sums to 1)."""
        total = sum(arm.weight for arm in self.arms)
        return {arm.alias: arm.weight / total for arm in self.arms}

    def describe(self) -> str:
        """One line for humans and the audit trail."""
        if self.mode == "single":
            return f"single: {self.arms[0].alias}"
        if self.mode == "shadow":
            return (
                f"shadow: {self.arms[0].alias} answers, {self.shadow} shadows "
                f"{_percent(self.shadow_fraction)}"
            )
        parts = ", ".join(f"{a} {_percent(s)}" for a, s in self.shares().items())
        return f"{self.mode}: {parts} (sticky on {self.sticky_header})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the registry stores and the admin API takes)."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "arms": [{"alias": arm.alias, "weight": arm.weight} for arm in self.arms],
            "sticky_header": self.sticky_header,
        }
        if self.shadow is not None:
            out["shadow"] = self.shadow
            out["shadow_fraction"] = self.shadow_fraction
        return out

    @classmethod
    def from_dict(cls, payload: Any) -> Route:
        """Parse a route document; the shorthand forms of the admin API are accepted too.

        Besides the :meth:`to_dict` form, ``{"mode": "single", "alias": "champion"}``,
        ``{"mode": "split", "weights": {"a": 50, "b": 50}}``,
        ``{"mode": "canary", "percent": 10}`` (optionally ``champion``, ``challenger``) and
        ``{"mode": "shadow", "alias": "champion", "shadow": "challenger", "fraction": 0.5}``.

        Examples
        --------
        >>> Route.from_dict({"mode": "canary", "percent": 20}).shares()
        {'champion': 0.8, 'challenger': 0.2}
        >>> Route.from_dict({"mode": "split"})
        Traceback (most recent call last):
        ...
        watchkeeper.exceptions.InputError: a split route needs 'arms' or 'weights' ...
        """
        if isinstance(payload, str | bytes):
            try:
                payload = json.loads(payload)
            except ValueError as exc:
                raise InputError(f"a route must be a JSON object: {exc}") from None
        if not isinstance(payload, Mapping):
            raise InputError("a route must be a JSON object with a 'mode'")
        mode = payload.get("mode")
        header = payload.get("sticky_header", "x-user-id")
        if not isinstance(header, str):
            raise InputError("sticky_header must be a string")
        try:
            if "arms" in payload:
                arms = payload["arms"]
                if not isinstance(arms, Sequence) or isinstance(arms, str):
                    raise InputError("'arms' must be a list of {alias, weight} objects")
                parsed = tuple(_arm(a) for a in arms)
                fraction = payload.get("shadow_fraction", payload.get("fraction", 1.0))
                return cls(mode, parsed, header, payload.get("shadow"), _number(fraction))  # type: ignore[arg-type]
            if mode == "single":
                return cls("single", (Arm(payload.get("alias", "champion")),), header)
            if mode == "split":
                weights = payload.get("weights")
                if not isinstance(weights, Mapping):
                    raise InputError(
                        "a split route needs 'arms' or 'weights' ({alias: weight, ...})"
                    )
                return cls.split({k: _number(v) for k, v in weights.items()}, sticky_header=header)
            if mode == "canary":
                if "percent" not in payload:
                    raise InputError(
                        "a canary route needs 'percent': the share of requests (0-100) for "
                        "the challenger"
                    )
                return cls.canary(
                    _number(payload.get("percent")),
                    champion=payload.get("champion", "champion"),
                    challenger=payload.get("challenger", "challenger"),
                    sticky_header=header,
                )
            if mode == "shadow":
                return cls.shadow_of(
                    payload.get("alias", "champion"),
                    payload.get("shadow", "challenger"),
                    fraction=_number(payload.get("fraction", payload.get("shadow_fraction", 1))),
                    sticky_header=header,
                )
        except InputError:
            raise
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"not a valid route: {exc}") from None
        raise InputError(f"unknown route mode {mode!r}; use one of {', '.join(_MODES)}")


def _arm(item: Any) -> Arm:
    if not isinstance(item, Mapping) or "alias" not in item:
        raise InputError("each arm must be an object with an 'alias' (and a 'weight')")
    return Arm(item["alias"], _number(item.get("weight", 1.0)))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"expected a number, got {value!r}")
    return float(value)


def _percent(share: float) -> str:
    return f"{share * 100:.4g}%"


def unit_hash(*parts: str) -> float:
    """A stable point in ``[0, 1)`` for a key (the same on every worker and every run).

    Examples
    --------
    >>> unit_hash("churn", "user-42") == unit_hash("churn", "user-42")
    True
    >>> 0 <= unit_hash("churn", "user-42") < 1
    True
    """
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def choose(route: Route, model: str, key: str | None, rng: random.Random | None = None) -> Decision:
    """The arm (and shadow, if any) for one request.

    Parameters
    ----------
    route
        The model's route.
    model
        Model name (salts the hash, so one user's arms are independent across models).
    key
        Value of the sticky header, or ``None`` for a random draw.
    rng
        Random source for requests without a key (default: the ``random`` module's).

    Examples
    --------
    >>> route = Route.split({"a": 1, "b": 1})
    >>> len({choose(route, "m", "user-7").alias for _ in range(20)})
    1
    >>> choose(Route.shadow_of(fraction=1.0), "m", None)
    Decision(alias='champion', shadow='challenger')
    """
    draw = rng.random if rng is not None else random.random
    arms = route.arms
    if len(arms) == 1:
        alias = arms[0].alias
    else:
        u = unit_hash(model, "arm", key) if key is not None else draw()
        total = sum(arm.weight for arm in arms)
        edge = 0.0
        # Rounding can leave u just above the last edge: it then belongs to the last arm
        # that takes traffic.
        alias = next(arm.alias for arm in reversed(arms) if arm.weight > 0)
        for arm in arms:
            edge += arm.weight / total
            if u < edge and arm.weight > 0:
                alias = arm.alias
                break
    shadow = None
    if route.shadow is not None and route.shadow_fraction > 0:
        u = unit_hash(model, "shadow", key) if key is not None else draw()
        if u < route.shadow_fraction:
            shadow = route.shadow
    return Decision(alias, shadow)
