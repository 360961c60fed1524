"""Explanations: local and global attributions through SHAP, importance with its noise
floor, permutation importance, interpretable surrogates, and attribution drift.

Needs the ``explain`` extra (``pip install "watchkeeper[explain]"``) for SHAP, and ``lime``
for LIME; both are imported only when an explanation is computed.
"""

from watchkeeper.explain._drift import DegradationCause, attribution_drift, rank_degradation_causes
from watchkeeper.explain._frame import as_frame
from watchkeeper.explain._global import (
    GlobalExplanation,
    RankChange,
    global_importance,
    rank_changes,
)
from watchkeeper.explain._local import Explainer, Explanation, explain
from watchkeeper.explain._model import ModelView
from watchkeeper.explain._render import explanation_section
from watchkeeper.explain._report import ExplanationReport, explanation_report
from watchkeeper.explain._surrogate import (
    PermutationImportance,
    Surrogate,
    permutation_importance,
    surrogate,
)

__all__ = [
    "DegradationCause",
    "Explainer",
    "Explanation",
    "ExplanationReport",
    "GlobalExplanation",
    "ModelView",
    "PermutationImportance",
    "RankChange",
    "Surrogate",
    "as_frame",
    "attribution_drift",
    "explain",
    "explanation_report",
    "explanation_section",
    "global_importance",
    "permutation_importance",
    "rank_changes",
    "rank_degradation_causes",
    "surrogate",
]
