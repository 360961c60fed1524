"""Fairness results of the groups of one attribute or intersection, from group counts.

Per group: the metric with its interval and a test against the rest of the population. Per
grouping: the gaps between the extreme groups with a test of homogeneity and a simultaneous
interval. Results are returned *pending*: :func:`~watchkeeper.checks._fairness` decides their
status once every p-value of the call has been adjusted together.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.checks._fairness_config import (
    CLASSIFICATION_GAPS,
    REGRESSION_GAPS,
    FairnessConfig,
)
from watchkeeper.checks._fairness_stats import (
    chi2_homogeneity,
    katz_ratio_interval,
    mean_interval,
    newcombe_interval,
    two_proportion_test,
    welch_anova,
    welch_interval,
    welch_test,
)
from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.data import GroupCounts
from watchkeeper.stats import wilson_interval

__all__ = ["Pending", "done", "evaluate", "groupings", "subject_of"]

_LABELLED = ("tp", "fp", "fn", "tn")
# metric -> (numerator fields, denominator fields, what the denominator counts)
_RATES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "selection_rate": (
        ("tp", "fp", "predicted_positive_unlabelled"),
        (*_LABELLED, "predicted_positive_unlabelled", "predicted_negative_unlabelled"),
        "rows with a prediction",
    ),
    "true_positive_rate": (("tp",), ("tp", "fn"), "positives"),
    "false_positive_rate": (("fp",), ("fp", "tn"), "negatives"),
    "precision": (("tp",), ("tp", "fp"), "predicted positives"),
    "error_rate": (("fp", "fn"), _LABELLED, "labelled rows"),
}


@dataclass
class Pending:
    """A result waiting for its adjusted p-value (``finish`` makes the CheckResult)."""

    p_value: float | None
    finish: Callable[[float | None], CheckResult]


def done(result: CheckResult) -> Pending:
    return Pending(None, lambda _adj: result)


def groupings(counts: GroupCounts, cfg: FairnessConfig) -> list[GroupCounts]:
    out = [counts.rollup([a]) for a in counts.attributes]
    if cfg.intersections and len(counts.attributes) > 1:
        out.append(counts)
    return out


def evaluate(counts: GroupCounts, cfg: FairnessConfig) -> list[Pending]:
    pending: list[Pending] = []
    for grouping in groupings(counts, cfg):
        subjects = [subject_of(grouping.attributes, k) for k in grouping.keys]
        name = " & ".join(grouping.attributes)
        table = _Table(name, subjects, grouping, cfg)
        pending += table.counts()
        if counts.task == "classification":
            for metric in _RATES:
                pending += table.rate_by_group(metric)
            pending += table.rate_gaps()
        else:
            pending += table.regression_by_group()
            pending += table.regression_gaps()
    return pending


def subject_of(attributes: Sequence[str], key: Sequence[str]) -> str:
    return " & ".join(f"{a}={v}" for a, v in zip(attributes, key, strict=True))


def _col(gc: GroupCounts, names: Sequence[str]) -> NDArray[np.float64]:
    idx = [gc.fields.index(n) for n in names]
    return np.asarray(gc.counts[:, idx].sum(axis=1), dtype=np.float64)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


class _Table:
    """The groups of one attribute (or intersection) and the results built from them."""

    def __init__(self, name: str, subjects: list[str], gc: GroupCounts, cfg: FairnessConfig):
        self.name, self.subjects, self.gc, self.cfg = name, subjects, gc, cfg
        self.level = f"{cfg.confidence:.0%}"

    def _cell(self, i: int) -> dict[str, float | int]:
        return {f: (round(v) if self.gc.task == "classification" else float(v))
                for f, v in zip(self.gc.fields, self.gc.counts[i], strict=True)}  # fmt: skip

    def counts(self) -> list[Pending]:
        rows = self.gc.counts.sum(axis=1)
        if self.gc.task == "regression":
            rows = _col(self.gc, ("n_predicted", "no_prediction"))
        out = []
        for i, subject in enumerate(self.subjects):
            n = round(float(rows[i]))
            small = n < self.cfg.min_group_size
            out.append(done(CheckResult(
                "fairness.count", subject,
                Status.INSUFFICIENT_DATA if small else Status.OK,
                f"{n:,} rows in {subject}"
                + (f", fewer than min_group_size={self.cfg.min_group_size}" if small else ""),
                value=float(n), threshold=float(self.cfg.min_group_size),
                rule="minimum group size",
                details={"grouping": self.name, "counts": self._cell(i)},
            )))  # fmt: skip
        return out

    # -- classifiers -------------------------------------------------------------------------

    def rate_by_group(self, metric: str) -> list[Pending]:
        num_f, den_f, what = _RATES[metric]
        num, den = _col(self.gc, num_f), _col(self.gc, den_f)
        total_x, total_n = float(num.sum()), float(den.sum())
        out: list[Pending] = []
        for i, subject in enumerate(self.subjects):
            x, n = float(num[i]), float(den[i])
            details: dict[str, Any] = {
                "grouping": self.name, "numerator": round(x), "denominator": round(n),
                "denominator_counts": what,
            }  # fmt: skip
            if n < self.cfg.min_group_size:
                out.append(done(self._too_small(metric, subject, n, what, details)))
                continue
            value = x / n
            lo, hi = wilson_interval(round(x), round(n), self.cfg.confidence)
            rest_x, rest_n = total_x - x, total_n - n
            p = two_proportion_test(x, n, rest_x, rest_n) if rest_n > 0 else None
            rest = rest_x / rest_n if rest_n > 0 else None
            out.append(Pending(p, self._group_finish(metric, subject, value, lo, hi, rest,
                                                      details, scale=1.0)))  # fmt: skip
        return out

    def _too_small(
        self, metric: str, subject: str, n: float, what: str, details: dict[str, Any]
    ) -> CheckResult:
        return CheckResult(
            f"fairness.{metric}", subject, Status.INSUFFICIENT_DATA,
            f"{metric.replace('_', ' ')} of {subject} not judged: {round(n):,} {what}, fewer "
            f"than min_group_size={self.cfg.min_group_size}",
            threshold=float(self.cfg.min_group_size), rule="minimum group size",
            details=details,
        )  # fmt: skip

    def _group_finish(
        self,
        metric: str,
        subject: str,
        value: float,
        lo: float | None,
        hi: float | None,
        rest: float | None,
        details: dict[str, Any],
        *,
        scale: float,
    ) -> Callable[[float | None], CheckResult]:
        cfg = self.cfg

        def finish(adj: float | None) -> CheckResult:
            label = metric.replace("_", " ")
            interval = (
                "" if lo is None or hi is None else f" ({self.level} CI {_fmt(lo)} to {_fmt(hi)})"
            )
            reason = f"{label} {_fmt(value)}{interval} in {subject}"
            status = Status.OK
            if rest is not None:
                diff = value - rest
                details.update(rest_value=rest, difference=diff, adjusted_p_value=adj)
                reason += f" vs {_fmt(rest)} in the rest (difference {diff:+.4g}"
                reason += ")" if adj is None else f", adjusted p={adj:.3g})"
                big = abs(diff) / scale >= cfg.floor if scale > 0 else False
                if adj is not None and adj <= cfg.alpha and big:
                    status = Status.WARN
                    reason += f": {'higher' if diff > 0 else 'lower'} than the rest"
            return CheckResult(
                f"fairness.{metric}", subject, status, reason, value=value, lower=lo, upper=hi,
                p_value=adj, rule=f"{cfg.correction} at alpha={cfg.alpha}, floor {cfg.floor}",
                details=details,
            )  # fmt: skip

        return finish

    def _qualifying(
        self, metric: str
    ) -> tuple[list[int], dict[str, int], NDArray[np.float64], NDArray[np.float64]]:
        num_f, den_f, _ = _RATES[metric]
        num, den = _col(self.gc, num_f), _col(self.gc, den_f)
        ok = [i for i in range(len(self.subjects)) if den[i] >= self.cfg.min_group_size]
        excluded = {self.subjects[i]: round(float(den[i])) for i in range(len(self.subjects))
                    if i not in ok}  # fmt: skip
        return ok, excluded, num, den

    def rate_gaps(self) -> list[Pending]:
        wanted = self.cfg.gaps or CLASSIFICATION_GAPS
        out: list[Pending] = []
        parts = {m: self._rate_gap(m) for m in ("selection_rate", "true_positive_rate",
                                                "false_positive_rate")}  # fmt: skip
        for gap in CLASSIFICATION_GAPS:
            if gap not in wanted:
                continue
            components = {
                "demographic_parity_difference": ("selection_rate",),
                "demographic_parity_ratio": ("selection_rate",),
                "equalized_odds_difference": ("true_positive_rate", "false_positive_rate"),
                "equal_opportunity_difference": ("true_positive_rate",),
            }[gap]
            missing = [c for c in components if isinstance(parts[c], str)]
            if missing:
                out.append(done(CheckResult(
                    f"fairness.{gap}", self.name, Status.INSUFFICIENT_DATA,
                    f"{gap.replace('_', ' ')} by {self.name} not judged: "
                    + "; ".join(str(parts[c]) for c in missing),
                    threshold=self.cfg.threshold(gap), rule="minimum group size",
                    details={"grouping": self.name},
                )))  # fmt: skip
                continue
            out.append(self._gap_pending(gap, [parts[c] for c in components]))  # type: ignore[misc]
        return out

    def _rate_gap(self, metric: str) -> _Gap | str:
        ok, excluded, num, den = self._qualifying(metric)
        what = _RATES[metric][2]
        if len(ok) < 2:
            shown = ", ".join(f"{s} ({n:,} {what})" for s, n in excluded.items())
            return (
                f"{len(ok)} group(s) with at least min_group_size={self.cfg.min_group_size} "
                f"{what} for the {metric.replace('_', ' ')}"
                + (f" (too small: {shown})" if shown else "")
            )
        rates = {i: float(num[i] / den[i]) for i in ok}
        hi_i = max(ok, key=lambda i: (rates[i], -i))
        lo_i = min(ok, key=lambda i: (rates[i], i))
        return _Gap(
            metric=metric,
            by_group={self.subjects[i]: rates[i] for i in ok},
            excluded=excluded,
            high=(self.subjects[hi_i], rates[hi_i], float(num[hi_i]), float(den[hi_i])),
            low=(self.subjects[lo_i], rates[lo_i], float(num[lo_i]), float(den[lo_i])),
            p_value=chi2_homogeneity([num[i] for i in ok], [den[i] for i in ok]),
            n_pairs=len(ok) * (len(ok) - 1) // 2,
        )

    def _gap_pending(self, gap: str, parts: list[_Gap]) -> Pending:
        cfg = self.cfg
        n_parts = len(parts)
        # Bonferroni over the pairs of groups (and over the two rates of equalized odds).
        conf = [1 - (1 - cfg.confidence) / (g.n_pairs * n_parts) for g in parts]
        ratio = gap.endswith("_ratio")
        if ratio:
            g = parts[0]
            value = g.low[1] / g.high[1] if g.high[1] > 0 else 1.0
            lo, hi = katz_ratio_interval(g.low[2], g.low[3], g.high[2], g.high[3], conf[0])
            hi = min(hi, 1.0)
        else:
            ivs = [newcombe_interval(g.high[2], g.high[3], g.low[2], g.low[3], c)
                   for g, c in zip(parts, conf, strict=True)]  # fmt: skip
            diffs = [g.high[1] - g.low[1] for g in parts]
            value = max(diffs)
            lo, hi = max(i[0] for i in ivs), max(i[1] for i in ivs)
        p = min(1.0, n_parts * min(g.p_value for g in parts))
        worst = parts[int(np.argmax([g.high[1] - g.low[1] for g in parts]))]
        threshold = cfg.threshold(gap)
        details: dict[str, Any] = {
            "grouping": self.name,
            "component": worst.metric,
            "highest": {"group": worst.high[0], "value": worst.high[1]},
            "lowest": {"group": worst.low[0], "value": worst.low[1]},
            "by_group": {g.metric: g.by_group for g in parts},
            "excluded_groups": {g.metric: g.excluded for g in parts if g.excluded},
            "interval": f"simultaneous over {sum(g.n_pairs for g in parts)} pair(s) (Bonferroni)",
        }

        def finish(adj: float | None) -> CheckResult:
            assert adj is not None
            details["adjusted_p_value"] = adj
            effect = 1 - value if ratio else value
            label = gap.replace("_", " ")
            reason = (
                f"{label} by {self.name} {_fmt(value)} ({self.level} CI {_fmt(lo)} to "
                f"{_fmt(hi)}): {worst.metric.replace('_', ' ')} {_fmt(worst.high[1])} in "
                f"{worst.high[0]} vs {_fmt(worst.low[1])} in {worst.low[0]}, adjusted p={adj:.3g}"
            )
            status = Status.OK
            if adj <= cfg.alpha and effect >= cfg.floor:
                beyond = value <= threshold if ratio else value >= threshold
                # The extreme pair must differ by itself (its simultaneous interval clears the
                # floor), so that two small noisy groups at the ends cannot fail a gate alone.
                shown = hi <= 1 - cfg.floor if ratio else lo >= cfg.floor
                status = Status.ALERT if beyond and shown else Status.WARN
                reason += (
                    f"; {'beyond' if beyond else 'within'} the tolerated "
                    f"{'ratio' if ratio else 'difference'} {_fmt(threshold)}"
                    + ("" if shown or not beyond else
                       f", but the interval of the extreme pair reaches {'1' if ratio else '0'}")
                )  # fmt: skip
            elif effect < cfg.floor:
                reason += f"; below the effect floor {cfg.floor}"
            else:
                reason += f"; not significant at alpha={cfg.alpha}"
            return CheckResult(
                f"fairness.{gap}", self.name, status, reason, value=value, threshold=threshold,
                lower=lo, upper=hi, p_value=adj,
                rule=f"{cfg.correction} at alpha={cfg.alpha}, floor {cfg.floor}",
                details=details,
            )  # fmt: skip

        return Pending(p, finish)

    # -- regressors --------------------------------------------------------------------------

    def _regression_parts(self) -> dict[str, tuple[NDArray[np.float64], ...]]:
        n_lab = _col(self.gc, ("n_labelled",))
        n_pred = _col(self.gc, ("n_predicted",))
        return {
            "mean_absolute_error": (
                n_lab,
                _col(self.gc, ("sum_abs_error",)),
                _col(self.gc, ("sum_sq_error",)),
            ),
            "mean_prediction": (
                n_pred,
                _col(self.gc, ("sum_prediction",)),
                _col(self.gc, ("sum_sq_prediction",)),
            ),
        }

    def _scale(self, metric: str, n: NDArray[np.float64], s: NDArray[np.float64],
               ss: NDArray[np.float64]) -> float:  # fmt: skip
        total = float(n.sum())
        if total < 2:
            return 0.0
        mean = float(s.sum()) / total
        if metric == "mean_absolute_error":
            return mean
        return math.sqrt(max(float(ss.sum()) - total * mean * mean, 0.0) / (total - 1))

    def regression_by_group(self) -> list[Pending]:
        out: list[Pending] = []
        for metric, (n, s, ss) in self._regression_parts().items():
            scale = self._scale(metric, n, s, ss)
            what = "labelled rows" if metric == "mean_absolute_error" else "rows with a prediction"
            for i, subject in enumerate(self.subjects):
                details: dict[str, Any] = {"grouping": self.name, "n": round(float(n[i]))}
                if n[i] < max(self.cfg.min_group_size, 2):
                    out.append(done(self._too_small(metric, subject, float(n[i]), what, details)))
                    if metric == "mean_absolute_error":
                        out.append(done(self._too_small(
                            "root_mean_squared_error", subject, float(n[i]), what, dict(details)
                        )))  # fmt: skip
                    continue
                value = float(s[i] / n[i])
                lo, hi = mean_interval(n[i], s[i], ss[i], self.cfg.confidence)
                rest_n = float(n.sum() - n[i])
                p, rest = None, None
                if rest_n >= 2:
                    _, _, p = welch_test(n[i], s[i], ss[i], rest_n, s.sum() - s[i],
                                         ss.sum() - ss[i])  # fmt: skip
                    rest = float((s.sum() - s[i]) / rest_n)
                out.append(Pending(p, self._group_finish(metric, subject, value, lo, hi, rest,
                                                          details, scale=scale)))  # fmt: skip
                if metric == "mean_absolute_error":
                    rmse = math.sqrt(float(ss[i] / n[i]))
                    out.append(done(CheckResult(
                        "fairness.root_mean_squared_error", subject, Status.OK,
                        f"root mean squared error {_fmt(rmse)} in {subject}", value=rmse,
                        rule="reported, not judged", details=dict(details),
                    )))  # fmt: skip
        return out

    def regression_gaps(self) -> list[Pending]:
        wanted = self.cfg.gaps or REGRESSION_GAPS
        out: list[Pending] = []
        for metric, (n, s, ss) in self._regression_parts().items():
            gap = f"{metric}_difference"
            if gap not in wanted:
                continue
            ok = [i for i in range(len(self.subjects)) if n[i] >= max(self.cfg.min_group_size, 2)]
            if len(ok) < 2:
                out.append(done(CheckResult(
                    f"fairness.{gap}", self.name, Status.INSUFFICIENT_DATA,
                    f"{gap.replace('_', ' ')} by {self.name} not judged: {len(ok)} group(s) "
                    f"with at least min_group_size={self.cfg.min_group_size} rows",
                    rule="minimum group size", details={"grouping": self.name},
                )))  # fmt: skip
                continue
            means = {i: float(s[i] / n[i]) for i in ok}
            hi_i = max(ok, key=lambda i: (means[i], -i))
            lo_i = min(ok, key=lambda i: (means[i], i))
            pairs = len(ok) * (len(ok) - 1) // 2
            conf = 1 - (1 - self.cfg.confidence) / pairs
            lo, hi = welch_interval(n[hi_i], s[hi_i], ss[hi_i], n[lo_i], s[lo_i], ss[lo_i], conf)
            p = welch_anova([n[i] for i in ok], [s[i] for i in ok], [ss[i] for i in ok])
            scale = self._scale(metric, n, s, ss)
            out.append(self._mean_gap_pending(
                gap, means[hi_i] - means[lo_i], lo, hi, p, scale,
                {
                    "grouping": self.name,
                    "highest": {"group": self.subjects[hi_i], "value": means[hi_i]},
                    "lowest": {"group": self.subjects[lo_i], "value": means[lo_i]},
                    "by_group": {self.subjects[i]: means[i] for i in ok},
                    "excluded_groups": {self.subjects[i]: round(float(n[i]))
                                        for i in range(len(self.subjects)) if i not in ok},
                    "scale": scale,
                    "interval": f"simultaneous over {pairs} pair(s) (Bonferroni)",
                },
            ))  # fmt: skip
        return out

    def _mean_gap_pending(
        self, gap: str, value: float, lo: float, hi: float, p: float, scale: float,
        details: dict[str, Any],
    ) -> Pending:  # fmt: skip
        cfg = self.cfg
        threshold = cfg.threshold(gap) * scale

        def finish(adj: float | None) -> CheckResult:
            assert adj is not None
            relative = value / scale if scale > 0 else 0.0
            details.update(adjusted_p_value=adj, relative=relative)
            h, lw = details["highest"], details["lowest"]
            reason = (
                f"{gap.replace('_', ' ')} by {self.name} {_fmt(value)} ({self.level} CI "
                f"{_fmt(lo)} to {_fmt(hi)}; {relative:.1%} of the overall scale "
                f"{_fmt(scale)}): {_fmt(h['value'])} in {h['group']} vs {_fmt(lw['value'])} in "
                f"{lw['group']}, adjusted p={adj:.3g}"
            )
            status = Status.OK
            if adj <= cfg.alpha and relative >= cfg.floor:
                shown = lo >= cfg.floor * scale
                status = Status.ALERT if value >= threshold and shown else Status.WARN
            return CheckResult(
                f"fairness.{gap}", self.name, status, reason, value=value, threshold=threshold,
                lower=lo, upper=hi, p_value=adj,
                rule=f"{cfg.correction} at alpha={cfg.alpha}, relative floor {cfg.floor}",
                details=details,
            )  # fmt: skip

        return Pending(p, finish)


@dataclass(frozen=True, slots=True)
class _Gap:
    """The extremes of one rate over the groups large enough to judge."""

    metric: str
    by_group: dict[str, float]
    excluded: dict[str, int]
    high: tuple[str, float, float, float]  # group, rate, numerator, denominator
    low: tuple[str, float, float, float]
    p_value: float
    n_pairs: int
