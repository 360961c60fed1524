"""The gate report: every check result of one validation, the verdict and the exit code."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchkeeper.checks import CheckResult, Status
from watchkeeper.lifecycle._config import GateConfig

__all__ = [
    "BUDGET_CHECKS",
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_PASS",
    "GATE_REPORT_FORMAT",
    "GateReport",
]

GATE_REPORT_FORMAT = "watchkeeper.gate/1"
EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2

# Checks whose missing evidence blocks the gate: a challenger cannot be blessed, nor a model
# vouched for, on data too small to judge.
_REQUIRED_EVIDENCE = ("gate.comparison", "gate.cv")
#: Resource budgets, measured on this machine: reported apart from the statistical checks.
BUDGET_CHECKS = frozenset({"gate.latency", "gate.memory"})


@dataclass(frozen=True, slots=True)
class GateReport:
    """Outcome of :func:`~watchkeeper.lifecycle.validate`.

    The gate passes when no statistical result is ``alert`` or ``error`` and neither the
    champion comparison nor cross-validation lacked data. Resource budgets (latency and
    memory, :data:`BUDGET_CHECKS`) are reported apart (:attr:`budgets`,
    :attr:`budgets_passed`) and never change :attr:`passed`: they are measured on the machine
    at hand, the statistical verdict only on the data. A result whose ``details`` say
    ``optional: True`` (a failed optional step, such as a fairness mitigation shown for
    comparison) is reported with its status but decides nothing. Exit codes for pipelines:
    0 pass, 1 fail (the statistical checks failed, or a budget was exceeded and
    ``config.serving.enforce`` is set), 2 error (some statistical check could not be
    computed; this wins over a failure because the report is incomplete).

    Parameters
    ----------
    candidate, champion
        Labels of the models (``champion`` is ``None`` when there was none).
    task
        ``"binary"``, ``"multiclass"`` or ``"regression"``.
    metrics
        Metrics evaluated, the primary one first.
    n_train, n_holdout
        Rows used for cross-validation and for the holdout.
    results
        Every check result, in the order the checks ran.
    config
        The configuration the gate ran with.
    notes
        Facts about how the gate ran (splits, refits) that a reader needs.
    created_at, version
        When and by which watchkeeper version the report was made.

    Examples
    --------
    >>> ok = CheckResult(check="gate.cv", subject="accuracy", status=Status.OK, reason="fine")
    >>> bad = CheckResult(check="gate.latency", subject="batch 1", status=Status.ALERT,
    ...                   reason="p99 120 ms > budget 100 ms")
    >>> r = GateReport(candidate="m:2", champion=None, task="binary", metrics=("accuracy",),
    ...                n_train=800, n_holdout=200, results=(ok, bad))
    >>> r.passed, r.budgets_passed, r.exit_code  # budgets warn unless enforced
    (True, False, 0)
    """

    candidate: str
    champion: str | None
    task: str
    metrics: tuple[str, ...]
    n_train: int
    n_holdout: int
    results: tuple[CheckResult, ...]
    config: GateConfig = field(default_factory=GateConfig)
    notes: tuple[str, ...] = ()
    created_at: str = ""
    version: str = ""

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """Statistical results that block the gate."""
        return tuple(r for r in self.results if r.check not in BUDGET_CHECKS and _blocks(r))

    @property
    def errors(self) -> tuple[CheckResult, ...]:
        """Statistical results of checks that could not be computed (optional steps aside)."""
        return tuple(
            r
            for r in self.results
            if r.check not in BUDGET_CHECKS and r.status is Status.ERROR and not _optional(r)
        )

    @property
    def passed(self) -> bool:
        """The statistical verdict: whether the candidate may be deployed on its merits."""
        return not self.failures

    @property
    def budgets(self) -> tuple[CheckResult, ...]:
        """Latency and memory results, measured against their budgets on this machine."""
        return tuple(r for r in self.results if r.check in BUDGET_CHECKS)

    @property
    def budget_failures(self) -> tuple[CheckResult, ...]:
        """Budgets exceeded (``warn``, or ``alert`` when enforced) or not measurable."""
        return tuple(r for r in self.budgets if r.status is not Status.OK)

    @property
    def budgets_passed(self) -> bool:
        """Whether every latency and memory budget was met."""
        return not self.budget_failures

    @property
    def exit_code(self) -> int:
        """0 pass, 1 fail (or an enforced budget exceeded), 2 error."""
        if self.errors:
            return EXIT_ERROR
        if not self.passed:
            return EXIT_FAIL
        if self.config.serving.enforce and not self.budgets_passed:
            return EXIT_FAIL
        return EXIT_PASS

    @property
    def blessed(self) -> bool | None:
        """Whether the challenger beat the champion as configured (``None`` without one)."""
        comparison = [r for r in self.results if r.check == "gate.comparison"]
        if not comparison:
            return None
        return all(r.status is Status.OK for r in comparison)

    def by_check(self, check: str) -> tuple[CheckResult, ...]:
        """Results of one check, e.g. ``"gate.latency"``."""
        return tuple(r for r in self.results if r.check == check)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form."""
        return {
            "format": GATE_REPORT_FORMAT,
            "passed": self.passed,
            "exit_code": self.exit_code,
            "blessed": self.blessed,
            "candidate": self.candidate,
            "champion": self.champion,
            "task": self.task,
            "metrics": list(self.metrics),
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "created_at": self.created_at,
            "version": self.version,
            "notes": list(self.notes),
            "failures": [f"{r.check}[{r.subject}]: {r.reason}" for r in self.failures],
            "budgets": {
                "passed": self.budgets_passed,
                "enforced": self.config.serving.enforce,
                "exceeded": [f"{r.check}[{r.subject}]: {r.reason}" for r in self.budget_failures],
            },
            "results": [_jsonable(r.to_dict()) for r in self.results],
            "config": self.config.to_dict(),
        }

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        """The report as JSON; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML page; also written to ``path`` when given."""
        from watchkeeper._extras import render

        text = str(render("gate_report", self))
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def summary(self) -> str:
        """A few plain-text lines: the verdict and each blocking result."""
        verdict = "PASSED" if self.passed else ("ERROR" if self.errors else "FAILED")
        lines = [f"gate {verdict} for {self.candidate} (exit code {self.exit_code})"]
        if self.blessed is not None:
            lines.append(
                f"challenger {'blessed' if self.blessed else 'not blessed'} over {self.champion}"
            )
        lines.extend(
            f"  {r.status.value}: {r.check}[{r.subject}] {r.reason}" for r in self.failures
        )
        if self.budgets:
            how = "enforced" if self.config.serving.enforce else "reported only"
            state = "met" if self.budgets_passed else "EXCEEDED"
            lines.append(f"budgets {state} ({how}; latency as CPU time per call)")
            lines.extend(
                f"  {r.status.value}: {r.check}[{r.subject}] {r.reason}"
                for r in self.budget_failures
            )
        return "\n".join(lines)


def _optional(r: CheckResult) -> bool:
    return bool(r.details.get("optional", False))


def _blocks(r: CheckResult) -> bool:
    if _optional(r):
        return False
    if r.status in (Status.ALERT, Status.ERROR):
        return True
    return r.status is Status.INSUFFICIENT_DATA and r.check in _REQUIRED_EVIDENCE


def _jsonable(obj: Any) -> Any:
    # Details hold user-facing evidence (parameter values, numpy scalars); make them JSON-safe
    # without losing them.
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            return _jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(obj)
