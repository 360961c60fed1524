"""Profile of an embedding column: fixed-length numeric vectors (an Arrow ``list`` or
``fixed_size_list`` column; a pandas column of arrays or lists; a polars ``Array``).

A reference profile fits a principal-component projection (the mean and the first
:data:`MAX_COMPONENTS` components) and every profile made against it keeps the same projection,
so vectors of any window land in the same low-dimensional space. Each profile keeps a bounded
sample of projected vectors: the bottom-k rows by a seeded hash of the vector's bytes (the same
row gets the same priority in every process), so samples merge exactly, like the row sample of
:class:`~watchkeeper.data.Profile`, and windows, shards and Spark partitions can be tested.

A reference with at least ``2 * MIN_SPLIT_ROWS`` vectors fits the projection on rows that are
not in its stored sample (the rows after the sample in priority order), so that the reference
sample is not favoured by a projection fitted on it; smaller references fit and sample the same
rows.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from watchkeeper.data._sketch import _mix, _salt, bottom_k
from watchkeeper.exceptions import InputError

__all__ = [
    "EMBEDDING_SAMPLE_SIZE",
    "MAX_COMPONENTS",
    "EmbeddingColumnProfile",
    "embedding_matrix",
    "is_vector_type",
]

#: Projected vectors kept per profile.
EMBEDDING_SAMPLE_SIZE = 2_000
#: Principal components kept (fewer when the vectors are shorter or the rows fewer).
MAX_COMPONENTS = 10
#: Most rows the projection is fitted on.
FIT_ROWS = 20_000
#: References with at least twice this many vectors fit on rows outside their sample.
MIN_SPLIT_ROWS = 100
#: Seed of the sample priorities (fixed: every profile of a column must agree).
_SEED = 0


def is_vector_type(t: pa.DataType) -> bool:
    """Whether an Arrow type holds vectors of numbers (list, large list or fixed-size list)."""
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        return False
    v = t.value_type
    return bool(pa.types.is_integer(v) or pa.types.is_floating(v) or pa.types.is_decimal(v))


def embedding_matrix(
    column: pa.ChunkedArray, dim: int | None = None
) -> tuple[NDArray[np.float64], int, int, int]:
    """The valid vectors of ``column`` as rows of a matrix.

    Returns ``(matrix, dim, n_missing, n_bad)``: ``dim`` is the given one or, without it, the
    most common vector length; a vector of another length, with a missing or non-finite entry,
    or a value that is not a vector at all, counts as bad.

    Examples
    --------
    >>> import pyarrow as pa
    >>> col = pa.chunked_array([[[1.0, 2.0], None, [3.0, 4.0], [5.0]]])
    >>> x, dim, n_missing, n_bad = embedding_matrix(col)
    >>> x.tolist(), dim, n_missing, n_bad
    ([[1.0, 2.0], [3.0, 4.0]], 2, 1, 1)
    """
    n_missing = int(column.null_count)
    present = len(column) - n_missing
    if not is_vector_type(column.type):
        return np.empty((0, dim or 0)), dim or 0, n_missing, present
    arr = column.combine_chunks() if column.num_chunks else pa.array([], type=column.type)
    if len(arr) == 0:
        return np.empty((0, dim or 0)), dim or 0, n_missing, 0
    lengths = np.asarray(pc.list_value_length(arr).fill_null(-1).to_numpy(), dtype=np.int64)
    if dim is None:
        seen = lengths[lengths > 0]
        dim = int(np.bincount(seen).argmax()) if seen.size else 0
    ok = lengths == dim
    if dim == 0 or not ok.any():
        return np.empty((0, dim)), dim, n_missing, present
    flat = pc.list_flatten(arr.filter(pa.array(ok)))
    values = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(-1, dim)
    finite = np.isfinite(values).all(axis=1)
    matrix = values[finite] if not finite.all() else values
    return matrix, dim, n_missing, present - int(matrix.shape[0])


def vector_priorities(x: NDArray[np.float64]) -> NDArray[np.uint64]:
    """Seeded 64-bit priority of each row from its bytes (equal rows share one)."""
    bits = (np.ascontiguousarray(x, dtype=np.float64) + 0.0).view(np.uint64)
    acc = np.full(x.shape[0], _salt(_SEED, "\x00vector"), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(x.shape[1]):
            acc = _mix(acc ^ bits[:, j])
    return _mix(acc)


def _b64(a: NDArray[Any]) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _unb64(text: str, dtype: Any) -> NDArray[Any]:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()


@dataclass(frozen=True, eq=False)
class EmbeddingColumnProfile:
    """Mergeable summary of an embedding column (see the module notes).

    Attributes
    ----------
    count, n_missing, n_type_errors
        Valid vectors, missing values, and values that are not vectors of ``dim`` finite
        numbers.
    dim
        Vector length (the reference's).
    mean, components
        The projection fitted on the reference: ``(x - mean) @ components.T``.
    explained_variance_ratio
        Share of the reference's variance along each component.
    sample, sample_priorities
        Projected vectors of the bottom-k rows by priority (see :meth:`project`: component
        scores and the residual norm), and their priorities.
    sample_size
        ``k``.

    Examples
    --------
    >>> import numpy as np, pyarrow as pa
    >>> rng = np.random.default_rng(0)
    >>> col = pa.chunked_array([list(rng.normal(size=(500, 16)))])
    >>> ref = EmbeddingColumnProfile.from_column(col)
    >>> ref.count, ref.dim, ref.components.shape, ref.sample.shape
    (500, 16, (10, 16), (250, 11))
    >>> cur = EmbeddingColumnProfile.from_column(col, reference=ref)
    >>> a = EmbeddingColumnProfile.from_column(col[:200], reference=ref)
    >>> b = EmbeddingColumnProfile.from_column(col[200:], reference=ref)
    >>> a.merge(b) == cur
    True
    """

    kind: ClassVar[str] = "embedding"

    count: int
    n_missing: int
    n_type_errors: int
    dim: int
    mean: NDArray[np.float64] = field(repr=False)
    components: NDArray[np.float64] = field(repr=False)
    explained_variance_ratio: tuple[float, ...] = ()
    sample: NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)), repr=False)
    sample_priorities: NDArray[np.uint64] = field(
        default_factory=lambda: np.empty(0, dtype=np.uint64), repr=False
    )
    sample_size: int = EMBEDDING_SAMPLE_SIZE

    @classmethod
    def from_column(
        cls,
        column: pa.ChunkedArray,
        *,
        reference: EmbeddingColumnProfile | None = None,
        sample_size: int = EMBEDDING_SAMPLE_SIZE,
    ) -> EmbeddingColumnProfile:
        """Profile a column of vectors; with ``reference``, on its projection."""
        x, dim, n_missing, n_bad = embedding_matrix(
            column, None if reference is None else reference.dim
        )
        n = x.shape[0]
        priorities = vector_priorities(x)
        order = bottom_k(priorities, n)
        if reference is not None:
            mean, comps, ratio = (
                reference.mean,
                reference.components,
                reference.explained_variance_ratio,
            )
            take = order[:sample_size]
        else:
            if n >= 2 * MIN_SPLIT_ROWS:
                take = order[: min(sample_size, n // 2)]
                fit = order[take.size :][:FIT_ROWS]
            else:
                take, fit = order[:sample_size], order[:FIT_ROWS]
            mean, comps, ratio = _fit_projection(x[fit], dim)
        projected = _project(x[take], mean, comps)
        return cls(
            count=n,
            n_missing=n_missing,
            n_type_errors=n_bad,
            dim=dim,
            mean=mean,
            components=comps,
            explained_variance_ratio=ratio,
            sample=projected,
            sample_priorities=priorities[take],
            sample_size=sample_size,
        )

    @property
    def n(self) -> int:
        """All rows."""
        return self.count + self.n_missing + self.n_type_errors

    @property
    def n_components(self) -> int:
        """Components of the projection."""
        return int(self.components.shape[0])

    def project(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Rows of ``x`` (``n x dim``) in the projection's coordinates: the component scores
        and, last, the norm of the residual off the components (so that a change outside
        the reference's main directions is seen too)."""
        return _project(np.asarray(x, dtype=np.float64), self.mean, self.components)

    def same_projection(self, other: EmbeddingColumnProfile) -> bool:
        """Whether both profiles use one projection (made against the same reference)."""
        return (
            self.dim == other.dim
            and np.array_equal(self.mean, other.mean)
            and np.array_equal(self.components, other.components)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EmbeddingColumnProfile):
            return NotImplemented
        return (
            (self.count, self.n_missing, self.n_type_errors, self.sample_size)
            == (other.count, other.n_missing, other.n_type_errors, other.sample_size)
            and self.same_projection(other)
            and np.array_equal(self.sample, other.sample)
            and np.array_equal(self.sample_priorities, other.sample_priorities)
        )

    __hash__ = None  # type: ignore[assignment]

    def merge(self, other: EmbeddingColumnProfile) -> EmbeddingColumnProfile:
        """Summary of both batches (both must use the same projection)."""
        if not isinstance(other, EmbeddingColumnProfile):
            raise InputError(
                f"cannot merge an embedding column profile with {type(other).__name__}"
            )
        return EmbeddingColumnProfile.merge_all([self, other])

    @classmethod
    def merge_all(cls, parts: list[EmbeddingColumnProfile]) -> EmbeddingColumnProfile:
        """Summary of all ``parts`` in one pass (as chaining :meth:`merge`)."""
        first = parts[0]
        for p in parts:
            if not isinstance(p, EmbeddingColumnProfile):
                raise InputError(
                    f"cannot merge an embedding column profile with {type(p).__name__}"
                )
            if not first.same_projection(p):
                raise InputError(
                    "the embedding profiles use different projections (they were profiled "
                    "against different references); profile every batch with the same "
                    "reference= profile"
                )
        k = min(p.sample_size for p in parts)
        width = first.n_components + 1 if first.n_components else 0
        samples = np.vstack([p.sample.reshape(-1, width) for p in parts])
        priorities = np.concatenate([p.sample_priorities for p in parts])
        take = bottom_k(priorities, k)
        return EmbeddingColumnProfile(
            count=sum(p.count for p in parts),
            n_missing=sum(p.n_missing for p in parts),
            n_type_errors=sum(p.n_type_errors for p in parts),
            dim=first.dim,
            mean=first.mean,
            components=first.components,
            explained_variance_ratio=first.explained_variance_ratio,
            sample=samples[take],
            sample_priorities=priorities[take],
            sample_size=k,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (arrays as base64 of their little-endian bytes)."""
        return {
            "kind": self.kind,
            "count": self.count,
            "n_missing": self.n_missing,
            "n_type_errors": self.n_type_errors,
            "dim": self.dim,
            "n_components": self.n_components,
            "mean": _b64(self.mean.astype("<f8")),
            "components": _b64(self.components.astype("<f8")),
            "explained_variance_ratio": list(self.explained_variance_ratio),
            "sample": _b64(self.sample.astype("<f8")),
            "sample_priorities": _b64(self.sample_priorities.astype("<u8")),
            "sample_size": self.sample_size,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbeddingColumnProfile:
        """Rebuild from :meth:`to_dict` output."""
        dim, k = int(d["dim"]), int(d["n_components"])
        return cls(
            count=int(d["count"]),
            n_missing=int(d["n_missing"]),
            n_type_errors=int(d["n_type_errors"]),
            dim=dim,
            mean=_unb64(d["mean"], "<f8").astype(np.float64),
            components=_unb64(d["components"], "<f8").astype(np.float64).reshape(k, dim),
            explained_variance_ratio=tuple(float(v) for v in d["explained_variance_ratio"]),
            sample=_unb64(d["sample"], "<f8").astype(np.float64).reshape(-1, k + 1 if k else 0),
            sample_priorities=_unb64(d["sample_priorities"], "<u8").astype(np.uint64),
            sample_size=int(d["sample_size"]),
        )


def _project(
    x: NDArray[np.float64], mean: NDArray[np.float64], comps: NDArray[np.float64]
) -> NDArray[np.float64]:
    if comps.size == 0:
        return np.empty((x.shape[0], 0))
    centred = x - mean
    scores = centred @ comps.T
    residual = centred - scores @ comps
    return np.hstack([scores, np.sqrt(np.einsum("ij,ij->i", residual, residual))[:, None]])


def _fit_projection(
    x: NDArray[np.float64], dim: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[float, ...]]:
    """Mean, principal components (signs fixed: the largest loading positive) and the share
    of variance of each, from the rows of ``x``."""
    mean = x.mean(axis=0) if x.shape[0] else np.zeros(dim)
    k = min(dim, MAX_COMPONENTS, max(x.shape[0] - 1, 0))
    if k < 1:
        return mean, np.empty((0, dim)), ()
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:k].copy()
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps *= np.where(signs == 0, 1.0, signs)[:, None]
    var = s * s
    total = float(var.sum())
    ratio = tuple(float(v / total) if total > 0 else 0.0 for v in var[:k])
    return mean, comps, ratio
