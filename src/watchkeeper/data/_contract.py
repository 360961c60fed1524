"""Data contracts: declared rules about the values of a dataset, kept in its schema file.

A :class:`Contract` is a tuple of rules, each a small frozen dataclass registered by its
``kind`` (the key in the schema JSON). Every rule is decided three ways:

- on rows (a frame or table): exactly, with a few offending values as examples;
- on a :class:`~watchkeeper.data.Profile`: rules that need rows (``regex``, ``unique``,
  ``monotone``, ``relation``, and the exact counts of ``not_null``, ``allowed_values`` and
  ``range``) are counted when the profile is made with a schema that carries the contract,
  and those counts merge by summing, so a merged window profile gives the verdict of the
  concatenated rows. ``unique`` keeps the hashes of up to :data:`MAX_SEEN` distinct values,
  so repeats across merged batches count too; beyond that, and for ``monotone`` always,
  violations are counted within each profiled batch: one inside any batch is found, but a
  repeat or an order break *across* batches of a merged profile is not tracked, so a merged
  profile with none inside its batches is reported as not decidable, never as a pass.
  Profiles made without the contract decide ``not_null``, ``row_count`` and ``freshness``
  exactly, ``range`` and ``allowed_values`` where min/max and category counts suffice, and
  report the others as not decidable;
- on a single record at the gateway: the per-row rules (``not_null``, ``allowed_values``,
  ``range``, ``regex``, ``relation``) that allow no violations (``mostly=1``) and are
  alerts; set-level rules (``unique``, ``monotone``, ``row_count``, ``freshness``) are not
  applied to single records.

The rule classes live in :mod:`~watchkeeper.data._contract_rules` (rules decided row by
row) and :mod:`~watchkeeper.data._contract_sets` (rules about a set of rows).

Every rule has ``mostly`` (the share of checked values that must satisfy it, as in Great
Expectations) and ``severity`` (``"alert"`` or ``"warn"``: the status of a broken rule).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

from watchkeeper.data._contract_values import _examples
from watchkeeper.exceptions import InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from watchkeeper.data.profile import Profile

__all__ = [
    "RULE_KINDS",
    "Contract",
    "ContractRule",
    "ImportedContract",
    "RuleCount",
    "RuleOutcome",
    "contract_rule",
    "rule_from_dict",
]


#: Rule class by ``kind``, filled by :func:`contract_rule`.
RULE_KINDS: dict[str, type[ContractRule]] = {}

_R = TypeVar("_R", bound="type[ContractRule]")


def contract_rule(kind: str) -> Callable[[_R], _R]:
    """Register a rule class under ``kind`` (its key in the schema JSON)."""

    def register(cls: _R) -> _R:
        cls.kind = kind
        RULE_KINDS[kind] = cls
        return cls

    return register


@dataclass(frozen=True, slots=True)
class RuleCount:
    """What one rule found in a batch of rows; counts of batches merge by summing.

    Attributes
    ----------
    n_checked
        Values (or rows) the rule looked at.
    n_violations
        Of those, the ones that break it.
    examples
        Up to five offending values, the smallest string forms (so merging is exact).
    n_parts
        Batches merged into this count (rules checked within batches need it).
    seen
        For ``unique``: the sorted 64-bit hashes of the distinct values (numbers by their
        bits, strings by a keyed hash), kept while there are at most
        :data:`MAX_SEEN` of them, so that repeats *across* merged batches are counted too
        (they add to ``n_violations`` but bring no example); ``None`` beyond that.

    Examples
    --------
    >>> a = RuleCount(10, 1, ("-3",))
    >>> a.merge(RuleCount(5, 2, ("-1", "-7")))
    RuleCount(n_checked=15, n_violations=3, examples=('-7', '-3', '-1'), n_parts=2)
    """

    n_checked: int
    n_violations: int
    examples: tuple[str, ...] = ()
    n_parts: int = 1
    seen: bytes | None = field(default=None, repr=False)

    @property
    def tracked(self) -> bool:
        """Whether repeats across the merged batches are counted (``seen`` is kept)."""
        return self.seen is not None

    def merge(self, other: RuleCount) -> RuleCount:
        """The count of both batches."""
        return RuleCount.merge_all([self, other])

    @staticmethod
    def merge_all(counts: Sequence[RuleCount]) -> RuleCount:
        """The count of all batches in one step."""
        import numpy as np

        n_violations = sum(c.n_violations for c in counts)
        seen = None
        if all(c.seen is not None for c in counts):
            parts = [np.frombuffer(c.seen, dtype="<u8") for c in counts]  # type: ignore[arg-type]
            union = np.unique(np.concatenate(parts))
            n_violations += sum(len(p) for p in parts) - len(union)  # repeats across batches
            seen = union.astype("<u8").tobytes() if len(union) <= MAX_SEEN else None
        return RuleCount(
            sum(c.n_checked for c in counts),
            n_violations,
            _examples(e for c in counts for e in c.examples),
            sum(c.n_parts for c in counts),
            seen,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (``seen`` as base64)."""
        import base64

        out: dict[str, Any] = {
            "n_checked": self.n_checked,
            "n_violations": self.n_violations,
            "examples": list(self.examples),
            "n_parts": self.n_parts,
        }
        if self.seen is not None:
            out["seen"] = base64.b64encode(self.seen).decode("ascii")
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RuleCount:
        """Rebuild from :meth:`to_dict` output."""
        import base64

        seen = d.get("seen")
        return cls(
            int(d["n_checked"]),
            int(d["n_violations"]),
            tuple(str(e) for e in d.get("examples", ())),
            int(d.get("n_parts", 1)),
            None if seen is None else base64.b64decode(seen),
        )


#: Most distinct values whose hashes a ``unique`` count keeps (8 bytes each).
MAX_SEEN = 10_000


class RuleOutcome(NamedTuple):
    """The verdict material of one rule on one dataset or profile.

    ``n_violations`` is ``None`` when the rule cannot be decided from what was given (the
    ``note`` says why); ``note`` otherwise says what was measured where counts do not.
    """

    rule: ContractRule
    n_checked: int
    n_violations: int | None
    examples: tuple[str, ...] = ()
    note: str = ""

    @property
    def share(self) -> float | None:
        """Share of checked values that break the rule (``None`` when not decidable)."""
        if self.n_violations is None:
            return None
        return self.n_violations / self.n_checked if self.n_checked else 0.0

    @property
    def broken(self) -> bool | None:
        """Whether more than ``1 - mostly`` of the checked values break the rule."""
        share = self.share
        if share is None:
            return None
        return share > 1.0 - self.rule.mostly + 1e-12


# -- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, repr=False)
class ContractRule:
    """Base of the contract rules: ``mostly`` and ``severity`` shared by all.

    Attributes
    ----------
    mostly
        Share of checked values that must satisfy the rule (1 = every one).
    severity
        Status of a broken rule: ``"alert"`` or ``"warn"``.
    """

    kind: ClassVar[str] = ""
    #: Decided on single records at the gateway.
    per_record: ClassVar[bool] = True
    #: Counted from the rows when a profile is made with the contract.
    counted: ClassVar[bool] = True
    #: Counts only see violations inside one batch (not across merged batches).
    within_batches: ClassVar[bool] = False
    #: Reads the order of the rows (not counted where rows have no order, e.g. on Spark).
    row_order: ClassVar[bool] = False

    mostly: float = 1.0
    severity: str = "alert"

    def __post_init__(self) -> None:
        where = f"contract rule {self.kind!r}"
        mostly = self.mostly
        if isinstance(mostly, bool) or not isinstance(mostly, int | float):
            raise InputError(f"{where}: mostly must be a number in (0, 1], got {mostly!r}")
        if not 0.0 < float(mostly) <= 1.0:
            raise InputError(f"{where}: mostly must be in (0, 1], got {mostly!r}")
        object.__setattr__(self, "mostly", float(mostly))
        if self.severity not in ("alert", "warn"):
            raise InputError(f"{where}: severity must be 'alert' or 'warn', got {self.severity!r}")
        for f in fields(self):
            if f.name in ("column", "left", "right"):
                name = getattr(self, f.name)
                if not isinstance(name, str) or not name:
                    raise InputError(
                        f"{where}: {f.name} must be a non-empty column name, got {name!r}"
                    )

    # -- description -----------------------------------------------------------------------

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the rule reads."""
        column = getattr(self, "column", None)
        return () if column is None else (column,)

    @property
    def subject(self) -> str:
        """What a result of this rule is about: a column, a pair, or ``"dataset"``."""
        return ", ".join(self.columns) or "dataset"

    @property
    def name(self) -> str:
        """Short name, e.g. ``range(temp)``."""
        return f"{self.kind}({self.subject})"

    def describe(self) -> str:
        """One readable line saying what the rule requires."""
        return self.name

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "kind")
        return f"{type(self).__name__}({params})"

    @property
    def key(self) -> str:
        """Canonical JSON of the rule: identifies its counts inside a profile."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def applies_to_records(self) -> bool:
        """Whether the gateway rejects single records that break it."""
        return self.per_record and self.mostly == 1.0 and self.severity == "alert"

    # -- evaluation ------------------------------------------------------------------------

    def count(self, table: pa.Table) -> RuleCount:
        """Violations among the rows of ``table`` (which has the rule's columns).

        Every rule with ``counted = True`` defines it; the others (``row_count``,
        ``freshness``) are decided from a profile's own summaries and never counted.
        """
        raise TypeError(f"contract rule {self.kind!r} is decided from summaries, not counted")

    def evaluate(self, table: pa.Table, *, as_of: Any = None) -> RuleOutcome:
        """The rule on rows: exact."""
        missing = [c for c in self.columns if c not in table.column_names]
        if missing:
            return RuleOutcome(self, 0, None, note=f"the data has no column {missing[0]!r}")
        c = self.count(table)
        return RuleOutcome(self, c.n_checked, c.n_violations, c.examples)

    def evaluate_profile(
        self, profile: Profile, counts: RuleCount | None, *, as_of: Any = None
    ) -> RuleOutcome:
        """The rule on a profile: from the counts kept at profiling time when there are
        some, else from the column summaries where they suffice."""
        missing = [c for c in self.columns if c not in profile.columns]
        if missing:
            return RuleOutcome(self, 0, None, note=f"the profile has no column {missing[0]!r}")
        if counts is None:
            return self._from_summaries(profile)
        if (
            self.within_batches
            and counts.n_violations == 0
            and counts.n_parts > 1
            and not counts.tracked
        ):
            return RuleOutcome(
                self, counts.n_checked, None,
                note=f"not decidable from a profile: none within each of its {counts.n_parts} "
                "merged batches, but this profile does not track it across batches; check "
                "the rows",
            )  # fmt: skip
        return RuleOutcome(self, counts.n_checked, counts.n_violations, counts.examples)

    def _from_summaries(self, profile: Profile) -> RuleOutcome:
        return RuleOutcome(
            self, profile.n_rows, None,
            note="not decidable from a profile made without the contract; profile the data "
            "with a schema that carries the contract, or check the rows",
        )  # fmt: skip

    def check_value(self, record: Mapping[str, Any]) -> str | None:
        """Why one record breaks the rule, or ``None`` (absent fields count as null)."""
        return None

    # -- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form: ``kind`` and the rule's parameters."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "mostly" and value == 1.0:
                continue
            if f.name == "severity" and value == "alert":
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def rule_from_dict(payload: Mapping[str, Any]) -> ContractRule:
    """Build a rule from its JSON form (a mapping with ``kind``).

    Raises
    ------
    InputError
        Unknown kind, missing or unknown parameters, bad values; the message names the rule.
    """
    # The rule classes register themselves when their modules are imported.
    from watchkeeper.data import _contract_rules, _contract_sets  # noqa: F401

    if not isinstance(payload, Mapping) or "kind" not in payload:
        raise InputError(f"a contract rule must be an object with a 'kind', got {payload!r}")
    kind = payload["kind"]
    cls = RULE_KINDS.get(str(kind))
    if cls is None:
        raise InputError(
            f"unknown contract rule kind {kind!r}; use one of: {', '.join(sorted(RULE_KINDS))}"
        )
    params = {k: v for k, v in payload.items() if k != "kind"}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InputError(
            f"contract rule {kind!r} has unknown parameters {unknown}; it takes: "
            f"{', '.join(sorted(known))}"
        )
    for k, v in params.items():
        if isinstance(v, list):
            params[k] = tuple(v)
    try:
        return cls(**params)
    except TypeError as exc:
        raise InputError(f"contract rule {kind!r}: {exc}") from None


def _table(data: Any) -> pa.Table:
    from watchkeeper.data._adapters import read_table

    return read_table(data, allow_empty=True)


# -- the contract ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contract:
    """Declared rules about a dataset, stored under ``"contract"`` in the schema JSON.

    Build one from rule objects, from JSON (:meth:`from_dict`), from reference data
    (:meth:`propose`), or from a TFDV schema or Great Expectations suite
    (:meth:`from_tfdv`, :meth:`from_great_expectations`). Decide it with
    :func:`watchkeeper.checks.check_contract` (frames and profiles) or :meth:`check_record`.

    Examples
    --------
    >>> import pandas as pd
    >>> contract = Contract.from_dict({"rules": [
    ...     {"kind": "range", "column": "age", "min": 0, "max": 120},
    ...     {"kind": "relation", "left": "end", "op": ">=", "right": "start"}]})
    >>> df = pd.DataFrame({"age": [30, 150], "start": [1, 5], "end": [2, 4]})
    >>> [(o.rule.name, o.n_violations, o.examples) for o in contract.evaluate(df)]
    [('range(age)', 1, ('150',)), ('relation(end >= start)', 1, ('end=4, start=5',))]
    >>> [(rule.name, why) for rule, why in contract.check_record({"age": 130, "end": 2})]
    [('range(age)', 'must be at most 120, got 130')]
    """

    rules: tuple[ContractRule, ...] = ()

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        for r in rules:
            if not isinstance(r, ContractRule):
                raise InputError(f"contract rules must be rule objects, got {r!r}")
        keys = [r.key for r in rules]
        if len(set(keys)) != len(keys):
            twice = sorted({k for k in keys if keys.count(k) > 1})
            raise InputError(f"the contract declares the same rule twice: {twice[0]}")
        object.__setattr__(self, "rules", rules)

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns named by the rules, in first-use order."""
        return tuple(dict.fromkeys(c for r in self.rules for c in r.columns))

    def select(self, names: Iterable[str]) -> Contract:
        """The rules that read only columns in ``names`` (dataset rules are kept)."""
        keep = set(names)
        return Contract(tuple(r for r in self.rules if set(r.columns) <= keep))

    def __add__(self, other: Contract) -> Contract:
        mine = {r.key for r in self.rules}
        return Contract(self.rules + tuple(r for r in other.rules if r.key not in mine))

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, data: Any, *, as_of: Any = None) -> list[RuleOutcome]:
        """Every rule on the rows of ``data`` (anything :func:`read_table` reads): exact."""
        table = _table(data)
        return [r.evaluate(table, as_of=as_of) for r in self.rules]

    def count(self, data: Any, *, row_order: bool = True) -> dict[str, RuleCount]:
        """Counts of the counted rules on rows, by rule key (what a profile keeps); rules
        about row order only when the rows come in a meaningful order."""
        table = _table(data)
        return {
            r.key: r.count(table)
            for r in self.rules
            if r.counted
            and (row_order or not r.row_order)
            and all(c in table.column_names for c in r.columns)
        }

    def evaluate_profile(self, profile: Profile, *, as_of: Any = None) -> list[RuleOutcome]:
        """Every rule on a profile (see the module docs for what a profile decides)."""
        counts = profile.contract_counts or {}
        return [r.evaluate_profile(profile, counts.get(r.key), as_of=as_of) for r in self.rules]

    def check_record(self, record: Mapping[str, Any]) -> list[tuple[ContractRule, str]]:
        """The per-record rules that one record breaks, with why (see the module docs).

        Examples
        --------
        >>> from watchkeeper.data import NotNull, Unique
        >>> c = Contract((NotNull(column="x"), Unique(column="x")))
        >>> [(r.name, why) for r, why in c.check_record({"x": None})]
        [('not_null(x)', 'must not be null')]
        """
        out = []
        for r in self.rules:
            if r.applies_to_records:
                why = r.check_value(record)
                if why is not None:
                    out.append((r, why))
        return out

    # -- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form: ``{"rules": [...]}``."""
        return {"rules": [r.to_dict() for r in self.rules]}

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Contract:
        """Rebuild from :meth:`to_dict` output (or a bare list of rules).

        Raises
        ------
        InputError
            Unknown rule kinds or bad parameters (the message names the rule).
        """
        rules = payload.get("rules", ()) if isinstance(payload, Mapping) else payload
        if isinstance(rules, str | bytes) or not isinstance(rules, Sequence):
            raise InputError(f"a contract's rules must be a list, got {rules!r}")
        return cls(tuple(rule_from_dict(r) for r in rules))

    @classmethod
    def propose(cls, data: Any, schema: Any = None) -> Contract:
        """Rules that ``data`` satisfies, proposed for a person to edit (see
        :func:`~watchkeeper.data._contract_propose.propose_contract`).

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"size": ["S", "M", "S"], "n": [1, 2, 3]})
        >>> [r.name for r in Contract.propose(df).rules]  # doctest: +NORMALIZE_WHITESPACE
        ['row_count(dataset)', 'not_null(size)', 'allowed_values(size)', 'not_null(n)',
         'range(n)']
        """
        from watchkeeper.data._contract_propose import propose_contract

        return propose_contract(data, schema)

    @classmethod
    def from_tfdv(cls, source: Any) -> ImportedContract:
        """The rules of a TFDV schema (``schema.pbtxt`` text or its JSON form) that map to
        contract rules, and the entries that do not (see
        :mod:`watchkeeper.data._contract_import`).

        Examples
        --------
        >>> text = 'feature { name: "age" presence { min_fraction: 1.0 } '
        >>> text += 'int_domain { min: 0 max: 120 } }'
        >>> [r.name for r in Contract.from_tfdv(text).contract.rules]
        ['not_null(age)', 'range(age)']
        """
        from watchkeeper.data._contract_import import from_tfdv

        return from_tfdv(source)

    @classmethod
    def from_great_expectations(cls, suite: Any) -> ImportedContract:
        """The expectations of a Great Expectations suite (JSON text, path or mapping) that
        map to contract rules, and the ones that do not.

        Examples
        --------
        >>> suite = {"expectations": [
        ...     {"expectation_type": "expect_column_values_to_be_unique",
        ...      "kwargs": {"column": "id"}},
        ...     {"expectation_type": "expect_column_kl_divergence_to_be_less_than",
        ...      "kwargs": {"column": "x"}}]}
        >>> found = Contract.from_great_expectations(suite)
        >>> [r.name for r in found.contract.rules], found.unmapped
        (['unique(id)'], ('expect_column_kl_divergence_to_be_less_than(column=x)',))
        """
        from watchkeeper.data._contract_import import from_great_expectations

        return from_great_expectations(suite)


class ImportedContract(NamedTuple):
    """A contract imported from another tool and the entries that did not map."""

    contract: Contract
    unmapped: tuple[str, ...]


def merge_counts(
    a: Mapping[str, RuleCount] | None, b: Mapping[str, RuleCount] | None
) -> dict[str, RuleCount] | None:
    """Counts of two profiles' batches: rules counted in both (a rule missing from one side
    cannot be counted on the union, so it falls back to the column summaries)."""
    if a is None or b is None:
        return None
    return {k: a[k].merge(b[k]) for k in a if k in b}


def merge_all_counts(
    parts: Sequence[Mapping[str, RuleCount] | None],
) -> dict[str, RuleCount] | None:
    """:func:`merge_counts` over many profiles in one pass."""
    if any(p is None for p in parts):
        return None
    present: list[Mapping[str, RuleCount]] = [p for p in parts if p is not None]
    if not present:
        return None
    keys = [k for k in present[0] if all(k in p for p in present[1:])]
    return {k: RuleCount.merge_all([p[k] for p in present]) for k in keys}


def counts_to_list(counts: Mapping[str, RuleCount]) -> list[dict[str, Any]]:
    """JSON form of a profile's rule counts."""
    return [{"rule": json.loads(k)} | c.to_dict() for k, c in counts.items()]


def counts_from_list(items: Sequence[Mapping[str, Any]]) -> dict[str, RuleCount]:
    """Rebuild a profile's rule counts from :func:`counts_to_list` output."""
    return {rule_from_dict(d["rule"]).key: RuleCount.from_dict(d) for d in items}
