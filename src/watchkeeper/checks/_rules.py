"""Decision rules: turn per-column test results into verdicts.

Three rules, one protocol:

- :class:`StatisticalRule` (the default) — multiple-testing control across all columns of a
  comparison (Benjamini–Hochberg at ``alpha`` by default) **and** a practical effect-size floor
  per method, so that large samples do not turn negligible shifts into alerts; columns with
  fewer than ``min_samples`` values on either side get ``insufficient_data``.
- :class:`ThresholdRule` — fixed thresholds per method (the convention of Evidently): drift if
  the p-value is below 0.05 for tests, or the distance is at least a fixed value for distances.
  No multiplicity control: expect false alarms to grow with the number of columns.
- :class:`ReferenceChunksRule` — thresholds learnt from the reference itself (the convention
  of NannyML): the method is applied to random chunks of the reference of the current sample's
  size, and a column drifts when its effect exceeds the chunks' mean plus ``n_std`` standard
  deviations.

Each rule returns one :class:`Decision` per test, and every decision says which rule decided
and why, in words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from watchkeeper.checks._result import Status
from watchkeeper.exceptions import InputError
from watchkeeper.stats import TestResult, adjust_p_values, get_method

__all__ = [
    "ColumnTest",
    "Decision",
    "DecisionRule",
    "ReferenceChunksRule",
    "StatisticalRule",
    "ThresholdRule",
]

Correction = Literal["bh", "by", "holm", "bonferroni", "none"]


@dataclass(frozen=True, slots=True)
class ColumnTest:
    """One test to decide: a column (or the multivariate check) and its result.

    ``result`` is ``None`` when the test could not be run; ``insufficient`` then says why.
    ``chunk_effects`` holds the effects of the method on reference chunks, for
    :class:`ReferenceChunksRule`.
    """

    subject: str
    method: str
    kind: str
    effect_floor: float
    result: TestResult | None
    insufficient: str | None = None
    chunk_effects: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one :class:`ColumnTest`."""

    status: Status
    drifted: bool
    threshold: float | None
    reason: str
    significant: bool | None = None
    adjusted_p_value: float | None = None


class DecisionRule(Protocol):
    """What a decision rule provides."""

    @property
    def name(self) -> str: ...

    @property
    def needs_reference_chunks(self) -> bool: ...

    def describe(self) -> str:
        """One sentence saying how the rule decides."""
        ...

    def decide(self, tests: Sequence[ColumnTest]) -> list[Decision]:
        """One decision per test, in order."""
        ...


def _insufficient(test: ColumnTest, min_samples: int) -> str | None:
    if test.insufficient is not None:
        return test.insufficient
    r = test.result
    if r is None:
        return "the test could not be computed"
    if min(r.n_reference, r.n_current) < min_samples:
        return (
            f"only {min(r.n_reference, r.n_current):,} values on one side; "
            f"at least {min_samples:,} are needed for a verdict"
        )
    return None


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.4g}"
    return f"{x:.2e}"


@dataclass(frozen=True, slots=True)
class StatisticalRule:
    """Multiple-testing control plus a practical effect-size floor (the default).

    A column is ``alert`` (drifted) when its p-value survives the correction across all tests
    of the comparison at level ``alpha`` *and* its effect size reaches the method's floor
    (``effect_floors`` overrides the documented floors per method name). A significant result
    below the floor is reported as ``ok`` with ``significant=True``: real but negligible.

    Parameters
    ----------
    alpha
        Error rate controlled across the family of tests (the false discovery rate for
        ``"bh"``; under no drift at all, also the chance of any alert).
    correction
        ``"bh"`` (Benjamini–Hochberg), ``"by"`` (Benjamini–Yekutieli, any dependence),
        ``"holm"``, ``"bonferroni"`` or ``"none"``.
    effect_floors
        Per-method floors replacing the documented defaults; ``0`` disables the floor.
    min_samples
        Fewer values than this on either side gives ``insufficient_data``.

    Examples
    --------
    >>> from watchkeeper.stats import TestResult
    >>> t = ColumnTest("age", "ks", "numeric", 0.02,
    ...                TestResult("ks", 0.3, 1e-6, 0.3, 500, 500))
    >>> StatisticalRule().decide([t])[0].drifted
    True
    """

    alpha: float = 0.05
    correction: Correction = "bh"
    effect_floors: Mapping[str, float] = field(default_factory=dict)
    min_samples: int = 50

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise InputError(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.min_samples < 1:
            raise InputError(f"min_samples must be at least 1, got {self.min_samples}")

    @property
    def name(self) -> str:
        return f"{self.correction}+effect_floor" if self.correction != "none" else "p+effect_floor"

    @property
    def needs_reference_chunks(self) -> bool:
        return False

    def describe(self) -> str:
        corr = {
            "bh": "Benjamini–Hochberg false-discovery-rate control",
            "by": "Benjamini–Yekutieli false-discovery-rate control",
            "holm": "Holm family-wise error control",
            "bonferroni": "Bonferroni family-wise error control",
            "none": "no multiplicity correction",
        }[self.correction]
        return (
            f"drift when the p-value is significant at alpha={self.alpha} after {corr} across "
            f"all tests and the effect size reaches the method's practical floor; fewer than "
            f"{self.min_samples} values gives insufficient_data"
        )

    def floor(self, test: ColumnTest) -> float:
        return float(self.effect_floors.get(test.method, test.effect_floor))

    def decide(self, tests: Sequence[ColumnTest]) -> list[Decision]:
        insufficient = [_insufficient(t, self.min_samples) for t in tests]
        p = np.array(
            [
                np.nan
                if why is not None or t.result is None or t.result.p_value is None
                else t.result.p_value
                for t, why in zip(tests, insufficient, strict=True)
            ],
            dtype=np.float64,
        )
        adjusted, reject = adjust_p_values(p, alpha=self.alpha, method=self.correction)
        out: list[Decision] = []
        for i, t in enumerate(tests):
            floor = self.floor(t)
            why = insufficient[i]
            if why is not None:
                out.append(Decision(Status.INSUFFICIENT_DATA, False, floor, why))
                continue
            r = t.result
            assert r is not None
            if r.p_value is None or not math.isfinite(p[i]):
                out.append(
                    Decision(
                        Status.INSUFFICIENT_DATA,
                        False,
                        floor,
                        f"{t.method} gave no p-value, which this rule needs",
                    )
                )
                continue
            adj = float(adjusted[i])
            big = r.effect_size >= floor
            if reject[i] and big:
                status, drifted = Status.ALERT, True
                reason = (
                    f"significant (adjusted p={_fmt(adj)} < {self.alpha}) and effect "
                    f"{_fmt(r.effect_size)} >= floor {_fmt(floor)}"
                )
            elif reject[i]:
                status, drifted = Status.OK, False
                reason = (
                    f"statistically detectable (adjusted p={_fmt(adj)}) but the effect "
                    f"{_fmt(r.effect_size)} is below the practical floor {_fmt(floor)}"
                )
            else:
                status, drifted = Status.OK, False
                reason = f"not significant (adjusted p={_fmt(adj)} >= {self.alpha})"
            out.append(Decision(status, drifted, floor, reason, bool(reject[i]), adj))
        return out


#: Evidently-style defaults: tests alert at p < 0.05, distances at these values.
_FIXED_THRESHOLDS: dict[str, float] = {
    "wasserstein": 0.1,
    "energy": 0.1,
    "psi": 0.1,
    "jensen_shannon": 0.1,
    "hellinger": 0.1,
    "tvd": 0.1,
    "l_infinity": 0.1,
}


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """Fixed thresholds per method, without multiplicity control (Evidently's convention).

    Tests with a classical p-value (``ks``, ``chi2``...) drift when ``p < p_threshold``;
    distances (``wasserstein``, ``psi``, ``jensen_shannon``...) drift when the distance is at
    least ``thresholds[method]`` (default 0.1 for all of them).

    Examples
    --------
    >>> from watchkeeper.stats import TestResult
    >>> t = ColumnTest("x", "psi", "numeric", 0.1, TestResult("psi", 0.3, 0.0, 0.3, 99, 99))
    >>> ThresholdRule().decide([t])[0].status.value
    'alert'
    """

    thresholds: Mapping[str, float] = field(default_factory=dict)
    p_threshold: float = 0.05
    min_samples: int = 1

    @property
    def name(self) -> str:
        return "fixed_threshold"

    @property
    def needs_reference_chunks(self) -> bool:
        return False

    def describe(self) -> str:
        return (
            f"drift when a test's p-value is below {self.p_threshold} or a distance reaches its "
            "fixed threshold (0.1 unless configured); no correction for the number of columns"
        )

    def decide(self, tests: Sequence[ColumnTest]) -> list[Decision]:
        out: list[Decision] = []
        for t in tests:
            why = _insufficient(t, self.min_samples)
            if why is not None:
                out.append(Decision(Status.INSUFFICIENT_DATA, False, None, why))
                continue
            r = t.result
            assert r is not None
            if t.method in self.thresholds or t.method in _FIXED_THRESHOLDS:
                thr = float(self.thresholds.get(t.method, _FIXED_THRESHOLDS.get(t.method, 0.1)))
                drifted = r.effect_size >= thr
                reason = f"{t.method} = {_fmt(r.effect_size)} {'>=' if drifted else '<'} {thr}"
            elif r.p_value is not None:
                thr = self.p_threshold
                drifted = r.p_value < thr
                reason = f"p = {_fmt(r.p_value)} {'<' if drifted else '>='} {thr}"
            else:
                out.append(
                    Decision(
                        Status.INSUFFICIENT_DATA,
                        False,
                        None,
                        f"no fixed threshold is configured for {t.method}",
                    )
                )
                continue
            out.append(Decision(Status.ALERT if drifted else Status.OK, drifted, thr, reason))
        return out


@dataclass(frozen=True, slots=True)
class ReferenceChunksRule:
    """Thresholds learnt from chunks of the reference (NannyML's convention).

    For each column the method is applied between the reference and ``n_chunks`` random
    reference chunks of the current sample's size; the column drifts when its effect exceeds
    ``mean + n_std * std`` of those chunk effects. This calibrates the threshold to the
    method's sampling noise at that sample size but, like NannyML, does not control the error
    rate across columns.

    Examples
    --------
    >>> from watchkeeper.stats import TestResult
    >>> t = ColumnTest("x", "ks", "numeric", 0.02, TestResult("ks", 0.2, 1e-3, 0.2, 500, 500),
    ...                chunk_effects=(0.03, 0.05, 0.04, 0.06))
    >>> ReferenceChunksRule().decide([t])[0].drifted
    True
    """

    n_chunks: int = 10
    n_std: float = 3.0
    min_samples: int = 1

    def __post_init__(self) -> None:
        if self.n_chunks < 2:
            raise InputError(f"n_chunks must be at least 2, got {self.n_chunks}")

    @property
    def name(self) -> str:
        return "reference_chunks"

    @property
    def needs_reference_chunks(self) -> bool:
        return True

    def describe(self) -> str:
        return (
            f"drift when the effect exceeds the mean + {self.n_std:g} standard deviations of "
            f"the same method on {self.n_chunks} reference chunks of the current sample's size"
        )

    def decide(self, tests: Sequence[ColumnTest]) -> list[Decision]:
        out: list[Decision] = []
        for t in tests:
            why = _insufficient(t, self.min_samples)
            if why is None and len(t.chunk_effects) < 2:
                why = "the reference is too small to form chunks of the current sample's size"
            if why is not None:
                out.append(Decision(Status.INSUFFICIENT_DATA, False, None, why))
                continue
            r = t.result
            assert r is not None
            eff = np.asarray(t.chunk_effects, dtype=np.float64)
            thr = float(eff.mean() + self.n_std * eff.std(ddof=1))
            drifted = r.effect_size > thr
            reason = (
                f"effect {_fmt(r.effect_size)} {'>' if drifted else '<='} {_fmt(thr)} "
                f"(reference chunks: mean {_fmt(float(eff.mean()))} + {self.n_std:g} sd)"
            )
            out.append(Decision(Status.ALERT if drifted else Status.OK, drifted, thr, reason))
        return out


def resolve_rule(rule: DecisionRule | str | None) -> DecisionRule:
    """Accept a rule object or its short name (``"fdr"``, ``"threshold"``, ``"chunks"``)."""
    if rule is None or rule == "fdr":
        return StatisticalRule()
    if isinstance(rule, str):
        named: dict[str, DecisionRule] = {
            "threshold": ThresholdRule(),
            "chunks": ReferenceChunksRule(),
        }
        if rule not in named:
            raise InputError(f"unknown rule {rule!r}; choose one of: fdr, threshold, chunks")
        return named[rule]
    return rule


def method_floor(method: str, kind: str) -> float:
    """The documented effect-size floor of a registered method."""
    return get_method(method, kind).effect_floor  # type: ignore[arg-type]
