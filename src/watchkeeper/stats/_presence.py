"""Two-sample test on document-level presence of hashed word buckets.

Each document (the sampling unit) is a 0/1 vector ``x`` over ``B`` buckets: ``x_b = 1`` when
some word of the document hashes to bucket ``b``. Two corpora are summarised by their number of
documents ``n``, the documents containing each bucket ``s_b = sum x_b`` and the documents
containing each pair of buckets ``S_bc = sum x_b x_c`` (``S_bb = s_b``); all of these add up
over batches, so the summaries merge.

Word counts are not a sample of independent draws (the words of one document go together), so a
chi-square on word counts over-rejects. Here the documents are the units: under "same
distribution", the difference of the presence shares ``d = s_ref / n_ref - s_cur / n_cur`` has
covariance ``Sigma (1 / n_ref + 1 / n_cur)`` with ``Sigma`` the covariance of ``x``, estimated
from the pooled pair counts. The statistic is the sum of squared standardised differences
``T = sum_b d_b^2 / var(d_b)``; its null law is a weighted sum of chi-square(1) variables with
the eigenvalues of the buckets' correlation matrix ``R`` as weights, approximated by
``g * chi2(h)`` matching its mean ``tr R`` and variance ``2 tr R^2`` (Satterthwaite 1946;
the dispersion correction for correlated buckets; ``g = 1``, ``h = B`` for independent ones).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.exceptions import InputError
from watchkeeper.stats._result import TestResult

__all__ = ["PRESENCE_EFFECT_FLOOR", "presence_test"]

#: Root-mean-square standardised presence difference below which a shift is negligible.
PRESENCE_EFFECT_FLOOR = 0.05


def _vector(x: ArrayLike, name: str) -> NDArray[np.float64]:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1 or not np.isfinite(v).all() or (v < 0).any():
        raise InputError(f"{name} must be a 1-D array of non-negative counts")
    return v


def _matrix(x: ArrayLike, size: int, name: str) -> NDArray[np.float64]:
    m = np.asarray(x, dtype=np.float64)
    if m.shape != (size, size) or not np.isfinite(m).all() or (m < 0).any():
        raise InputError(f"{name} must be a {size} x {size} array of non-negative pair counts")
    return m


def presence_test(
    reference_documents: ArrayLike,
    current_documents: ArrayLike,
    reference_pairs: ArrayLike,
    current_pairs: ArrayLike,
    n_reference: int,
    n_current: int,
) -> TestResult:
    """Test whether two corpora use hashed word buckets in the same share of documents.

    Parameters
    ----------
    reference_documents, current_documents
        Documents containing each bucket (length ``B``).
    reference_pairs, current_pairs
        Documents containing both buckets of each pair (``B x B``, symmetric; the diagonal
        equals the documents vector).
    n_reference, n_current
        Documents on each side.

    Returns
    -------
    TestResult
        ``statistic`` is ``T``; ``p_value`` from the moment-matched ``g * chi2(h)`` (see the
        module notes); ``effect_size`` is the root-mean-square standardised presence
        difference ``sqrt(mean_b d_b^2 / Sigma_bb)`` (a per-document effect like Cohen's
        ``d``, which does not grow with the sample size); ``details`` holds ``g``, ``h``, the
        buckets used and ``effect_floor``, the effect below which a shift is negligible
        (0.05).

    Raises
    ------
    InputError
        Arrays of the wrong shape, negative counts, or fewer than two documents on a side.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> def corpus(p, n):
    ...     x = (rng.random((n, 8)) < p).astype(float)
    ...     return x.sum(axis=0), x.T @ x, n
    >>> a, b = corpus(0.3, 500), corpus(0.3, 500)
    >>> r = presence_test(a[0], b[0], a[1], b[1], a[2], b[2])
    >>> bool(r.p_value > 0.05)
    True
    >>> c = corpus(np.array([0.3] * 4 + [0.5] * 4), 500)
    >>> bool(presence_test(a[0], c[0], a[1], c[1], a[2], c[2]).p_value < 1e-6)
    True
    """
    s_ref = _vector(reference_documents, "reference_documents")
    s_cur = _vector(current_documents, "current_documents")
    if s_ref.size != s_cur.size:
        raise InputError(
            f"the two sides have {s_ref.size} and {s_cur.size} buckets; summarise both with the "
            "same number of buckets"
        )
    size = s_ref.size
    p_ref = _matrix(reference_pairs, size, "reference_pairs")
    p_cur = _matrix(current_pairs, size, "current_pairs")
    n_ref, n_cur = int(n_reference), int(n_current)
    if min(n_ref, n_cur) < 2:
        raise InputError(
            f"the presence test needs at least two documents per side (got {n_ref} and {n_cur})"
        )
    n = n_ref + n_cur
    share = (s_ref + s_cur) / n
    cov = (p_ref + p_cur) / n - np.outer(share, share)
    var = np.diag(cov).copy()
    # Buckets present in every document or in none carry no information.
    keep = var > 1e-12
    used = int(keep.sum())
    if used == 0:
        return TestResult(
            "presence", 0.0, 1.0, 0.0, n_ref, n_cur,
            details={"g": 1.0, "h": 0.0, "buckets": 0, "effect_floor": PRESENCE_EFFECT_FLOOR},
        )  # fmt: skip
    d = (s_ref / n_ref - s_cur / n_cur)[keep]
    var = var[keep]
    scale = 1.0 / n_ref + 1.0 / n_cur
    z2 = d * d / (var * scale)
    statistic = float(z2.sum())
    sd = np.sqrt(var)
    corr = cov[np.ix_(keep, keep)] / np.outer(sd, sd)
    tr = float(np.trace(corr))
    tr2 = float(np.sum(corr * corr))  # tr(R^2) for symmetric R
    g, h = tr2 / tr, tr * tr / tr2
    from scipy.stats import chi2 as chi2_dist

    p_value = float(chi2_dist.sf(statistic / g, h))
    effect = math.sqrt(float(np.mean(d * d / var)))
    return TestResult(
        "presence",
        statistic,
        p_value,
        effect,
        n_ref,
        n_cur,
        details={"g": g, "h": h, "buckets": used, "effect_floor": PRESENCE_EFFECT_FLOOR},
    )
