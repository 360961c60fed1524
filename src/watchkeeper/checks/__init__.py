"""Checks compare a current window with a reference and return small immutable results.

Checks are pure: they do not render, log or alert.
"""

from watchkeeper.checks._drift import DEFAULT_METHODS, ColumnDrift
from watchkeeper.checks._quality import QualityThresholds, quality_checks
from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.checks._rules import (
    ColumnTest,
    Decision,
    DecisionRule,
    ReferenceChunksRule,
    StatisticalRule,
    ThresholdRule,
)

__all__ = [
    "DEFAULT_METHODS",
    "CheckResult",
    "ColumnDrift",
    "ColumnTest",
    "Decision",
    "DecisionRule",
    "QualityThresholds",
    "ReferenceChunksRule",
    "StatisticalRule",
    "Status",
    "ThresholdRule",
    "quality_checks",
]
