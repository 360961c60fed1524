"""Checks compare a current window with a reference and return small immutable results.

Checks are pure: they do not render, log or alert.
"""

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
from watchkeeper.checks._selection import FeatureSuggestion, FeatureSuggestions, feature_suggestions
from watchkeeper.checks._skew import SkewFinding, detect_skew, skew_checks

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
