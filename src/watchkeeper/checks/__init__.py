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
        check_concept_drift,
        check_concept_drift_detectors,
        error_stream,
        run_detector,
    )
    from watchkeeper.checks._contract import check_contract
    from watchkeeper.checks._detectors import (
        Detector,
        DetectorWithWarning,
        available_detectors,
        detector,
        get_detector,
    )
    from watchkeeper.checks._dle import DLE
    from watchkeeper.checks._drift import DEFAULT_METHODS, ColumnDrift
    from watchkeeper.checks._estimation import ChunkEstimate, check_estimate_consistency
    from watchkeeper.checks._fairness import (
        CLASSIFICATION_GAPS,
        REGRESSION_GAPS,
        FairnessConfig,
        check_fairness,
        check_fairness_counts,
        check_profile_fairness,
    )
    from watchkeeper.checks._flags import check_flag_rate
    from watchkeeper.checks._outlier_rate import check_outlier_rate
    from watchkeeper.checks._outliers import (
        OUTLIER_FLAG_KEY,
        OUTLIER_METHODS,
        OUTLIER_SCORE_KEY,
        OutlierDetector,
    )
    from watchkeeper.checks._performance import PerformanceRule, check_realised_performance
    from watchkeeper.checks._quality import QualityConfig, check_quality
    from watchkeeper.checks._ranking import (
        RankingConfig,
        check_ranking_performance,
        ranking_reference,
    )
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
    from watchkeeper.checks._segments import check_weak_segments
    from watchkeeper.checks._selection import (
        FeatureSuggestion,
        FeatureSuggestions,
        feature_suggestions,
    )
    from watchkeeper.checks._skew import SkewFinding, check_skew, detect_skew

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
    "QualityConfig": "watchkeeper.checks._quality",
    "REGRESSION_GAPS": "watchkeeper.checks._fairness",
    "REPORT_FORMAT": "watchkeeper.checks._comparison_result",
    "RankingConfig": "watchkeeper.checks._ranking",
    "ReferenceChunksRule": "watchkeeper.checks._rules",
    "SkewFinding": "watchkeeper.checks._skew",
    "StatisticalRule": "watchkeeper.checks._rules",
    "Status": "watchkeeper.checks._result",
    "ThresholdRule": "watchkeeper.checks._rules",
    "available_detectors": "watchkeeper.checks._detectors",
    "check_concept_drift": "watchkeeper.checks._concept",
    "check_contract": "watchkeeper.checks._contract",
    "check_concept_drift_detectors": "watchkeeper.checks._concept",
    "detect_skew": "watchkeeper.checks._skew",
    "detector": "watchkeeper.checks._detectors",
    "error_stream": "watchkeeper.checks._concept",
    "check_estimate_consistency": "watchkeeper.checks._estimation",
    "check_fairness": "watchkeeper.checks._fairness",
    "check_fairness_counts": "watchkeeper.checks._fairness",
    "feature_suggestions": "watchkeeper.checks._selection",
    "check_flag_rate": "watchkeeper.checks._flags",
    "get_detector": "watchkeeper.checks._detectors",
    "check_profile_fairness": "watchkeeper.checks._fairness",
    "check_quality": "watchkeeper.checks._quality",
    "check_realised_performance": "watchkeeper.checks._performance",
    "check_ranking_performance": "watchkeeper.checks._ranking",
    "ranking_reference": "watchkeeper.checks._ranking",
    "run_comparison": "watchkeeper.checks._comparison",
    "run_detector": "watchkeeper.checks._concept",
    "check_skew": "watchkeeper.checks._skew",
    "check_weak_segments": "watchkeeper.checks._segments",
    "OUTLIER_FLAG_KEY": "watchkeeper.checks._outliers",
    "OUTLIER_METHODS": "watchkeeper.checks._outliers",
    "OUTLIER_SCORE_KEY": "watchkeeper.checks._outliers",
    "OutlierDetector": "watchkeeper.checks._outliers",
    "check_outlier_rate": "watchkeeper.checks._outlier_rate",
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
    "OUTLIER_FLAG_KEY",
    "OUTLIER_METHODS",
    "OUTLIER_SCORE_KEY",
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
    "OutlierDetector",
    "PageHinkley",
    "PerformanceRule",
    "QualityConfig",
    "RankingConfig",
    "ReferenceChunksRule",
    "SkewFinding",
    "StatisticalRule",
    "Status",
    "ThresholdRule",
    "available_detectors",
    "check_concept_drift",
    "check_concept_drift_detectors",
    "check_contract",
    "check_estimate_consistency",
    "check_fairness",
    "check_fairness_counts",
    "check_flag_rate",
    "check_outlier_rate",
    "check_profile_fairness",
    "check_quality",
    "check_ranking_performance",
    "check_realised_performance",
    "check_skew",
    "check_weak_segments",
    "detect_skew",
    "detector",
    "error_stream",
    "feature_suggestions",
    "get_detector",
    "ranking_reference",
    "run_comparison",
    "run_detector",
]


#: Old public names (checks are ``check_<what>``, configuration objects end in ``Config``).
_RENAMED = {
    "quality_checks": "check_quality",
    "skew_checks": "check_skew",
    "fairness_checks": "check_fairness",
    "profile_fairness_checks": "check_profile_fairness",
    "fairness_from_counts": "check_fairness_counts",
    "concept_drift_check": "check_concept_drift",
    "concept_drift_checks": "check_concept_drift_detectors",
    "flag_rate_check": "check_flag_rate",
    "estimate_consistency": "check_estimate_consistency",
    "realised_performance": "check_realised_performance",
    "QualityThresholds": "QualityConfig",
    "weak_segments": "check_weak_segments",
}


def __getattr__(name: str) -> Any:
    new = _RENAMED.get(name)
    if new is not None:  # an old name: still works, with a FutureWarning naming the new one
        from watchkeeper._extras import renamed

        return renamed(__name__, name, new, __getattr__(new))
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'watchkeeper.checks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
