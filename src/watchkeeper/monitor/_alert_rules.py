"""Declarative alert rules: frozen, validated, loaded from TOML or JSON.

A rules file names the delivery channels and the rules that use them. A TOML example (the
defaults shipped with watchkeeper are in ``monitor/defaults/alerts.toml``)::

    [channels.oncall]
    type = "slack"
    url_env = "WK_SLACK_WEBHOOK_URL"     # the secret stays in the environment

    [[rules]]
    name = "drift"
    check = "drift.*"                    # glob over the dotted check name
    subject = "*"                        # glob over the column / class / "model"
    when = "status >= alert"             # or a comparator: "value < 0.8", "upper > 0.2"
    for = 2                              # consecutive windows before firing
    cooldown = "6h"                      # no new firing of the same alert within this time
    severity = "warning"                 # info | warning | critical
    labels = { team = "ml" }
    channels = ["oncall", "log"]

Rules are matched against the monitor's window results; see :class:`AlertEvaluator`.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast

from watchkeeper.checks import Status
from watchkeeper.exceptions import InputError
from watchkeeper.monitor._channels import Channel, LogChannel, channel_from_dict

__all__ = [
    "AlertConfig",
    "AlertRule",
    "Condition",
    "Severity",
    "format_duration",
    "parse_duration",
]

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
Field = Literal["status", "value", "lower", "upper"]
FIELDS: tuple[Field, ...] = ("status", "value", "lower", "upper")
Operator = Literal["<", "<=", ">", ">=", "==", "!="]

_OPS: dict[str, Any] = {
    "<": float.__lt__,
    "<=": float.__le__,
    ">": float.__gt__,
    ">=": float.__ge__,
    "==": float.__eq__,
    "!=": float.__ne__,
}
_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def parse_duration(value: str | float | int, what: str) -> timedelta:
    """A duration from seconds or a string such as ``"90s"``, ``"5m"``, ``"6h"``, ``"2d"``.

    Examples
    --------
    >>> parse_duration("6h", "cooldown"), parse_duration(90, "cooldown")
    (datetime.timedelta(seconds=21600), datetime.timedelta(seconds=90))
    >>> parse_duration("soon", "rule 'x' cooldown")
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: rule 'x' cooldown must be seconds or a duration ...
    """
    if isinstance(value, bool):
        raise InputError(f"{what} must be seconds or a duration such as '30m', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        found = _DURATION.match(str(value))
        if found is None:
            raise InputError(
                f"{what} must be seconds or a duration such as '90s', '30m', '6h', '2d'; "
                f"got {value!r}"
            )
        seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"]
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"{what} must be a non-negative duration, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest Prometheus duration string for ``value`` (whole seconds).

    Examples
    --------
    >>> format_duration(timedelta(hours=6)), format_duration(timedelta(seconds=90))
    ('6h', '90s')
    """
    seconds = round(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class Condition:
    """What must hold in a window for a rule to count it: ``field op threshold``.

    Parameters
    ----------
    field
        ``"status"`` (compared by :attr:`Status.severity`) or a numeric field of the result:
        ``"value"``, ``"lower"``, ``"upper"`` (the confidence bounds).
    op
        A comparator.
    threshold
        A number, or a :class:`Status` when ``field`` is ``"status"``.

    Examples
    --------
    >>> c = Condition.parse("status >= warn", "drift")
    >>> c.holds(Status.ALERT, None, None, None), c.holds(Status.OK, None, None, None)
    (True, False)
    >>> Condition.parse("value < 0.8", "auc").holds(Status.OK, 0.75, None, None)
    True
    >>> print(Condition.parse("lower > 0.1", "x").holds(Status.INSUFFICIENT_DATA, None, None, None))
    None
    """

    field: Field
    op: Operator
    threshold: float | Status

    @classmethod
    def parse(cls, text: str, rule: str) -> Condition:
        """Parse ``"status >= alert"`` or ``"value < 0.8"``; errors name ``rule``."""
        found = _CONDITION.match(text) if isinstance(text, str) else None
        if found is None:
            raise InputError(
                f"rule {rule!r} when: expected '<field> <op> <threshold>' such as "
                f"'status >= alert' or 'value < 0.8', got {text!r}"
            )
        name, op, raw = found.groups()
        if name not in FIELDS:
            raise InputError(
                f"rule {rule!r} when: unknown field {name!r}; use one of {', '.join(FIELDS)}"
            )
        threshold: float | Status
        if name == "status":
            try:
                threshold = Status(raw)
            except ValueError:
                raise InputError(
                    f"rule {rule!r} when: unknown status {raw!r}; use one of "
                    + ", ".join(s.value for s in Status)
                ) from None
        else:
            try:
                threshold = float(raw)
            except ValueError:
                raise InputError(
                    f"rule {rule!r} when: threshold of {name} must be a number, got {raw!r}"
                ) from None
            if not math.isfinite(threshold):
                raise InputError(f"rule {rule!r} when: threshold must be finite, got {raw!r}")
        return cls(cast(Field, name), cast(Operator, op), threshold)

    def holds(
        self, status: Status, value: float | None, lower: float | None, upper: float | None
    ) -> bool | None:
        """Whether the condition holds for one result; ``None`` when it cannot be judged.

        A numeric condition cannot be judged from a missing number, nor from a result whose
        status is ``insufficient_data`` or ``error`` (its number is not a verdict). A status
        condition cannot be judged from ``insufficient_data`` unless it names that status.
        """
        compare = _OPS[self.op]
        if isinstance(self.threshold, Status):
            if status is Status.INSUFFICIENT_DATA and self.threshold is not status:
                return None
            return bool(compare(float(status.severity), float(self.threshold.severity)))
        if status in (Status.INSUFFICIENT_DATA, Status.ERROR):
            return None
        number = {"value": value, "lower": lower, "upper": upper}[self.field]
        if number is None or not math.isfinite(number):
            return None
        return bool(compare(float(number), self.threshold))

    def __str__(self) -> str:
        shown = (
            self.threshold.value if isinstance(self.threshold, Status) else f"{self.threshold:g}"
        )
        return f"{self.field} {self.op} {shown}"


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One alert rule.

    Parameters
    ----------
    name
        Unique name (letters, digits, ``_ . -``); it names the alert everywhere.
    check, subject, model
        Globs matched (case-sensitively) against a result's check name, subject and model.
    when
        The :class:`Condition` a window must meet.
    for_windows
        Consecutive windows that must meet it before the alert fires (``for`` in the file).
    cooldown
        After an alert of this rule and key fired, it does not fire again within this time
        (measured on window ends), so a flapping signal notifies once.
    severity
        ``"info"``, ``"warning"`` or ``"critical"``.
    labels
        Extra labels copied onto every event (and the generated Prometheus alert).
    channels
        Names of the channels that receive its firings and resolutions.
    summary
        Optional one-line description; the event's reason is used when empty.

    Examples
    --------
    >>> rule = AlertRule.from_dict({"name": "auc", "check": "performance.roc_auc",
    ...                             "when": "value < 0.8", "for": 2})
    >>> rule.for_windows, str(rule.when), rule.matches("performance.roc_auc", "model", "churn")
    (2, 'value < 0.8', True)
    >>> AlertRule.from_dict({"name": "auc", "check": "x", "when": "value < 1", "for": 0})
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: rule 'auc' for: must be a whole number of windows >= 1, got 0
    """

    name: str
    check: str
    when: Condition
    subject: str = "*"
    model: str = "*"
    for_windows: int = 1
    cooldown: timedelta = timedelta(0)
    severity: Severity = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    channels: tuple[str, ...] = ("log",)
    summary: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        where = f"rule {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InputError(
                f"rule name {self.name!r} must start with a letter and hold only letters, "
                "digits, '_', '.', '-' (at most 64 characters)"
            )
        for key in ("check", "subject", "model"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise InputError(f"{where} {key}: must be a non-empty glob such as 'drift.*'")
        if (
            isinstance(self.for_windows, bool)
            or not isinstance(self.for_windows, int)
            or self.for_windows < 1
        ):
            raise InputError(
                f"{where} for: must be a whole number of windows >= 1, got {self.for_windows!r}"
            )
        if self.severity not in SEVERITIES:
            raise InputError(
                f"{where} severity: must be one of {', '.join(SEVERITIES)}, got {self.severity!r}"
            )
        for key, value in self.labels.items():
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", str(key)) or not isinstance(value, str):
                raise InputError(
                    f"{where} labels: {key!r} must be a Prometheus label name "
                    "([a-zA-Z_][a-zA-Z0-9_]*) with a string value"
                )
        if not self.channels or not all(isinstance(c, str) for c in self.channels):
            raise InputError(f"{where} channels: must list at least one channel name")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertRule:
        """Build a rule from plain data; unknown keys are errors naming the rule."""
        if not isinstance(data, Mapping):
            raise InputError(f"every rule must be a table, got {data!r}")
        name = data.get("name")
        where = f"rule {name!r}"
        known = {
            "name", "check", "subject", "model", "when", "for", "cooldown", "severity",
            "labels", "channels", "summary",
        }  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(known))}"
            )
        for required in ("name", "check", "when"):
            if required not in data:
                raise InputError(f"{where}: missing required key {required!r}")
        channels = data.get("channels", ("log",))
        if isinstance(channels, str):
            channels = (channels,)
        labels = data.get("labels", {})
        if not isinstance(labels, Mapping):
            raise InputError(f"{where} labels: must be a table of label = value")
        return cls(
            name=str(name),
            check=data["check"],
            subject=data.get("subject", "*"),
            model=data.get("model", "*"),
            when=Condition.parse(data["when"], str(name)),
            for_windows=data.get("for", 1),
            cooldown=parse_duration(data.get("cooldown", 0), f"{where} cooldown"),
            severity=data.get("severity", "warning"),
            labels=labels,
            channels=tuple(channels),
            summary=str(data.get("summary", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain form (``from_dict(to_dict())`` round-trips)."""
        return {
            "name": self.name,
            "check": self.check,
            "subject": self.subject,
            "model": self.model,
            "when": str(self.when),
            "for": self.for_windows,
            "cooldown": format_duration(self.cooldown),
            "severity": self.severity,
            "labels": dict(self.labels),
            "channels": list(self.channels),
            "summary": self.summary,
        }

    def matches(self, check: str, subject: str, model: str) -> bool:
        """Whether a result of ``check`` on ``subject`` of ``model`` falls under this rule."""
        return (
            fnmatchcase(check, self.check)
            and fnmatchcase(subject, self.subject)
            and fnmatchcase(model, self.model)
        )


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """A set of rules and the channels they deliver to.

    The channel ``"log"`` (a :class:`LogChannel`) always exists.

    Examples
    --------
    >>> config = AlertConfig.default()
    >>> sorted(rule.name for rule in config.rules)[:3]
    ['attribution-drift', 'concept-drift', 'contract']
    >>> AlertConfig.from_dict({"rules": [{"name": "a", "check": "drift.*",
    ...                                   "when": "status >= alert", "channels": ["pager"]}]})
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: rule 'a' channels: unknown channel 'pager'; ...
    """

    rules: tuple[AlertRule, ...]
    channels: Mapping[str, Channel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        channels = {"log": LogChannel(), **dict(self.channels)}
        object.__setattr__(self, "channels", MappingProxyType(channels))
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise InputError(f"rule {rule.name!r} is defined twice; rule names must differ")
            seen.add(rule.name)
            for name in rule.channels:
                if name not in channels:
                    raise InputError(
                        f"rule {rule.name!r} channels: unknown channel {name!r}; define it "
                        f"under [channels.{name}] or use one of {', '.join(sorted(channels))}"
                    )

    def rule(self, name: str) -> AlertRule:
        """The rule called ``name``."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise InputError(
            f"no alert rule named {name!r}; known rules: " + ", ".join(r.name for r in self.rules)
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertConfig:
        """Build from plain data (``{"channels": {...}, "rules": [...]}``)."""
        if not isinstance(data, Mapping):
            raise InputError("an alert rules file must hold a table/object at the top")
        unknown = sorted(set(data) - {"channels", "rules"})
        if unknown:
            raise InputError(
                f"unknown alert setting {unknown[0]!r}; valid top-level keys: channels, rules"
            )
        rules = data.get("rules", [])
        if not isinstance(rules, Sequence) or isinstance(rules, str):
            raise InputError("'rules' must be a list of tables ([[rules]] in TOML)")
        channels = data.get("channels", {})
        if not isinstance(channels, Mapping):
            raise InputError("'channels' must be a table of named channels ([channels.NAME])")
        return cls(
            rules=tuple(AlertRule.from_dict(r) for r in rules),
            channels={str(k): channel_from_dict(str(k), v) for k, v in channels.items()},
        )

    @classmethod
    def from_file(cls, path: str | Path) -> AlertConfig:
        """Read a ``.toml`` or ``.json`` rules file."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"alert rules file {str(p)!r} does not exist; pass an existing file")
        return cls.from_dict(_load(p.read_text(encoding="utf-8"), p.suffix.lower(), str(p)))

    @classmethod
    def default(cls) -> AlertConfig:
        """The rules shipped with watchkeeper (``monitor/defaults/alerts.toml``)."""
        text = resources.files("watchkeeper.monitor").joinpath("defaults/alerts.toml")
        return cls.from_dict(_load(text.read_text(encoding="utf-8"), ".toml", "default rules"))

    def to_dict(self) -> dict[str, Any]:
        """Plain form; channels show the names of their environment variables, never secrets."""
        return {
            "channels": {k: c.to_dict() for k, c in self.channels.items() if k != "log"},
            "rules": [r.to_dict() for r in self.rules],
        }


def _load(text: str, suffix: str, where: str) -> Any:
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"alert rules file {where!r} is not valid: {exc}") from exc
    raise InputError(f"alert rules file {where!r} must be a .toml or .json file")
