"""The small immutable result every check returns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["CheckResult", "Status"]


class Status(StrEnum):
    """Verdict of a check, ordered by severity (see :attr:`severity`)."""

    OK = "ok"
    INSUFFICIENT_DATA = "insufficient_data"
    WARN = "warn"
    ALERT = "alert"
    ERROR = "error"

    @property
    def severity(self) -> int:
        """Sort key: larger is worse."""
        return _SEVERITY[self]


_SEVERITY = {
    Status.OK: 0,
    Status.INSUFFICIENT_DATA: 1,
    Status.WARN: 2,
    Status.ALERT: 3,
    Status.ERROR: 4,
}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one check on one subject (a column, the dataset, a model...).

    Parameters
    ----------
    check
        Dotted name of the check, e.g. ``"quality.missing_share"`` or ``"gate.cv_score"``.
    subject
        What was checked: a column name, ``"dataset"``, a model version...
    status
        The verdict.
    reason
        One sentence a person can act on: what was measured against what and why this
        status.
    value, threshold
        The measured value and the threshold it was compared with (``None`` where none).
    lower, upper
        Confidence bounds of ``value`` where the check computes them.
    p_value
        Where the check is a statistical test.
    rule
        Name of the decision rule that produced ``status``.
    details
        Any further JSON-serializable evidence (e.g. offending example values).

    Examples
    --------
    >>> r = CheckResult(check="quality.missing_share", subject="age", status=Status.WARN,
    ...                 reason="missing share rose from 0.0% to 12.5%", value=0.125,
    ...                 threshold=0.05)
    >>> r.to_dict()["status"]
    'warn'
    """

    check: str
    subject: str
    status: Status
    reason: str
    value: float | None = None
    threshold: float | None = None
    lower: float | None = None
    upper: float | None = None
    p_value: float | None = None
    rule: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form."""
        return {
            "check": self.check,
            "subject": self.subject,
            "status": self.status.value,
            "reason": self.reason,
            "value": _num(self.value),
            "threshold": _num(self.threshold),
            "lower": _num(self.lower),
            "upper": _num(self.upper),
            "p_value": _num(self.p_value),
            "rule": self.rule,
            "details": dict(self.details),
        }


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None
