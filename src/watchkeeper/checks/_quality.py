"""Data-quality checks: is the current data broken, independently of whether it drifted?

Each check compares a current column profile with the reference's and returns a
:class:`CheckResult` with a status, the threshold it used and a few offending examples (never a
whole column). Thresholds are fields of :class:`QualityConfig` with documented defaults.

Missing-share changes are also tested for significance (a one-sided Fisher exact test at
``alpha``), so small samples do not raise alerts on noise and large samples do not raise them on
negligible changes (the ``*_warn`` thresholds are practical floors, like the drift floors).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper.checks._result import CheckResult, Status

__all__ = ["QualityConfig", "check_quality"]


@dataclass(frozen=True, slots=True)
class QualityConfig:
    """Thresholds of the data-quality checks (shares are fractions of rows).

    Attributes
    ----------
    missing_increase_warn, missing_increase_alert
        Rise of a column's missing share over the reference's (absolute), which must also be
        significant at ``alpha``.
    out_of_range_warn, out_of_range_alert
        Share of current values outside the reference's [min, max].
    unseen_warn, unseen_alert
        Share of current values in categories the reference never had.
    duplicate_warn
        Share of duplicate rows in the current data (and more than in the reference).
    alpha
        Level of the significance tests behind the missing-share check.
    """

    missing_increase_warn: float = 0.05
    missing_increase_alert: float = 0.25
    out_of_range_warn: float = 0.01
    out_of_range_alert: float = 0.10
    unseen_warn: float = 0.01
    unseen_alert: float = 0.10
    duplicate_warn: float = 0.05
    alpha: float = 0.01


def _share(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%" if x < 0.1 else f"{100 * x:.1f}%"


def _level(value: float, warn: float, alert: float) -> Status:
    if value >= alert:
        return Status.ALERT
    if value >= warn:
        return Status.WARN
    return Status.OK


def _missing(name: str, ref: Any, cur: Any, t: QualityConfig) -> CheckResult | None:
    n_ref, n_cur = int(ref.n), int(cur.n)  # all rows: values, missing, inf, type errors
    if n_cur == 0:
        return None
    s_ref, s_cur = _share(ref.n_missing, n_ref), _share(cur.n_missing, n_cur)
    if int(cur.n_missing) == n_cur:
        return CheckResult(
            "quality.all_missing", name, Status.ALERT,
            f"every one of the {n_cur:,} current values is missing "
            f"(reference: {_pct(s_ref)} missing)",
            value=1.0, threshold=t.missing_increase_alert,
        )  # fmt: skip
    increase = s_cur - s_ref
    status = _level(increase, t.missing_increase_warn, t.missing_increase_alert)
    if status is Status.OK and cur.n_missing == 0:
        return None  # nothing to report whatever the test says: skip it (and scipy.stats)
    # One-sided Fisher exact test of "current missing share > reference share": exact at the
    # small counts where a z-test is badly calibrated.
    m_cur, m_ref = int(cur.n_missing), int(ref.n_missing)
    table = [[m_cur, n_cur - m_cur], [m_ref, n_ref - m_ref]]
    from scipy import stats as _sps  # imported here: scipy.stats costs ~1 s to import

    p = float(_sps.fisher_exact(table, alternative="greater").pvalue) if n_ref else 1.0
    if p >= t.alpha:
        status = Status.OK
    if status is Status.OK and cur.n_missing == 0:
        return None
    return CheckResult(
        "quality.missing_share", name, status,
        f"missing share {_pct(s_cur)} vs {_pct(s_ref)} in the reference "
        f"(change {increase:+.2%}, p={p:.3g})",
        value=s_cur, threshold=s_ref + t.missing_increase_warn, p_value=p,
        details={"reference_share": s_ref, "current_share": s_cur},
    )  # fmt: skip


def _numeric(name: str, ref: Any, cur: Any, t: QualityConfig) -> list[CheckResult]:
    out: list[CheckResult] = []
    n_cur = int(cur.n)
    n_inf = int(getattr(cur, "n_inf", 0))
    if n_inf:
        ref_inf = int(getattr(ref, "n_inf", 0))
        out.append(
            CheckResult(
                "quality.non_finite", name, Status.ALERT if ref_inf == 0 else Status.WARN,
                f"{n_inf:,} infinite values ({_pct(_share(n_inf, n_cur))}); "
                f"the reference had {ref_inf:,}",
                value=_share(n_inf, n_cur),
            )
        )  # fmt: skip
    n_bad = int(getattr(cur, "n_type_errors", 0))
    if n_bad:
        out.append(
            CheckResult(
                "quality.type_errors", name, Status.ALERT,
                f"{n_bad:,} values are not numbers ({_pct(_share(n_bad, n_cur))})",
                value=_share(n_bad, n_cur),
                details={"examples": list(getattr(cur, "type_error_examples", ()))[:5]},
            )
        )  # fmt: skip
    below = int(getattr(cur, "n_below_reference_min", 0) or 0)
    above = int(getattr(cur, "n_above_reference_max", 0) or 0)
    if (below or above) and int(cur.count):
        share = _share(below + above, int(cur.count))
        status = _level(share, t.out_of_range_warn, t.out_of_range_alert)
        out.append(
            CheckResult(
                "quality.out_of_range", name, status,
                f"{below + above:,} values ({_pct(share)}) outside the reference range "
                f"[{ref.min:.6g}, {ref.max:.6g}] ({below:,} below, {above:,} above)",
                value=share, threshold=t.out_of_range_warn,
                details={
                    "reference_min": float(ref.min),
                    "reference_max": float(ref.max),
                    "examples": [float(x) for x in getattr(cur, "out_of_range_examples", ())][:5],
                },
            )
        )  # fmt: skip
    if int(cur.count) > 1 and cur.min == cur.max and ref.min != ref.max:
        out.append(
            CheckResult(
                "quality.constant", name, Status.WARN,
                f"every current value equals {cur.min:.6g}; the reference varied "
                f"between {ref.min:.6g} and {ref.max:.6g}",
                value=0.0,
            )
        )  # fmt: skip
    return out


def _categorical(name: str, ref: Any, cur: Any, t: QualityConfig) -> list[CheckResult]:
    out: list[CheckResult] = []
    n = int(cur.count)
    unseen = dict(getattr(cur, "unseen", {}) or {})
    n_unseen = int(getattr(cur, "n_unseen", sum(unseen.values())) or 0)
    if n and n_unseen:
        share = _share(n_unseen, n)
        status = _level(share, t.unseen_warn, t.unseen_alert)
        top = sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        out.append(
            CheckResult(
                "quality.unseen_categories", name, status,
                f"{n_unseen:,} values ({_pct(share)}) in categories the reference never had, "
                f"e.g. {', '.join(repr(k) for k, _ in top)}",
                value=share, threshold=t.unseen_warn,
                details={"examples": {k: int(v) for k, v in top}},
            )
        )  # fmt: skip
    cur_present = sum(1 for c in cur.counts if c) + (1 if cur.other_count else 0)
    ref_present = sum(1 for c in ref.counts if c) + (1 if ref.other_count else 0)
    if n > 1 and cur_present == 1 and ref_present > 1:
        out.append(
            CheckResult(
                "quality.constant", name, Status.WARN,
                f"all current values fall in one category; the reference had {ref_present}",
                value=1.0,
            )
        )  # fmt: skip
    return out


def schema_checks(
    missing_columns: Iterable[str],
    extra_columns: Iterable[str],
    type_mismatches: Iterable[Any] = (),
) -> list[CheckResult]:
    """Findings about columns: missing ones alert, new ones warn, values of the wrong type
    alert (``type_mismatches`` are :class:`~watchkeeper.data.TypeMismatch` records)."""
    out = [
        CheckResult(
            "quality.missing_column", c, Status.ALERT,
            f"column {c!r} is in the reference but not in the current data",
        )
        for c in missing_columns
    ]  # fmt: skip
    out += [
        CheckResult(
            "quality.new_column", c, Status.WARN,
            f"column {c!r} is in the current data but not in the reference; it is not checked",
        )
        for c in extra_columns
    ]  # fmt: skip
    for m in type_mismatches:
        examples = ", ".join(repr(e) for e in m.examples[:5])
        out.append(
            CheckResult(
                "quality.type_mismatch", m.column, Status.ALERT,
                f"{m.n_bad:,} values of {m.column!r} are not {m.expected_kind} "
                f"(found {m.found_dtype}), e.g. {examples}",
                value=float(m.n_bad),
                details={"expected": m.expected_kind, "found": m.found_dtype,
                         "examples": list(m.examples[:5])},
            )
        )  # fmt: skip
    return out


def duplicate_check(
    n_rows: int, n_duplicates: int, reference_share: float | None, t: QualityConfig
) -> CheckResult | None:
    """Share of fully duplicated rows in the current data."""
    if n_rows == 0 or n_duplicates == 0:
        return None
    share = _share(n_duplicates, n_rows)
    ref = reference_share or 0.0
    status = Status.WARN if share >= t.duplicate_warn and share > 2 * ref else Status.OK
    return CheckResult(
        "quality.duplicate_rows", "dataset", status,
        f"{n_duplicates:,} duplicated rows ({_pct(share)}); reference {_pct(ref)}",
        value=share, threshold=t.duplicate_warn,
    )  # fmt: skip


def check_quality(
    reference: Any,
    current: Any,
    columns: Sequence[tuple[str, str]],
    thresholds: QualityConfig | None = None,
) -> list[CheckResult]:
    """Run the per-column quality checks between two profiles (see module docs)."""
    t = thresholds or QualityConfig()
    out: list[CheckResult] = []
    for name, kind in columns:
        ref = reference.columns[name]
        cur = current.columns[name]
        found = _missing(name, ref, cur, t)
        if found is not None:
            out.append(found)
        if kind == "numeric":
            out += _numeric(name, ref, cur, t)
        elif kind in ("categorical", "boolean"):
            out += _categorical(name, ref, cur, t)
    return out
