"""The records of the monitor history and their database row forms.

:class:`WindowCheck` (one check result of one window), :class:`WindowSummary` (one window)
and :class:`DetectorState` (a persisted concept-drift detector) are what
:class:`~watchkeeper.monitor.MonitorStore` returns; :func:`result_row`, :func:`to_check` and
:func:`to_summary` convert between them and the rows of its tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime  # noqa: F401 (UTC: the doctests use it)
from typing import Any

from watchkeeper.checks import CheckResult, Status
from watchkeeper.storage import as_utc

__all__ = [
    "DetectorState",
    "WindowCheck",
    "WindowSummary",
    "as_utc",
    "result_row",
    "to_check",
    "to_summary",
]


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class _Window:
    """The window fields :class:`WindowCheck` and :class:`WindowSummary` share (first)."""

    model: str
    version: int
    arm: str
    window_start: datetime
    window_end: datetime
    window_kind: str
    n_rows: int
    n_labels: int

    @property
    def label_coverage(self) -> float:
        """Share of the window's rows that have a label."""
        return self.n_labels / self.n_rows if self.n_rows else 0.0

    def _window_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "arm": self.arm,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "window_kind": self.window_kind,
            "n_rows": self.n_rows,
            "n_labels": self.n_labels,
        }


@dataclass(frozen=True, slots=True)
class WindowCheck(_Window):
    """One stored check result of one window.

    Examples
    --------
    >>> row = WindowCheck("churn", 1, "champion", datetime(2024, 5, 1, tzinfo=UTC),
    ...                   datetime(2024, 5, 1, 1, tzinfo=UTC), "time", 120, 30,
    ...                   "drift.ks", "age", Status.OK, "no drift")
    >>> row.label_coverage, row.to_result().check
    (0.25, 'drift.ks')
    >>> row.to_dict()["window_end"], row.to_dict()["status"]
    ('2024-05-01T01:00:00+00:00', 'ok')
    """

    check: str
    subject: str
    status: Status
    reason: str
    value: float | None = None
    lower: float | None = None
    upper: float | None = None
    threshold: float | None = None
    p_value: float | None = None
    rule: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    computed_at: datetime | None = None
    run_id: str | None = None

    def to_result(self) -> CheckResult:
        """The :class:`~watchkeeper.checks.CheckResult` this row stores."""
        return CheckResult(
            check=self.check,
            subject=self.subject,
            status=self.status,
            reason=self.reason,
            value=self.value,
            threshold=self.threshold,
            lower=self.lower,
            upper=self.upper,
            p_value=self.p_value,
            rule=self.rule,
            details=dict(self.details),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (times as ISO 8601)."""
        return {
            **self._window_dict(),
            **self.to_result().to_dict(),
            "computed_at": _iso(self.computed_at),
            "run_id": self.run_id,
        }


@dataclass(frozen=True, slots=True)
class WindowSummary(_Window):
    """One evaluated window: bounds, rows, labels and its worst status.

    Examples
    --------
    >>> w = WindowSummary("churn", 1, "champion", datetime(2024, 5, 1, tzinfo=UTC),
    ...                   datetime(2024, 5, 2, tzinfo=UTC), "time", 200, 50, Status.WARN)
    >>> w.label_coverage, w.to_dict()["status"]
    (0.25, 'warn')
    """

    status: Status
    computed_at: datetime | None = None
    run_id: str | None = None

    @property
    def worst_status(self) -> Status:
        """The most severe status among the window's results (same as :attr:`status`)."""
        return self.status

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (times as ISO 8601)."""
        return {
            **self._window_dict(),
            "label_coverage": self.label_coverage,
            "status": self.status.value,
            "computed_at": _iso(self.computed_at),
            "run_id": self.run_id,
        }


@dataclass(frozen=True, slots=True)
class DetectorState:
    """A persisted concept-drift detector and the last row of the error stream it was fed."""

    detector: str
    state: Mapping[str, Any]
    position_ts: float
    position_id: str
    n_fed: int


def result_row(r: CheckResult) -> dict[str, Any]:
    """The result columns of a stored row (non-finite numbers become ``NULL``)."""
    return {
        "check": r.check,
        "subject": r.subject,
        "status": r.status.value,
        "value": _num(r.value),
        "lower": _num(r.lower),
        "upper": _num(r.upper),
        "threshold": _num(r.threshold),
        "p_value": _num(r.p_value),
        "rule": r.rule,
        "reason": r.reason,
        "details": json.dumps(r.to_dict()["details"], sort_keys=True, default=_json_default),
    }


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, tuple | set | frozenset):
        return list(o)
    if isinstance(o, datetime):
        return o.isoformat()
    return str(o)


def _window_values(r: Any) -> dict[str, Any]:
    return {
        "model": r.model,
        "version": int(r.version),
        "arm": r.arm,
        "window_start": as_utc(r.window_start),
        "window_end": as_utc(r.window_end),
        "window_kind": r.window_kind,
        "n_rows": int(r.n_rows),
        "n_labels": int(r.n_labels),
        "computed_at": as_utc(r.computed_at),
        "run_id": r.run_id,
    }


def to_check(r: Any) -> WindowCheck:
    """The :class:`WindowCheck` of a row of the results table."""
    return WindowCheck(
        **_window_values(r),
        check=r.check,
        subject=r.subject,
        status=Status(r.status),
        reason=r.reason,
        value=r.value,
        lower=r.lower,
        upper=r.upper,
        threshold=r.threshold,
        p_value=r.p_value,
        rule=r.rule,
        details=json.loads(r.details),
    )


def to_summary(r: Any) -> WindowSummary:
    """The :class:`WindowSummary` of a row of the windows table."""
    return WindowSummary(**_window_values(r), status=Status(r.status))
