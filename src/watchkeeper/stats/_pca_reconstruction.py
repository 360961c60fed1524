"""PCA reconstruction-error drift test: does the reference's correlation structure still hold?

A PCA fitted on reference rows keeps the directions along which the features vary together.
Rows that follow the same structure are reconstructed from those directions with a small
error; when the relations between features break (a sensor decouples, a join goes wrong), the
error grows even if every feature's own distribution is unchanged. This is the "data
reconstruction" drift of NannyML, turned into a test with a valid p-value:

1. the reference rows are split at random into two halves;
2. standardization and PCA are fitted on the first half only;
3. the second half's reconstruction errors are the null distribution: under no drift they and
   the current rows' errors are i.i.d., since neither took part in the fit;
4. a one-sided Mann–Whitney U test asks whether current errors are larger.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import threadpool_limits

from watchkeeper.exceptions import InputError
from watchkeeper.stats._mannwhitney import mann_whitney_greater
from watchkeeper.stats._multivariate import (
    MIN_ROWS,
    insufficient_result,
    multivariate_method,
    prepare_samples,
)
from watchkeeper.stats._result import TestResult

__all__ = ["pca_reconstruction"]

#: Current errors less than 10% larger than the reference's (on average) are negligible.
EFFECT_FLOOR = 0.1


@multivariate_method("pca_reconstruction", effect_floor=EFFECT_FLOOR)
def pca_reconstruction(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    n_components: float | int = 0.95,
    max_samples: int | None = 50_000,
    random_state: int | None = 0,
) -> TestResult:
    """Reconstruction error of current rows under a PCA of the reference, with a valid test.

    Parameters
    ----------
    reference, current
        2-D arrays of rows x features (numeric, finite, same features, at least 2 features).
    n_components
        A float in (0, 1): keep the fewest components that explain at least this share of the
        (standardized) reference variance; an int: keep that many. At most ``n_features - 1``
        components are kept, since a full PCA reconstructs every row exactly.
    max_samples
        Each side is subsampled to at most this many rows (reproducibly from
        ``random_state``); ``None`` uses all rows. Cost is ``O(n * d^2)``.
    random_state
        Seed for subsampling and for the split of the reference; ``None`` is not reproducible.

    Returns
    -------
    TestResult
        ``statistic`` is the mean squared reconstruction error of the current rows (in
        standardized units); ``effect_size`` is the ratio of the current mean error to the
        held-out reference mean error, minus 1 (0: same error, 0.1: 10% larger), with a
        documented floor of 0.1; ``p_value`` is the one-sided Mann–Whitney p-value of
        "current errors are larger". Only a loss of structure raises the error: a shift along
        the kept directions, or rows that fit the structure *better*, are not detected.
        ``details`` holds ``n_components``, ``explained_variance`` and ``reference_error``
        (held-out mean). With fewer than 40 reference rows (20 per half) or 20 current rows,
        ``p_value`` is ``None`` and ``details["reason"]`` says why.

    Raises
    ------
    InputError
        If the inputs are not 2-D finite numeric arrays with the same (at least two)
        features, or ``n_components`` is out of range.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> base = rng.normal(size=(1000, 1))
    >>> ref = base + 0.1 * rng.normal(size=(1000, 3))   # three strongly related features
    >>> cur = rng.normal(size=(500, 3))                  # same scale, relation gone
    >>> r = pca_reconstruction(ref, cur)
    >>> r.details["n_components"], r.p_value < 1e-10, r.effect_size > 10
    (1, True, True)
    >>> pca_reconstruction(ref, ref[:500] + 0.0).p_value > 0.01
    True
    """
    name = "pca_reconstruction"
    rng = np.random.default_rng(random_state)
    ref, cur = prepare_samples(reference, current, method=name, max_samples=max_samples, rng=rng)
    n_features = ref.shape[1]
    if n_features < 2:
        raise InputError(f"{name}: needs at least 2 features, got 1; use a univariate test")
    _check_n_components(n_components, n_features)
    n_ref, n_cur = ref.shape[0], cur.shape[0]
    if n_ref < 2 * MIN_ROWS or n_cur < MIN_ROWS:
        return insufficient_result(
            name, n_ref, n_cur,
            f"{n_ref} reference and {n_cur} current rows; PCA reconstruction needs at least "
            f"{2 * MIN_ROWS} reference rows (half to fit, half as the null) and {MIN_ROWS} "
            "current rows",
        )  # fmt: skip

    order = rng.permutation(n_ref)
    fit, null = ref[order[: n_ref // 2]], ref[order[n_ref // 2 :]]
    center = fit.mean(axis=0)
    scale = fit.std(axis=0)
    scale[scale == 0] = 1.0  # constant in the fit half: any variation later counts as error
    # Small matrices: one BLAS thread is as fast, and far faster when the cores are busy.
    with threadpool_limits(limits=1, user_api="blas"):
        basis, explained = _principal_axes((fit - center) / scale, n_components)
        err_null = reconstruction_errors((null - center) / scale, basis)
        err_cur = reconstruction_errors((cur - center) / scale, basis)
    mean_null, mean_cur = float(err_null.mean()), float(err_cur.mean())
    _, p = mann_whitney_greater(err_cur, err_null)  # scipy's numbers, without scipy.stats
    details: dict[str, Any] = {
        "n_components": int(basis.shape[1]),
        "explained_variance": explained,
        "reference_error": mean_null,
        "n_fit": int(fit.shape[0]),
    }
    return TestResult(
        method=name,
        statistic=mean_cur,
        p_value=p if math.isfinite(p) else 1.0,  # all errors equal (e.g. all zero): no evidence
        effect_size=_ratio_minus_one(mean_cur, mean_null),
        n_reference=n_ref,
        n_current=n_cur,
        details=details,
    )


def reconstruction_errors(
    z: NDArray[np.float64], basis: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Squared distance of each (standardized, centred) row to the span of ``basis`` columns.

    ``basis`` has orthonormal columns, so the reconstruction is ``z @ basis @ basis.T``.
    """
    residual = z - (z @ basis) @ basis.T
    err: NDArray[np.float64] = np.einsum("ij,ij->i", residual, residual)
    # A row inside the span leaves only rounding noise (~1e-30); call it 0 so that such noise
    # cannot look like a difference between two perfectly reconstructed samples.
    err[err < 1e-20 * z.shape[1]] = 0.0
    return err


def _principal_axes(
    z: NDArray[np.float64], n_components: float | int
) -> tuple[NDArray[np.float64], float]:
    """Orthonormal principal axes (as columns) of centred ``z`` and the share they explain."""
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    var = singular**2
    total = float(var.sum())
    n_features = z.shape[1]
    max_k = max(1, min(n_features - 1, vt.shape[0]))
    if total == 0.0:
        return vt[:1].T, math.nan
    share = np.cumsum(var) / total
    if isinstance(n_components, float):
        # Smallest k reaching the share; the tolerance keeps e.g. 0.5 + 0.5 from missing 1.0.
        k = int(np.searchsorted(share, n_components - 1e-12)) + 1
    else:
        k = int(n_components)
    k = min(k, max_k)
    return vt[:k].T.copy(), float(share[k - 1])


def _check_n_components(n_components: float | int, n_features: int) -> None:
    name = "pca_reconstruction"
    if isinstance(n_components, bool):
        raise InputError(f"{name}: n_components must be a float in (0, 1) or an int")
    if isinstance(n_components, float):
        if not 0.0 < n_components < 1.0:
            raise InputError(
                f"{name}: a float n_components is the share of variance to keep and must be in "
                f"(0, 1), got {n_components}"
            )
    elif isinstance(n_components, int | np.integer):
        if not 1 <= n_components < n_features:
            raise InputError(
                f"{name}: n_components must be between 1 and n_features - 1 = "
                f"{n_features - 1}, got {n_components}"
            )
    else:
        raise InputError(f"{name}: n_components must be a float in (0, 1) or an int")


def _ratio_minus_one(current: float, reference: float) -> float:
    if reference > 0:
        return current / reference - 1.0
    # The reference half is reconstructed exactly: any current error is an unbounded increase.
    return 0.0 if current == 0 else math.inf
