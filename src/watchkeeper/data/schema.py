"""The data contract: what each column is (its kind) and what it is for (its role).

A :class:`Schema` is inferred from data with :meth:`Schema.infer` (rules in its docstring),
corrected with :meth:`Schema.with_roles` / :meth:`Schema.with_kinds`, saved next to a model as
JSON, and checked against new data with :meth:`Schema.validate`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from watchkeeper.exceptions import InputError

if TYPE_CHECKING:
    from watchkeeper.data._contract import Contract
    from watchkeeper.data._validation import SchemaReport

__all__ = ["ColumnKind", "ColumnSpec", "Role", "Schema"]

#: Version of the JSON layout written by :meth:`Schema.to_dict` (2 added ``"contract"``;
#: version-1 files, which have none, are still read).
SCHEMA_FORMAT_VERSION = 2


class ColumnKind(StrEnum):
    """What the values of a column are, which decides how they are summarised and compared."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    TEXT = "text"
    EMBEDDING = "embedding"


class Role(StrEnum):
    """What a column is for; ``compare()`` tests features, targets and predictions by default."""

    FEATURE = "feature"
    TARGET = "target"
    PREDICTION = "prediction"
    SCORE = "score"
    ID = "id"
    TIMESTAMP = "timestamp"
    SENSITIVE = "sensitive"
    IGNORED = "ignored"


_E = TypeVar("_E", ColumnKind, Role)


def _coerce(enum: type[_E], value: Any, what: str) -> _E:
    try:
        return enum(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InputError(f"unknown {what} {value!r}; use one of: {allowed}") from None


class UnknownColumnError(InputError, KeyError):
    """A column name that the schema does not have."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True, slots=True, init=False)
class ColumnSpec:
    """One column of a :class:`Schema`.

    Attributes
    ----------
    name
        Column name.
    kind
        How values are summarised and compared (strings are converted to :class:`ColumnKind`).
    role
        What the column is for (strings are converted to :class:`Role`).
    dtype
        Arrow type seen when the schema was inferred (informative; not enforced).
    categories
        Declared categories (profiles then count exactly these, and everything else as other).
    note
        Why inference chose this kind or role when the choice was not obvious.

    Examples
    --------
    >>> spec = ColumnSpec("age", "numeric")
    >>> spec.kind, spec.role
    (<ColumnKind.NUMERIC: 'numeric'>, <Role.FEATURE: 'feature'>)
    """

    name: str
    kind: ColumnKind
    role: Role = Role.FEATURE
    dtype: str = ""
    categories: tuple[str, ...] | None = None
    note: str = ""

    # An explicit __init__ so that type checkers accept the string forms of kind and role.
    def __init__(
        self,
        name: str,
        kind: ColumnKind | str,
        role: Role | str = Role.FEATURE,
        dtype: str = "",
        categories: Sequence[str] | None = None,
        note: str = "",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InputError(f"column names must be non-empty strings, got {name!r}")
        cats = None if categories is None else tuple(str(c) for c in categories)
        if cats is not None and len(set(cats)) != len(cats):
            raise InputError(f"column {name!r}: declared categories repeat a value")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "kind", _coerce(ColumnKind, kind, "column kind"))
        object.__setattr__(self, "role", _coerce(Role, role, "role"))
        object.__setattr__(self, "dtype", str(dtype))
        object.__setattr__(self, "categories", cats)
        object.__setattr__(self, "note", str(note))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "role": self.role.value,
            "dtype": self.dtype,
            "categories": None if self.categories is None else list(self.categories),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Schema:
    """Ordered, immutable column specifications, and optionally a data contract.

    Build one with :meth:`infer`, or from :class:`ColumnSpec` objects. ``contract`` holds
    declared rules about the values (:class:`~watchkeeper.data.Contract`; see
    :meth:`with_contract`); its rules may only name columns of the schema.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"age": [31, 45, 27], "plan": ["a", "b", "a"], "churn": [0, 1, 0]})
    >>> schema = Schema.infer(df, roles={"churn": "target"})
    >>> schema.names, schema.features
    (('age', 'plan', 'churn'), ('age', 'plan'))
    >>> schema["plan"].kind
    <ColumnKind.CATEGORICAL: 'categorical'>
    """

    columns: tuple[ColumnSpec, ...]
    contract: Contract | None = None
    _index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        columns = tuple(self.columns)
        object.__setattr__(self, "columns", columns)
        index: dict[str, int] = {}
        for i, spec in enumerate(columns):
            if not isinstance(spec, ColumnSpec):
                raise InputError(f"Schema columns must be ColumnSpec objects, got {spec!r}")
            if spec.name in index:
                raise InputError(f"column {spec.name!r} appears twice in the schema")
            index[spec.name] = i
        object.__setattr__(self, "_index", index)
        if self.contract is not None:
            from watchkeeper.data._contract import Contract

            if not isinstance(self.contract, Contract):
                raise InputError(f"contract must be a Contract, got {self.contract!r}")
            for rule in self.contract.rules:
                unknown = [c for c in rule.columns if c not in index]
                if unknown:
                    raise InputError(
                        f"contract rule {rule.name} names column {unknown[0]!r}, which is not "
                        f"in the schema; its columns are: {', '.join(self.names[:20])}"
                    )

    # -- access --------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in order."""
        return tuple(c.name for c in self.columns)

    @property
    def features(self) -> tuple[str, ...]:
        """Names of the columns whose role is ``feature``."""
        return self.with_role(Role.FEATURE)

    def with_role(self, role: Role | str) -> tuple[str, ...]:
        """Names of the columns with ``role``.

        Examples
        --------
        >>> Schema((ColumnSpec("y", "numeric", "target"),)).with_role("target")
        ('y',)
        """
        wanted = _coerce(Role, role, "role")
        return tuple(c.name for c in self.columns if c.role is wanted)

    def __getitem__(self, name: str) -> ColumnSpec:
        try:
            return self.columns[self._index[name]]
        except KeyError:
            raise UnknownColumnError(self._unknown(name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[ColumnSpec]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def _unknown(self, name: str) -> str:
        shown = ", ".join(self.names[:20]) + (", ..." if len(self) > 20 else "")
        return f"column {name!r} is not in the schema; its columns are: {shown}"

    def _check_names(self, names: Sequence[str] | Mapping[str, Any], what: str) -> None:
        unknown = [n for n in names if n not in self]
        if unknown:
            raise InputError(
                f"{what} names unknown columns {unknown}; the schema has: {', '.join(self.names)}"
            )

    # -- new schemas ---------------------------------------------------------------------

    def select(self, names: Sequence[str]) -> Schema:
        """The columns ``names``, in that order.

        Examples
        --------
        >>> s = Schema((ColumnSpec("a", "numeric"), ColumnSpec("b", "text")))
        >>> s.select(["b"]).names
        ('b',)
        """
        if isinstance(names, str):
            names = [names]
        self._check_names(names, "select()")
        contract = None if self.contract is None else self.contract.select(names)
        return Schema(tuple(self[n] for n in names), contract)

    def with_roles(self, roles: Mapping[str, Role | str]) -> Schema:
        """A copy with the roles of some columns changed.

        Examples
        --------
        >>> s = Schema((ColumnSpec("a", "numeric"),)).with_roles({"a": "target"})
        >>> s["a"].role
        <Role.TARGET: 'target'>
        """
        self._check_names(roles, "with_roles()")
        return Schema(
            tuple(
                replace(c, role=_coerce(Role, roles[c.name], "role")) if c.name in roles else c
                for c in self.columns
            ),
            self.contract,
        )

    def with_kinds(self, kinds: Mapping[str, ColumnKind | str]) -> Schema:
        """A copy with the kinds of some columns changed (their notes say so).

        Examples
        --------
        >>> s = Schema((ColumnSpec("zip", "numeric"),)).with_kinds({"zip": "categorical"})
        >>> s["zip"].kind, s["zip"].note
        (<ColumnKind.CATEGORICAL: 'categorical'>, 'kind declared')
        """
        self._check_names(kinds, "with_kinds()")
        return Schema(
            tuple(
                replace(
                    c, kind=_coerce(ColumnKind, kinds[c.name], "column kind"), note="kind declared"
                )
                if c.name in kinds
                else c
                for c in self.columns
            ),
            self.contract,
        )

    def with_categories(self, categories: Mapping[str, Sequence[str]]) -> Schema:
        """A copy declaring the categories of some columns (which become categorical).

        Profiles then count exactly these categories; :meth:`validate` reports other values.

        Examples
        --------
        >>> s = Schema((ColumnSpec("size", "text"),)).with_categories({"size": ["S", "M", "L"]})
        >>> s["size"].kind, s["size"].categories
        (<ColumnKind.CATEGORICAL: 'categorical'>, ('S', 'M', 'L'))
        """
        self._check_names(categories, "with_categories()")
        return Schema(
            tuple(
                replace(
                    c,
                    kind=ColumnKind.CATEGORICAL,
                    categories=tuple(categories[c.name]),
                    note="categories declared",
                )
                if c.name in categories
                else c
                for c in self.columns
            ),
            self.contract,
        )

    def with_contract(self, contract: Contract | None) -> Schema:
        """A copy carrying ``contract`` (``None`` removes it).

        Profiles made with the returned schema count the contract's rules, so that they are
        decided on merged window profiles too (see :mod:`watchkeeper.data._contract`).

        Examples
        --------
        >>> from watchkeeper.data import Contract, NotNull
        >>> s = Schema((ColumnSpec("a", "numeric"),)).with_contract(
        ...     Contract((NotNull(column="a"),)))
        >>> Schema.from_dict(s.to_dict()).contract.rules
        (NotNull(column='a'),)
        """
        return Schema(self.columns, contract)

    # -- inference and validation ----------------------------------------------------------

    @classmethod
    def infer(
        cls,
        data: Any,
        *,
        roles: Mapping[str, Role | str] | None = None,
        kinds: Mapping[str, ColumnKind | str] | None = None,
        max_categories: int = 50,
    ) -> Schema:
        """Infer a schema from data.

        Rules, by Arrow type of the column:

        - integers and floats (and durations) are ``numeric``. Integers with few distinct
          values stay numeric: declare ``kinds={name: "categorical"}`` for codes.
        - booleans are ``boolean``.
        - timestamps and dates are ``datetime``; when there is exactly one datetime column
          and no declared ``timestamp`` role, it gets role ``timestamp``.
        - strings and categorical dtypes: ``categorical`` when they have at most
          ``max_categories`` distinct values. Beyond that, strings are ``text`` when they
          look like free text (mean length >= 40 characters or >= 5 words); role ``id`` when
          (nearly, >= 95%) all values are unique; ``categorical`` when the distinct count is
          at most the square root of the number of values (profiles keep the top categories
          and count the rest as other); otherwise ``text``. A pandas/polars categorical dtype
          is always ``categorical``.
        - a column named ``id``, ``*_id``, ``*Id``, ``uuid`` or ``guid`` whose values are all
          unique gets role ``id``.
        - an object column mixing Python types (``[1, "a"]``) is ``categorical`` over the
          string forms of its values; :meth:`validate` reports the minority types.
        - lists (Arrow ``list``, ``large_list`` or ``fixed_size_list``) of numbers that all
          have one length are ``embedding`` (a pandas column of arrays, a polars ``Array``).
        - all-missing columns are ``categorical``; binary and other nested columns (numeric
          lists of different lengths too) are ``text`` with role ``ignored``.

        Every non-obvious choice is explained in :attr:`ColumnSpec.note`. Declared ``roles``
        and ``kinds`` override the rules.

        Parameters
        ----------
        data
            Anything :func:`read_table` accepts.
        roles, kinds
            Declared roles and kinds by column name (enum members or their values).
        max_categories
            Distinct values up to which strings are always categorical.

        Raises
        ------
        InputError
            Unreadable or empty data, unknown column names in ``roles``/``kinds``, unknown
            role or kind values.

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"user_id": [10, 11, 12], "t": pd.to_datetime(["2024-01-01"] * 3)})
        >>> [(c.name, c.kind.value, c.role.value) for c in Schema.infer(df)]
        [('user_id', 'numeric', 'id'), ('t', 'datetime', 'timestamp')]
        """
        from watchkeeper.data._adapters import read_table
        from watchkeeper.data._infer import infer_columns

        if max_categories < 1:
            raise InputError(f"max_categories must be at least 1, got {max_categories}")
        table = read_table(data)
        declared_roles = {k: _coerce(Role, v, "role") for k, v in (roles or {}).items()}
        declared_kinds = {
            k: _coerce(ColumnKind, v, "column kind") for k, v in (kinds or {}).items()
        }
        for what, names in (("roles", declared_roles), ("kinds", declared_kinds)):
            unknown = [n for n in names if n not in table.column_names]
            if unknown:
                raise InputError(
                    f"{what} names columns {unknown} that are not in the data; its columns "
                    f"are: {', '.join(table.column_names)}"
                )
        return cls(
            infer_columns(
                table, roles=declared_roles, kinds=declared_kinds, max_categories=max_categories
            )
        )

    def validate(self, data: Any) -> SchemaReport:
        """Check ``data`` against this schema: missing, extra and mistyped columns.

        A column's values are mistyped when they cannot be read as its kind: text in a
        numeric column, unparseable datetimes, values other than true/false/1/0 in a boolean
        column, values outside declared categories, or an object column mixing Python types.

        Examples
        --------
        >>> import pandas as pd
        >>> schema = Schema((ColumnSpec("x", "numeric"), ColumnSpec("y", "numeric")))
        >>> report = schema.validate(pd.DataFrame({"x": ["1", "oops"], "z": [1, 2]}))
        >>> report.missing_columns, report.extra_columns, report.type_mismatches[0].n_bad
        (('y',), ('z',), 1)
        """
        from watchkeeper.data._adapters import read_table
        from watchkeeper.data._validation import SchemaReport, find_mismatches

        table = read_table(data, allow_empty=True)
        present = set(table.column_names)
        return SchemaReport(
            missing_columns=tuple(n for n in self.names if n not in present),
            extra_columns=tuple(n for n in table.column_names if n not in self),
            type_mismatches=tuple(
                m
                for spec in self.columns
                if spec.name in present
                for m in find_mismatches(table, spec)
            ),
        )

    # -- persistence ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (with a ``format_version``).

        Examples
        --------
        >>> s = Schema((ColumnSpec("a", "numeric"),))
        >>> Schema.from_dict(s.to_dict()) == s
        True
        """
        out: dict[str, Any] = {
            "format_version": SCHEMA_FORMAT_VERSION,
            "columns": [c.to_dict() for c in self.columns],
        }
        if self.contract is not None:
            out["contract"] = self.contract.to_dict()
        return out

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Schema:
        """Rebuild a schema from :meth:`to_dict` output."""
        try:
            version = int(payload.get("format_version", 1))
            if version > SCHEMA_FORMAT_VERSION:
                raise InputError(
                    f"schema format version {version} is newer than this watchkeeper supports "
                    f"({SCHEMA_FORMAT_VERSION}); upgrade watchkeeper"
                )
            specs = []
            for c in payload["columns"]:
                cats = c.get("categories")
                specs.append(
                    ColumnSpec(
                        name=c["name"],
                        kind=c["kind"],
                        role=c.get("role", "feature"),
                        dtype=str(c.get("dtype", "")),
                        categories=None if cats is None else tuple(cats),
                        note=str(c.get("note", "")),
                    )
                )
            contract = None
            if payload.get("contract") is not None:
                from watchkeeper.data._contract import Contract

                contract = Contract.from_dict(payload["contract"])
        except InputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"not a valid watchkeeper schema: {exc!r}") from exc
        return cls(tuple(specs), contract)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the schema as JSON (atomically) and return the path."""
        from watchkeeper.data._io import write_json_atomic

        return write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Schema:
        """Read a schema written by :meth:`save`.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> s = Schema((ColumnSpec("a", "numeric", "target"),))
        >>> with tempfile.TemporaryDirectory() as d:
        ...     Schema.load(s.save(pathlib.Path(d) / "schema.json")) == s
        True
        """
        from watchkeeper.data._io import read_json

        return cls.from_dict(read_json(Path(path), "schema"))
