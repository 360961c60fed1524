"""What :class:`CBPE` and :class:`DLE` share: inputs, the support check, the decision rule.

Both estimate a model's performance on a window whose labels have not arrived, from a model of
the monitored model's behaviour learnt on a labelled reference. Both rest on the same
assumption — the relation between what the model sees and the outcome is the one of the
reference (no concept drift) — and both check the part of it that can be checked without
labels: that the window's rows lie where the reference had rows. A window whose rows fall
outside the reference's support asks the learnt model to extrapolate, so its estimate is
flagged (``details["assumption_warning"]``, status at least ``warn``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from scipy.stats import norm

from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.data import get_column, numeric_values, read_table, string_values
from watchkeeper.exceptions import InputError, NotFittedError

__all__ = [
    "ChunkEstimate",
    "Support",
    "check_estimate_consistency",
    "class_indices",
    "decide_estimate",
    "label_values",
    "score_values",
]

#: Name of the decision rule of estimated metrics (stored with every result).
RULE = "estimated_vs_reference"


@dataclass(frozen=True, slots=True)
class ChunkEstimate:
    """The results of one chunk of :meth:`CBPE.estimate_chunks` / :meth:`DLE.estimate_chunks`.

    ``start`` and ``stop`` are row positions in the data (``stop`` excluded).
    """

    start: int
    stop: int
    results: tuple[CheckResult, ...]


def is_numeric_type(t: pa.DataType) -> bool:
    """Whether a column of Arrow type ``t`` is treated as a number (booleans are 0/1)."""
    if pa.types.is_dictionary(t):
        return False
    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_boolean(t)
    )


def score_values(table: pa.Table, name: str, role: str) -> NDArray[np.float64]:
    """Finite float values of a score/prediction/target column, or an error saying which."""
    values, bad, examples = numeric_values(get_column(table, name))
    if bad:
        raise InputError(
            f"the {role} column {name!r} holds {bad:,} values that are not numbers "
            f"(e.g. {', '.join(examples)}); pass numeric {role}s"
        )
    missing = int(np.count_nonzero(~np.isfinite(values)))
    if missing:
        raise InputError(
            f"the {role} column {name!r} has {missing:,} missing or non-finite values of "
            f"{values.size:,}; drop or fill those rows before estimating"
        )
    return np.asarray(values, dtype=np.float64)


def label_values(table: pa.Table, name: str, role: str) -> pa.ChunkedArray:
    """Class labels of a column as strings (``1`` and ``1.0`` are both ``"1"``)."""
    values = string_values(get_column(table, name))
    if values.null_count:
        raise InputError(
            f"the {role} column {name!r} has {values.null_count:,} missing values of "
            f"{len(values):,}; drop those rows or fill them before estimating"
        )
    return values


def class_indices(
    table: pa.Table, name: str, role: str, classes: Sequence[str]
) -> NDArray[np.int64]:
    """Position of each row's class in ``classes``, or an error naming the unknown ones."""
    values = label_values(table, name, role)
    found = pc.index_in(values, value_set=pa.array(list(classes), type=pa.string()))
    if found.null_count:
        odd = pc.unique(values.filter(pc.is_null(found))).to_pylist()
        raise InputError(
            f"the {role} column {name!r} holds classes {sorted(odd)[:5]} that are not among "
            f"{list(classes)}; pass classes=[...] with every class"
        )
    if len(found) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Support:
    """Where the reference had rows: the range of each numeric column, the categories of
    each other column.

    A window row is *out of support* when any of its values lies outside its column's
    reference range or is a category the reference never had (missing values count as
    supported when the reference had missing values there too). Under no shift at all the
    expected share of such rows is about ``2 * n_numeric / (n_reference + 1)`` (a new value
    beyond the reference minimum or maximum); the rule flags far more than that.
    """

    ranges: Mapping[str, tuple[float, float, bool]]
    categories: Mapping[str, frozenset[str | None]]
    n_reference: int

    @classmethod
    def learn(cls, table: pa.Table, columns: Sequence[str]) -> Support:
        ranges: dict[str, tuple[float, float, bool]] = {}
        categories: dict[str, frozenset[str | None]] = {}
        for name in columns:
            column = get_column(table, name)
            if is_numeric_type(column.type):
                values = numeric_values(column)[0]
                finite = values[np.isfinite(values)]
                lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
                ranges[name] = (lo, hi, bool(finite.size < values.size))
            else:
                strings = string_values(column).to_numpy(zero_copy_only=False)
                categories[name] = frozenset(strings.tolist())
        return cls(ranges=ranges, categories=categories, n_reference=table.num_rows)

    def expected_share(self) -> float:
        """Share of rows beyond the reference extremes expected without any shift (a bound)."""
        return min(1.0, 2.0 * len(self.ranges) / (self.n_reference + 1))

    def outside(self, table: pa.Table) -> tuple[float, dict[str, float]]:
        """Share of rows of ``table`` out of support, and the share per column (non-zero)."""
        n = table.num_rows
        if n == 0:
            return 0.0, {}
        any_out = np.zeros(n, dtype=bool)
        per_column: dict[str, float] = {}
        for name, (lo, hi, had_missing) in self.ranges.items():
            values = numeric_values(get_column(table, name))[0]
            with np.errstate(invalid="ignore"):
                out = (values < lo) | (values > hi)
            if not had_missing:
                out |= ~np.isfinite(values)
            per_column[name] = float(out.mean())
            any_out |= out
        for name, seen in self.categories.items():
            strings = string_values(get_column(table, name))
            known = pa.array([v for v in seen if v is not None], type=pa.string())
            inside = pc.is_in(strings, value_set=known)
            if None in seen:
                inside = pc.or_(inside, pc.is_null(strings))
            out = ~np.asarray(inside.to_numpy(zero_copy_only=False), dtype=bool)
            per_column[name] = float(out.mean())
            any_out |= out
        return float(any_out.mean()), {k: v for k, v in per_column.items() if v > 0}


def fmt(x: float) -> str:
    """A number for a sentence: four significant digits."""
    return f"{float(x):.4g}"


def decide_estimate(
    *,
    metric: str,
    value: float,
    lower: float,
    upper: float,
    reference: float,
    threshold: float,
    higher_is_better: bool,
) -> tuple[Status, str]:
    """Status of one estimated metric against the reference performance.

    ``alert`` when the whole interval is on the bad side of ``threshold`` (the reference
    value worsened by the tolerance), ``ok`` otherwise. The point estimate alone does not
    decide: a window's realised metric scatters around it by about half the interval, so a
    rule on the estimate would warn on a good share of windows of an unchanged model. Since
    the interval is a two-sided prediction interval at level ``confidence``, an unchanged
    model alerts on at most ``(1 - confidence) / 2`` of windows per metric (less with a
    tolerance).
    """
    where = f"estimated {metric} {fmt(value)} ({fmt(lower)} to {fmt(upper)})"
    # The bad side of the threshold: below it for scores, above it for errors.
    sign = 1.0 if higher_is_better else -1.0
    side, bound, edge = ("below", "upper", upper) if higher_is_better else ("above", "lower", lower)
    limit = (
        f"{fmt(threshold)} (the reference {fmt(reference)} "
        f"{'minus' if higher_is_better else 'plus'} the tolerance)"
    )
    if sign * (threshold - edge) > 0:
        return Status.ALERT, f"{where}: even the {bound} bound is {side} {limit}"
    if sign * (threshold - value) > 0:
        return Status.OK, f"{where}: the estimate is {side} {limit} but the interval reaches it"
    return Status.OK, f"{where}: within the tolerance of the reference {fmt(reference)}"


def with_assumption_check(
    status: Status,
    details: dict[str, Any],
    share: float,
    limit: float,
    per_column: dict[str, float],
) -> Status:
    """Record the support check in ``details``; raise ``status`` to ``warn`` when it fails."""
    details["unsupported_share"] = share
    details["max_unsupported_share"] = limit
    if share > limit:
        worst = sorted(per_column.items(), key=lambda kv: -kv[1])[:3]
        cols = ", ".join(f"{k} {v:.1%}" for k, v in worst)
        details["assumption_warning"] = (
            f"{share:.1%} of the window's rows lie outside the reference's support ({cols}), "
            f"more than {limit:.1%}: the estimate extrapolates and may be wrong; check with "
            "labels before acting on it"
        )
        details["unsupported_columns"] = dict(worst)
        if status.severity < Status.WARN.severity:
            return Status.WARN
    return status


def check_estimate_consistency(
    estimate: CheckResult,
    realised: float | CheckResult,
    *,
    tests: int = 1,
) -> CheckResult:
    """Once a window's labels arrive: was its label-free estimate consistent with them?

    CBPE and DLE assume the relation between what the model sees and the outcome is the one of
    the reference (no concept drift). Without labels no check can see that assumption fail; once
    the labels of the estimated window arrive, the realised metric can be compared with the
    estimate's interval. Under the assumption the realised value falls outside a calibrated
    interval at level ``c`` with probability ``1 - c``; a value outside says the estimate's
    model of the world no longer holds, so later label-free estimates are not to be trusted
    until the estimator is refitted on data from after the change.

    The test is the interval's own: ``z = (realised - estimate) / sd`` with ``sd`` read off the
    interval (the wider side, as the interval is clipped to the metric's range), two-sided
    p-value ``2 (1 - Phi(|z|))``, failing when it is below ``(1 - c) / tests`` (Bonferroni, so
    with ``tests`` comparisons — several metrics or windows — the chance that any of them fails
    under the assumption is at most ``1 - c``). With ``tests=1`` this is exactly "the realised
    value lies outside the interval".

    Parameters
    ----------
    estimate
        A result of :meth:`CBPE.estimate` or :meth:`DLE.estimate` (check ``estimated.<metric>``).
    realised
        The metric on the window's labels, or the result holding it (its ``value``), e.g. from
        :func:`check_realised_performance` for the same metric and window.
    tests
        How many such comparisons are judged together (Bonferroni correction).

    Returns
    -------
    CheckResult
        Check ``estimated.<metric>.assumption``: ``warn`` with ``details["assumption_warning"]``
        when the assumption failed, ``ok`` when the realised value is consistent,
        ``insufficient_data`` when the estimate had no interval or the realised value is
        undefined.

    Examples
    --------
    >>> from watchkeeper.checks import CheckResult, Status, check_estimate_consistency
    >>> est = CheckResult(check="estimated.roc_auc", subject="model", status=Status.OK,
    ...                   reason="...", value=0.90, lower=0.88, upper=0.92,
    ...                   details={"confidence": 0.95})
    >>> check_estimate_consistency(est, 0.91).status.value
    'ok'
    >>> r = check_estimate_consistency(est, 0.85)
    >>> r.check, r.status.value, round(r.p_value, 6)
    ('estimated.roc_auc.assumption', 'warn', 0.0)
    """
    if not estimate.check.startswith("estimated."):
        raise InputError(
            "check_estimate_consistency takes a result of CBPE or DLE (check "
            f"'estimated.<metric>'), got {estimate.check!r}"
        )
    if tests < 1:
        raise InputError(f"tests must be a positive number of comparisons, got {tests}")
    value = realised.value if isinstance(realised, CheckResult) else realised
    metric = estimate.check.removeprefix("estimated.")
    check = f"{estimate.check}.assumption"
    confidence = float(estimate.details.get("confidence", 0.95))
    alpha = (1.0 - confidence) / tests
    details: dict[str, Any] = {
        "assumption": "no concept drift: the outcome given the model's inputs and output is "
        "as in the reference",
        "confidence": confidence,
        "tests": tests,
        "alpha": alpha,
    }
    if (
        value is None
        or not math.isfinite(float(value))
        or estimate.value is None
        or estimate.lower is None
        or estimate.upper is None
    ):
        return CheckResult(
            check=check, subject=estimate.subject, status=Status.INSUFFICIENT_DATA,
            reason=f"cannot compare: the estimate of {metric} has no interval or the realised "
            "value is undefined", rule="estimate_consistency", details=details,
        )  # fmt: skip
    realised_value = float(value)
    z_c = float(norm.ppf(0.5 + confidence / 2))
    sd = max(estimate.upper - estimate.value, estimate.value - estimate.lower) / z_c
    if sd > 0:
        z = (realised_value - estimate.value) / sd
    else:
        z = 0.0 if realised_value == estimate.value else math.copysign(math.inf, realised_value)
    p = float(2.0 * norm.sf(abs(z)))
    details.update({"estimate": estimate.value, "lower": estimate.lower,
                    "upper": estimate.upper, "z": z})  # fmt: skip
    where = (
        f"realised {metric} {fmt(realised_value)} vs estimated {fmt(estimate.value)} "
        f"({fmt(estimate.lower)} to {fmt(estimate.upper)}), p = {p:.3g}"
    )
    family = f" over {tests} comparisons" if tests > 1 else ""
    if p < alpha:
        details["assumption_warning"] = (
            f"the realised {metric} lies outside what the estimate allows (p = {p:.3g} < "
            f"{alpha:.3g}, level {confidence:.0%}{family}): the no-concept-drift assumption "
            "failed on this window; do not trust label-free estimates until the estimator is "
            "refitted on data from after the change"
        )
        status, reason = Status.WARN, f"{where}: the no-concept-drift assumption failed"
    else:
        status, reason = Status.OK, f"{where}: consistent with the estimate"
    return CheckResult(
        check=check, subject=estimate.subject, status=status, reason=reason,
        value=realised_value, lower=estimate.lower, upper=estimate.upper, p_value=p,
        threshold=alpha, rule="estimate_consistency", details=details,
    )  # fmt: skip


def draws_sd(draws: NDArray[np.float64]) -> float:
    """Standard deviation of simulated values (undefined draws left out)."""
    finite = draws[np.isfinite(draws)]
    return float(finite.std(ddof=1)) if finite.size > 1 else math.inf


class Estimator(ABC):
    """What :class:`CBPE` and :class:`DLE` share: options, verdicts, chunks, empty windows.

    Subclasses set the class attributes and store their own options after calling
    ``super().__init__`` with the shared ones.
    """

    _method: str
    _all_metrics: tuple[str, ...]
    _assumptions: tuple[str, ...]
    _coverage: str
    _higher_is_better: bool
    _upper_limit: float

    def __init__(
        self,
        metrics: Sequence[str],
        *,
        chunk_size: int | None,
        tolerance: float,
        confidence: float,
        min_rows: int,
        max_unsupported_share: float,
        random_state: int,
    ) -> None:
        self.metrics = tuple(metrics)
        self.chunk_size = chunk_size
        self.tolerance = tolerance
        self.confidence = confidence
        self.min_rows = min_rows
        self.max_unsupported_share = max_unsupported_share
        self.random_state = random_state

    def _check_options(self) -> None:
        unknown = sorted(set(self.metrics) - set(self._all_metrics))
        if unknown or not self.metrics:
            raise InputError(
                f"unknown metrics {unknown}; {type(self).__name__} estimates "
                f"{', '.join(self._all_metrics)}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise InputError(f"confidence must be between 0 and 1, got {self.confidence}")
        if self.min_rows < 1:
            raise InputError(f"min_rows must be at least 1, got {self.min_rows}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise InputError(f"chunk_size must be a positive number of rows, got {self.chunk_size}")

    @abstractmethod
    def _threshold(self, reference: float) -> float:
        """The value the estimate is judged against, from the reference value."""

    def _details(self, n: int, reference: float, reference_estimate: float) -> dict[str, Any]:
        return {
            "method": self._method,
            "assumptions": list(self._assumptions),
            "interval": self._coverage,
            "confidence": self.confidence,
            "n_rows": n,
            "reference_value": reference,
            "reference_estimate": reference_estimate,
            "tolerance": self.tolerance,
        }

    def _verdict(
        self,
        key: tuple[str, str],
        value: float,
        sd: float,
        details: dict[str, Any],
        support: tuple[float, dict[str, float]],
    ) -> CheckResult:
        """The result of one estimated metric: the interval ``value +- z sd`` (clipped to the
        metric's range), the comparison with the reference, the assumption check."""
        metric, subject = key
        check = f"estimated.{metric}"
        if not math.isfinite(value):
            status = with_assumption_check(
                Status.INSUFFICIENT_DATA, details, support[0], self.max_unsupported_share,
                support[1],
            )  # fmt: skip
            return CheckResult(
                check=check,
                subject=subject,
                status=status,
                reason=f"{metric} is undefined on this window (no expected rows in its "
                "denominator, e.g. no predicted positives for precision, or a single "
                "expected class for ROC AUC)",
                rule=RULE,
                details=details,
            )
        z = float(norm.ppf(0.5 + self.confidence / 2))
        if not math.isfinite(sd):
            sd = math.inf
        lower, upper = max(0.0, value - z * sd), min(self._upper_limit, value + z * sd)
        reference = float(details["reference_value"])
        threshold = self._threshold(reference)
        status, reason = decide_estimate(
            metric=metric, value=value, lower=lower, upper=upper, reference=reference,
            threshold=threshold, higher_is_better=self._higher_is_better,
        )  # fmt: skip
        status = with_assumption_check(
            status, details, support[0], self.max_unsupported_share, support[1]
        )
        return CheckResult(
            check=check, subject=subject, status=status, reason=reason, value=value,
            threshold=threshold, lower=lower, upper=upper, rule=RULE, details=details,
        )  # fmt: skip

    def _require_fitted(self) -> None:
        if not hasattr(self, "reference_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(reference) with a "
                "labelled reference first"
            )

    @abstractmethod
    def _subjects(self) -> list[tuple[str, str]]:
        """(metric, subject) pairs the estimator reports."""

    @abstractmethod
    def estimate(self, data: Any) -> list[CheckResult]:
        """Estimated performance of a window (one result per metric and subject)."""

    def _insufficient(self, n: int) -> list[CheckResult]:
        reason = (
            f"only {n:,} rows in the window; at least {self.min_rows:,} are needed to estimate "
            "performance"
        )
        return [
            CheckResult(
                check=f"estimated.{metric}",
                subject=subject,
                status=Status.INSUFFICIENT_DATA,
                reason=reason,
                rule=RULE,
                details={"n_rows": n},
            )
            for metric, subject in self._subjects()
        ]

    def _chunk_rows(self) -> int:
        if self.chunk_size is None:
            raise InputError(
                f"{type(self).__name__}(chunk_size=None) cannot split data into chunks; pass "
                "chunk_size=<rows per chunk> or call estimate() per window"
            )
        return self.chunk_size

    def estimate_chunks(self, data: Any) -> list[ChunkEstimate]:
        """Estimate on consecutive chunks of ``chunk_size`` rows (the last may be shorter).

        Raises
        ------
        InputError
            If ``chunk_size`` was not set.
        """
        self._require_fitted()
        size = self._chunk_rows()
        table = read_table(data, allow_empty=True)
        out: list[ChunkEstimate] = []
        for start in range(0, table.num_rows, size):
            stop = min(start + size, table.num_rows)
            results = self.estimate(table.slice(start, stop - start))
            out.append(ChunkEstimate(start, stop, tuple(results)))
        return out
