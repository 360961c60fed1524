"""The result of a comparison (:func:`watchkeeper.checks.run_comparison`): immutable data.

The JSON form is stable and documented in ``docs/report-format.md``; its top-level keys are
``format``, ``columns``, ``dataset``, ``multivariate``, ``quality``, ``plots`` and ``meta``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchkeeper.checks._drift import ColumnDrift
from watchkeeper.checks._result import CheckResult, Status

__all__ = ["REPORT_FORMAT", "Comparison", "DatasetVerdict", "MultivariateDrift"]

REPORT_FORMAT = "watchkeeper.drift-report/1"


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class DatasetVerdict:
    """Dataset-level verdict, from the column verdicts plus the multivariate checks."""

    drifted: bool
    n_columns: int
    n_tested: int
    n_drifted: int
    n_insufficient: int
    share_drifted: float
    multivariate_drifted: bool
    rule: str
    rule_description: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "drifted": self.drifted,
            "n_columns": self.n_columns,
            "n_tested": self.n_tested,
            "n_drifted": self.n_drifted,
            "n_insufficient": self.n_insufficient,
            "share_drifted": self.share_drifted,
            "multivariate_drifted": self.multivariate_drifted,
            "rule": self.rule,
            "rule_description": self.rule_description,
        }


@dataclass(frozen=True, slots=True)
class MultivariateDrift:
    """Verdict of one multivariate method on all the compared feature columns together."""

    method: str
    statistic: float | None
    p_value: float | None
    adjusted_p_value: float | None
    effect_size: float | None
    threshold: float | None
    status: Status
    drifted: bool
    reason: str
    n_reference: int
    n_current: int
    columns: tuple[str, ...]
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "statistic": _num(self.statistic),
            "p_value": _num(self.p_value),
            "adjusted_p_value": _num(self.adjusted_p_value),
            "effect_size": _num(self.effect_size),
            "threshold": _num(self.threshold),
            "status": self.status.value,
            "drifted": self.drifted,
            "reason": self.reason,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "columns": list(self.columns),
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Everything one comparison found. Built by :func:`~watchkeeper.checks.run_comparison`;
    :class:`watchkeeper.report.Report` adds the HTML rendering.

    Columns are sorted by severity (alerts first), then by effect size.
    """

    columns: tuple[ColumnDrift, ...]
    dataset: DatasetVerdict
    multivariate: tuple[MultivariateDrift, ...]
    quality: tuple[CheckResult, ...]
    plots: Mapping[str, Any]
    meta: Mapping[str, Any]

    @property
    def drifted(self) -> bool:
        """Whether the dataset drifted according to the decision rule."""
        return self.dataset.drifted

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the columns that drifted."""
        return [c.name for c in self.columns if c.drifted]

    @property
    def quality_findings(self) -> list[CheckResult]:
        """Quality results with status ``warn`` or worse."""
        return [q for q in self.quality if q.status.severity >= Status.WARN.severity]

    @property
    def has_quality_issues(self) -> bool:
        """Whether any quality check warned or alerted."""
        return bool(self.quality_findings)

    def column(self, name: str) -> ColumnDrift:
        """The verdict for one column."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(
            f"column {name!r} was not compared; compared: {[c.name for c in self.columns]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON structure as plain Python objects."""
        return {
            "format": REPORT_FORMAT,
            "columns": [c.to_dict() for c in self.columns],
            "dataset": self.dataset.to_dict(),
            "multivariate": [m.to_dict() for m in self.multivariate],
            "quality": [q.to_dict() for q in self.quality],
            "plots": dict(self.plots),
            "meta": dict(self.meta),
        }

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 2) -> str:
        """Serialize to JSON (strict: no NaN); write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=_default)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def summary(self) -> str:
        """A few lines of plain text for terminals and logs."""
        d = self.dataset
        lines = [
            f"dataset drift: {'YES' if d.drifted else 'no'} — {d.n_drifted} of {d.n_tested} "
            f"tested columns drifted ({d.rule})",
        ]
        lines += [
            f"  {c.name}: {c.method} effect {c.effect_size:.4g} — {c.reason}"
            for c in self.columns
            if c.drifted and c.effect_size is not None
        ]
        lines += [f"  multivariate {m.method}: {m.reason}" for m in self.multivariate]
        findings = self.quality_findings
        lines.append(f"quality findings: {len(findings)}")
        lines += [f"  [{q.status.value}] {q.subject}: {q.reason}" for q in findings[:20]]
        return "\n".join(lines)

    def __repr__(self) -> str:
        d = self.dataset
        return (
            f"{type(self).__name__}(drifted={d.drifted}, n_drifted={d.n_drifted}, "
            f"n_tested={d.n_tested}, "
            f"quality_findings={len(self.quality_findings)}, rule={d.rule!r})"
        )


def _default(o: Any) -> Any:
    if hasattr(o, "item"):
        v = o.item()
        return _num(v) if isinstance(v, float) else v
    if isinstance(o, tuple | set | frozenset):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
