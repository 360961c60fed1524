"""Settings of the fairness checks (see :mod:`watchkeeper.checks._fairness`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from watchkeeper.exceptions import InputError

__all__ = ["CLASSIFICATION_GAPS", "REGRESSION_GAPS", "FairnessConfig"]

CLASSIFICATION_GAPS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equal_opportunity_difference",
)
REGRESSION_GAPS = ("mean_absolute_error_difference", "mean_prediction_difference")


@dataclass(frozen=True, slots=True)
class FairnessConfig:
    """How fairness results are decided.

    Parameters
    ----------
    gaps
        Gaps to judge (default: every gap of the task, see :data:`CLASSIFICATION_GAPS` and
        :data:`REGRESSION_GAPS`).
    min_group_size
        Fewest rows in a metric's denominator for a group to be judged.
    alpha, correction
        Level and multiple-testing procedure (``"bh"``, ``"by"``, ``"holm"``,
        ``"bonferroni"``, ``"none"``) applied to every p-value of one call together.
    confidence
        Level of the intervals (gap intervals are simultaneous over all pairs of groups).
    floor
        Effect floor: smaller differences are never reported, however significant. For
        regressors it is relative to the overall MAE (MAE gaps) or to the spread of the
        predictions (mean prediction gaps).
    max_difference, min_ratio
        Default thresholds that fail a gap: a difference at least ``max_difference`` (relative,
        as ``floor``, for regressors), a ratio at most ``min_ratio`` (the four-fifths rule).
    thresholds
        Per-gap thresholds overriding the defaults.
    intersections
        Also judge the intersection of all sensitive attributes.

    Examples
    --------
    >>> FairnessConfig(thresholds={"equalized_odds_difference": 0.05}).threshold(
    ...     "equalized_odds_difference")
    0.05
    """

    gaps: tuple[str, ...] | None = None
    min_group_size: int = 30
    alpha: float = 0.05
    correction: str = "bh"
    confidence: float = 0.95
    floor: float = 0.02
    max_difference: float = 0.1
    min_ratio: float = 0.8
    thresholds: Mapping[str, float] = field(default_factory=dict)
    intersections: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))
        if self.gaps is not None:
            object.__setattr__(self, "gaps", tuple(self.gaps))
            unknown = [g for g in self.gaps if g not in CLASSIFICATION_GAPS + REGRESSION_GAPS]
            if unknown:
                raise InputError(
                    f"unknown fairness gaps {unknown}; choose from "
                    f"{', '.join(CLASSIFICATION_GAPS + REGRESSION_GAPS)}"
                )
        unknown = [g for g in self.thresholds if g not in CLASSIFICATION_GAPS + REGRESSION_GAPS]
        if unknown:
            raise InputError(f"thresholds name unknown fairness gaps {unknown}")
        if isinstance(self.min_group_size, bool) or not int(self.min_group_size) >= 1:
            raise InputError(f"min_group_size must be at least 1, got {self.min_group_size!r}")
        for name in ("alpha", "confidence"):
            if not 0 < getattr(self, name) < 1:
                raise InputError(f"{name} must be in (0, 1), got {getattr(self, name)!r}")
        if self.correction not in ("bh", "by", "holm", "bonferroni", "none"):
            raise InputError(
                f"unknown correction {self.correction!r}; use bh, by, holm, bonferroni or none"
            )
        if self.floor < 0 or self.max_difference < 0 or not 0 < self.min_ratio <= 1:
            raise InputError("floor and max_difference must be >= 0 and min_ratio in (0, 1]")

    def threshold(self, gap: str) -> float:
        """Threshold that fails ``gap``."""
        default = self.min_ratio if gap.endswith("_ratio") else self.max_difference
        return float(self.thresholds.get(gap, default))
