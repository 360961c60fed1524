"""The data contract: input adapters, schemas and mergeable profiles.

Examples
--------
>>> import pandas as pd
>>> from watchkeeper.data import Schema
>>> Schema.infer(pd.DataFrame({"x": [1.0, 2.0]})).names
('x',)
"""

from __future__ import annotations

from watchkeeper.data._adapters import (
    column_to_numpy,
    get_column,
    numeric_values,
    read_table,
    string_values,
)
from watchkeeper.data._column_profiles import (
    CategoricalColumnProfile,
    DatetimeColumnProfile,
    TextColumnProfile,
)
from watchkeeper.data._contract import (
    Contract,
    ContractRule,
    ImportedContract,
    RuleCount,
    RuleOutcome,
)
from watchkeeper.data._contract_rules import AllowedValues, NotNull, Range, Regex, Relation
from watchkeeper.data._contract_sets import Freshness, Monotone, RowCount, Unique
from watchkeeper.data._embedding_profile import EmbeddingColumnProfile
from watchkeeper.data._group_counts import (
    MISSING_GROUP,
    FairnessTask,
    GroupCounts,
    canonical_strings,
)
from watchkeeper.data._io import write_json_atomic
from watchkeeper.data._numeric_profile import NumericColumnProfile
from watchkeeper.data._validation import SchemaReport, TypeMismatch
from watchkeeper.data.profile import ColumnProfile, Profile, is_profile_path
from watchkeeper.data.schema import ColumnKind, ColumnSpec, Role, Schema

__all__ = [
    "MISSING_GROUP",
    "AllowedValues",
    "CategoricalColumnProfile",
    "ColumnKind",
    "ColumnProfile",
    "ColumnSpec",
    "Contract",
    "ContractRule",
    "DatetimeColumnProfile",
    "EmbeddingColumnProfile",
    "FairnessTask",
    "Freshness",
    "GroupCounts",
    "ImportedContract",
    "Monotone",
    "NotNull",
    "NumericColumnProfile",
    "Profile",
    "Range",
    "Regex",
    "Relation",
    "Role",
    "RowCount",
    "RuleCount",
    "RuleOutcome",
    "Schema",
    "SchemaReport",
    "TextColumnProfile",
    "TypeMismatch",
    "Unique",
    "canonical_strings",
    "column_to_numpy",
    "get_column",
    "is_profile_path",
    "numeric_values",
    "read_table",
    "string_values",
    "write_json_atomic",
]
