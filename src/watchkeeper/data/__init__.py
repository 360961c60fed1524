"""The data contract: input adapters, schemas and mergeable profiles.

Examples
--------
>>> import pandas as pd
>>> from watchkeeper.data import Schema
>>> Schema.infer(pd.DataFrame({"x": [1.0, 2.0]})).names
('x',)
"""

from __future__ import annotations

from watchkeeper.data._adapters import column_to_numpy, read_table
from watchkeeper.data._column_profiles import (
    CategoricalColumnProfile,
    DatetimeColumnProfile,
    TextColumnProfile,
)
from watchkeeper.data._group_counts import GroupCounts
from watchkeeper.data._numeric_profile import NumericColumnProfile
from watchkeeper.data._validation import SchemaReport, TypeMismatch
from watchkeeper.data.profile import ColumnProfile, Profile
from watchkeeper.data.schema import ColumnKind, ColumnSpec, Role, Schema

__all__ = [
    "CategoricalColumnProfile",
    "ColumnKind",
    "ColumnProfile",
    "ColumnSpec",
    "DatetimeColumnProfile",
    "GroupCounts",
    "NumericColumnProfile",
    "Profile",
    "Role",
    "Schema",
    "SchemaReport",
    "TextColumnProfile",
    "TypeMismatch",
    "column_to_numpy",
    "read_table",
]
