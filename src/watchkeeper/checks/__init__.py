"""Checks compare a current window with a reference and return small immutable results.

Checks are pure: they do not render, log or alert.

The names below are imported on first use (module ``__getattr__``), so that importing one
check does not import every other one and its dependencies (``CBPE`` pulls in
``scipy.stats``, which a drift comparison does not need).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watchkeeper.checks._cbpe import CBPE
    from watchkeeper.checks._comparison import ComparisonConfig, run_comparison
    from watchkeeper.checks._comparison_result import (
        REPORT_FORMAT,
        Comparison,
        DatasetVerdict,
        MultivariateDrift,
    )
    from watchkeeper.checks._concept import (
        DEFAULT_DETECTORS,
        DetectorRun,
        concept_drift_check,
        concept_drift_checks,
        error_stream,
        run_detector,
    )
    from watchkeeper.checks._detectors import (
        Detector,
        DetectorWithWarning,
        available_detectors,
        detector,
        get_detector,
    )
    from watchkeeper.checks._dle import DLE
    from watchkeeper.checks._drift import DEFAULT_METHODS, ColumnDrift
    from watchkeeper.checks._estimation import ChunkEstimate, estimate_consistency
    from watchkeeper.checks._fairness import (
        CLASSIFICATION_GAPS,
        REGRESSION_GAPS,
        FairnessConfig,
        fairness_checks,
        fairness_from_counts,
        profile_fairness_checks,
    )
    from watchkeeper.checks._flags import flag_rate_check
    from watchkeeper.checks._performance import PerformanceRule, realised_performance
    from watchkeeper.checks._quality import QualityThresholds, quality_checks
    from watchkeeper.checks._result import CheckResult, Status
    from watchkeeper.checks._river_detectors import ADWIN, DDM, EDDM, KSWIN, PageHinkley
    from watchkeeper.checks._rules import (
        ColumnTest,
        Decision,
        DecisionRule,
        ReferenceChunksRule,
        StatisticalRule,
        ThresholdRule,
    )
    from watchkeeper.checks._segments import weak_segments
    from watchkeeper.checks._selection import (
        FeatureSuggestion,
        FeatureSuggestions,
        feature_suggestions,
    )
    from watchkeeper.checks._skew import SkewFinding, detect_skew, skew_checks

# name -> module that defines it; resolved lazily by __getattr__.
_LAZY = {
    "ADWIN": "watchkeeper.checks._river_detectors",
    "CBPE": "watchkeeper.checks._cbpe",
    "CLASSIFICATION_GAPS": "watchkeeper.checks._fairness",
    "CheckResult": "watchkeeper.checks._result",
    "ChunkEstimate": "watchkeeper.checks._estimation",
    "ColumnDrift": "watchkeeper.checks._drift",
    "ColumnTest": "watchkeeper.checks._rules",
    "Comparison": "watchkeeper.checks._comparison_result",
    "ComparisonConfig": "watchkeeper.checks._comparison",
    "DDM": "watchkeeper.checks._river_detectors",
    "DEFAULT_DETECTORS": "watchkeeper.checks._concept",
    "DEFAULT_METHODS": "watchkeeper.checks._drift",
    "DLE": "watchkeeper.checks._dle",
    "DatasetVerdict": "watchkeeper.checks._comparison_result",
    "Decision": "watchkeeper.checks._rules",
    "DecisionRule": "watchkeeper.checks._rules",
    "Detector": "watchkeeper.checks._detectors",
    "DetectorRun": "watchkeeper.checks._concept",
    "DetectorWithWarning": "watchkeeper.checks._detectors",
    "EDDM": "watchkeeper.checks._river_detectors",
    "FairnessConfig": "watchkeeper.checks._fairness",
    "FeatureSuggestion": "watchkeeper.checks._selection",
    "FeatureSuggestions": "watchkeeper.checks._selection",
    "KSWIN": "watchkeeper.checks._river_detectors",
    "MultivariateDrift": "watchkeeper.checks._comparison_result",
    "PageHinkley": "watchkeeper.checks._river_detectors",
    "PerformanceRule": "watchkeeper.checks._performance",
    "QualityThresholds": "watchkeeper.checks._quality",
    "REGRESSION_GAPS": "watchkeeper.checks._fairness",
    "REPORT_FORMAT": "watchkeeper.checks._comparison_result",
    "ReferenceChunksRule": "watchkeeper.checks._rules",
    "SkewFinding": "watchkeeper.checks._skew",
    "StatisticalRule": "watchkeeper.checks._rules",
    "Status": "watchkeeper.checks._result",
    "ThresholdRule": "watchkeeper.checks._rules",
    "available_detectors": "watchkeeper.checks._detectors",
    "concept_drift_check": "watchkeeper.checks._concept",
    "concept_drift_checks": "watchkeeper.checks._concept",
    "detect_skew": "watchkeeper.checks._skew",
    "detector": "watchkeeper.checks._detectors",
    "error_stream": "watchkeeper.checks._concept",
    "estimate_consistency": "watchkeeper.checks._estimation",
    "fairness_checks": "watchkeeper.checks._fairness",
    "fairness_from_counts": "watchkeeper.checks._fairness",
    "feature_suggestions": "watchkeeper.checks._selection",
    "flag_rate_check": "watchkeeper.checks._flags",
    "get_detector": "watchkeeper.checks._detectors",
    "profile_fairness_checks": "watchkeeper.checks._fairness",
    "quality_checks": "watchkeeper.checks._quality",
    "realised_performance": "watchkeeper.checks._performance",
    "run_comparison": "watchkeeper.checks._comparison",
    "run_detector": "watchkeeper.checks._concept",
    "skew_checks": "watchkeeper.checks._skew",
    "weak_segments": "watchkeeper.checks._segments",
}

__all__ = [
    "ADWIN",
    "CBPE",
    "CLASSIFICATION_GAPS",
    "DDM",
    "DEFAULT_DETECTORS",
    "DEFAULT_METHODS",
    "DLE",
    "EDDM",
    "KSWIN",
    "REGRESSION_GAPS",
    "REPORT_FORMAT",
    "CheckResult",
    "ChunkEstimate",
    "ColumnDrift",
    "ColumnTest",
    "Comparison",
    "ComparisonConfig",
    "DatasetVerdict",
    "Decision",
    "DecisionRule",
    "Detector",
    "DetectorRun",
    "DetectorWithWarning",
    "FairnessConfig",
    "FeatureSuggestion",
    "FeatureSuggestions",
    "MultivariateDrift",
    "PageHinkley",
    "PerformanceRule",
    "QualityThresholds",
    "ReferenceChunksRule",
    "SkewFinding",
    "StatisticalRule",
    "Status",
    "ThresholdRule",
    "available_detectors",
    "concept_drift_check",
    "concept_drift_checks",
    "detect_skew",
    "detector",
    "error_stream",
    "estimate_consistency",
    "fairness_checks",
    "fairness_from_counts",
    "feature_suggestions",
    "flag_rate_check",
    "get_detector",
    "profile_fairness_checks",
    "quality_checks",
    "realised_performance",
    "run_comparison",
    "run_detector",
    "skew_checks",
    "weak_segments",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'watchkeeper.checks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
