"""Explanations: local and global attributions through SHAP, importance with its noise
floor, interpretable surrogates, and attribution drift.
"""

from watchkeeper.explain._global import (
    GlobalExplanation,
    RankChange,
    global_importance,
    rank_changes,
)
from watchkeeper.explain._local import Explainer, Explanation, explain

__all__ = [
    "Explainer",
    "Explanation",
    "GlobalExplanation",
    "RankChange",
    "explain",
    "global_importance",
    "rank_changes",
]
