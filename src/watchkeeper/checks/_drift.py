"""Per-column drift tests and their verdicts.

:func:`drift_tests` runs the chosen method on every column, :func:`decide_drift` applies a
decision rule across all of them at once (multiplicity control needs the whole family), and
the result is one :class:`ColumnDrift` per column.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.checks._result import Status
from watchkeeper.checks._rules import ColumnTest, Decision, DecisionRule
from watchkeeper.checks._sides import CurrentSide, ReferenceSide
from watchkeeper.exceptions import InputError
from watchkeeper.stats import DriftMethod, TestResult, get_method

__all__ = ["DEFAULT_METHODS", "ColumnDrift", "decide_drift", "drift_tests", "resolve_methods"]

#: Default method per column kind.
DEFAULT_METHODS: Mapping[str, str] = {"numeric": "ks", "categorical": "chi2"}

# Boolean columns are compared as two categories.
_KIND_OF = {"numeric": "numeric", "categorical": "categorical", "boolean": "categorical"}


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """Drift verdict for one column (the ``columns`` entries of a report's JSON)."""

    name: str
    kind: str
    method: str
    statistic: float | None
    p_value: float | None
    adjusted_p_value: float | None
    effect_size: float | None
    threshold: float | None
    status: Status
    drifted: bool
    significant: bool | None
    reason: str
    rule: str
    n_reference: int
    n_current: int
    reference_source: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "statistic": _num(self.statistic),
            "p_value": _num(self.p_value),
            "adjusted_p_value": _num(self.adjusted_p_value),
            "effect_size": _num(self.effect_size),
            "threshold": _num(self.threshold),
            "status": self.status.value,
            "drifted": self.drifted,
            "significant": self.significant,
            "reason": self.reason,
            "rule": self.rule,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "reference_source": self.reference_source,
            "details": dict(self.details),
        }


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def resolve_methods(methods: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    """Normalise ``{"numeric": "ks"}`` or ``["numeric=ks", "categorical=chi2"]``."""
    out = dict(DEFAULT_METHODS)
    if methods is None:
        return out
    items: list[tuple[str, str]]
    if isinstance(methods, Mapping):
        items = [(str(k), str(v)) for k, v in methods.items()]
    else:
        items = []
        for spec in methods:
            kind, sep, name = str(spec).partition("=")
            if not sep:
                raise InputError(f"method {spec!r} must look like numeric=ks or categorical=chi2")
            items.append((kind.strip(), name.strip()))
    for kind, name in items:
        if kind == "embedding":
            from watchkeeper.stats import get_multivariate_method

            get_multivariate_method(name)  # validates the name
            out[kind] = name
            continue
        if kind not in DEFAULT_METHODS:
            raise InputError(f"unknown column kind {kind!r}; use numeric, categorical or embedding")
        get_method(name, kind)  # type: ignore[arg-type]  # validates the name
        out[kind] = name
    return out


def _category_counts(side_profile: Any, column: str) -> NDArray[np.int64]:
    col = side_profile.columns[column]
    return np.append(np.asarray(col.counts, dtype=np.int64), int(col.other_count))


def _run(
    method: DriftMethod,
    kind: str,
    column: str,
    ref: ReferenceSide,
    cur: CurrentSide,
) -> tuple[TestResult, str, NDArray[np.float64] | NDArray[np.int64]]:
    """Run one method; also return the reference input used (for chunk calibration)."""
    if kind == "categorical" or method.binned:
        ref_counts = (
            _category_counts(ref.profile, column)
            if kind == "categorical"
            else np.asarray(ref.profile.numeric(column).bin_counts, dtype=np.int64)
        )
        cur_counts = (
            _category_counts(cur.profile, column)
            if kind == "categorical"
            else np.asarray(cur.profile.numeric(column).bin_counts, dtype=np.int64)
        )
        counts_method = get_method(method.name, "categorical")
        result = counts_method.func(ref_counts, cur_counts)
        return result, ref.source(binned=True), ref_counts
    ref_values = ref.sorted_values(column)
    cur_values = cur.sorted_values(column)
    if method.name == "ks":
        result = method.func(ref_values, cur_values, reference_sorted=True)
    else:
        result = method.func(ref_values, cur_values)
    return result, ref.source(binned=False), ref_values


def _chunk_effects(
    method: DriftMethod,
    kind: str,
    ref_input: NDArray[Any],
    n_current: int,
    n_chunks: int,
    rng: np.random.Generator,
) -> tuple[float, ...]:
    """Effects of the method between the reference and random reference-sized chunks."""
    counts_based = kind == "categorical" or method.binned
    if counts_based:
        total = int(ref_input.sum())
        if total < 2:
            return ()
        p = ref_input / total
        func = get_method(method.name, "categorical").func
        size = min(n_current, total)
        return tuple(
            float(func(ref_input, rng.multinomial(size, p)).effect_size) for _ in range(n_chunks)
        )
    n_ref = ref_input.size
    size = min(n_current, n_ref // 2)
    if size < 2:
        return ()
    # Only the effect is needed: skip permutation p-values where a method has them.
    options = {"n_permutations": 0} if method.name in ("wasserstein", "energy") else {}
    effects = []
    for _ in range(n_chunks):
        chunk = np.sort(rng.choice(ref_input, size=size, replace=False))
        effects.append(float(method.func(ref_input, chunk, **options).effect_size))
    return tuple(effects)


def drift_tests(
    ref: ReferenceSide,
    cur: CurrentSide,
    columns: Sequence[tuple[str, str]],
    methods: Mapping[str, str],
    *,
    rule: DecisionRule,
    random_state: int = 0,
) -> list[tuple[ColumnTest, str]]:
    """Run the method of each ``(column, kind)``; return the tests and the reference source."""
    from watchkeeper.checks._unstructured import (
        DEFAULT_EMBEDDING_METHOD,
        embedding_test,
        text_test,
    )

    rng = np.random.default_rng(random_state)
    out: list[tuple[ColumnTest, str]] = []
    for column, raw_kind in columns:
        if raw_kind in ("text", "embedding"):
            if raw_kind == "text":
                test, source = text_test(column, ref, cur), ref.source(binned=True)
            else:
                name = methods.get("embedding", DEFAULT_EMBEDDING_METHOD)
                test = embedding_test(column, ref, cur, name, random_state=random_state)
                source = _embedding_source(ref, column)
            if rule.needs_reference_chunks and test.insufficient is None:
                test = replace(
                    test,
                    insufficient=f"the {rule.name} rule has no reference chunks for {raw_kind} "
                    "columns; decide them with the fdr or threshold rule",
                )
            out.append((test, source))
            continue
        kind = _KIND_OF[raw_kind]
        method = get_method(methods[kind], kind)  # type: ignore[arg-type]
        n_cur = int(cur.profile.columns[column].count)
        n_ref = int(ref.profile.columns[column].count)
        if n_cur == 0 or n_ref == 0:
            side = "current" if n_cur == 0 else "reference"
            test = ColumnTest(
                column,
                method.name,
                kind,
                method.effect_floor,
                None,
                insufficient=f"no non-missing values in the {side} data",
            )
            out.append((test, ref.source(binned=method.binned or kind == "categorical")))
            continue
        try:
            result, source, ref_input = _run(method, kind, column, ref, cur)
        except InputError as exc:
            test = ColumnTest(
                column, method.name, kind, method.effect_floor, None, insufficient=str(exc)
            )
            out.append((test, ref.source(binned=method.binned)))
            continue
        chunks: tuple[float, ...] = ()
        if rule.needs_reference_chunks:
            n_chunks = int(getattr(rule, "n_chunks", 10))
            chunks = _chunk_effects(method, kind, ref_input, n_cur, n_chunks, rng)
        test = ColumnTest(
            column, method.name, kind, method.effect_floor, result, chunk_effects=chunks
        )
        out.append((test, source))
    return out


def _embedding_source(ref: ReferenceSide, column: str) -> str:
    col: Any = ref.profile.columns[column]
    return (
        f"reference profile's projected vectors ({col.sample.shape[0]:,} of {col.count:,}, "
        f"{col.n_components} principal components of {col.dim})"
    )


def decide_drift(
    tests: Sequence[tuple[ColumnTest, str]],
    rule: DecisionRule,
    extra: Sequence[ColumnTest] = (),
) -> tuple[list[ColumnDrift], list[Decision]]:
    """Decide every column test together with ``extra`` tests (e.g. multivariate ones).

    The extra tests join the same family, so the error rate stays controlled across all of
    them; their decisions are returned separately.
    """
    family = [t for t, _ in tests] + list(extra)
    decisions = rule.decide(family)
    columns: list[ColumnDrift] = []
    for (test, source), d in zip(tests, decisions, strict=False):
        r = test.result
        columns.append(
            ColumnDrift(
                name=test.subject,
                kind=test.kind,
                method=test.method,
                statistic=None if r is None else r.statistic,
                p_value=None if r is None else r.p_value,
                adjusted_p_value=d.adjusted_p_value,
                effect_size=None if r is None else r.effect_size,
                threshold=d.threshold,
                status=d.status,
                drifted=d.drifted,
                significant=d.significant,
                reason=d.reason,
                rule=rule.name,
                n_reference=0 if r is None else r.n_reference,
                n_current=0 if r is None else r.n_current,
                reference_source=source,
                details={} if r is None else dict(r.details),
            )
        )
    return columns, decisions[len(tests) :]
