"""Domain-classifier drift test: can a model tell current rows from reference rows?

The classifier two-sample test (Lopez-Paz & Oquab, "Revisiting classifier two-sample tests",
ICLR 2017) with cross-fitting. The pooled rows are split into ``n_splits`` stratified folds; for
each fold a model trained on the *other* folds scores the held-out rows, and the held-out
scores of current rows are compared with those of reference rows by a one-sided Mann–Whitney U
test, whose ``U / (n_current * n_reference)`` is the fold's ROC AUC.

Why the p-value is valid: under no drift the held-out rows are i.i.d. and independent of the
model that scores them, so each fold's Mann–Whitney p-value is valid on its own. The folds'
p-values are dependent (each model was trained on the other folds), so they are combined with
Bonferroni, ``min(1, n_splits * min_k p_k)``, which stays valid under any dependence. (Fisher's
or Stouffer's rules assume independence and would not.)
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.exceptions import InputError
from watchkeeper.stats._mannwhitney import mann_whitney_greater
from watchkeeper.stats._multivariate import (
    MIN_ROWS,
    insufficient_result,
    multivariate_method,
    prepare_samples,
    seed_of,
)
from watchkeeper.stats._result import TestResult

__all__ = ["domain_classifier"]

#: AUC - 0.5 below this is treated as negligible (AUC 0.55, the usual domain-classifier cut-off).
EFFECT_FLOOR = 0.05

# A held-out fold needs this many rows per side before its test can reach small p-values
# (5 vs 5 rows: the smallest one-sided Mann–Whitney p-value is 1/252).
_MIN_PER_FOLD = 5
_TOP_FEATURES = 5


@multivariate_method("domain_classifier", effect_floor=EFFECT_FLOOR)
def domain_classifier(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    n_splits: int = 5,
    max_samples: int | None = 5_000,
    estimator: Any = None,
    random_state: int | None = 0,
) -> TestResult:
    """Cross-validated ROC AUC of a classifier that separates current rows from reference rows.

    Parameters
    ----------
    reference, current
        2-D arrays of rows x features (numeric, finite, same features). Encode categorical
        columns and impute missing values first.
    n_splits
        Number of cross-fitting folds (stratified, shuffled with ``random_state``).
    max_samples
        Each side is subsampled to at most this many rows (without replacement, reproducibly
        from ``random_state``), which bounds the cost at ``n_splits`` fits on
        ``2 * max_samples`` rows. ``None`` uses all rows.
    estimator
        An unfitted scikit-learn classifier with ``predict_proba`` or ``decision_function``;
        it is cloned for each fold. The default is a small histogram gradient-boosting model
        (50 trees of at most 15 leaves), which is fast, needs no scaling and can learn
        interactions, so it sees correlation changes that a linear model cannot.
    random_state
        Seed for subsampling, folds and the default estimator; ``None`` is not reproducible.

    Returns
    -------
    TestResult
        ``statistic`` is the mean held-out AUC over the folds (0.5: indistinguishable, 1:
        perfectly separable); ``effect_size`` is ``AUC - 0.5`` with a documented floor of
        0.05 (AUC 0.55); ``p_value`` is the Bonferroni combination of the folds' one-sided
        Mann–Whitney p-values (valid whatever the dependence between folds). Class imbalance
        needs no correction because AUC does not depend on it. ``details`` holds the folds'
        AUC range, the smallest fold p-value and, when the estimator exposes
        ``feature_importances_`` or ``coef_``, ``top_features`` (column indices, most
        important first) with ``top_feature_importances``. With fewer than
        ``max(20, 5 * n_splits)`` rows on either side, ``p_value`` is ``None`` and
        ``details["reason"]`` says why.

    Raises
    ------
    InputError
        If the inputs are not 2-D finite numeric arrays with the same features, if
        ``n_splits < 2``, or if either side has fewer rows than ``n_splits``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(300, 3))
    >>> cur = rng.normal(size=(300, 3)) + [1.0, 0.0, 0.0]
    >>> r = domain_classifier(ref, cur, random_state=0)
    >>> r.statistic > 0.6 and r.p_value < 1e-6
    True
    >>> domain_classifier(ref, rng.normal(size=(300, 3))).p_value > 0.05
    True
    """
    name = "domain_classifier"
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer) or n_splits < 2:
        raise InputError(f"{name}: n_splits must be an integer >= 2, got {n_splits!r}")
    n_splits = int(n_splits)
    rng = np.random.default_rng(random_state)
    ref, cur = prepare_samples(reference, current, method=name, max_samples=max_samples, rng=rng)
    n_ref, n_cur = ref.shape[0], cur.shape[0]
    if min(n_ref, n_cur) < n_splits:
        raise InputError(
            f"{name}: {min(n_ref, n_cur)} rows on one side cannot fill {n_splits} folds; "
            "pass a smaller n_splits or more rows"
        )
    needed = max(MIN_ROWS, _MIN_PER_FOLD * n_splits)
    if min(n_ref, n_cur) < needed:
        return insufficient_result(
            name, n_ref, n_cur,
            f"{min(n_ref, n_cur)} rows on one side; the domain classifier needs at least "
            f"{needed} per side with n_splits={n_splits}",
        )  # fmt: skip

    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits

    x = np.vstack([ref, cur])
    y = np.concatenate([np.zeros(n_ref, dtype=np.int64), np.ones(n_cur, dtype=np.int64)])
    seed = seed_of(rng)
    base = _default_estimator(seed) if estimator is None else estimator
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)

    # The default model is fitted on one thread: fits this small gain little from OpenMP,
    # and OpenMP threads on a busy machine can make them a hundred times slower.
    limit = threadpool_limits(limits=1, user_api="openmp") if estimator is None else nullcontext()
    aucs: list[float] = []
    p_values: list[float] = []
    importances: list[NDArray[np.float64] | None] = []
    with limit:
        for train, test in folds.split(x, y):
            model = clone(base)
            model.fit(x[train], y[train])
            scores = _current_scores(model, x[test])
            held_out = y[test]
            auc, p = fold_auc_test(scores[held_out == 1], scores[held_out == 0])
            aucs.append(auc)
            p_values.append(p)
            importances.append(_importance(model, x.shape[1]))

    auc_mean = float(np.mean(aucs))
    details: dict[str, Any] = {
        "n_splits": n_splits,
        "combination": "bonferroni",
        "fold_auc_min": float(np.min(aucs)),
        "fold_auc_max": float(np.max(aucs)),
        "min_fold_p_value": float(np.min(p_values)),
    }
    known = [imp for imp in importances if imp is not None]
    total = float(np.sum(known)) if known else 0.0
    if len(known) == len(importances) and total > 0:
        importance = np.sum(known, axis=0) / total
        top = np.argsort(-importance, kind="stable")[:_TOP_FEATURES]
        details["top_features"] = tuple(int(i) for i in top)
        details["top_feature_importances"] = tuple(float(importance[i]) for i in top)
    return TestResult(
        method=name,
        statistic=auc_mean,
        p_value=min(1.0, n_splits * min(p_values)),
        effect_size=auc_mean - 0.5,
        n_reference=n_ref,
        n_current=n_cur,
        details=details,
    )


def fold_auc_test(
    current_scores: NDArray[np.float64], reference_scores: NDArray[np.float64]
) -> tuple[float, float]:
    """ROC AUC of held-out scores and the one-sided Mann–Whitney p-value of "current higher".

    ``AUC = U / (n_current * n_reference)`` with ties counted one half, the same number as
    :func:`sklearn.metrics.roc_auc_score`; the p-value uses the tie-corrected normal
    approximation (exact for small samples without ties, as in :func:`scipy.stats.mannwhitneyu`).
    """
    u, p = mann_whitney_greater(current_scores, reference_scores)  # scipy's numbers
    auc = u / (current_scores.size * reference_scores.size)
    # Constant scores (a model that learnt nothing) give a 0/0 statistic: no evidence.
    return auc, (p if math.isfinite(p) else 1.0)


def _default_estimator(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    # Few, small trees: enough to learn a moved region or an interaction, cheap to fit five
    # times; no early stopping, so the fit uses no internal random split and is reproducible.
    return HistGradientBoostingClassifier(
        max_iter=50, learning_rate=0.1, max_leaf_nodes=15, early_stopping=False, random_state=seed
    )


def _current_scores(model: Any, x: NDArray[np.float64]) -> NDArray[np.float64]:
    if hasattr(model, "predict_proba"):
        classes = list(model.classes_)
        return np.asarray(model.predict_proba(x), dtype=np.float64)[:, classes.index(1)]
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(x), dtype=np.float64).ravel()
    raise InputError(
        "domain_classifier: the estimator must implement predict_proba or decision_function"
    )


def _importance(model: Any, n_features: int) -> NDArray[np.float64] | None:
    """The model's own importances (trees) or absolute coefficients (linear), if it has them."""
    for attr in ("feature_importances_", "coef_"):
        try:
            values = np.abs(np.asarray(getattr(model, attr), dtype=np.float64)).ravel()
        except (AttributeError, TypeError, ValueError):
            continue
        if values.size == n_features and np.isfinite(values).all():
            return values
    return None
