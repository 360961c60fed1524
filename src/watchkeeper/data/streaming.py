"""Profiles of data that does not fit in memory: batch by batch, merged.

With a reference profile, every batch is profiled on the reference's bins and categories and
the batch profiles are merged (:meth:`Profile.merge`): one pass, memory bounded by one batch.

Without a reference the data is its own reference, and its bins (quantiles) and categories
(most frequent values) are only known after every row was seen. Two passes then:

1. a *pilot* per batch: the bottom-k row sample (the same seeded, content-hashed sample a
   profile keeps, so merged pilots hold the sample of all rows) and the value counts of each
   categorical column; pilots merge exactly;
2. a *skeleton* reference is built from the merged pilot (bin edges at the quantiles of the
   sample's values, the ``max_categories`` most frequent categories of the full counts), every
   batch is profiled against it and the profiles merged; reference-only fields (out-of-range
   counts, unseen categories) are cleared, so the result reads like a profile made without a
   reference.

Counts, category counts, histograms (on those bins), min/max and the row sample are exact.
The bins equal those of :meth:`Profile.from_data` on all rows while the sample holds every
row; beyond that they are the quantiles of a uniform sample of ``sample_size`` rows. Moments
match to float rounding. The same functions run inside Spark partitions
(:mod:`watchkeeper.engines.spark`), so both engines give the same profile for the same data.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from watchkeeper.data._adapters import read_table, string_values
from watchkeeper.data._column_profiles import (
    CategoricalColumnProfile,
    DatetimeColumnProfile,
    TextColumnProfile,
)
from watchkeeper.data._embedding_profile import MIN_SPLIT_ROWS, EmbeddingColumnProfile
from watchkeeper.data._group_counts import profile_group_counts
from watchkeeper.data._io import table_from_text, table_to_text
from watchkeeper.data._numeric_profile import NumericColumnProfile
from watchkeeper.data._profiling import profile_column
from watchkeeper.data._sketch import bottom_k, row_priorities
from watchkeeper.data._text_profile import holds_out_vocabulary
from watchkeeper.data.schema import ColumnKind, ColumnSpec, Role, Schema
from watchkeeper.exceptions import InputError
from watchkeeper.stats import reference_bin_edges

if TYPE_CHECKING:
    from watchkeeper.data.profile import Profile

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "Pilot",
    "finish_profile",
    "iter_parquet",
    "parquet_schema_table",
    "pilot_size",
    "profile_stream",
    "skeleton_reference",
]

#: Rows per batch when streaming a Parquet file (about 160 MB for 20 float64 columns).
DEFAULT_BATCH_ROWS = 1_000_000
#: Rows of the first pass's sample when the profile itself keeps none (``sample_size=0``):
#: the bins still need quantiles.
PILOT_ROWS = 100_000


def pilot_size(sample_size: int) -> int:
    """Rows the first pass samples for a profile that keeps ``sample_size`` rows."""
    return sample_size or PILOT_ROWS


def iter_parquet(
    path: str | os.PathLike[str],
    columns: list[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pa.Table]:
    """Tables of at most ``batch_rows`` rows read from a Parquet file, one at a time.

    Only one batch (and the row group it comes from) is held in memory.

    Examples
    --------
    >>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = pathlib.Path(d) / "x.parquet"
    ...     pq.write_table(pa.table({"x": list(range(10))}), path, row_group_size=4)
    ...     [t.num_rows for t in iter_parquet(path, batch_rows=3)]
    [3, 3, 3, 1]
    """
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise InputError(f"file {str(p)!r} does not exist; check the path")
    try:
        # pre_buffer=False: with pre-buffering the reader keeps every row group it read
        # cached until the file is closed, so memory would grow with the file.
        file = pq.ParquetFile(p, pre_buffer=False)
        for batch in file.iter_batches(batch_size=batch_rows, columns=columns):
            yield pa.Table.from_batches([batch])
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"cannot read {str(p)!r}: {exc}") from exc


def parquet_schema_table(path: str | os.PathLike[str]) -> pa.Table:
    """An empty table with the Parquet file's columns and types (reads only the footer)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(Path(path)).empty_table()
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"cannot read {str(path)!r}: {exc}") from exc


@dataclass(frozen=True)
class Pilot:
    """First-pass summary of a batch: row sample and categorical value counts (mergeable).

    Attributes
    ----------
    n_rows
        Rows seen.
    sample, priorities
        Bottom-k row sample (canonical values) and the priority of each of its rows.
    category_counts
        Full value counts of each categorical column whose categories are not declared.
    sample_size, random_state
        Sample parameters (pilots merge only with the same seed).
    """

    n_rows: int
    sample: pa.Table | None
    priorities: NDArray[np.uint64] | None
    category_counts: Mapping[str, Mapping[str, int]]
    sample_size: int
    random_state: int

    @classmethod
    def from_table(
        cls, table: pa.Table, schema: Schema, *, sample_size: int, random_state: int
    ) -> Pilot:
        """Pilot of one batch (``table`` holds every profiled column of ``schema``)."""
        canonical: dict[str, pa.ChunkedArray] = {}
        counts: dict[str, dict[str, int]] = {}
        for spec in _specs(schema):
            column = table.column(spec.name)
            if spec.kind is ColumnKind.CATEGORICAL and spec.categories is None:
                strings = string_values(column)
                canonical[spec.name] = strings
                counts[spec.name] = _value_counts(strings)
            elif spec.kind is ColumnKind.TEXT:
                # Text needs its sample for the skeleton's vocabulary and descriptor bins.
                canonical[spec.name] = string_values(column)
            elif spec.kind is ColumnKind.EMBEDDING:
                # The skeleton fits the projection on the sampled vectors.
                canonical[spec.name] = column
            elif sample_size:
                # The canonical values are what the sample stores and hashes; the throwaway
                # column profile is the cheapest way to the exact same forms.
                _, values = profile_column(
                    spec, column, None, n_bins=2, max_categories=1, sketch=False
                )
                assert values is not None
                canonical[spec.name] = values
        sample, priorities = None, None
        if sample_size and canonical:
            hashed = _priority_columns(canonical)
            all_priorities = row_priorities(hashed, table.num_rows, random_state)
            take = bottom_k(all_priorities, sample_size)
            priorities = all_priorities[take]
            sample = pa.table({n: c.take(take) for n, c in canonical.items()})
        return cls(table.num_rows, sample, priorities, counts, sample_size, random_state)

    def merge(self, other: Pilot) -> Pilot:
        """Pilot of both batches."""
        if (self.sample_size, self.random_state) != (other.sample_size, other.random_state):
            raise InputError("pilots with different sample_size or random_state cannot merge")
        counts: dict[str, dict[str, int]] = {}
        for name in self.category_counts.keys() | other.category_counts.keys():
            c: Counter[str] = Counter(self.category_counts.get(name, {}))
            c.update(other.category_counts.get(name, {}))
            counts[name] = dict(c)
        sample, priorities = self.sample, self.priorities
        if other.sample is not None and other.priorities is not None:
            if sample is None or priorities is None:
                sample, priorities = other.sample, other.priorities
            else:
                both = pa.concat_tables([sample, other.sample.select(sample.column_names)])
                merged = np.concatenate([priorities, other.priorities])
                take = bottom_k(merged, self.sample_size)
                sample, priorities = both.take(take), merged[take]
        return Pilot(
            self.n_rows + other.n_rows,
            sample,
            priorities,
            counts,
            self.sample_size,
            self.random_state,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (to ship a pilot from a worker to the driver)."""
        return {
            "n_rows": self.n_rows,
            "sample": None if self.sample is None else table_to_text(self.sample),
            "category_counts": {k: dict(v) for k, v in self.category_counts.items()},
            "sample_size": self.sample_size,
            "random_state": self.random_state,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Pilot:
        """Rebuild from :meth:`to_dict` output (priorities are recomputed from the sample)."""
        sample = None if d["sample"] is None else table_from_text(d["sample"])
        priorities = None
        if sample is not None:
            canonical = {n: sample.column(n) for n in sample.column_names}
            hashed = _priority_columns(canonical)
            priorities = row_priorities(hashed, sample.num_rows, int(d["random_state"]))
        return cls(
            int(d["n_rows"]),
            sample,
            priorities,
            {k: {str(a): int(b) for a, b in v.items()} for k, v in d["category_counts"].items()},
            int(d["sample_size"]),
            int(d["random_state"]),
        )


def _priority_columns(canonical: dict[str, pa.ChunkedArray]) -> dict[str, pa.ChunkedArray]:
    """The columns that decide a row's priority: those of the profile's own row sample
    (embedding vectors ride along but are not hashed, as in Profile.from_data), or the
    vectors when there is nothing else."""
    rest = {n: c for n, c in canonical.items() if not pa.types.is_nested(c.type)}
    return rest or canonical


def _specs(schema: Schema) -> list[ColumnSpec]:
    return [s for s in schema if s.role is not Role.IGNORED]


def _value_counts(strings: pa.ChunkedArray) -> dict[str, int]:
    import pyarrow.compute as pc

    if len(strings) == strings.null_count:
        return {}
    vc = pc.value_counts(strings)
    values, counts = vc.field(0), vc.field(1)
    return {
        str(v): int(c)
        for v, c in zip(values.to_pylist(), counts.to_pylist(), strict=True)
        if v is not None
    }


def _top_categories(counts: Mapping[str, int], k: int) -> tuple[tuple[str, ...], int]:
    # The same order as CategoricalColumnProfile.from_strings: count desc, then name.
    order = sorted(counts, key=lambda v: (-counts[v], v))
    top = tuple(order[:k])
    return top, sum(counts.values()) - sum(counts[v] for v in top)


def skeleton_reference(
    pilot: Pilot, schema: Schema, *, n_bins: int, max_categories: int
) -> Profile:
    """The reference that fixes bins and categories for the second pass (see module docs)."""
    from watchkeeper.data.profile import Profile

    columns: dict[str, Any] = {}
    sample = pilot.sample
    for spec in _specs(schema):
        if spec.kind is ColumnKind.NUMERIC:
            values = np.empty(0)
            if sample is not None and spec.name in sample.column_names:
                values = np.asarray(sample.column(spec.name).to_numpy(), dtype=np.float64)
            values = values[np.isfinite(values)]
            edges = reference_bin_edges(values, n_bins) if values.size else np.empty(0)
            columns[spec.name] = dataclasses.replace(
                NumericColumnProfile.from_values(np.empty(0), n_bins=n_bins, sketch=False),
                bin_edges=tuple(float(e) for e in edges),
                bin_counts=(0,) * (len(edges) + 1),
            )
        elif spec.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            cats: tuple[str, ...]
            if spec.kind is ColumnKind.BOOLEAN:
                cats, other = ("false", "true"), 0
            elif spec.categories is not None:
                cats, other = tuple(spec.categories), 0
            else:
                cats, other = _top_categories(
                    pilot.category_counts.get(spec.name, {}), max_categories
                )
            empty = CategoricalColumnProfile.from_strings(
                pa.chunked_array([], pa.string()), kind=spec.kind.value, known=cats
            )
            columns[spec.name] = dataclasses.replace(empty, other_count=other)
        elif spec.kind is ColumnKind.DATETIME:
            columns[spec.name] = DatetimeColumnProfile.from_values(
                np.empty(0, dtype=np.int64), np.empty(0, dtype=bool), n_type_errors=0
            )
        elif spec.kind is ColumnKind.TEXT:
            # The vocabulary and descriptor bins of the pilot's sample of documents (those of
            # every document while the sample holds them all).
            texts = pa.chunked_array([], pa.string())
            if sample is not None and spec.name in sample.column_names:
                texts = sample.column(spec.name)
            columns[spec.name] = dataclasses.replace(
                TextColumnProfile.from_strings(texts, n_bins=n_bins),
                recount_held_out=holds_out_vocabulary(texts),
            )
        else:
            # The projection fitted on the pilot's vectors (those of every row while the
            # sample holds them all, and then exactly the projection of Profile.from_data).
            vectors = pa.chunked_array([], pa.list_(pa.float64()))
            if sample is not None and spec.name in sample.column_names:
                vectors = sample.column(spec.name)
            columns[spec.name] = EmbeddingColumnProfile.from_column(vectors)
    # Task and positive class of the per-group counts, inferred from the row sample (all rows
    # while the sample holds them) so that every batch counts the same classes.
    group_counts = None
    roles = (Role.SENSITIVE, Role.TARGET, Role.PREDICTION)
    needed = [n for r in roles for n in schema.with_role(r)]
    if sample is not None and all(n in sample.column_names for n in needed):
        group_counts = profile_group_counts(schema, sample, None)
    meta = {
        "sample_size": 0,
        "random_state": pilot.random_state,
        "n_bins": n_bins,
        "max_categories": max_categories,
        "with_reference": False,
    }
    return Profile(schema, 0, columns, None, meta, None, group_counts)


def finish_profile(
    merged: Profile, pilot: Pilot, skeleton: Profile, sample_size: int | None = None
) -> Profile:
    """Turn the merged second-pass profile into a profile without a reference: clear the
    fields that only mean something against a reference and attach the pilot's sample
    (none when ``sample_size`` is 0: the pilot sampled only to find the bins)."""
    from watchkeeper.data.profile import Profile

    columns: dict[str, Any] = {}
    for name, col in merged.columns.items():
        if isinstance(col, NumericColumnProfile):
            col = dataclasses.replace(
                col,
                n_below_reference_min=None,
                n_above_reference_max=None,
                out_of_range_examples=(),
                reference_range=None,
            )
        elif (
            isinstance(col, CategoricalColumnProfile)
            and col.kind == "categorical"
            and merged.schema[name].categories is None
        ):
            col = dataclasses.replace(col, unseen={}, n_unseen=None)
        elif isinstance(col, EmbeddingColumnProfile) and col.count >= 2 * MIN_SPLIT_ROWS:
            # As Profile.from_data: the stored sample is the first half at most, the rows the
            # projection was fitted on come after it.
            keep_rows = min(col.sample_size, col.count // 2)
            col = dataclasses.replace(
                col,
                sample=col.sample[:keep_rows],
                sample_priorities=col.sample_priorities[:keep_rows],
            )
        columns[name] = col
    keep = pilot.sample_size if sample_size is None else sample_size
    sample = pilot.sample
    if sample is not None:
        vectors = [n for n, c in merged.columns.items() if c.kind == "embedding"]
        sample = sample.drop_columns([n for n in vectors if n in sample.column_names])
        if sample.num_columns == 0:
            sample = None  # as Profile.from_data: no row sample without other columns
    meta = dict(merged.meta)
    meta.update(
        sample_size=keep,
        n_bins=skeleton.meta["n_bins"],
        max_categories=skeleton.meta["max_categories"],
        with_reference=False,
    )
    return Profile(
        merged.schema,
        merged.n_rows,
        columns,
        sample if keep else None,
        meta,
        pilot.priorities if keep and sample is not None else None,
        merged.group_counts,
    )


def profile_stream(
    batches: Callable[[], Iterable[Any]],
    schema: Schema,
    *,
    reference: Profile | None = None,
    n_bins: int,
    max_categories: int,
    sample_size: int,
    random_state: int,
    sketch: bool = True,
) -> Profile:
    """Profile batches one at a time and merge (two passes without a reference)."""
    from watchkeeper.data.profile import Profile

    def merged(ref: Profile, size: int) -> Profile | None:
        out: Profile | None = None
        for batch in batches():
            table = read_table(batch, allow_empty=True)
            if table.num_rows == 0:
                continue
            p = Profile.from_data(
                table,
                schema,
                reference=ref,
                n_bins=n_bins,
                max_categories=max_categories,
                sample_size=size,
                random_state=random_state,
                sketch=sketch,
            )
            out = p if out is None else out.merge(p)
        return out

    if reference is not None:
        out = merged(reference, sample_size)
        if out is None:
            return _empty(
                schema, reference, batches, n_bins, max_categories, sample_size, random_state
            )
        return out
    pilot: Pilot | None = None
    for batch in batches():
        table = read_table(batch, allow_empty=True)
        if table.num_rows == 0:
            continue
        p = Pilot.from_table(
            table, schema, sample_size=pilot_size(sample_size), random_state=random_state
        )
        pilot = p if pilot is None else pilot.merge(p)
    if pilot is None:
        return _empty(schema, None, batches, n_bins, max_categories, sample_size, random_state)
    skeleton = skeleton_reference(pilot, schema, n_bins=n_bins, max_categories=max_categories)
    second = merged(skeleton, 0)
    assert second is not None  # the pilot saw rows
    return finish_profile(second, pilot, skeleton, sample_size)


def _empty(
    schema: Schema,
    reference: Profile | None,
    batches: Callable[[], Iterable[Any]],
    n_bins: int,
    max_categories: int,
    sample_size: int,
    random_state: int,
) -> Profile:
    from watchkeeper.data.profile import Profile

    first = next(iter(batches()), None)
    if first is None:
        raise InputError("the data has no batches; pass at least one (it may be empty)")
    return Profile.from_data(
        read_table(first, allow_empty=True).slice(0, 0),
        schema,
        reference=reference,
        n_bins=n_bins,
        max_categories=max_categories,
        sample_size=sample_size,
        random_state=random_state,
    )
