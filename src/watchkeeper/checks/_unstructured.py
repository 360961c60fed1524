"""Drift tests of text and embedding columns: one test (one p-value) per column, so that each
such column is one member of the comparison's multiple-testing family, like any other column.

**Text** (:func:`text_test`): five sub-tests on the column's profiles, all with documents as
the sampling unit —

- ``<column>.length``, ``<column>.words``, ``<column>.oov_share``,
  ``<column>.non_letter_share``: Pearson chi-square (:func:`watchkeeper.stats.chi2`) on the
  descriptor's counts in the reference's quantile bins (one value per document, so the
  counts are multinomial); effect: Cramér's V (floor 0.05);
- ``<column>.words_hashed``: :func:`watchkeeper.stats.presence_test` on the documents
  containing each hashed word bucket; effect: root-mean-square standardised presence
  difference (floor 0.05).

The column's p-value is the Bonferroni combination ``min(1, m * min_i p_i)`` over the ``m``
sub-tests that ran (valid whatever their dependence); its effect size is the effect of the
sub-test with the smallest p-value divided by that sub-test's floor, so the column's floor is
1 ("the most significant sub-test reaches its own floor"). Every sub-test is in ``details``.

**Embedding** (:func:`embedding_test`): the multivariate method (``mmd`` by default, with its
permutation p-value; ``domain_classifier`` as an option) on the two profiles' samples of
vectors projected on the reference's principal components.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from watchkeeper.checks._rules import ColumnTest
from watchkeeper.checks._sides import CurrentSide, ReferenceSide
from watchkeeper.exceptions import InputError
from watchkeeper.stats import TestResult, get_method, get_multivariate_method

__all__ = ["DEFAULT_EMBEDDING_METHOD", "TEXT_METHOD", "embedding_test", "text_test"]

#: Method name of the combined text test.
TEXT_METHOD = "text"
#: Multivariate method of embedding columns unless ``methods={"embedding": ...}`` says.
DEFAULT_EMBEDDING_METHOD = "mmd"
#: Documents per side below which a text sub-test is not run.
_MIN_DOCUMENTS = 2


def _insufficient(column: str, method: str, kind: str, floor: float, why: str) -> ColumnTest:
    return ColumnTest(column, method, kind, floor, None, insufficient=why)


def text_test(column: str, ref: ReferenceSide, cur: CurrentSide) -> ColumnTest:
    """The combined drift test of a text column (see the module notes)."""
    from watchkeeper.stats import presence_test

    rc: Any = ref.profile.columns[column]
    cc: Any = cur.profile.columns[column]
    if not rc.has_features or not cc.has_features:
        which = "reference" if not rc.has_features else "current"
        return _insufficient(
            column, TEXT_METHOD, "text", 1.0,
            f"the {which} profile was written before text descriptors existed; profile it "
            "again with this version",
        )  # fmt: skip
    if min(rc.count, cc.count) < _MIN_DOCUMENTS:
        side = "current" if cc.count < _MIN_DOCUMENTS else "reference"
        return _insufficient(
            column, TEXT_METHOD, "text", 1.0, f"fewer than two documents in the {side} data"
        )
    chi2 = get_method("chi2", "categorical")
    subs: list[tuple[str, TestResult, float]] = []
    for name in rc.descriptors:
        r_counts = np.asarray(rc.descriptors[name].bin_counts, dtype=np.int64)
        c_counts = np.asarray(cc.descriptors[name].bin_counts, dtype=np.int64)
        if r_counts.sum() < _MIN_DOCUMENTS or c_counts.sum() < _MIN_DOCUMENTS:
            continue
        try:
            subs.append((f"{column}.{name}", chi2.func(r_counts, c_counts), chi2.effect_floor))
        except InputError:
            continue
    presence = presence_test(
        rc.bucket_documents, cc.bucket_documents, rc.pairs_matrix, cc.pairs_matrix,
        rc.count, cc.count,
    )  # fmt: skip
    floor = float(presence.details["effect_floor"])
    subs.append((f"{column}.words_hashed", presence, floor))
    p_values = [float(r.p_value if r.p_value is not None else 1.0) for _, r, _ in subs]
    best = int(np.argmin(p_values))
    name, top, floor = subs[best]
    p = min(1.0, len(subs) * p_values[best])
    details = {
        "combined": f"Bonferroni over {len(subs)} sub-tests; effect = the most significant "
        "sub-test's effect / its floor",
        "most_significant": name,
        "sub_tests": {
            n: {
                "method": r.method,
                "statistic": r.statistic,
                "p_value": r.p_value,
                "effect_size": r.effect_size,
                "effect_floor": f,
            }
            for n, r, f in subs
        },
        "n_words": {"reference": rc.n_words, "current": cc.n_words},
    }
    result = TestResult(
        TEXT_METHOD,
        float(top.statistic),
        p,
        float(top.effect_size) / floor if floor > 0 else float(top.effect_size),
        int(rc.count),
        int(cc.count),
        details=details,
    )
    return ColumnTest(column, TEXT_METHOD, "text", 1.0, result)


def embedding_test(
    column: str,
    ref: ReferenceSide,
    cur: CurrentSide,
    method_name: str = DEFAULT_EMBEDDING_METHOD,
    *,
    random_state: int = 0,
) -> ColumnTest:
    """The drift test of an embedding column (see the module notes)."""
    method = get_multivariate_method(method_name)
    floor = float(method.effect_floor)
    rc: Any = ref.profile.columns[column]
    cc: Any = cur.profile.columns[column]
    if rc.n_components == 0:
        return _insufficient(
            column, method.name, "embedding", floor,
            "the reference has too few vectors to fit a projection (at least two are needed)",
        )  # fmt: skip
    if rc.sample.shape[0] == 0 or cc.sample.shape[0] == 0:
        side = "current" if cc.sample.shape[0] == 0 else "reference"
        return _insufficient(
            column, method.name, "embedding", floor, f"no valid vectors in the {side} data"
        )
    try:
        result = method(rc.sample, cc.sample, random_state=random_state)
    except InputError as exc:
        return _insufficient(column, method.name, "embedding", floor, str(exc))
    details = dict(result.details)
    details.update(
        dim=int(rc.dim),
        n_components=int(rc.n_components),
        explained_variance=float(sum(rc.explained_variance_ratio)),
        n_reference_vectors=int(rc.count),
        n_current_vectors=int(cc.count),
    )
    result = TestResult(
        result.method,
        result.statistic,
        result.p_value,
        result.effect_size,
        result.n_reference,
        result.n_current,
        details=details,
    )
    return ColumnTest(column, method.name, "embedding", floor, result)
