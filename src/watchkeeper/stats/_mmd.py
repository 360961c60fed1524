"""Maximum mean discrepancy (MMD) two-sample test with a permutation p-value.

Gretton, Borgwardt, Rasch, Schölkopf & Smola, "A kernel two-sample test", JMLR 13 (2012).
With a characteristic kernel ``k`` (Gaussian or Laplacian), ``MMD^2 = E k(x, x') +
E k(y, y') - 2 E k(x, y)`` is zero exactly when the two distributions are equal, so it sees any
kind of change, including a change in the dependence between features.

Bounded memory: each side is subsampled to ``max_samples`` rows, and the kernel matrix is never
held whole. It is computed in row blocks, and every block is used at once for the observed
split and all permutations (``K_block @ S`` with ``S`` the ``N x (B + 1)`` matrix of group
indicators), so peak memory is ``O(N * (block + B))`` for ``N = 2 * max_samples`` pooled rows.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from threadpoolctl import threadpool_limits

from watchkeeper.exceptions import InputError
from watchkeeper.stats._multivariate import (
    MIN_ROWS,
    insufficient_result,
    multivariate_method,
    prepare_samples,
)
from watchkeeper.stats._result import TestResult

__all__ = ["mmd"]

#: MMD (the square root of MMD^2) below this is treated as negligible; see :func:`mmd`.
EFFECT_FLOOR = 0.05

Kernel = Literal["rbf", "laplacian"]

_BLOCK_ROWS = 256
# Rows used for the median-distance bandwidth (pdist on 1,000 rows: ~500k distances, 4 MB).
_BANDWIDTH_ROWS = 1_000


@multivariate_method("mmd", effect_floor=EFFECT_FLOOR)
def mmd(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    kernel: Kernel = "rbf",
    bandwidth: float | Literal["median"] = "median",
    n_permutations: int = 500,
    max_samples: int | None = 1_000,
    standardize: bool = True,
    random_state: int | None = 0,
) -> TestResult:
    """Unbiased MMD^2 between reference and current rows, with a permutation p-value.

    Parameters
    ----------
    reference, current
        2-D arrays of rows x features (numeric, finite, same features).
    kernel
        ``"rbf"``: ``exp(-||x - y||^2 / (2 h^2))``; ``"laplacian"``: ``exp(-||x - y|| / h)``.
    bandwidth
        ``h``, in the units of the (standardized) features, or ``"median"`` for the median
        pairwise distance of the pooled rows (the usual heuristic; computed on at most 1,000
        pooled rows).
    n_permutations
        Number ``B`` of random relabellings of the pooled rows; the p-value is ``(b + 1) /
        (B + 1)`` with ``b`` the number of relabellings whose MMD^2 is at least the observed
        one, which is a valid p-value for any ``B`` (its smallest value is ``1 / (B + 1)``).
    max_samples
        Each side is subsampled to at most this many rows (without replacement, reproducibly
        from ``random_state``). Time grows as ``N^2 * (d + B)`` and memory as
        ``N * (256 + B)`` floats for ``N`` pooled rows; with the defaults a test on any input
        size uses about 16 MB on top of the inputs. ``None`` uses all rows.
    standardize
        Scale every feature by the mean and standard deviation of the *pooled* rows first, so
        that one wide feature does not dominate the distances. Pooled (not reference-only)
        statistics keep the permutation test exact: they do not depend on which rows are
        called reference.
    random_state
        Seed for subsampling and permutations; ``None`` is not reproducible.

    Returns
    -------
    TestResult
        ``statistic`` is the unbiased MMD^2 estimate (may be slightly negative under no drift);
        ``effect_size`` is ``MMD = sqrt(max(MMD^2, 0))``, between 0 and ``sqrt(2)``, with a
        documented floor of 0.05. With standardized features and the median bandwidth, a mean
        shift of 0.2-0.3 standard deviations in one of five features, or a correlation between
        two of five features going from 0 to 0.8, gives an MMD near 0.05; the same change
        gives a smaller MMD among more features, since the median bandwidth grows with the
        dimension.
        ``details`` holds ``kernel``, ``bandwidth`` and ``n_permutations``. With fewer than
        20 rows on either side, ``p_value`` is ``None`` and ``details["reason"]`` says why.

    Raises
    ------
    InputError
        If the inputs are not 2-D finite numeric arrays with the same features, or an option
        is out of range.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(200, 4))
    >>> r = mmd(ref, rng.normal(size=(200, 4)) + [1.0, 0, 0, 0], n_permutations=200)
    >>> r.p_value == 1 / 201, r.effect_size > 0.1
    (True, True)
    >>> mmd(ref, rng.normal(size=(200, 4)), n_permutations=200).p_value > 0.05
    True
    """
    name = "mmd"
    if kernel not in ("rbf", "laplacian"):
        raise InputError(f"{name}: kernel must be 'rbf' or 'laplacian', got {kernel!r}")
    if isinstance(bandwidth, str):
        if bandwidth != "median":
            raise InputError(f"{name}: bandwidth must be 'median' or a positive number")
    elif not (isinstance(bandwidth, int | float) and math.isfinite(bandwidth) and bandwidth > 0):
        raise InputError(
            f"{name}: bandwidth must be 'median' or a positive number, got {bandwidth!r}"
        )
    if (
        isinstance(n_permutations, bool)
        or not isinstance(n_permutations, int | np.integer)
        or n_permutations < 1
    ):
        raise InputError(f"{name}: n_permutations must be a positive integer (e.g. 500)")

    rng = np.random.default_rng(random_state)
    ref, cur = prepare_samples(reference, current, method=name, max_samples=max_samples, rng=rng)
    n_ref, n_cur = ref.shape[0], cur.shape[0]
    if min(n_ref, n_cur) < MIN_ROWS:
        return insufficient_result(
            name, n_ref, n_cur,
            f"{min(n_ref, n_cur)} rows on one side; MMD needs at least {MIN_ROWS} per side",
        )  # fmt: skip

    z = np.vstack([ref, cur])
    del ref, cur
    if standardize:
        scale = z.std(axis=0)
        scale[scale == 0] = 1.0  # a constant feature carries no information either way
        z -= z.mean(axis=0)
        z /= scale
    h = _median_distance(z, rng) if bandwidth == "median" else float(bandwidth)

    labels = np.zeros((z.shape[0], int(n_permutations) + 1), dtype=np.float64)
    labels[:n_ref, 0] = 1.0  # column 0: the observed split; the others: random relabellings
    for b in range(1, int(n_permutations) + 1):
        labels[rng.permutation(z.shape[0])[:n_ref], b] = 1.0
    # One BLAS thread: the products are small, and BLAS threads competing for busy cores can
    # make them several times slower than one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        mmd2 = _mmd2_per_labelling(z, labels, n_ref, kernel, h)

    observed = float(mmd2[0])
    # The tolerance counts relabellings equal to the observed value up to rounding as "at
    # least as large", as an exact test must (e.g. identical rows give exact ties).
    tol = 1e-12 * max(1.0, abs(observed))
    exceed = int(np.count_nonzero(mmd2[1:] >= observed - tol))
    return TestResult(
        method=name,
        statistic=observed,
        p_value=(exceed + 1) / (int(n_permutations) + 1),
        effect_size=math.sqrt(max(observed, 0.0)),
        n_reference=n_ref,
        n_current=n_cur,
        details={"kernel": kernel, "bandwidth": h, "n_permutations": int(n_permutations)},
    )


def _median_distance(z: NDArray[np.float64], rng: np.random.Generator) -> float:
    """Median pairwise distance of (at most ``_BANDWIDTH_ROWS``) pooled rows.

    The rows are chosen without looking at the labels, so the permutation test stays exact.
    """
    n = z.shape[0]
    rows = z if n <= _BANDWIDTH_ROWS else z[rng.choice(n, size=_BANDWIDTH_ROWS, replace=False)]
    from scipy.spatial.distance import pdist  # here: scipy.spatial is slow to import

    d = pdist(rows)
    h = float(np.median(d))
    if h > 0:
        return h
    # Mostly repeated rows (e.g. one-hot data): the median is 0, fall back to the mean.
    mean = float(d.mean()) if d.size else 0.0
    return mean if mean > 0 else 1.0


def _mmd2_per_labelling(
    z: NDArray[np.float64], labels: NDArray[np.float64], n_x: int, kernel: Kernel, h: float
) -> NDArray[np.float64]:
    """Unbiased MMD^2 for every labelling (column of ``labels``, 1 = first sample).

    With ``s`` a column, ``t = 1 - s`` and ``k(x, x) = 1`` for both kernels:
    ``sum_{i != j in X} k = s'Ks - n_x``, ``s'Kt = s'K1 - s'Ks`` and
    ``t'Kt = 1'K1 - 2 s'K1 + s'Ks``, so ``s'Ks`` and ``K1`` are all that is needed.
    """
    n = z.shape[0]
    n_y = n - n_x
    sq_norms = np.einsum("ij,ij->i", z, z)
    sks = np.zeros(labels.shape[1])
    row_sums = np.empty(n)
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n)
        k = _kernel_block(z[start:stop], z, sq_norms[start:stop], sq_norms, kernel, h, start)
        row_sums[start:stop] = k.sum(axis=1)
        sks += np.einsum("ip,ip->p", labels[start:stop], k @ labels)
    total = float(row_sums.sum())
    sk1 = labels.T @ row_sums
    xx = (sks - n_x) / (n_x * (n_x - 1))
    yy = (total - 2.0 * sk1 + sks - n_y) / (n_y * (n_y - 1))
    xy = (sk1 - sks) / (n_x * n_y)
    out: NDArray[np.float64] = xx + yy - 2.0 * xy
    return out


def _kernel_block(
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    a_sq: NDArray[np.float64],
    b_sq: NDArray[np.float64],
    kernel: Kernel,
    h: float,
    diagonal_offset: int,
) -> NDArray[np.float64]:
    """Kernel between rows ``a`` (rows ``diagonal_offset...`` of ``b``) and all rows ``b``."""
    d2 = a @ b.T
    d2 *= -2.0
    d2 += a_sq[:, None]
    d2 += b_sq[None, :]
    np.maximum(d2, 0.0, out=d2)  # rounding can make tiny squared distances negative
    # Exact zeros on the diagonal: the estimator subtracts k(x, x) = 1, and sqrt would turn
    # rounding noise of 1e-16 into 1e-8 for the Laplacian kernel.
    rows = np.arange(a.shape[0])
    d2[rows, rows + diagonal_offset] = 0.0
    if kernel == "rbf":
        d2 /= -2.0 * h * h
    else:
        np.sqrt(d2, out=d2)
        d2 /= -h
    return np.exp(d2, out=d2)
