"""Profiles of categorical (and boolean) and datetime columns.

Numeric columns are in :mod:`watchkeeper.data._numeric_profile`, text columns in
:mod:`watchkeeper.data._text_profile` (re-exported here) and embedding columns in
:mod:`watchkeeper.data._embedding_profile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.data._sketch import (
    hll_from_bytes,
    hll_merge,
    hll_merge_all,
    hll_new,
    hll_to_bytes,
)
from watchkeeper.data._text_profile import TextColumnProfile
from watchkeeper.exceptions import InputError

__all__ = ["CategoricalColumnProfile", "DatetimeColumnProfile", "TextColumnProfile"]

#: How many categories outside the known ones are listed by name in ``unseen``.
MAX_UNSEEN = 10


def _top(items: dict[str, int], k: int) -> dict[str, int]:
    # Most frequent first, ties broken by name: a total order, so the result is deterministic.
    return dict(sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:k])


def _value_counts(strings: pa.ChunkedArray) -> tuple[list[str], np.ndarray[Any, Any]]:
    """Distinct non-missing values and their counts."""
    if len(strings) == strings.null_count:
        return [], np.zeros(0, dtype=np.int64)
    vc = pc.value_counts(strings)
    values = vc.field(0)
    counts = vc.field(1)
    keep = pc.is_valid(values)
    values = values.filter(keep)
    counts = np.asarray(counts.filter(keep).to_numpy(), dtype=np.int64)
    return [str(v) for v in values.to_pylist()], counts


@dataclass(frozen=True)
class CategoricalColumnProfile:
    """Mergeable summary of a categorical or boolean column.

    Attributes
    ----------
    kind
        ``"categorical"`` or ``"boolean"`` (booleans are the categories ``"false"``,
        ``"true"``).
    count, n_missing
        Present and missing values.
    categories
        The categories counted one by one: the reference's when profiled with a reference, the
        declared ones (:attr:`ColumnSpec.categories`), else this data's ``max_categories`` most
        frequent ones (ties broken by name).
    counts
        Count of each category (aligned with ``categories``).
    other_count
        Present values outside ``categories``.
    unseen
        Up to ten of the most frequent values outside the known categories (reference or
        declared), with their counts. After merges of profiles with more than ten such values,
        the list is approximate; ``n_unseen`` stays exact.
    n_unseen
        Values outside the known categories; ``None`` when that is unknown: no reference and
        no declared categories, or a reference that kept only its top categories (a value
        outside them may have been seen there).
    sketch
        HLL sketch of the distinct values (``datasketches.hll_sketch``).

    Examples
    --------
    >>> import pyarrow as pa
    >>> strings = pa.chunked_array([["a", "b", "a", None, "c"]])
    >>> col = CategoricalColumnProfile.from_strings(strings, max_categories=2)
    >>> col.categories, col.counts, col.other_count, col.n_missing, col.n_distinct
    (('a', 'b'), (2, 1), 1, 1, 3)
    """

    kind: str
    count: int
    n_missing: int
    categories: tuple[str, ...]
    counts: tuple[int, ...]
    other_count: int
    unseen: dict[str, int] = field(default_factory=dict)
    n_unseen: int | None = None
    sketch: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_strings(
        cls,
        strings: pa.ChunkedArray,
        *,
        kind: str = "categorical",
        known: tuple[str, ...] | None = None,
        track_unseen: bool = False,
        max_categories: int = 50,
    ) -> CategoricalColumnProfile:
        """Profile canonical string values (null = missing).

        ``known`` fixes the categories (from a reference or a declaration); ``track_unseen``
        says that every value outside them is new.
        """
        values, counts = _value_counts(strings)
        n_missing = int(strings.null_count)
        if known is None:
            candidates: Any = range(len(values))
            if len(values) > max_categories:
                # Only values at least as frequent as the k-th most frequent can be in the top k.
                threshold = np.partition(counts, -max_categories)[-max_categories]
                candidates = np.flatnonzero(counts >= threshold).tolist()
            order = sorted(candidates, key=lambda i: (-counts[i], values[i]))
            top = order[:max_categories]
            categories = tuple(values[i] for i in top)
            cat_counts = tuple(int(counts[i]) for i in top)
            other = int(counts.sum()) - sum(cat_counts)
            unseen: dict[str, int] = {}
            n_unseen = None
        else:
            position = {c: i for i, c in enumerate(known)}
            aligned = [0] * len(known)
            outside: dict[str, int] = {}
            for v, c in zip(values, counts.tolist(), strict=True):
                i = position.get(v)
                if i is None:
                    outside[v] = c
                else:
                    aligned[i] = c
            categories, cat_counts = tuple(known), tuple(aligned)
            other = sum(outside.values())
            unseen = _top(outside, MAX_UNSEEN) if track_unseen else {}
            n_unseen = other if track_unseen else None
        return cls(
            kind=kind,
            count=len(strings) - n_missing,
            n_missing=n_missing,
            categories=categories,
            counts=cat_counts,
            other_count=other,
            unseen=unseen,
            n_unseen=n_unseen,
            sketch=hll_new(values),
        )

    @property
    def n(self) -> int:
        """All rows: ``count + n_missing``."""
        return self.count + self.n_missing

    @property
    def n_distinct_is_exact(self) -> bool:
        """True when every value is one of ``categories``, so :attr:`n_distinct` is a count."""
        return self.other_count == 0

    @property
    def n_distinct(self) -> int:
        """Distinct present values: exact when :attr:`n_distinct_is_exact`, otherwise the HLL
        estimate (relative standard error about 1.6%)."""
        if self.n_distinct_is_exact:
            return sum(1 for c in self.counts if c)
        return round(float(self.sketch.get_estimate()))

    def merge(self, other: CategoricalColumnProfile) -> CategoricalColumnProfile:
        """Summary of both batches (both must count the same categories)."""
        if not isinstance(other, CategoricalColumnProfile) or other.kind != self.kind:
            raise InputError(f"cannot merge a {self.kind} column profile with {other!r:.60}")
        if self.categories != other.categories:
            raise InputError(
                "the two profiles count different categories (they were profiled against "
                "different references); re-base one with profile.rebased(reference) when its "
                "row sample holds every row, or profile every batch with the "
                "same reference= profile (or declared categories) so that they agree"
            )
        unseen = dict(self.unseen)
        for k, v in other.unseen.items():
            unseen[k] = unseen.get(k, 0) + v
        both = self.n_unseen is not None and other.n_unseen is not None
        return CategoricalColumnProfile(
            kind=self.kind,
            count=self.count + other.count,
            n_missing=self.n_missing + other.n_missing,
            categories=self.categories,
            counts=tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            other_count=self.other_count + other.other_count,
            unseen=_top(unseen, MAX_UNSEEN) if both else {},
            n_unseen=(self.n_unseen or 0) + (other.n_unseen or 0) if both else None,
            sketch=hll_merge(self.sketch, other.sketch),
        )

    @classmethod
    def merge_all(cls, parts: list[CategoricalColumnProfile]) -> CategoricalColumnProfile:
        """Summary of all ``parts`` in one pass (as chaining :meth:`merge`; ``unseen`` is
        ranked once over all parts, so it is at least as accurate as the chain's).

        Examples
        --------
        >>> import pyarrow as pa
        >>> parts = [CategoricalColumnProfile.from_strings(pa.chunked_array([v]), known=("a", "b"))
        ...          for v in (["a", "b"], ["a", None], ["c"])]
        >>> m = CategoricalColumnProfile.merge_all(parts)
        >>> m.counts, m.other_count, m.n_missing
        ((2, 1), 1, 1)
        """
        first = parts[0]
        for other in parts[1:]:
            if (
                not isinstance(other, CategoricalColumnProfile)
                or other.kind != first.kind
                or other.categories != first.categories
            ):
                return first.merge(other)  # raises the pairwise error
        counts = np.array([p.counts for p in parts], dtype=np.int64).reshape(
            len(parts), len(first.categories)
        )
        both = all(p.n_unseen is not None for p in parts)
        unseen: dict[str, int] = {}
        if both:
            for p in parts:
                for k, v in p.unseen.items():
                    unseen[k] = unseen.get(k, 0) + v
        return CategoricalColumnProfile(
            kind=first.kind,
            count=sum(p.count for p in parts),
            n_missing=sum(p.n_missing for p in parts),
            categories=first.categories,
            counts=tuple(int(c) for c in counts.sum(axis=0)),
            other_count=sum(p.other_count for p in parts),
            unseen=_top(unseen, MAX_UNSEEN) if both else {},
            n_unseen=sum(p.n_unseen or 0 for p in parts) if both else None,
            sketch=hll_merge_all([p.sketch for p in parts]),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (the HLL sketch as base64)."""
        return {
            "kind": self.kind,
            "count": self.count,
            "n_missing": self.n_missing,
            "categories": list(self.categories),
            "counts": list(self.counts),
            "other_count": self.other_count,
            "unseen": dict(self.unseen),
            "n_unseen": self.n_unseen,
            "hll": hll_to_bytes(self.sketch),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalColumnProfile:
        """Rebuild from :meth:`to_dict` output."""
        n_unseen = d.get("n_unseen")
        return cls(
            kind=str(d["kind"]),
            count=int(d["count"]),
            n_missing=int(d["n_missing"]),
            categories=tuple(str(c) for c in d["categories"]),
            counts=tuple(int(c) for c in d["counts"]),
            other_count=int(d["other_count"]),
            unseen={str(k): int(v) for k, v in d.get("unseen", {}).items()},
            n_unseen=None if n_unseen is None else int(n_unseen),
            sketch=hll_from_bytes(d["hll"]),
        )


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return str(np.datetime64(ns, "ns")) + "Z"


@dataclass(frozen=True)
class DatetimeColumnProfile:
    """Mergeable summary of a datetime column (times in UTC nanoseconds since the epoch).

    Examples
    --------
    >>> import numpy as np
    >>> ns = np.array([0, 86_400 * 10**9], dtype=np.int64)
    >>> col = DatetimeColumnProfile.from_values(ns, np.array([True, True]), n_type_errors=0)
    >>> col.count, col.min_iso, col.max_iso
    (2, '1970-01-01T00:00:00.000000000Z', '1970-01-02T00:00:00.000000000Z')
    """

    kind: ClassVar[str] = "datetime"

    count: int
    n_missing: int
    n_type_errors: int
    min: int | None
    max: int | None

    @classmethod
    def from_values(
        cls, ns: np.ndarray[Any, Any], valid: np.ndarray[Any, Any], *, n_type_errors: int
    ) -> DatetimeColumnProfile:
        """Profile nanosecond timestamps where ``valid``; the rest are missing or errors."""
        present = ns[valid]
        return cls(
            count=int(present.size),
            n_missing=int(ns.size - present.size - n_type_errors),
            n_type_errors=int(n_type_errors),
            min=int(present.min()) if present.size else None,
            max=int(present.max()) if present.size else None,
        )

    @property
    def n(self) -> int:
        """All rows."""
        return self.count + self.n_missing + self.n_type_errors

    @property
    def min_iso(self) -> str | None:
        """Earliest time, ISO 8601 in UTC."""
        return _iso(self.min)

    @property
    def max_iso(self) -> str | None:
        """Latest time, ISO 8601 in UTC."""
        return _iso(self.max)

    def merge(self, other: DatetimeColumnProfile) -> DatetimeColumnProfile:
        """Summary of both batches."""
        if not isinstance(other, DatetimeColumnProfile):
            raise InputError(f"cannot merge a datetime column profile with {type(other).__name__}")
        mins = [v for v in (self.min, other.min) if v is not None]
        maxs = [v for v in (self.max, other.max) if v is not None]
        return DatetimeColumnProfile(
            count=self.count + other.count,
            n_missing=self.n_missing + other.n_missing,
            n_type_errors=self.n_type_errors + other.n_type_errors,
            min=min(mins) if mins else None,
            max=max(maxs) if maxs else None,
        )

    @classmethod
    def merge_all(cls, parts: list[DatetimeColumnProfile]) -> DatetimeColumnProfile:
        """Summary of all ``parts`` in one pass (as chaining :meth:`merge`)."""
        for other in parts:
            if not isinstance(other, DatetimeColumnProfile):
                raise InputError(
                    f"cannot merge a datetime column profile with {type(other).__name__}"
                )
        mins = [p.min for p in parts if p.min is not None]
        maxs = [p.max for p in parts if p.max is not None]
        return DatetimeColumnProfile(
            count=sum(p.count for p in parts),
            n_missing=sum(p.n_missing for p in parts),
            n_type_errors=sum(p.n_type_errors for p in parts),
            min=min(mins) if mins else None,
            max=max(maxs) if maxs else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (with ISO strings for reading)."""
        return {
            "kind": self.kind,
            "count": self.count,
            "n_missing": self.n_missing,
            "n_type_errors": self.n_type_errors,
            "min": self.min,
            "max": self.max,
            "min_iso": self.min_iso,
            "max_iso": self.max_iso,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatetimeColumnProfile:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            count=int(d["count"]),
            n_missing=int(d["n_missing"]),
            n_type_errors=int(d["n_type_errors"]),
            min=None if d["min"] is None else int(d["min"]),
            max=None if d["max"] is None else int(d["max"]),
        )
