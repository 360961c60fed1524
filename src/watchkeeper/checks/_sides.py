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
    """Current data, profiled on the reference's bins and categories."""

    table: pa.Table
    profile: Profile
    _sorted: dict[str, NDArray[np.float64]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_data(cls, data: Any, reference: ReferenceSide) -> CurrentSide:
        from watchkeeper.data import Profile, read_table

        table = read_table(data)
        present = [c for c in reference.schema.names if c in table.column_names]
        profile = Profile.from_data(
            table.select(present),
            reference.schema.select(present),
            reference=reference.profile,
            sample_size=0,
            sketch=False,  # quantiles of the current data come from its sorted values
        )
        return cls(table=table, profile=profile)

    @property
    def n_rows(self) -> int:
        return int(self.table.num_rows)

    def release(self, column: str) -> None:
        """Forget the cached sorted values of a column."""
        self._sorted.pop(column, None)

    def sorted_values(self, column: str) -> NDArray[np.float64]:
        if column not in self._sorted:
            from watchkeeper.data import column_to_numpy

            values = np.asarray(column_to_numpy(self.table, column, "numeric"), dtype=np.float64)
            self._sorted[column] = _finite_sorted(values)
        return self._sorted[column]
