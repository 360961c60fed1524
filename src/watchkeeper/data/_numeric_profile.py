"""Profile of one numeric column: counts, moments, quantile sketch, reference-binned histogram."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from watchkeeper.data._sketch import (
    kll_from_bytes,
    kll_merge,
    kll_merge_all,
    kll_new,
    kll_to_bytes,
)
from watchkeeper.exceptions import InputError
from watchkeeper.stats import reference_bin_edges

__all__ = ["NumericColumnProfile"]

_N_EXAMPLES = 5


#: Values per slice when summing central moments: temporaries stay about 1.5 MB per thread
#: whatever the column's length (three float64 arrays of a slice).
_MOMENT_SLICE = 1 << 16


def _moments(x: NDArray[np.float64]) -> tuple[float | None, float, float, float]:
    """Mean and central moment sums ``M_p = sum((x - mean)**p)`` of one batch (two passes,
    which is accurate; batches are then combined with the parallel formulas). The second
    pass runs over slices of ``_MOMENT_SLICE`` values, whose sums are added exactly
    (``math.fsum``), so memory does not grow with the column."""
    if x.size == 0:
        return None, 0.0, 0.0, 0.0
    # Values near the float limit overflow to inf here; that is the honest answer, not an error.
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(x.mean())
        sums: tuple[list[float], list[float], list[float]] = ([], [], [])
        for start in range(0, x.size, _MOMENT_SLICE):
            d = x[start : start + _MOMENT_SLICE] - mean
            d2 = d * d
            sums[0].append(float(d2.sum()))
            d *= d2
            sums[1].append(float(d.sum()))
            d2 *= d2
            sums[2].append(float(d2.sum()))
        if len(sums[0]) == 1:
            return mean, sums[0][0], sums[1][0], sums[2][0]
        return mean, _fsum(sums[0]), _fsum(sums[1]), _fsum(sums[2])


def _fsum(values: list[float]) -> float:
    """Exact sum of finite ``values`` (``inf``/``nan`` propagate as in ``sum``)."""
    return math.fsum(values) if all(math.isfinite(v) for v in values) else float(sum(values))


def _merge_moments(
    a: tuple[int, float | None, float, float, float],
    b: tuple[int, float | None, float, float, float],
) -> tuple[float | None, float, float, float]:
    """Combine ``(n, mean, M2, M3, M4)`` of two batches.

    Chan, Golub & LeVeque (1979) for the mean and ``M2``; Pébay (2008), "Formulas for robust,
    one-pass parallel computation of covariances and arbitrary-order statistical moments",
    eqs. 2.1-2.2, for ``M3`` and ``M4``.
    """
    # A fixed operand order makes merge(a, b) and merge(b, a) bit-identical.
    a, b = sorted((a, b), key=lambda t: (t[0], -math.inf if t[1] is None else t[1], *t[2:]))
    na, ma, m2a, m3a, m4a = a
    nb, mb, m2b, m3b, m4b = b
    if na == 0 or ma is None:
        return mb, m2b, m3b, m4b
    if nb == 0 or mb is None:
        return ma, m2a, m3a, m4a
    n = na + nb
    delta = mb - ma
    mean = ma + delta * nb / n
    # Products, not **: float ** raises OverflowError where * gives inf.
    d2 = delta * delta
    m2 = m2a + m2b + d2 * na * nb / n
    m3 = (
        m3a + m3b
        + d2 * delta * na * nb * (na - nb) / (n * n)
        + 3.0 * delta * (na * m2b - nb * m2a) / n
    )  # fmt: skip
    m4 = (
        m4a + m4b
        + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (n * n * n)
        + 6.0 * d2 * (na * na * m2b + nb * nb * m2a) / (n * n)
        + 4.0 * delta * (na * m3b - nb * m3a) / n
    )  # fmt: skip
    return mean, m2, m3, m4


def _merge_moments_all(
    counts: NDArray[np.int64],
    means: NDArray[np.float64],
    m2: NDArray[np.float64],
    m3: NDArray[np.float64],
    m4: NDArray[np.float64],
) -> tuple[float | None, float, float, float]:
    """Combine ``(n, mean, M2, M3, M4)`` of many batches at once (parts with ``n > 0``).

    Each part's central sums are shifted to the pooled mean ``m`` with ``d = mean_i - m``
    (the binomial expansion of ``sum((x - mean_i + d)**p)``, Pébay 2008, eq. 2.3 with one
    part per term): ``M2 = sum(M2_i + n_i d^2)``, ``M3 = sum(M3_i + 3 d M2_i + n_i d^3)``,
    ``M4 = sum(M4_i + 4 d M3_i + 6 d^2 M2_i + n_i d^4)``. Sums are exactly rounded
    (``math.fsum``), so the result does not depend on the order of the parts; it agrees with
    the pairwise chain of :func:`_merge_moments` within float rounding.
    """
    if counts.size == 0:
        return None, 0.0, 0.0, 0.0
    if counts.size == 1:
        return float(means[0]), float(m2[0]), float(m3[0]), float(m4[0])
    n = float(counts.sum())
    w = counts.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = _exact_sum((w / n) * means)
        d = means - mean
        d2 = d * d
        s2 = _exact_sum(m2) + _exact_sum(w * d2)
        s3 = _exact_sum(m3) + _exact_sum(3.0 * d * m2) + _exact_sum(w * d2 * d)
        s4 = (
            _exact_sum(m4) + _exact_sum(4.0 * d * m3) + _exact_sum(6.0 * d2 * m2)
            + _exact_sum(w * d2 * d2)
        )  # fmt: skip
    return mean, s2, s3, s4


def _exact_sum(values: NDArray[np.float64]) -> float:
    # fsum is exactly rounded (order-free) but refuses inf - inf; numpy gives nan there, as
    # the pairwise formulas do.
    if np.isfinite(values).all():
        return math.fsum(values.tolist())
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sum(values))


def _top_unique(values: Any, key: Any, k: int = _N_EXAMPLES) -> tuple[Any, ...]:
    # The first k distinct values under a total order: merging two such lists and taking the
    # first k again gives the same list as computing it on all data (exact, associative).
    return tuple(sorted(set(values), key=key)[:k])


@dataclass(frozen=True)
class NumericColumnProfile:
    """Mergeable summary of a numeric column.

    Counts are disjoint: ``count + n_missing + n_inf + n_type_errors`` is the number of rows.
    Moments, min/max, quantiles and histogram describe the ``count`` finite values.

    Attributes
    ----------
    count
        Finite values.
    n_missing
        Null or NaN values.
    n_inf
        Infinite values.
    n_type_errors
        Values that are not numbers (e.g. ``"oops"`` in a column read as strings).
    type_error_examples
        Up to five of them (the smallest string forms).
    min, max, mean
        Of the finite values; ``None`` when there are none.
    m2, m3, m4
        Sums of 2nd, 3rd and 4th powers of deviations from the mean.
    bin_edges, bin_counts
        Interior edges (from the reference, see :func:`watchkeeper.stats.reference_bin_edges`)
        and counts of finite values per bin (:func:`watchkeeper.stats.bin_counts`), so binned
        drift methods give the same number from profiles as from raw data.
    n_below_reference_min, n_above_reference_max
        Finite values outside the reference's ``[min, max]``; ``None`` for a profile made
        without a reference.
    out_of_range_examples
        Up to five distinct out-of-range values, farthest outside first.
    reference_range
        The reference's ``(min, max)`` those counts refer to.
    sketch
        The KLL quantile sketch (``datasketches.kll_doubles_sketch``).

    Examples
    --------
    >>> import numpy as np
    >>> col = NumericColumnProfile.from_values(np.array([1.0, 2.0, np.nan, 4.0]), n_bins=2)
    >>> col.count, col.n_missing, col.mean, col.bin_edges, col.bin_counts
    (3, 1, 2.333..., (2.0,), (2, 1))
    """

    kind: ClassVar[str] = "numeric"

    count: int
    n_missing: int
    n_inf: int
    n_type_errors: int
    type_error_examples: tuple[str, ...]
    min: float | None
    max: float | None
    mean: float | None
    m2: float
    m3: float
    m4: float
    bin_edges: tuple[float, ...]
    bin_counts: tuple[int, ...]
    n_below_reference_min: int | None = None
    n_above_reference_max: int | None = None
    out_of_range_examples: tuple[float, ...] = ()
    reference_range: tuple[float, float] | None = None
    sketch: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_values(
        cls,
        values: NDArray[np.float64],
        *,
        n_type_errors: int = 0,
        type_error_examples: tuple[str, ...] = (),
        n_bins: int = 10,
        reference: NumericColumnProfile | None = None,
        sketch: bool = True,
    ) -> NumericColumnProfile:
        """Profile ``values`` (NaN = missing). Bins come from ``reference`` when given, else
        from these values. ``sketch=False`` leaves out the quantile sketch (for throwaway
        profiles whose quantiles are never asked for; :meth:`quantile` then refuses)."""
        finite_mask = np.isfinite(values)
        x = values[finite_mask] if not finite_mask.all() else values
        nan = int(np.isnan(values).sum())
        n_inf = int(values.size - x.size - nan)
        mean, m2, m3, m4 = _moments(x)
        # One sort serves min/max, the histogram, the out-of-range counts and examples: each
        # is then a binary search instead of a pass over the data.
        xs = np.sort(x)
        if reference is not None:
            edges = np.asarray(reference.bin_edges, dtype=np.float64)
        else:
            edges = reference_bin_edges(xs, n_bins) if xs.size else np.empty(0)
        below = above = None
        examples: tuple[float, ...] = ()
        ref_range = None
        if reference is not None and reference.min is not None and reference.max is not None:
            lo, hi = reference.min, reference.max
            ref_range = (lo, hi)
            below = int(np.searchsorted(xs, lo, side="left"))
            above = int(xs.size - np.searchsorted(xs, hi, side="right"))
            # The farthest values are the smallest below and the largest above.
            candidates = np.concatenate(
                [
                    np.unique(xs[: min(below, 10_000)])[:_N_EXAMPLES],
                    np.unique(xs[xs.size - min(above, 10_000) :])[-_N_EXAMPLES:],
                ]
            )
            examples = _out_of_range_examples(candidates.tolist(), lo, hi)
        elif reference is not None:
            below = above = 0
        # Bin i holds values in (e_{i-1}, e_i], as stats.bin_counts does.
        cumulative = np.searchsorted(xs, edges, side="right")
        counts = np.diff(np.concatenate([[0], cumulative, [xs.size]]))
        return cls(
            count=int(xs.size),
            n_missing=nan - int(n_type_errors),
            n_inf=n_inf,
            n_type_errors=int(n_type_errors),
            type_error_examples=tuple(type_error_examples),
            min=float(xs[0]) if xs.size else None,
            max=float(xs[-1]) if xs.size else None,
            mean=mean,
            m2=m2,
            m3=m3,
            m4=m4,
            bin_edges=tuple(float(e) for e in edges),
            bin_counts=tuple(int(c) for c in counts),
            n_below_reference_min=below,
            n_above_reference_max=above,
            out_of_range_examples=examples,
            reference_range=ref_range,
            sketch=kll_new(xs) if sketch else None,
        )

    # -- derived statistics ----------------------------------------------------------------

    @property
    def n(self) -> int:
        """All rows: ``count + n_missing + n_inf + n_type_errors``."""
        return self.count + self.n_missing + self.n_inf + self.n_type_errors

    @property
    def variance(self) -> float | None:
        """Sample variance (``ddof=1``) of the finite values; ``None`` below two values."""
        return self.m2 / (self.count - 1) if self.count > 1 else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (``ddof=1``); ``None`` below two values."""
        v = self.variance
        return math.sqrt(max(v, 0.0)) if v is not None else None

    @property
    def skewness(self) -> float | None:
        """Biased sample skewness ``g1`` (as ``scipy.stats.skew``); ``None`` if undefined or
        if the moments overflowed (values beyond about 1e77)."""
        if self.count < 2 or self.m2 <= 0.0:
            return None
        n = self.count
        value = math.sqrt(n) * self.m3 / (self.m2 * math.sqrt(self.m2))
        return float(value) if math.isfinite(value) else None

    @property
    def kurtosis(self) -> float | None:
        """Biased excess kurtosis ``g2`` (as ``scipy.stats.kurtosis``); ``None`` if undefined or
        if the moments overflowed (values beyond about 1e77)."""
        if self.count < 2 or self.m2 <= 0.0:
            return None
        value = self.count * self.m4 / (self.m2 * self.m2) - 3.0
        return value if math.isfinite(value) else None

    @property
    def quantile_rank_error(self) -> float:
        """Bound on the rank error of :meth:`quantile` (99% confidence, KLL ``k=200``):
        the true rank of the returned value is within this distance of ``q``. Zero while the
        sketch still holds every value."""
        if self.sketch is None or self.sketch.is_estimation_mode() is False:
            return 0.0
        return float(self.sketch.normalized_rank_error(False))

    def quantile(self, q: float) -> float:
        """Approximate ``q``-quantile of the finite values from the KLL sketch.

        The answer is the smallest value seen whose (approximate) normalized rank is at least
        ``q`` (the inverse CDF, numpy's ``method="inverted_cdf"``); its true rank is within
        :attr:`quantile_rank_error` of ``q`` (about 0.0133 with 99% confidence; exact while
        the sketch holds at most 200 values).

        Examples
        --------
        >>> import numpy as np
        >>> col = NumericColumnProfile.from_values(np.arange(1.0, 101.0))
        >>> col.quantile(0.5), col.quantile_rank_error
        (50.0, 0.0)
        """
        if not 0.0 <= q <= 1.0:
            raise InputError(f"q must be between 0 and 1, got {q}")
        if self.count == 0:
            raise InputError("the column has no finite values, so it has no quantiles")
        if self.sketch is None:
            raise InputError(
                "this profile was built without quantile sketches (sketch=False); "
                "profile the data again with sketch=True to ask for quantiles"
            )
        # inclusive: the smallest seen value v with rank(v) >= q (the inverse of the CDF).
        return float(self.sketch.get_quantile(q, True))

    # -- merge and persistence -------------------------------------------------------------

    def merge(self, other: NumericColumnProfile) -> NumericColumnProfile:
        """Summary of both batches (both must use the same bins and reference)."""
        if not isinstance(other, NumericColumnProfile):
            raise InputError(f"cannot merge a numeric column profile with {type(other).__name__}")
        if self.bin_edges != other.bin_edges:
            raise InputError(
                "the two profiles use different histogram bins (they were profiled against "
                "different references); profile every batch with the same reference= profile, "
                "or re-base one with profile.rebased(reference) when its row sample holds "
                "every row"
            )
        if self.reference_range != other.reference_range and None not in (
            self.reference_range,
            other.reference_range,
        ):
            raise InputError("the two profiles were made against references with different ranges")
        mean, m2, m3, m4 = _merge_moments(
            (self.count, self.mean, self.m2, self.m3, self.m4),
            (other.count, other.mean, other.m2, other.m3, other.m4),
        )
        both = self.reference_range is not None and other.reference_range is not None
        ref_range = self.reference_range if both else None
        return NumericColumnProfile(
            count=self.count + other.count,
            n_missing=self.n_missing + other.n_missing,
            n_inf=self.n_inf + other.n_inf,
            n_type_errors=self.n_type_errors + other.n_type_errors,
            type_error_examples=_top_unique(
                self.type_error_examples + other.type_error_examples, key=str
            ),
            min=_opt(min, self.min, other.min),
            max=_opt(max, self.max, other.max),
            mean=mean,
            m2=m2,
            m3=m3,
            m4=m4,
            bin_edges=self.bin_edges,
            bin_counts=tuple(a + b for a, b in zip(self.bin_counts, other.bin_counts, strict=True)),
            n_below_reference_min=_add(self.n_below_reference_min, other.n_below_reference_min),
            n_above_reference_max=_add(self.n_above_reference_max, other.n_above_reference_max),
            out_of_range_examples=(
                _out_of_range_examples(
                    self.out_of_range_examples + other.out_of_range_examples, *ref_range
                )
                if ref_range is not None
                else ()
            ),
            reference_range=ref_range,
            sketch=(
                None
                if self.sketch is None or other.sketch is None
                else kll_merge(self.sketch, other.sketch)
            ),
        )

    @classmethod
    def merge_all(cls, parts: list[NumericColumnProfile]) -> NumericColumnProfile:
        """Summary of all ``parts`` in one pass (same result as chaining :meth:`merge`:
        exact for counts, bins, min/max and examples, moments within float rounding).

        Examples
        --------
        >>> import numpy as np
        >>> x = np.arange(12.0)
        >>> ref = NumericColumnProfile.from_values(x, n_bins=3)
        >>> parts = [NumericColumnProfile.from_values(p, reference=ref) for p in np.split(x, 4)]
        >>> whole = NumericColumnProfile.from_values(x, reference=ref)
        >>> merged = NumericColumnProfile.merge_all(parts)
        >>> merged.bin_counts == whole.bin_counts, merged.mean, merged.m2
        (True, 5.5, 143.0)
        """
        first = parts[0]
        for other in parts[1:]:
            if not isinstance(other, NumericColumnProfile):
                raise InputError(
                    f"cannot merge a numeric column profile with {type(other).__name__}"
                )
            if other.bin_edges != first.bin_edges:
                return first.merge(other)  # raises the pairwise error
        ranges = {p.reference_range for p in parts if p.reference_range is not None}
        if len(ranges) > 1:
            raise InputError("the two profiles were made against references with different ranges")
        present = [p for p in parts if p.count > 0 and p.mean is not None]
        mean, m2, m3, m4 = _merge_moments_all(
            np.array([p.count for p in present], dtype=np.int64),
            np.array([p.mean for p in present], dtype=np.float64),
            np.array([p.m2 for p in present], dtype=np.float64),
            np.array([p.m3 for p in present], dtype=np.float64),
            np.array([p.m4 for p in present], dtype=np.float64),
        )
        ref_range = (
            first.reference_range
            if len(ranges) == 1 and all(p.reference_range is not None for p in parts)
            else None
        )
        mins = [p.min for p in parts if p.min is not None]
        maxs = [p.max for p in parts if p.max is not None]
        below = [p.n_below_reference_min for p in parts]
        above = [p.n_above_reference_max for p in parts]
        bins = np.array([p.bin_counts for p in parts], dtype=np.int64).reshape(
            len(parts), len(first.bin_counts)
        )
        sketches = [p.sketch for p in parts]
        return NumericColumnProfile(
            count=sum(p.count for p in parts),
            n_missing=sum(p.n_missing for p in parts),
            n_inf=sum(p.n_inf for p in parts),
            n_type_errors=sum(p.n_type_errors for p in parts),
            type_error_examples=_top_unique(
                [v for p in parts for v in p.type_error_examples], key=str
            ),
            min=float(min(mins)) if mins else None,
            max=float(max(maxs)) if maxs else None,
            mean=mean,
            m2=m2,
            m3=m3,
            m4=m4,
            bin_edges=first.bin_edges,
            bin_counts=tuple(int(c) for c in bins.sum(axis=0)),
            n_below_reference_min=None if None in below else sum(below),  # type: ignore[arg-type]
            n_above_reference_max=None if None in above else sum(above),  # type: ignore[arg-type]
            out_of_range_examples=(
                _out_of_range_examples(
                    [v for p in parts for v in p.out_of_range_examples], *ref_range
                )
                if ref_range is not None
                else ()
            ),
            reference_range=ref_range,
            sketch=None if any(s is None for s in sketches) else kll_merge_all(sketches),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (the sketch as base64 of its ``serialize()``)."""
        return {
            "kind": self.kind,
            "count": self.count,
            "n_missing": self.n_missing,
            "n_inf": self.n_inf,
            "n_type_errors": self.n_type_errors,
            "type_error_examples": list(self.type_error_examples),
            "min": self.min,
            "max": self.max,
            "mean": _json_float(self.mean),
            "m2": _json_float(self.m2),
            "m3": _json_float(self.m3),
            "m4": _json_float(self.m4),
            "bin_edges": [_json_float(e) for e in self.bin_edges],
            "bin_counts": list(self.bin_counts),
            "n_below_reference_min": self.n_below_reference_min,
            "n_above_reference_max": self.n_above_reference_max,
            "out_of_range_examples": list(self.out_of_range_examples),
            "reference_range": None if self.reference_range is None else list(self.reference_range),
            "kll": None if self.sketch is None else kll_to_bytes(self.sketch),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericColumnProfile:
        """Rebuild from :meth:`to_dict` output."""
        rr = d.get("reference_range")
        return cls(
            count=int(d["count"]),
            n_missing=int(d["n_missing"]),
            n_inf=int(d["n_inf"]),
            n_type_errors=int(d["n_type_errors"]),
            type_error_examples=tuple(str(v) for v in d["type_error_examples"]),
            min=_opt_float(d["min"]),
            max=_opt_float(d["max"]),
            mean=_opt_float(d["mean"]),
            m2=float(d["m2"]),
            m3=float(d["m3"]),
            m4=float(d["m4"]),
            bin_edges=tuple(float(v) for v in d["bin_edges"]),
            bin_counts=tuple(int(v) for v in d["bin_counts"]),
            n_below_reference_min=_opt_int(d.get("n_below_reference_min")),
            n_above_reference_max=_opt_int(d.get("n_above_reference_max")),
            out_of_range_examples=tuple(float(v) for v in d.get("out_of_range_examples", ())),
            reference_range=None if rr is None else (float(rr[0]), float(rr[1])),
            sketch=None if d.get("kll") is None else kll_from_bytes(d["kll"]),
        )


def _out_of_range_examples(values: Any, lo: float, hi: float) -> tuple[float, ...]:
    def key(v: float) -> tuple[float, float]:
        return (-(lo - v if v < lo else v - hi), v)

    return tuple(float(v) for v in _top_unique(values, key=key))


def _opt(f: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return float(f(a, b))


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def _json_float(v: float | None) -> float | str | None:
    # Moments of huge values can overflow to inf, which strict JSON cannot hold;
    # float() reads the string form back.
    return v if v is None or math.isfinite(v) else repr(v)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)
