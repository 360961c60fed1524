"""What an alert says when it fires or resolves: one immutable event, its JSON and its text."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["AlertEvent", "alert_key"]

EventKind = Literal["firing", "resolved"]


def alert_key(rule: str, model: str, version: str, arm: str, subject: str) -> str:
    """Stable fingerprint of one alert: the deduplication key of its events.

    Examples
    --------
    >>> alert_key("drift", "churn", "3", "champion", "age")
    'd61c438b5e20c6bd'
    """
    raw = "\x1f".join((rule, model, version, arm, subject)).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert firing or resolving, for one rule on one model, version, arm and subject.

    Parameters
    ----------
    kind
        ``"firing"`` or ``"resolved"``.
    rule, severity, summary, condition, labels
        From the rule (``condition`` as text, e.g. ``"status >= alert"``).
    model, version, arm, subject, check
        Which result the alert is about (``check`` of the window that decided).
    status, value, threshold, reason
        That result's status, value, threshold and reason.
    window_start, window_end
        The window that decided: the last of the ``windows`` consecutive windows meeting
        the condition (firing), or the first window no longer meeting it (resolved).
    started_at
        End of the window in which the alert fired (the same for its resolution).
    windows
        Consecutive windows that met the condition when it fired.
    id
        Row id once stored.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> e = AlertEvent(kind="firing", rule="drift", severity="warning", model="churn",
    ...                version="3", arm="champion", subject="age", check="drift.ks",
    ...                status="alert", value=0.31, threshold=0.1, reason="KS 0.31 > 0.1",
    ...                window_start=datetime(2024, 5, 1, tzinfo=UTC),
    ...                window_end=datetime(2024, 5, 2, tzinfo=UTC),
    ...                started_at=datetime(2024, 5, 2, tzinfo=UTC),
    ...                condition="status >= alert", windows=1)
    >>> e.title()
    '[FIRING warning] drift on churn v3 (champion), subject age'
    >>> e.to_dict()["window_end"]
    '2024-05-02T00:00:00+00:00'
    """

    kind: EventKind
    rule: str
    severity: str
    model: str
    version: str
    arm: str
    subject: str
    check: str
    status: str
    value: float | None
    threshold: float | None
    reason: str
    window_start: datetime
    window_end: datetime
    started_at: datetime
    condition: str
    windows: int
    summary: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    @property
    def key(self) -> str:
        """Deduplication key (see :func:`alert_key`)."""
        return alert_key(self.rule, self.model, self.version, self.arm, self.subject)

    def title(self) -> str:
        """One line: state, severity, rule and what it is about."""
        state = "FIRING" if self.kind == "firing" else "RESOLVED"
        return (
            f"[{state} {self.severity}] {self.rule} on {self.model} v{self.version} "
            f"({self.arm}), subject {self.subject}"
        )

    def text(self) -> str:
        """A few plain lines for chat and email."""
        value = "n/a" if self.value is None else f"{self.value:.6g}"
        when = f"window {self.window_start.isoformat()} to {self.window_end.isoformat()}"
        if self.kind == "firing":
            head = (
                f"{self.check} is {self.status} (value {value}); condition "
                f"'{self.condition}' held for {self.windows} window(s)."
            )
        else:
            head = (
                f"{self.check} is {self.status} (value {value}); condition "
                f"'{self.condition}' no longer holds (fired at {self.started_at.isoformat()})."
            )
        lines = [self.title(), head, f"{when}.", f"Reason: {self.reason}"]
        if self.summary:
            lines.insert(1, self.summary)
        if self.labels:
            lines.append("Labels: " + ", ".join(f"{k}={v}" for k, v in self.labels.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the generic webhook (documented in ``docs/alerts.md``)."""
        return {
            "kind": self.kind,
            "key": self.key,
            "rule": self.rule,
            "severity": self.severity,
            "summary": self.summary,
            "condition": self.condition,
            "model": self.model,
            "version": self.version,
            "arm": self.arm,
            "subject": self.subject,
            "check": self.check,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "reason": self.reason,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "started_at": self.started_at.isoformat(),
            "windows": self.windows,
            "labels": dict(self.labels),
            "id": self.id,
        }
