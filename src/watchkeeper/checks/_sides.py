"""The two sides of a comparison: what checks need from the reference and the current data.

The reference is raw data or a saved :class:`~watchkeeper.data.Profile`. Exact tests need
values: from raw data they use every row; from a profile they use the profile's uniform row
sample, which keeps the test exact and valid (a two-sample test on a random subsample of the
reference) at the price of some power. Binned and categorical methods need only counts, which a
profile holds for every row, so they are exact either way. :meth:`ReferenceSide.source` says
which was used, and the report repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import pyarrow as pa

    from watchkeeper.data import Profile, Schema

__all__ = ["CurrentSide", "ReferenceSide"]


def _finite_sorted(values: NDArray[np.float64]) -> NDArray[np.float64]:
    v = values[np.isfinite(values)]
    v.sort()
    return v


@dataclass
class ReferenceSide:
    """Reference values and counts for the checks (built once, reused for every column)."""

    profile: Profile
    table: pa.Table | None = None
    _sorted: dict[str, NDArray[np.float64]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_data(cls, data: Any, schema: Schema, **profile_options: Any) -> ReferenceSide:
        from watchkeeper.data import Profile, read_table

        table = read_table(data)
        # The raw rows are at hand, so the profile needs no row sample of its own.
        profile_options.setdefault("sample_size", 0)
        profile = Profile.from_data(table, schema, **profile_options)
        return cls(profile=profile, table=table)

    @classmethod
    def from_profile(cls, profile: Profile) -> ReferenceSide:
        return cls(profile=profile, table=None)

    @property
    def schema(self) -> Schema:
        return self.profile.schema

    @property
    def n_rows(self) -> int:
        return int(self.profile.n_rows)

    @property
    def rows_for_values(self) -> pa.Table | None:
        """Rows that exact tests and multivariate methods use (all rows, or the sample)."""
        return self.table if self.table is not None else self.profile.sample

    def sorted_values(self, column: str) -> NDArray[np.float64]:
        """Sorted finite values of a numeric column (all rows, or the profile's sample)."""
        if self.table is None:
            return self.profile.sample_values(column)  # sorted and cached by the profile
        if column not in self._sorted:
            from watchkeeper.data import column_to_numpy

            values = np.asarray(column_to_numpy(self.table, column, "numeric"), dtype=np.float64)
            self._sorted[column] = _finite_sorted(values)
        return self._sorted[column]

    def source(self, *, binned: bool) -> str:
        """Where the reference numbers of a test come from, in words."""
        if self.table is not None:
            return f"reference data ({self.n_rows:,} rows)"
        if binned:
            return f"reference profile counts ({self.n_rows:,} rows)"
        sample = self.profile.sample
        n = 0 if sample is None else sample.num_rows
        if n >= self.n_rows:
            return f"reference profile sample (all {self.n_rows:,} rows)"
        return f"reference profile sample ({n:,} of {self.n_rows:,} rows)"


@dataclass
class CurrentSide:
    """Current data, profiled on the reference's bins and categories.

    Made from raw data (:meth:`from_data`: exact tests use every row) or from a profile made
    against the same reference (:meth:`from_profile`: a window's stored profile, or shard
    profiles merged; exact tests use its row sample, which holds every row of windows up to
    the sample size, so the verdicts are then the same as from the rows).
    """

    table: pa.Table | None
    profile: Profile
    _sorted: dict[str, NDArray[np.float64]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_data(cls, data: Any, reference: ReferenceSide) -> CurrentSide:
        from watchkeeper.data import Profile, read_table

        table = read_table(data)
        present = [c for c in reference.schema.names if c in table.column_names]
        if not present:
            raise _no_shared_columns(reference.schema.names, table.column_names)
        profile = Profile.from_data(
            table.select(present),
            reference.schema.select(present),
            reference=reference.profile,
            sample_size=0,
            sketch=False,  # quantiles of the current data come from its sorted values
        )
        return cls(table=table, profile=profile)

    @classmethod
    def from_profile(cls, profile: Profile, reference: ReferenceSide) -> CurrentSide:
        """A current profile; it must share the reference's columns, bins and categories."""
        names = [c for c in reference.schema.names if c in profile.columns]
        if not names:
            raise _no_shared_columns(reference.schema.names, list(profile.columns))
        check_profiled_against(profile, reference.profile, names)
        return cls(table=None, profile=profile)

    @property
    def n_rows(self) -> int:
        return int(self.table.num_rows) if self.table is not None else int(self.profile.n_rows)

    @property
    def column_names(self) -> list[str]:
        """The current side's columns (of the data, or of the profile)."""
        if self.table is not None:
            return list(self.table.column_names)
        return list(self.profile.columns)

    @property
    def rows_for_values(self) -> pa.Table | None:
        """Rows that exact tests and multivariate methods use (all rows, or the sample)."""
        return self.table if self.table is not None else self.profile.sample

    @property
    def sample_is_complete(self) -> bool:
        """Whether exact tests see every current row (raw data, or a sample of all rows)."""
        rows = self.rows_for_values
        return rows is not None and rows.num_rows >= self.n_rows

    def release(self, column: str) -> None:
        """Forget the cached sorted values of a column."""
        self._sorted.pop(column, None)

    def sorted_values(self, column: str) -> NDArray[np.float64]:
        """Sorted finite values of a numeric column (all rows, or the profile's sample)."""
        if self.table is None:
            return self.profile.sample_values(column)
        if column not in self._sorted:
            from watchkeeper.data import column_to_numpy

            values = np.asarray(column_to_numpy(self.table, column, "numeric"), dtype=np.float64)
            self._sorted[column] = _finite_sorted(values)
        return self._sorted[column]

    def quantiles(self, column: str, qs: tuple[float, ...]) -> list[float]:
        """Quantiles of a numeric column: exact from values, else from the profile's sketch."""
        from watchkeeper.exceptions import InputError

        try:
            values = self.sorted_values(column)
        except InputError:
            col = self.profile.numeric(column)
            if not int(col.count) or col.sketch is None:
                return []
            return [float(col.quantile(q)) for q in qs]
        return [float(v) for v in np.quantile(values, qs)] if values.size else []


def _no_shared_columns(expected: Any, found: Any) -> Exception:
    from watchkeeper.exceptions import InputError

    def shown(names: Any) -> str:
        names = list(names)
        return ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")

    return InputError(
        f"the current data shares no column with the reference: expected {shown(expected)}; "
        f"found {shown(found) or 'no columns'}. Pass data with the reference's columns, or the "
        "matching reference"
    )


def check_profiled_against(profile: Profile, reference: Profile, names: Any) -> None:
    """Raise :class:`~watchkeeper.exceptions.InputError` unless ``profile`` counts the
    ``names`` columns on ``reference``'s histogram bins and categories (so that binned tests
    and category counts compare like with like), saying how to make it so."""
    from watchkeeper.exceptions import InputError

    bad: list[str] = []
    for name in names:
        mine, theirs = profile.columns[name], reference.columns[name]
        if mine.kind != theirs.kind:
            raise InputError(
                f"column {name!r} is {mine.kind} in the current profile but {theirs.kind} in "
                "the reference; profile the current data with the reference's schema"
            )
        mine_any: Any = mine  # the kind, checked above, says which profile class both are
        theirs_any: Any = theirs
        if mine.kind == "text" and mine_any.has_features and theirs_any.has_features:
            if mine_any.vocabulary != theirs_any.vocabulary or any(
                mine_any.descriptors[d].bin_edges != theirs_any.descriptors[d].bin_edges
                for d in theirs_any.descriptors
            ):
                bad.append(name)
            continue
        if mine.kind == "embedding":
            if not mine_any.same_projection(theirs_any):
                bad.append(name)
            continue
        if (
            mine.kind == "numeric" and mine_any.bin_edges != getattr(theirs, "bin_edges", None)
        ) or (
            mine.kind in ("categorical", "boolean")
            and mine_any.categories != getattr(theirs, "categories", None)
        ):
            bad.append(name)
    if bad:
        raise InputError(
            f"the current profile was not made against this reference (columns {bad[:5]} have "
            "other bins or categories); profile the current data with "
            "Profile.from_data(data, reference.schema, reference=reference), or re-base it with "
            "profile.rebased(reference) when its row sample holds every row"
        )
