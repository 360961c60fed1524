"""Profiles: one-pass, mergeable, serializable summaries of a batch of rows.

``Profile.from_data(a ++ b, reference=r)`` equals
``Profile.from_data(a, reference=r).merge(Profile.from_data(b, reference=r))``: exactly for
counts, histograms, min/max, category counts and the row sample; within float rounding for
moments; within the KLL rank error for quantiles; HLL distinct estimates agree to their error.
That is what lets windows, workers and partitions be profiled separately and combined.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from watchkeeper._extras import usable_cores
from watchkeeper._version import __version__
from watchkeeper.data._adapters import read_table
from watchkeeper.data._column_profiles import (
    CategoricalColumnProfile,
    DatetimeColumnProfile,
    TextColumnProfile,
)
from watchkeeper.data._contract import (
    RuleCount,
    counts_from_list,
    counts_to_list,
    merge_all_counts,
    merge_counts,
)
from watchkeeper.data._embedding_profile import EmbeddingColumnProfile
from watchkeeper.data._group_counts import GroupCounts, profile_group_counts
from watchkeeper.data._io import table_from_text, table_to_text
from watchkeeper.data._numeric_profile import NumericColumnProfile
from watchkeeper.data._profiling import COLUMN_CLASSES, ColumnProfile, profile_column
from watchkeeper.data._sketch import HLL_LG_K, KLL_K, bottom_k, row_priorities
from watchkeeper.data.schema import ColumnKind, ColumnSpec, Role, Schema
from watchkeeper.exceptions import InputError
from watchkeeper.stats import DEFAULT_BINS

__all__ = ["ColumnProfile", "Profile", "is_profile_path"]

_C = TypeVar(
    "_C",
    NumericColumnProfile,
    CategoricalColumnProfile,
    DatetimeColumnProfile,
    TextColumnProfile,
    EmbeddingColumnProfile,
)

#: Version of the JSON layout written by :meth:`Profile.to_dict`.
PROFILE_FORMAT_VERSION = 1

#: First bytes of a binary profile (:meth:`Profile.to_bytes`); a JSON profile starts with ``{``.
PROFILE_MAGIC = b"\x89WKPROF\n"
#: Version of the binary container written by :meth:`Profile.to_bytes`.
BINARY_FORMAT_VERSION = 1
#: Schema metadata key holding the JSON header of a binary profile.
_HEADER_KEY = b"watchkeeper.profile"
#: Column of the sample priorities in a binary profile's Arrow stream.
_PRIORITY_COLUMN = "__watchkeeper_priority__"
#: Arrow IPC body compression of binary profiles: lz4 decodes at several GB/s, so a load
#: costs little more than reading the file.
_BINARY_COMPRESSION = "lz4"


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True, eq=False)
class Profile:
    """Mergeable summary of a batch of rows.

    Build with :meth:`from_data`, combine with :meth:`merge`, store with :meth:`save`.

    Attributes
    ----------
    schema
        The schema the data was profiled with (columns with role ``ignored`` are skipped).
    n_rows
        Rows profiled.
    columns
        Column profile by name: :class:`NumericColumnProfile`,
        :class:`CategoricalColumnProfile` (categorical and boolean columns),
        :class:`DatetimeColumnProfile`, :class:`TextColumnProfile` or
        :class:`EmbeddingColumnProfile`.
    sample
        A uniform random sample of at most ``meta["sample_size"]`` rows (all profiled
        columns, in canonical types: numbers as float64, categories and text as strings,
        booleans as ``"true"``/``"false"``, datetimes as UTC ``timestamp[ns]``; embedding
        columns are left out: their column profiles keep projected vectors), or ``None``.
        Mergeable bottom-k sample by seeded row-content hash; identical rows share a priority,
        so duplicates are sampled together (see :mod:`watchkeeper.data._sketch`).
    meta
        ``created`` (UTC ISO time), ``watchkeeper_version``, ``sample_size``,
        ``random_state``, ``n_bins``, ``max_categories``, ``kll_k``, ``hll_lg_k`` and
        ``with_reference``.
    sample_priorities
        The bottom-k priority of each sample row (what :meth:`merge` combines samples by).
    group_counts
        Confusion counts (classifiers) or error sums (regressors) per cell of the sensitive
        attributes, kept when the schema declares sensitive attributes, one target and one
        prediction column (see :class:`~watchkeeper.data.GroupCounts`); ``None`` otherwise.
    contract_counts
        Violations of the schema's contract rules that need rows (by rule key), counted
        when the schema carries a contract, so that merged profiles decide them (see
        :mod:`watchkeeper.data._contract`); ``None`` otherwise.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=1000), "c": rng.choice(["a", "b"], 1000)})
    >>> reference = Profile.from_data(ref, sample_size=100)
    >>> reference.n_rows, reference.columns["c"].categories, reference.sample.num_rows
    (1000, ('b', 'a'), 100)
    >>> cur = pd.DataFrame({"x": rng.normal(1, 1, size=500), "c": ["a"] * 500})
    >>> a = Profile.from_data(cur[:200], reference.schema, reference=reference)
    >>> b = Profile.from_data(cur[200:], reference.schema, reference=reference)
    >>> whole = Profile.from_data(cur, reference.schema, reference=reference)
    >>> a.merge(b).columns["x"].bin_counts == whole.columns["x"].bin_counts
    True
    """

    schema: Schema
    n_rows: int
    columns: Mapping[str, ColumnProfile]
    sample: pa.Table | None
    meta: Mapping[str, Any]
    sample_priorities: NDArray[np.uint64] | None = field(default=None, repr=False)
    group_counts: GroupCounts | None = field(default=None, repr=False)
    contract_counts: Mapping[str, RuleCount] | None = field(default=None, repr=False)
    _sorted: dict[str, NDArray[np.float64]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def __repr__(self) -> str:
        n_sample = 0 if self.sample is None else self.sample.num_rows
        return (
            f"Profile(n_rows={self.n_rows}, columns={list(self.columns)}, sample_rows={n_sample})"
        )

    @classmethod
    def from_data(
        cls,
        data: Any,
        schema: Schema | None = None,
        *,
        reference: Profile | None = None,
        n_bins: int = DEFAULT_BINS,
        max_categories: int = 50,
        sample_size: int = 100_000,
        random_state: int = 0,
        sketch: bool = True,
        n_jobs: int | None = None,
        row_order: bool = True,
    ) -> Profile:
        """Profile data in one pass.

        Parameters
        ----------
        data
            Anything :func:`read_table` accepts; may have no rows.
        schema
            Columns to profile; default: the reference's schema, or inferred from ``data``.
            The data may have more columns (they are ignored), not fewer: use
            ``schema.select(...)`` to profile a subset.
        reference
            Profile of the reference data. Histogram bins, categories and the range used for
            out-of-range counts come from it, so the two profiles can be compared bin by bin
            and profiles made against it merge. Without it this data is the reference: bins
            are its ``n_bins`` quantile bins and categories its ``max_categories`` most
            frequent values.
        n_bins, max_categories
            Used without a reference (the reference's bins win).
        sample_size
            Rows kept in :attr:`sample`; 0 disables the sample.
        random_state
            Seed of the row sample; profiles merge their samples only with the same seed.
        sketch
            Keep a quantile sketch per numeric column (``False`` for throwaway profiles
            whose quantiles are never asked for: faster, and ``quantile()`` refuses).
        n_jobs
            Threads profiling columns in parallel (default: the cores this process may use,
            CPU affinity and container quota, at most 8; results do not depend on it);
            numpy releases the GIL in the heavy steps.
        row_order
            Whether the rows come in a meaningful order: ``False`` (engines whose partitions
            have no order, such as Spark) leaves the contract's row-order rules
            (``monotone``) uncounted.

        Raises
        ------
        InputError
            Unreadable data, schema columns missing from the data, columns missing from the
            reference or of another kind there, bad parameters.

        Examples
        --------
        >>> import pandas as pd
        >>> p = Profile.from_data(pd.DataFrame({"x": [1.0, 2.0, float("inf"), None]}))
        >>> col = p.columns["x"]
        >>> col.count, col.n_inf, col.n_missing, col.mean
        (2, 1, 1, 1.5)
        """
        n_bins = _check_int("n_bins", n_bins, 2)
        max_categories = _check_int("max_categories", max_categories, 1)
        sample_size = _check_int("sample_size", sample_size, 0)
        random_state = _check_int("random_state", random_state, 0)
        table = read_table(data, allow_empty=True)
        if reference is not None and not isinstance(reference, Profile):
            raise InputError(f"reference must be a Profile, got {type(reference).__name__}")
        if schema is None:
            schema = (
                reference.schema if reference is not None
                else Schema.infer(table, max_categories=max_categories)
            )  # fmt: skip
        specs = [s for s in schema if s.role is not Role.IGNORED]
        missing = [s.name for s in specs if s.name not in table.column_names]
        if missing:
            raise InputError(
                f"the data lacks columns {missing} of the schema; pass "
                "schema.select([...]) to profile only the columns present"
            )
        if reference is not None:
            _check_reference(specs, reference)
            n_bins = int(reference.meta["n_bins"])

        def one(spec: ColumnSpec) -> tuple[ColumnProfile, pa.ChunkedArray | None]:
            ref_col = reference.columns[spec.name] if reference is not None else None
            col, values = profile_column(
                spec,
                table.column(spec.name),
                ref_col,
                n_bins=n_bins,
                max_categories=max_categories,
                sketch=sketch,
            )
            # The canonical values only feed the row sample: without one, drop them now
            # rather than hold a converted copy of every column until the end.
            return col, values if sample_size else None

        workers = min(n_jobs or usable_cores(), 8, max(len(specs), 1))
        if workers > 1 and table.num_rows >= 50_000:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(one, specs))
        else:
            results = [one(spec) for spec in specs]
        columns: dict[str, ColumnProfile] = {}
        canonical: dict[str, pa.ChunkedArray] = {}
        for spec, (col, values) in zip(specs, results, strict=True):
            columns[spec.name] = col
            if values is not None:
                canonical[spec.name] = values
        sample, priorities = None, None
        if sample_size and canonical:
            all_priorities = row_priorities(canonical, table.num_rows, random_state)
            take = bottom_k(all_priorities, sample_size)
            priorities = all_priorities[take]
            sample = pa.table({n: c.take(take) for n, c in canonical.items()})
        group_counts = profile_group_counts(
            schema, table, None if reference is None else reference.group_counts
        )
        contract_counts = (
            schema.contract.count(table, row_order=row_order)
            if schema.contract is not None and schema.contract.rules
            else None
        )  # fmt: skip
        meta = {
            "created": _now(),
            "watchkeeper_version": __version__,
            "sample_size": sample_size,
            "random_state": random_state,
            "n_bins": n_bins,
            "max_categories": max_categories,
            "kll_k": KLL_K,
            "hll_lg_k": HLL_LG_K,
            "with_reference": reference is not None,
        }
        return cls(
            schema, table.num_rows, columns, sample, meta, priorities, group_counts,
            contract_counts,
        )  # fmt: skip

    @classmethod
    def from_batches(
        cls,
        batches: Callable[[], Iterable[Any]] | Sequence[Any],
        schema: Schema,
        *,
        reference: Profile | None = None,
        n_bins: int = DEFAULT_BINS,
        max_categories: int = 50,
        sample_size: int = 100_000,
        random_state: int = 0,
        sketch: bool = True,
    ) -> Profile:
        """Profile data batch by batch in memory bounded by one batch.

        With ``reference`` each batch is profiled on its bins and merged (one pass). Without
        it the batches are read twice: a first pass finds the bins (quantiles of the row
        sample: those of all rows while the sample holds every row) and the most frequent
        categories, a second one counts (see :mod:`watchkeeper.data.streaming`).

        Parameters
        ----------
        batches
            A function returning a fresh iterable of batches (anything :func:`read_table`
            accepts), or a sequence of batches.
        schema
            Columns to profile (required: inferring it would need all the data).
        reference, n_bins, max_categories, sample_size, random_state, sketch
            As in :meth:`from_data`.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from watchkeeper.data import Schema
        >>> df = pd.DataFrame({"x": np.arange(1000.0), "c": ["a", "b"] * 500})
        >>> parts = [df[:300], df[300:]]
        >>> p = Profile.from_batches(parts, Schema.infer(df))
        >>> whole = Profile.from_data(df)
        >>> p.columns["x"].bin_counts == whole.columns["x"].bin_counts, p.n_rows
        (True, 1000)
        """
        from watchkeeper.data.streaming import profile_stream

        if not isinstance(schema, Schema):
            raise InputError(f"schema must be a Schema, got {type(schema).__name__}")
        if callable(batches):
            source = batches
        elif isinstance(batches, Sequence):
            items = list(batches)

            def source() -> Iterable[Any]:
                return items
        else:
            raise InputError(
                "batches must be a sequence of batches or a function returning an iterable of "
                "them (a one-shot iterator cannot be read twice)"
            )
        return profile_stream(
            source,
            schema,
            reference=reference,
            n_bins=_check_int("n_bins", n_bins, 2),
            max_categories=_check_int("max_categories", max_categories, 1),
            sample_size=_check_int("sample_size", sample_size, 0),
            random_state=_check_int("random_state", random_state, 0),
            sketch=sketch,
        )

    @classmethod
    def from_parquet(
        cls,
        path: str | os.PathLike[str],
        schema: Schema | None = None,
        *,
        reference: Profile | None = None,
        batch_rows: int = 1_000_000,
        **options: Any,
    ) -> Profile:
        """Profile a Parquet file row group by row group, in memory bounded by one batch.

        Parameters
        ----------
        path
            A Parquet file.
        schema
            Columns to profile; default: the reference's schema, else inferred from the first
            batch (declare it when the first rows are not representative).
        reference
            As in :meth:`from_data`.
        batch_rows
            Rows read at a time.
        **options
            ``n_bins``, ``max_categories``, ``sample_size``, ``random_state``, ``sketch``.

        Examples
        --------
        >>> import numpy as np, pyarrow as pa, pyarrow.parquet as pq, tempfile, pathlib
        >>> table = pa.table({"x": np.arange(10_000.0)})
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = pathlib.Path(d) / "x.parquet"
        ...     pq.write_table(table, path, row_group_size=3_000)
        ...     p = Profile.from_parquet(path, batch_rows=2_500)
        >>> p.n_rows, p.columns["x"].mean, p.columns["x"].bin_edges[:2]
        (10000, 4999.5, (999.9, 1999.8))
        """
        from watchkeeper.data.streaming import iter_parquet

        batch_rows = _check_int("batch_rows", batch_rows, 1)
        if schema is None:
            if reference is not None:
                schema = reference.schema
            else:
                first = next(iter_parquet(path, batch_rows=min(batch_rows, 100_000)), None)
                if first is None:
                    raise InputError(f"{str(path)!r} has no rows; pass a schema to profile it")
                schema = Schema.infer(first, max_categories=int(options.get("max_categories", 50)))
        wanted = [s.name for s in schema]
        names = _parquet_columns(path)
        missing = [n for n in wanted if n not in names and schema[n].role is not Role.IGNORED]
        if missing:
            raise InputError(
                f"{str(path)!r} lacks columns {missing} of the schema; pass "
                "schema.select([...]) to profile only the columns present"
            )
        columns = [n for n in wanted if n in names]
        return cls.from_batches(
            lambda: iter_parquet(path, columns, batch_rows), schema, reference=reference, **options
        )

    # -- reading ---------------------------------------------------------------------------

    def sample_values(self, column: str) -> NDArray[np.float64]:
        """Finite values of a numeric column in the row sample, sorted (cached, read-only).

        Exact tests such as KS reuse one sorted reference for every comparison.

        Examples
        --------
        >>> import pandas as pd
        >>> p = Profile.from_data(pd.DataFrame({"x": [3.0, None, 1.0, 2.0]}))
        >>> p.sample_values("x")
        array([1., 2., 3.])
        """
        if column not in self._sorted:
            spec = self.schema[column]
            if spec.kind is not ColumnKind.NUMERIC:
                raise InputError(f"column {column!r} is {spec.kind.value}, not numeric")
            if self.sample is None or column not in self.sample.column_names:
                raise InputError(
                    f"the profile has no row sample of {column!r} (made with sample_size=0 or "
                    "the column is ignored); profile again with sample_size > 0"
                )
            values = np.asarray(self.sample.column(column).to_numpy(), dtype=np.float64)
            values = np.sort(values[np.isfinite(values)])
            values.flags.writeable = False
            self._sorted[column] = values
        return self._sorted[column]

    def numeric(self, column: str) -> NumericColumnProfile:
        """The profile of a numeric column (typed access; InputError for other kinds).

        Examples
        --------
        >>> import pandas as pd
        >>> Profile.from_data(pd.DataFrame({"x": [1.0, 3.0]})).numeric("x").mean
        2.0
        """
        return self._typed(column, NumericColumnProfile)

    def categorical(self, column: str) -> CategoricalColumnProfile:
        """The profile of a categorical or boolean column (typed access)."""
        return self._typed(column, CategoricalColumnProfile)

    def datetime(self, column: str) -> DatetimeColumnProfile:
        """The profile of a datetime column (typed access)."""
        return self._typed(column, DatetimeColumnProfile)

    def text(self, column: str) -> TextColumnProfile:
        """The profile of a text column (typed access)."""
        return self._typed(column, TextColumnProfile)

    def embedding(self, column: str) -> EmbeddingColumnProfile:
        """The profile of an embedding column (typed access)."""
        return self._typed(column, EmbeddingColumnProfile)

    def _typed(self, column: str, cls: type[_C]) -> _C:
        if column not in self.columns:
            raise InputError(
                f"column {column!r} is not in the profile; its columns are: "
                f"{', '.join(self.columns)}"
            )
        col = self.columns[column]
        if not isinstance(col, cls):
            raise InputError(f"column {column!r} is {col.kind}, not {cls.__name__}")
        return col

    # -- merging ---------------------------------------------------------------------------

    def merge(self, other: Profile) -> Profile:
        """Profile of both batches (a new object; associative and commutative).

        Raises
        ------
        InputError
            The profiles have different columns or kinds, different bins or categories (make
            both with the same ``reference=``), or samples drawn with different seeds.
        """
        if not isinstance(other, Profile):
            raise InputError(f"can only merge a Profile with a Profile, not {type(other).__name__}")
        mine = {n: c.kind for n, c in self.columns.items()}
        theirs = {n: c.kind for n, c in other.columns.items()}
        if mine != theirs:
            diff = sorted(set(mine.items()) ^ set(theirs.items()))
            raise InputError(
                f"the profiles have different columns or kinds ({diff}); profile both "
                "batches with the same schema"
            )
        columns: dict[str, ColumnProfile] = {}
        for name, col in self.columns.items():
            try:
                columns[name] = col.merge(other.columns[name])  # type: ignore[arg-type]
            except InputError as exc:
                raise InputError(f"cannot merge column {name!r}: {exc}") from None
        sample, priorities, k = self._merged_sample(other)
        meta = dict(self.meta)
        meta.update(
            created=_now(),
            sample_size=k,
            with_reference=bool(self.meta["with_reference"] and other.meta["with_reference"]),
        )
        return Profile(
            self.schema,
            self.n_rows + other.n_rows,
            columns,
            sample,
            meta,
            priorities,
            _merged_group_counts(self.group_counts, other.group_counts),
            merge_counts(self.contract_counts, other.contract_counts),
        )

    @classmethod
    def merge_all(cls, profiles: Iterable[Profile]) -> Profile:
        """Profile of all batches in one pass: the same result as chaining :meth:`merge`
        over ``profiles`` (exact for counts, histograms, min/max, category and group counts
        and the row sample; moments within float rounding, and independent of the order),
        at a fraction of its cost: counts and bins are summed with numpy, moments combined
        in one step, each sketch merged once and the row samples' bottom-k taken once.

        Parameters
        ----------
        profiles
            One or more profiles made with the same schema and ``reference=`` (e.g. the
            hourly profiles of a week).

        Raises
        ------
        InputError
            No profiles, or profiles that do not merge (see :meth:`merge`).

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> df = pd.DataFrame({"x": rng.normal(size=1200), "c": rng.choice(["a", "b"], 1200)})
        >>> ref = Profile.from_data(df, sample_size=100)
        >>> hours = [Profile.from_data(df[i : i + 50], reference=ref, sample_size=100)
        ...          for i in range(0, 1200, 50)]
        >>> week = Profile.merge_all(hours)
        >>> whole = Profile.from_data(df, reference=ref, sample_size=100)
        >>> week.n_rows, week.columns["x"].bin_counts == whole.columns["x"].bin_counts
        (1200, True)
        >>> week.sample.equals(whole.sample)
        True
        >>> bool(np.isclose(week.columns["x"].m2, whole.columns["x"].m2, rtol=1e-12))
        True
        """
        parts = list(profiles)
        if not parts:
            raise InputError("merge_all needs at least one profile")
        for p in parts:
            if not isinstance(p, Profile):
                raise InputError(f"can only merge Profiles, not {type(p).__name__}")
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        kinds = {n: c.kind for n, c in first.columns.items()}
        for other in parts[1:]:
            if {n: c.kind for n, c in other.columns.items()} != kinds:
                first.merge(other)  # raises the pairwise error naming the difference
        columns: dict[str, ColumnProfile] = {}
        for name, col in first.columns.items():
            try:
                same: list[Any] = [p.columns[name] for p in parts]
                columns[name] = type(col).merge_all(same)
            except InputError as exc:
                raise InputError(f"cannot merge column {name!r}: {exc}") from None
        sample, priorities, k = _merged_samples(parts)
        groups = [p.group_counts for p in parts]
        if all(g is None for g in groups):
            group_counts = None
        elif any(g is None for g in groups):
            group_counts = _merged_group_counts(None, groups[0] or groups[-1])
        else:
            group_counts = GroupCounts.merge_all(groups)  # type: ignore[arg-type]
        meta = dict(first.meta)
        meta.update(
            created=_now(),
            sample_size=k,
            with_reference=all(bool(p.meta["with_reference"]) for p in parts),
        )
        return cls(
            first.schema,
            sum(p.n_rows for p in parts),
            columns,
            sample,
            meta,
            priorities,
            group_counts,
            merge_all_counts([p.contract_counts for p in parts]),
        )

    def rebased(self, reference: Profile) -> Profile:
        """This profile counted on ``reference``'s bins and categories, so that it merges with
        (and compares against) profiles made with ``reference=reference``.

        Exact when the row sample holds every profiled row (windows up to ``sample_size``
        rows): the rows are profiled again from the sample (values that were not readable as
        their column's kind are then counted as missing).

        Raises
        ------
        InputError
            The sample does not hold every row: profile the data again with
            ``reference=reference``.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> ref = Profile.from_data(pd.DataFrame({"x": rng.normal(size=500)}))
        >>> alone = Profile.from_data(pd.DataFrame({"x": rng.normal(size=300)}))  # own bins
        >>> both = alone.rebased(ref).merge(
        ...     Profile.from_data(pd.DataFrame({"x": rng.normal(size=200)}), reference=ref))
        >>> both.n_rows, both.columns["x"].bin_edges == ref.columns["x"].bin_edges
        (500, True)
        """
        if self.sample is None or self.sample.num_rows < self.n_rows:
            kept = 0 if self.sample is None else self.sample.num_rows
            raise InputError(
                f"the profile keeps {kept:,} of its {self.n_rows:,} rows, so it cannot be "
                "counted again on other bins; profile the data again with reference= the "
                "profile every batch must match"
            )
        vectors = [n for n, c in self.columns.items() if c.kind == "embedding"]
        if vectors:
            raise InputError(
                f"embedding columns {vectors[:5]} keep projected vectors, not rows, so they "
                "cannot be counted again on another reference; profile the data again with "
                "reference= the profile every batch must match"
            )
        names = [n for n in self.columns if n in reference.columns]
        missing = [n for n in self.columns if n not in reference.columns]
        if missing:
            raise InputError(
                f"columns {missing[:5]} are not in the reference profile; select the shared "
                "columns first"
            )
        again = Profile.from_data(
            self.sample.select(names),
            reference.schema.select(names),
            reference=reference,
            sample_size=int(self.meta["sample_size"]),
            random_state=int(self.meta["random_state"]),
            n_jobs=1,
        )
        # Rule counts do not depend on bins, and the sample is not in row order (which
        # monotone rules need): keep the counts made from the rows, for the rules both have.
        mine = self.contract_counts or {}
        kept = {k: c for k, c in mine.items() if k in (again.contract_counts or {})}
        return replace(again, contract_counts=kept if again.contract_counts is not None else None)

    def _merged_sample(
        self, other: Profile
    ) -> tuple[pa.Table | None, NDArray[np.uint64] | None, int]:
        k = min(int(self.meta["sample_size"]), int(other.meta["sample_size"]))
        if k == 0 or self.sample is None or other.sample is None:
            return None, None, 0
        if self.meta["random_state"] != other.meta["random_state"]:
            raise InputError(
                "the profiles' samples were drawn with different random_state "
                f"({self.meta['random_state']} and {other.meta['random_state']}); profile "
                "every batch with the same random_state (or sample_size=0)"
            )
        assert self.sample_priorities is not None
        assert other.sample_priorities is not None
        names = self.sample.column_names
        both = pa.concat_tables([self.sample, other.sample.select(names)])
        priorities = np.concatenate([self.sample_priorities, other.sample_priorities])
        take = bottom_k(priorities, k)
        return both.take(take), priorities[take], k

    # -- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form: sketches as base64, the sample as base64 Arrow IPC (zstd).

        Group counts, when kept, are under ``"group_counts"``.

        Examples
        --------
        >>> import pandas as pd
        >>> p = Profile.from_data(pd.DataFrame({"c": ["a", "b", "a"]}))
        >>> q = Profile.from_dict(p.to_dict())
        >>> q.columns["c"] == p.columns["c"], q.sample.equals(p.sample)
        (True, True)
        """
        out = self.to_dict_header()
        out["sample"] = None if self.sample is None else table_to_text(self.sample)
        return out

    def to_dict_header(self) -> dict[str, Any]:
        """:meth:`to_dict` without the row sample (what the binary layout's header holds)."""
        out = {
            "format_version": PROFILE_FORMAT_VERSION,
            "meta": dict(self.meta),
            "schema": self.schema.to_dict(),
            "n_rows": self.n_rows,
            "columns": {n: c.to_dict() for n, c in self.columns.items()},
        }
        if self.group_counts is not None:
            out["group_counts"] = self.group_counts.to_dict()
        if self.contract_counts is not None:
            out["contract_counts"] = counts_to_list(self.contract_counts)
        return out

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Profile:
        """Rebuild a profile from :meth:`to_dict` output.

        Raises
        ------
        InputError
            A newer or unknown format version, or a damaged payload.
        """
        try:
            sample = None
            priorities = None
            if isinstance(payload, Mapping) and payload.get("sample") is not None:
                _check_version(payload)
                sample = table_from_text(payload["sample"])
                canonical = {n: sample.column(n) for n in sample.column_names}
                seed = int(payload["meta"]["random_state"])
                priorities = row_priorities(canonical, sample.num_rows, seed)
        except InputError:
            raise
        except (LookupError, TypeError, ValueError, AttributeError, pa.ArrowException) as exc:
            raise InputError(f"the profile is damaged and cannot be read: {exc!r}") from exc
        return cls._from_header(payload, sample, priorities)

    @classmethod
    def _from_header(
        cls,
        payload: Mapping[str, Any],
        sample: pa.Table | None,
        priorities: NDArray[np.uint64] | None,
    ) -> Profile:
        _check_version(payload)
        try:
            schema = Schema.from_dict(payload["schema"])
            columns = {
                name: COLUMN_CLASSES[d["kind"]].from_dict(d)
                for name, d in payload["columns"].items()
            }
            meta = dict(payload["meta"])
            groups = payload.get("group_counts")
            group_counts = None if groups is None else GroupCounts.from_dict(groups)
            rule_counts = payload.get("contract_counts")
            return cls(
                schema, int(payload["n_rows"]), columns, sample, meta, priorities, group_counts,
                None if rule_counts is None else counts_from_list(rule_counts),
            )  # fmt: skip
        except InputError:
            raise
        except (
            LookupError,  # IndexError from a truncated sketch
            TypeError,
            ValueError,
            AttributeError,
            RuntimeError,
            pa.ArrowException,
        ) as exc:
            raise InputError(f"the profile is damaged and cannot be read: {exc!r}") from exc

    def to_bytes(self) -> bytes:
        """Binary form: loads in milliseconds where the JSON form takes a large parse.

        Layout: :data:`PROFILE_MAGIC`, the container version (4 bytes, little-endian), then
        one Arrow IPC stream (lz4-compressed buffers) whose record batch is the row sample
        plus its priorities, and whose schema metadata holds a small JSON header: the
        :meth:`to_dict` form without the sample (counts, bins, categories, sketches).

        Examples
        --------
        >>> import pandas as pd
        >>> p = Profile.from_data(pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
        >>> blob = p.to_bytes()
        >>> blob[:8] == PROFILE_MAGIC
        True
        >>> q = Profile.from_bytes(blob)
        >>> q.columns == p.columns, q.sample.equals(p.sample)
        (True, True)
        """
        header = self.to_dict_header()
        header["sample"] = self.sample is not None
        if self.sample is None:
            table = pa.table({})
        else:
            assert self.sample_priorities is not None
            table = self.sample.append_column(
                _PRIORITY_COLUMN, pa.array(self.sample_priorities, type=pa.uint64())
            )
        text = json.dumps(header, separators=(",", ":"), allow_nan=False)
        table = table.replace_schema_metadata({_HEADER_KEY: text.encode("utf-8")})
        sink = pa.BufferOutputStream()
        sink.write(PROFILE_MAGIC + BINARY_FORMAT_VERSION.to_bytes(4, "little"))
        options = pa.ipc.IpcWriteOptions(compression=_BINARY_COMPRESSION)
        with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
            if table.num_columns:
                writer.write_table(table)
        return bytes(sink.getvalue())

    @classmethod
    def from_bytes(cls, data: bytes | memoryview | pa.Buffer) -> Profile:
        """Rebuild a profile from :meth:`to_bytes` output (or, when ``data`` starts with
        ``{``, from the UTF-8 JSON of :meth:`to_dict`).

        Raises
        ------
        InputError
            Not a profile, a newer container or layout version (upgrade watchkeeper), or a
            damaged payload.
        """
        buffer = pa.py_buffer(data) if not isinstance(data, pa.Buffer) else data
        head = buffer[: len(PROFILE_MAGIC)].to_pybytes()
        if head != PROFILE_MAGIC:
            if head[:1].lstrip() in (b"{", b""):
                try:
                    payload = json.loads(buffer.to_pybytes().decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise InputError(f"the profile is not valid JSON (corrupted?): {exc}") from exc
                return cls.from_dict(payload)
            raise InputError(
                "not a watchkeeper profile (neither the binary layout nor JSON); pass a file "
                "written by Profile.save"
            )
        start = len(PROFILE_MAGIC) + 4
        if buffer.size < start:
            raise InputError("the binary profile is truncated; save it again")
        version = int.from_bytes(buffer[len(PROFILE_MAGIC) : start].to_pybytes(), "little")
        if version > BINARY_FORMAT_VERSION or version < 1:
            raise InputError(
                f"binary profile format version {version} is not supported by this "
                f"watchkeeper {__version__} (which reads up to {BINARY_FORMAT_VERSION}); "
                "upgrade watchkeeper"
            )
        try:
            with pa.ipc.open_stream(pa.BufferReader(buffer[start:])) as reader:
                table = reader.read_all()
            metadata = table.schema.metadata or {}
            if _HEADER_KEY not in metadata:
                raise InputError("the binary profile has no header; save it again")
            header = json.loads(metadata[_HEADER_KEY].decode("utf-8"))
            has_sample = header.pop("sample", False) is True
            priorities = None
            sample = None
            if has_sample:
                priorities = np.asarray(table.column(_PRIORITY_COLUMN).to_numpy(), dtype=np.uint64)
                sample = table.drop_columns([_PRIORITY_COLUMN]).replace_schema_metadata(None)
        except InputError:
            raise
        except (KeyError, ValueError, UnicodeDecodeError, pa.ArrowException) as exc:
            raise InputError(f"the binary profile is damaged and cannot be read: {exc!r}") from exc
        return cls._from_header(header, sample, priorities)

    def save(self, path: str | os.PathLike[str], *, format: str | None = None) -> Path:
        """Write the profile to one file (atomically) and return its path.

        ``format="binary"`` (see :meth:`to_bytes`) loads in milliseconds; ``format="json"``
        writes the :meth:`to_dict` form for tools that read JSON. By default the name
        decides: JSON for a ``.json`` file, binary for any other (``.wkp`` is the
        convention), so a file never holds what its name says it does not. :meth:`load`
        tells them apart by their first bytes, whatever the file is named.
        """
        from watchkeeper.data._io import write_bytes_atomic, write_json_atomic

        if format is None:
            format = "json" if Path(path).suffix.lower() == ".json" else "binary"
        if format == "json":
            return write_json_atomic(Path(path), self.to_dict())
        if format != "binary":
            raise InputError(f"format must be 'binary' or 'json', got {format!r}")
        return write_bytes_atomic(Path(path), self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Profile:
        """Read a profile written by :meth:`save`, binary or JSON (told apart by content).

        Examples
        --------
        >>> import pandas as pd, tempfile, pathlib
        >>> p = Profile.from_data(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     q = Profile.load(p.save(pathlib.Path(d) / "profile.wkp"))
        ...     r = Profile.load(p.save(pathlib.Path(d) / "profile.json", format="json"))
        >>> q.n_rows, q.columns["x"] == p.columns["x"] == r.columns["x"]
        (3, True)
        """
        from watchkeeper.data._io import read_json

        path = Path(path)
        if not path.is_file():
            raise InputError(f"profile file {str(path)!r} does not exist; check the path")
        with path.open("rb") as fh:
            head = fh.read(len(PROFILE_MAGIC))
        if head == PROFILE_MAGIC:
            try:
                return cls.from_bytes(path.read_bytes())
            except InputError as exc:
                raise InputError(f"profile file {str(path)!r}: {exc}") from None
        return cls.from_dict(read_json(path, "profile"))


def _check_version(payload: Any) -> None:
    version = payload.get("format_version") if isinstance(payload, Mapping) else None
    if not isinstance(version, int):
        raise InputError("not a watchkeeper profile (no format_version)")
    if version > PROFILE_FORMAT_VERSION or version < 1:
        raise InputError(
            f"profile format version {version} is not supported by this watchkeeper "
            f"{__version__} (which reads up to {PROFILE_FORMAT_VERSION}); upgrade watchkeeper"
        )


def _parquet_columns(path: str | os.PathLike[str]) -> list[str]:
    from watchkeeper.data.streaming import parquet_schema_table

    return list(parquet_schema_table(path).column_names)


def _check_reference(specs: list[ColumnSpec], reference: Profile) -> None:
    absent = [s.name for s in specs if s.name not in reference.columns]
    if absent:
        raise InputError(
            f"columns {absent} are not in the reference profile; profile only columns the "
            "reference has (schema.select)"
        )
    for s in specs:
        ref_kind = reference.columns[s.name].kind
        if ref_kind != s.kind.value:
            raise InputError(
                f"column {s.name!r} is {s.kind.value} in the schema but {ref_kind} in the "
                "reference profile; use the reference's schema"
            )


def _merged_samples(
    parts: list[Profile],
) -> tuple[pa.Table | None, NDArray[np.uint64] | None, int]:
    """The bottom-k of the union of every part's row sample (as the pairwise chain)."""
    k = min(int(p.meta["sample_size"]) for p in parts)
    if k == 0 or any(p.sample is None for p in parts):
        return None, None, 0
    seeds = {p.meta["random_state"] for p in parts}
    if len(seeds) > 1:
        a, b = sorted(seeds)[:2]
        raise InputError(
            f"the profiles' samples were drawn with different random_state ({a} and {b}); "
            "profile every batch with the same random_state (or sample_size=0)"
        )
    names = parts[0].sample.column_names  # type: ignore[union-attr]
    both = pa.concat_tables([p.sample.select(names) for p in parts])  # type: ignore[union-attr]
    priorities = np.concatenate([p.sample_priorities for p in parts])
    take = bottom_k(priorities, k)
    return both.take(take), priorities[take], k


def _merged_group_counts(a: GroupCounts | None, b: GroupCounts | None) -> GroupCounts | None:
    if a is None and b is None:
        return None
    if a is None or b is None:
        raise InputError(
            "only one of the profiles has per-group counts; profile both batches with the same "
            "schema and reference= so that both count the sensitive groups"
        )
    return a.merge(b)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def is_profile_path(path: Any) -> bool:
    """Whether ``path`` names a saved profile rather than data: a ``.json`` or ``.wkp``
    name, or a file starting with the binary profile's magic bytes (whatever its name).

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     saved = Profile.from_data(pd.DataFrame({"x": [1.0]})).save(pathlib.Path(d) / "ref")
    ...     is_profile_path(saved), is_profile_path(pathlib.Path(d) / "data.parquet")
    (True, False)
    """
    if not isinstance(path, str | os.PathLike):
        return False
    p = Path(path)
    if p.suffix.lower() in (".json", ".wkp"):
        return True
    try:
        with p.open("rb") as fh:
            return fh.read(len(PROFILE_MAGIC)) == PROFILE_MAGIC
    except OSError:
        return False
