"""Contracts imported from a TFDV schema or a Great Expectations suite (no dependency on
either tool: a small reader for the entries that map, and a list of those that do not).

TFDV (``schema.pbtxt`` text format, or its JSON form): for each ``feature``,
``presence.min_fraction`` becomes ``not_null`` (with ``mostly`` below 1),
``int_domain``/``float_domain`` ``min``/``max`` a ``range``, a ``string_domain`` (inline or
named by ``domain:``) or ``bool_domain`` ``allowed_values``;
``dataset_constraints.min_examples_count``/``max_examples_count`` a ``row_count``.

Great Expectations (suite JSON, with ``expectation_type`` or ``type``):
``expect_column_values_to_not_be_null``, ``_to_be_between``, ``_to_be_in_set``,
``_to_match_regex``, ``_to_be_unique``, ``_to_be_increasing``, ``_to_be_decreasing``,
``expect_table_row_count_to_be_between``, ``expect_table_row_count_to_equal``,
``expect_column_pair_values_a_to_be_greater_than_b`` and
``expect_column_pair_values_to_be_equal``, with their ``mostly``.

Everything else (drift comparators, distribution constraints, value counts, other
expectations, parameters without an equivalent) is listed in ``unmapped``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from watchkeeper.data._contract import Contract, ContractRule, ImportedContract
from watchkeeper.data._contract_rules import AllowedValues, NotNull, Range, Regex, Relation
from watchkeeper.data._contract_sets import Monotone, RowCount, Unique
from watchkeeper.exceptions import InputError

__all__ = ["from_great_expectations", "from_tfdv", "parse_pbtxt"]

_PBTXT_TOKEN = re.compile(
    r"""\s*(?:(\#[^\n]*)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|([{}:<>\[\],;])|([^\s{}:<>\[\],;"'#]+))""",
    re.DOTALL,
)


def _source_text(source: Any, what: str) -> str | Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    if isinstance(source, Path) or (
        isinstance(source, str) and "\n" not in source and "{" not in source
    ):
        path = Path(source)
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read the {what} {str(path)!r}: {exc}") from None
    if isinstance(source, bytes):
        return source.decode("utf-8")
    if isinstance(source, str):
        return source
    raise InputError(f"pass the {what} as text, a path or a mapping, not {type(source).__name__}")


def parse_pbtxt(text: str) -> dict[str, list[Any]]:
    """Protocol-buffer text format into nested ``{field: [values]}`` (strings unquoted,
    numbers and enums kept as text).

    Examples
    --------
    >>> parse_pbtxt('feature { name: "a" int_domain { min: 0 } }  # c')
    {'feature': [{'name': ['a'], 'int_domain': [{'min': ['0']}]}]}
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _PBTXT_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise InputError(f"cannot read the TFDV schema text near {text[pos : pos + 40]!r}")
        pos = m.end()
        if m.group(1):
            continue
        if m.group(2):
            raw = m.group(2)[1:-1]
            tokens.append(("str", bytes(raw, "utf-8").decode("unicode_escape")))
        elif m.group(3):
            tokens.append(("punct", m.group(3)))
        elif m.group(4):
            tokens.append(("word", m.group(4)))
    out, _ = _parse_message(tokens, 0, top=True)
    return out


def _parse_message(
    tokens: list[tuple[str, str]], i: int, *, top: bool = False
) -> tuple[dict[str, list[Any]], int]:
    out: dict[str, list[Any]] = {}
    while i < len(tokens):
        kind, tok = tokens[i]
        if kind == "punct" and tok in ("}", ">"):
            if top:
                raise InputError("the TFDV schema text has an unmatched '}'")
            return out, i + 1
        if kind == "punct" and tok in (",", ";"):
            i += 1
            continue
        if kind != "word":
            raise InputError(f"the TFDV schema text has {tok!r} where a field name should be")
        name = tok
        i += 1
        if i < len(tokens) and tokens[i] == ("punct", ":"):
            i += 1
        if i >= len(tokens):
            raise InputError(f"the TFDV schema text ends after field {name!r}")
        kind, tok = tokens[i]
        if kind == "punct" and tok in ("{", "<"):
            value, i = _parse_message(tokens, i + 1)
            out.setdefault(name, []).append(value)
        elif kind == "punct" and tok == "[":
            i += 1
            while i < len(tokens) and tokens[i] != ("punct", "]"):
                if tokens[i] != ("punct", ","):
                    out.setdefault(name, []).append(tokens[i][1])
                i += 1
            i += 1
        else:
            value_text = tok
            i += 1
            while i < len(tokens) and tokens[i][0] == "str" and kind == "str":
                value_text += tokens[i][1]  # adjacent string literals concatenate
                i += 1
            out.setdefault(name, []).append(value_text)
    if not top:
        raise InputError("the TFDV schema text has an unclosed '{'")
    return out, i


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _from_json_form(payload: Any) -> Any:
    """TFDV's JSON form (camelCase keys, single values) into the parsed-text layout."""
    if isinstance(payload, Mapping):
        out: dict[str, list[Any]] = {}
        for k, v in payload.items():
            values = v if isinstance(v, list) else [v]
            out[_snake(str(k))] = [_from_json_form(x) for x in values]
        return out
    if isinstance(payload, bool):
        return "true" if payload else "false"
    return str(payload)


def _one(msg: Mapping[str, list[Any]], key: str) -> Any:
    values = msg.get(key)
    return values[-1] if values else None


def _number(text: Any, where: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {text!r} is not a number") from None


def from_tfdv(source: Any) -> ImportedContract:
    """Contract rules from a TFDV schema (see the module docs).

    Parameters
    ----------
    source
        ``schema.pbtxt`` text, its JSON form (text or mapping), or a path to either.

    Examples
    --------
    >>> text = '''
    ... feature { name: "plan" type: BYTES domain: "plans" presence { min_fraction: 0.9 } }
    ... feature { name: "x" type: FLOAT skew_comparator { infinity_norm { threshold: 0.1 } } }
    ... string_domain { name: "plans" value: "free" value: "pro" }
    ... '''
    >>> found = from_tfdv(text)
    >>> [r.describe() for r in found.contract.rules], found.unmapped
    (["plan is one of 'free', 'pro'", 'plan is never missing'], ('feature x: skew_comparator',))
    """
    loaded = _source_text(source, "TFDV schema")
    if isinstance(loaded, Mapping):
        parsed = _from_json_form(loaded)
    elif loaded.lstrip().startswith("{"):
        try:
            parsed = _from_json_form(json.loads(loaded))
        except json.JSONDecodeError as exc:
            raise InputError(f"the TFDV schema is not valid JSON: {exc}") from None
    else:
        parsed = parse_pbtxt(loaded)
    domains = {
        str(_one(d, "name")): tuple(str(v) for v in d.get("value", ()))
        for d in parsed.get("string_domain", ())
    }
    rules: list[ContractRule] = []
    unmapped: list[str] = []
    for feature in parsed.get("feature", ()):
        name = _one(feature, "name")
        if not name:
            unmapped.append("a feature without a name")
            continue
        where = f"TFDV feature {name!r}"
        for key, values in feature.items():
            for value in values:
                rules_here = _tfdv_entry(name, key, value, domains, where)
                if rules_here is None:
                    unmapped.append(f"feature {name}: {key}")
                else:
                    rules += rules_here
    for key, values in parsed.items():
        if key in ("feature", "string_domain"):
            continue
        for value in values:
            if key == "dataset_constraints" and isinstance(value, Mapping):
                lo, hi = _one(value, "min_examples_count"), _one(value, "max_examples_count")
                if lo is not None or hi is not None:
                    rules.append(
                        RowCount(
                            min=None if lo is None else int(lo), max=None if hi is None else int(hi)
                        )
                    )
                others = sorted(set(value) - {"min_examples_count", "max_examples_count"})
                unmapped += [f"dataset_constraints: {k}" for k in others]
            else:
                unmapped.append(key)
    return ImportedContract(_dedupe(rules), tuple(unmapped))


def _tfdv_entry(
    name: str, key: str, value: Any, domains: Mapping[str, tuple[str, ...]], where: str
) -> list[ContractRule] | None:
    """Rules for one field of a TFDV feature; ``[]`` when it needs none, ``None`` when it
    does not map."""
    if key in ("name", "type"):
        return []
    if key == "presence" and isinstance(value, Mapping):
        out: list[ContractRule] = []
        fraction = _one(value, "min_fraction")
        if fraction is not None and _number(fraction, where) > 0:
            out.append(NotNull(column=name, mostly=min(_number(fraction, where), 1.0)))
        count = _one(value, "min_count")
        if (count is not None and int(count) > 1) or set(value) - {"min_fraction", "min_count"}:
            return out or None  # a min_count above 1 has no equivalent
        return out
    if key in ("int_domain", "float_domain") and isinstance(value, Mapping):
        lo, hi = _one(value, "min"), _one(value, "max")
        if lo is None and hi is None:
            return None
        return [
            Range(
                column=name,
                min=None if lo is None else _number(lo, where),
                max=None if hi is None else _number(hi, where),
            )
        ]
    if key == "string_domain" and isinstance(value, Mapping):
        values = tuple(str(v) for v in value.get("value", ()))
        return [AllowedValues(column=name, values=values)] if values else None
    if key == "domain":
        named = domains.get(str(value))
        return [AllowedValues(column=name, values=named)] if named else None
    if key == "bool_domain":
        return [AllowedValues(column=name, values=("true", "false"))]
    return None


_GE_ORDER = ("expect_column_values_to_be_increasing", "expect_column_values_to_be_decreasing")
_GE_HARMLESS = frozenset({"result_format", "include_config", "catch_exceptions", "meta"})


def from_great_expectations(suite: Any) -> ImportedContract:
    """Contract rules from a Great Expectations suite (see the module docs).

    Parameters
    ----------
    suite
        The suite as JSON text, a path to it, or a mapping with ``expectations``.

    Examples
    --------
    >>> suite = {"expectations": [{"expectation_type": "expect_column_values_to_be_between",
    ...                            "kwargs": {"column": "age", "min_value": 0, "mostly": 0.99}}]}
    >>> from_great_expectations(suite).contract.rules
    (Range(mostly=0.99, column='age', min=0.0, max=None, strict=False),)
    """
    loaded = _source_text(suite, "Great Expectations suite")
    if not isinstance(loaded, Mapping):
        try:
            loaded = json.loads(loaded)
        except json.JSONDecodeError as exc:
            raise InputError(f"the Great Expectations suite is not valid JSON: {exc}") from None
    if not isinstance(loaded, Mapping) or not isinstance(loaded.get("expectations"), list):
        raise InputError("a Great Expectations suite is an object with a list 'expectations'")
    rules: list[ContractRule] = []
    unmapped: list[str] = []
    for e in loaded["expectations"]:
        if not isinstance(e, Mapping):
            unmapped.append(repr(e))
            continue
        etype = str(e.get("expectation_type", e.get("type", "")))
        kwargs = dict(e.get("kwargs", {}))
        try:
            rule = _ge_rule(etype.lower(), dict(kwargs))
        except (InputError, TypeError, ValueError) as exc:
            raise InputError(f"Great Expectations expectation {etype!r}: {exc}") from None
        if rule is None:
            shown = ", ".join(f"{k}={v}" for k, v in kwargs.items() if k not in _GE_HARMLESS)
            unmapped.append(f"{etype}({shown})")
        else:
            rules.append(rule)
    return ImportedContract(_dedupe(rules), tuple(unmapped))


def _ge_rule(etype: str, kw: dict[str, Any]) -> ContractRule | None:
    mostly = float(kw.pop("mostly", 1.0))
    for k in _GE_HARMLESS:
        kw.pop(k, None)
    column = kw.pop("column", None)
    rule: ContractRule | None = None
    if etype == "expect_column_values_to_not_be_null":
        rule = NotNull(column=column, mostly=mostly)
    elif etype == "expect_column_values_to_be_between":
        strict_min = bool(kw.pop("strict_min", False))
        strict_max = bool(kw.pop("strict_max", False))
        lo, hi = kw.pop("min_value", None), kw.pop("max_value", None)
        if strict_min != strict_max and not (lo is None or hi is None):
            return None
        if lo is None and hi is None:
            return None
        rule = Range(column=column, min=lo, max=hi, strict=strict_min or strict_max, mostly=mostly)
    elif etype == "expect_column_values_to_be_in_set":
        rule = AllowedValues(column=column, values=tuple(kw.pop("value_set", ())), mostly=mostly)
    elif etype == "expect_column_values_to_match_regex":
        rule = Regex(column=column, pattern=kw.pop("regex", ""), mostly=mostly)
    elif etype == "expect_column_values_to_be_unique":
        rule = Unique(column=column, mostly=mostly)
    elif etype in _GE_ORDER:
        direction = "increasing" if etype.endswith("increasing") else "decreasing"
        rule = Monotone(
            column=column,
            direction=direction,
            strict=bool(kw.pop("strictly", False)),
            mostly=mostly,
        )
    elif etype in ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"):
        if etype.endswith("equal"):
            lo = hi = kw.pop("value", None)
        else:
            lo, hi = kw.pop("min_value", None), kw.pop("max_value", None)
        if lo is None and hi is None:
            return None
        rule = RowCount(min=None if lo is None else int(lo), max=None if hi is None else int(hi))
    elif etype == "expect_column_pair_values_a_to_be_greater_than_b":
        op = ">=" if kw.pop("or_equal", False) else ">"
        left, right = kw.pop("column_A", None), kw.pop("column_B", "")
        rule = Relation(left=left, op=op, right=right, mostly=mostly)
    elif etype == "expect_column_pair_values_to_be_equal":
        left, right = kw.pop("column_A", None), kw.pop("column_B", "")
        rule = Relation(left=left, op="==", right=right, mostly=mostly)
    else:
        return None
    if kw:  # parameters this rule has no equivalent for
        return None
    return rule


def _dedupe(rules: list[ContractRule]) -> Contract:
    seen: dict[str, ContractRule] = {}
    for r in rules:
        seen.setdefault(r.key, r)
    return Contract(tuple(seen.values()))
