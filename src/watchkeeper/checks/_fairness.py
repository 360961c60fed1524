"""Fairness checks: metrics by sensitive group and the gaps between groups.

Everything is computed from :class:`~watchkeeper.data.GroupCounts` (confusion counts or error
sums per group), so the same numbers come from raw rows (:func:`check_fairness`), from one
profile or from merged window profiles (:func:`check_profile_fairness`). Per group and per
intersection of attributes (``SEX=2 & RAC1P=1``):

- classifiers: ``count``, ``selection_rate``, ``true_positive_rate``, ``false_positive_rate``,
  ``precision``, ``error_rate`` (Wilson intervals), and, with scores, ``roc_auc``;
- regressors: ``count``, ``mean_absolute_error``, ``root_mean_squared_error`` and
  ``mean_prediction`` (t intervals).

Gaps, per attribute and per intersection, as Fairlearn defines them (largest minus smallest
group value; ratio smallest over largest): ``demographic_parity_difference`` and ``_ratio``,
``equalized_odds_difference`` (the larger of the TPR and FPR differences),
``equal_opportunity_difference`` (TPR); for regressors ``mean_absolute_error_difference`` and
``mean_prediction_difference``. Each gap has a p-value of "no difference between any groups"
(chi-square homogeneity for rates, Welch's ANOVA for means; the two rates of equalized odds
combined by Bonferroni) and an interval for the two extreme groups (Newcombe, log-ratio or
Welch) that is simultaneous over all pairs of groups (Bonferroni), so it stays valid for the
pair that the data picked as extremes.

Decisions control errors and ignore trivia: groups below ``min_group_size`` (counted in the
denominator of each metric: positives for TPR, negatives for FPR, predicted positives for
precision) are ``insufficient_data`` with their counts and left out of the gaps, which list
them; every p-value of one call is adjusted together (Benjamini–Hochberg by default, or Holm);
a gap is reported (``warn``) only when significant *and* at least the effect ``floor``, and
fails (``alert``) when it also reaches its threshold and the interval of the extreme pair clears
the floor (so two small noisy groups at the ends cannot fail a gate by themselves). Each group
is also compared with the rest of the population and ``warn``s under the same rule, which says
which groups drive a gap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.checks._fairness_config import (
    CLASSIFICATION_GAPS,
    REGRESSION_GAPS,
    FairnessConfig,
)
from watchkeeper.checks._fairness_groups import Pending, done, evaluate, groupings, subject_of
from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.data import (
    MISSING_GROUP,
    FairnessTask,
    GroupCounts,
    canonical_strings,
)
from watchkeeper.exceptions import InputError
from watchkeeper.stats import adjust_p_values, roc_auc

__all__ = [
    "CLASSIFICATION_GAPS",
    "REGRESSION_GAPS",
    "FairnessConfig",
    "check_fairness",
    "check_fairness_counts",
    "check_profile_fairness",
]

# -- entry points ------------------------------------------------------------------------------


def check_fairness(
    y_true: Any,
    y_pred: Any,
    sensitive_features: Any,
    *,
    y_score: Any = None,
    positive_label: Any = None,
    task: FairnessTask | None = None,
    config: FairnessConfig | None = None,
) -> list[CheckResult]:
    """Fairness results of predictions against the truth, by sensitive group.

    Parameters
    ----------
    y_true, y_pred
        Targets and predicted labels (classifiers) or values (regressors).
    sensitive_features
        A DataFrame, a mapping ``{name: values}``, or one array (named ``"group"``).
        Missing values form the group ``"missing"``.
    y_score
        Scores or probabilities of the positive class, for the score-based ``roc_auc`` by
        group. Without them (a model without ``predict_proba``) that metric is reported as
        skipped, with the reason.
    positive_label, task
        Inferred when omitted (see :meth:`GroupCounts.from_arrays`).
    config
        Decision settings.

    Returns
    -------
    list of CheckResult
        ``fairness.<metric>`` per group (subject ``attr=value``, ``&`` between attributes)
        and ``fairness.<gap>`` per attribute or intersection (subject ``attr`` or
        ``attr & attr``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> group = rng.choice(["a", "b"], 4000)
    >>> y = rng.integers(0, 2, 4000)
    >>> pred = np.where(group == "a", rng.random(4000) < 0.6, rng.random(4000) < 0.4)
    >>> results = check_fairness(y, pred.astype(int), {"group": group})
    >>> gap = [r for r in results if r.check == "fairness.demographic_parity_difference"][0]
    >>> gap.status.value, round(gap.value, 2), gap.details["highest"]["group"]
    ('alert', 0.2, 'group=a')
    """
    cfg = config or FairnessConfig()
    sensitive = _as_mapping(sensitive_features)
    counts = GroupCounts.from_arrays(
        sensitive, y_true, y_pred, task=task, positive_label=positive_label
    )
    extra: list[Pending] = []
    if counts.task == "classification":
        extra = _auc_by_group(counts, sensitive, y_true, y_score, cfg)
    return _decide(evaluate(counts, cfg) + extra, cfg)


def check_fairness_counts(
    counts: GroupCounts, config: FairnessConfig | None = None
) -> list[CheckResult]:
    """Fairness results from group counts (of one profile, or of merged profiles).

    Examples
    --------
    >>> counts = GroupCounts.from_arrays({"g": ["a"] * 50 + ["b"] * 50},
    ...                                  [1, 0] * 50, [1, 0] * 25 + [1, 1] * 25)
    >>> [r.check for r in check_fairness_counts(counts) if r.subject == "g"]
    ['fairness.demographic_parity_difference', 'fairness.demographic_parity_ratio', \
'fairness.equalized_odds_difference', 'fairness.equal_opportunity_difference']
    """
    return _decide(evaluate(counts, config or FairnessConfig()), config or FairnessConfig())


def check_profile_fairness(profile: Any, config: FairnessConfig | None = None) -> list[CheckResult]:
    """Fairness results from the group counts kept in a profile.

    Raises
    ------
    InputError
        The profile keeps no group counts (its schema declares no sensitive attribute, target
        and prediction).

    Examples
    --------
    >>> import pandas as pd
    >>> from watchkeeper.data import Profile, Schema
    >>> df = pd.DataFrame({"g": ["a", "a", "b", "b"] * 50, "y": [0, 1] * 100,
    ...                    "p": [0, 1, 1, 1] * 50})
    >>> schema = Schema.infer(df, roles={"g": "sensitive", "y": "target", "p": "prediction"})
    >>> results = check_profile_fairness(Profile.from_data(df, schema))
    >>> [(r.status.value, r.details["highest"]["group"]) for r in results
    ...  if r.check == "fairness.equalized_odds_difference"]
    [('alert', 'g=b')]
    """
    counts = getattr(profile, "group_counts", None)
    if counts is None:
        raise InputError(
            "the profile keeps no per-group counts: declare sensitive attributes, one target and "
            "one prediction column in its schema (Schema.with_roles) and profile again"
        )
    return check_fairness_counts(counts, config)


def _decide(pending: list[Pending], cfg: FairnessConfig) -> list[CheckResult]:
    raw = np.array([math.nan if p.p_value is None else p.p_value for p in pending], dtype=float)
    adjusted, _ = adjust_p_values(raw, alpha=cfg.alpha, method=cfg.correction)  # type: ignore[arg-type]
    return [
        p.finish(None if math.isnan(a) else float(a))
        for p, a in zip(pending, adjusted, strict=True)
    ]


# -- inputs and score-based metrics ------------------------------------------------------------


def _as_mapping(sensitive: Any) -> dict[str, Any]:
    if isinstance(sensitive, Mapping):
        return {str(k): v for k, v in sensitive.items()}
    columns = getattr(sensitive, "columns", None)
    if columns is not None:  # pandas or polars DataFrame
        return {str(c): sensitive[c] for c in columns}
    name = getattr(sensitive, "name", None)
    return {str(name) if isinstance(name, str) else "group": sensitive}


def _auc_by_group(
    counts: GroupCounts,
    sensitive: Mapping[str, Any],
    y_true: Any,
    y_score: Any,
    cfg: FairnessConfig,
) -> list[Pending]:
    if y_score is None:
        return [done(CheckResult(
            "fairness.roc_auc", " & ".join(counts.attributes), Status.INSUFFICIENT_DATA,
            "score-based metrics (ROC AUC by group) skipped: no scores were given (the model "
            "has no predict_proba or decision_function)",
            rule="skipped",
        ))]  # fmt: skip
    score = np.asarray(y_score, dtype=float)
    if score.ndim == 2:
        score = score[:, -1]
    labels = canonical_strings(y_true)
    positive = labels == counts.positive_label
    present = np.array([v is not None for v in labels]) & np.isfinite(score)
    out: list[Pending] = []
    for grouping in groupings(counts, cfg):
        keys = _row_keys(sensitive, grouping.attributes)
        for key in grouping.keys:
            subject = subject_of(grouping.attributes, key)
            rows = present & np.all([keys[a] == v for a, v in zip(grouping.attributes, key,
                                                                 strict=True)], axis=0)  # fmt: skip
            n_pos = int((rows & positive).sum())
            n_neg = int((rows & ~positive).sum())
            if min(n_pos, n_neg) < cfg.min_group_size:
                out.append(done(CheckResult(
                    "fairness.roc_auc", subject, Status.INSUFFICIENT_DATA,
                    f"ROC AUC of {subject} not judged: {n_pos:,} positives and {n_neg:,} "
                    f"negatives, each needs min_group_size={cfg.min_group_size}",
                    rule="minimum group size",
                    details={"positives": n_pos, "negatives": n_neg},
                )))  # fmt: skip
                continue
            auc = roc_auc(score[rows], positive[rows])
            # Hanley & McNeil (1982) standard error.
            q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
            var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc)
                   + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)  # fmt: skip
            half = float(_z(cfg.confidence)) * math.sqrt(max(var, 0.0))
            out.append(done(CheckResult(
                "fairness.roc_auc", subject, Status.OK,
                f"ROC AUC {auc:.4g} in {subject} ({n_pos:,} positives, {n_neg:,} negatives)",
                value=auc, lower=max(0.0, auc - half), upper=min(1.0, auc + half),
                rule="reported, not judged",
                details={"positives": n_pos, "negatives": n_neg},
            )))  # fmt: skip
    return out


def _z(confidence: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + confidence / 2))


def _row_keys(sensitive: Mapping[str, Any], attributes: Sequence[str]) -> dict[str, NDArray[Any]]:
    out = {}
    for a in attributes:
        keys = canonical_strings(sensitive[a])
        keys[[k is None for k in keys]] = MISSING_GROUP
        out[a] = keys
    return out
