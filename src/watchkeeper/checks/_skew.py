"""Training–serving skew: the same feature computed differently online than in training.

Skew shows up in the first serving window as a *systematic transformation* of the reference
distribution, which ordinary drift is not:

- a unit or scale change: every quantile multiplied by one factor (ratio of means equal to the
  ratio of standard deviations, e.g. 1000 for grams served where kilograms were trained on);
- a shifted offset: every quantile moved by one constant (e.g. 273.15 for Kelvin vs Celsius);
- an affine recoding (e.g. Fahrenheit vs Celsius: factor 1.8, offset 32);
- a constant or default value filled in for most rows;
- a different missing encoding: missing values served as a sentinel (``-1``, ``0``, ``""``,
  ``"NA"``) or the reference's sentinel served as missing;
- swapped or recoded categories: the category proportions of the reference reappear under other
  labels.

Each check compares the reference profile with an early-window profile of the same column (only
the profile summaries are used: quantile sketch, moments, missing and category counts), fits the
transformations above and reports the suspected one; a change that none of them explains is
ordinary drift and is left to the drift checks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.exceptions import InputError

__all__ = ["SkewFinding", "check_skew", "detect_skew"]

CHECK = "skew.training_serving"

# Grid on which quantile functions are compared (inner part: tails are noisy in small windows).
_GRID = np.linspace(0.05, 0.95, 91)
# Fine grid to estimate point masses (share of rows equal to one value) from quantiles.
_FINE = (np.arange(200) + 0.5) / 200

#: Named unit factors (current / reference) and offsets recognised in reports.
UNIT_FACTORS: Mapping[str, float] = {
    "x10": 10.0,
    "x100 (e.g. fraction -> percent, m -> cm)": 100.0,
    "x1000 (e.g. kg -> g, km -> m, s -> ms)": 1000.0,
    "x1e6": 1e6,
    "x60 (e.g. min -> s, h -> min)": 60.0,
    "x3600 (h -> s)": 3600.0,
    "x24 (days -> hours)": 24.0,
    "x2.54 (in -> cm)": 2.54,
    "x3.28084 (m -> ft)": 3.28084,
    "x2.20462 (kg -> lb)": 2.20462,
    "x1.60934 (miles -> km)": 1.609344,
    "x12 (years -> months, ft -> in)": 12.0,
}
_OFFSETS: Mapping[str, float] = {
    "+273.15 (Celsius -> Kelvin)": 273.15,
    "+1900 (two-digit -> four-digit year)": 1900.0,
}
_AFFINE: Mapping[str, tuple[float, float]] = {
    "Celsius -> Fahrenheit (x1.8 + 32)": (1.8, 32.0),
    "Fahrenheit -> Celsius ((x - 32) / 1.8)": (1 / 1.8, -32.0 / 1.8),
}
# RMS residual of a transformation's fit on the quantile grid, relative to the current spread,
# below which the transformation explains the change.
_TIGHT = 0.04
_MISSING_TOKENS = {"", "na", "n/a", "nan", "null", "none", "nil", "-", "?", "missing", "unknown"}


@dataclass(frozen=True, slots=True)
class SkewFinding:
    """What :func:`detect_skew` concluded for one column.

    ``kind`` is one of ``"none"``, ``"drift"`` (a change no systematic transformation explains),
    ``"insufficient_data"``, or a skew: ``"scale"``, ``"offset"``, ``"affine"``,
    ``"sign_flip"``, ``"constant_fill"``, ``"missing_encoding"``, ``"category_swap"``,
    ``"category_recode"``. ``transformation`` says it in words; ``value`` is its key number
    (factor, offset or share); ``evidence`` holds the fitted numbers.

    Examples
    --------
    >>> f = SkewFinding("x", "scale", "values multiplied by 1000", 1000.0, {"factor": 1000.0})
    >>> f.is_skew
    True
    """

    column: str
    kind: str
    transformation: str
    value: float | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_skew(self) -> bool:
        """Whether the finding is a suspected training–serving skew."""
        return self.kind not in ("none", "drift", "insufficient_data")


# ---------------------------------------------------------------------------------------------
# Numeric columns
# ---------------------------------------------------------------------------------------------


def _quantiles(col: Any, grid: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.array([col.quantile(float(q)) for q in grid])


def _point_mass(col: Any) -> tuple[float, float]:
    """(value, share) of the largest point mass, estimated from the quantile function."""
    q = _quantiles(col, _FINE)
    best_v, best_n, run = float(q[0]), 1, 1
    for i in range(1, q.size):
        run = run + 1 if q[i] == q[i - 1] else 1
        if run > best_n:
            best_v, best_n = float(q[i]), run
    share = best_n / q.size if best_n > 1 else 0.0
    return best_v, share * col.count / max(col.n, 1)


def _share_at(col: Any, value: float) -> float:
    if col.count == 0 or col.min is None or not (col.min <= value <= col.max):
        return 0.0
    q = _quantiles(col, _FINE)
    return float(np.mean(q == value)) * float(col.count) / max(int(col.n), 1)


def _named(x: float, table: Mapping[str, float], rel: float) -> str | None:
    for name, v in table.items():
        if abs(x - v) <= rel * abs(v):
            return name
    return None


def _numeric_skew(column: str, ref: Any, cur: Any) -> SkewFinding:
    miss_r, miss_c = ref.n_missing / max(ref.n, 1), cur.n_missing / max(cur.n, 1)
    v_c, share_c = _point_mass(cur)
    v_r, share_r = _point_mass(ref)
    ref_share_at_vc = _share_at(ref, v_c)
    evidence: dict[str, Any] = {
        "missing_share": [miss_r, miss_c],
        "mean": [ref.mean, cur.mean],
        "std": [ref.std, cur.std],
        "mean_ratio": _ratio(cur.mean, ref.mean),
        "std_ratio": _ratio(cur.std, ref.std),
        "point_mass_current": [v_c, share_c],
        "reference_share_at_that_value": ref_share_at_vc,
    }
    # Missing values served as a sentinel: the missing share falls by about the new mass.
    if miss_r >= 0.05 and miss_c < miss_r / 2 and share_c - ref_share_at_vc >= 0.5 * miss_r:
        return SkewFinding(
            column,
            "missing_encoding",
            f"missing values seem to be served as {v_c:g}: missing share {miss_r:.1%} -> "
            f"{miss_c:.1%} while {share_c:.1%} of rows are {v_c:g} (reference "
            f"{ref_share_at_vc:.1%})",
            v_c,
            evidence,
        )
    # The reference's sentinel served as missing.
    if share_r >= 0.05 and miss_c - miss_r >= 0.5 * share_r and _share_at(cur, v_r) < share_r / 2:
        return SkewFinding(
            column,
            "missing_encoding",
            f"the reference's {v_r:g} ({share_r:.1%} of rows) seems to be served as missing: "
            f"missing share {miss_r:.1%} -> {miss_c:.1%}",
            v_r,
            {**evidence, "point_mass_reference": [v_r, share_r]},
        )
    if share_c >= 0.5 and share_c - ref_share_at_vc >= 0.3:
        return SkewFinding(
            column,
            "constant_fill",
            f"{share_c:.1%} of rows are {v_c:g} (reference {ref_share_at_vc:.1%}): a constant "
            "or default value seems to be filled in",
            share_c,
            evidence,
        )
    return _affine_skew(column, ref, cur, evidence)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _affine_skew(column: str, ref: Any, cur: Any, evidence: dict[str, Any]) -> SkewFinding:
    """Fit ``q_cur = a q_ref`` (unit change), ``q_cur = q_ref + b`` (offset) and
    ``q_cur = a q_ref + b`` on the quantile grid; a transformation counts only where its fit is
    tight (RMS residual within a few percent of the current spread)."""
    qr, qc = _quantiles(ref, _GRID), _quantiles(cur, _GRID)
    spread_r, spread_c = qr[-1] - qr[0], qc[-1] - qc[0]
    if spread_r <= 0 or spread_c <= 0:
        return SkewFinding(column, "none", "too little spread to compare", None, evidence)

    def err(pred: NDArray[np.float64]) -> float:
        return float(np.sqrt(np.mean((qc - pred) ** 2)) / spread_c)

    ss = float(np.dot(qr, qr))
    a0 = float(np.dot(qr, qc)) / ss if ss > 0 else math.nan
    b1 = float(np.median(qc - qr))
    a, b = (float(v) for v in np.polyfit(qr, qc, 1))
    e_scale = err(a0 * qr) if math.isfinite(a0) else math.inf
    e_offset, e_affine = err(qr + b1), err(a * qr + b)
    shift = float(np.max(np.abs(qc - qr)) / spread_r)
    evidence.update(
        {
            "factor": a0 if math.isfinite(a0) else None,
            "offset": b1,
            "affine": [a, b],
            "fit_error": {"scale": e_scale, "offset": e_offset, "affine": e_affine},
            "max_quantile_shift": shift,
        }
    )
    if shift < 0.05:
        return SkewFinding(column, "none", "the quantiles match the reference", None, evidence)
    std_r = float(ref.std or spread_r)
    if e_scale <= _TIGHT and math.isfinite(a0) and a0 != 0:
        if a0 < 0 and abs(a0 + 1) <= 0.05:
            return SkewFinding(column, "sign_flip", "values have the opposite sign", a0, evidence)
        up, down = _named(a0, UNIT_FACTORS, 0.05), _named(1 / a0, UNIT_FACTORS, 0.05)
        if up or down or not 1 / 1.5 <= a0 <= 1.5:
            if up:
                words = f"values multiplied by {a0:.4g}: unit change {up}"
            elif down:
                words = f"values divided by {1 / a0:.4g}: unit change, inverse of {down}"
            else:
                words = f"values multiplied by {a0:.4g}"
            return SkewFinding(
                column,
                "scale",
                f"{words} (ratio of means {_fmt(evidence['mean_ratio'])}, of standard "
                f"deviations {_fmt(evidence['std_ratio'])})",
                a0,
                evidence,
            )
    if e_offset <= _TIGHT:
        named = _named(b1, _OFFSETS, 0.02) or _named(-b1, _OFFSETS, 0.02)
        # A named constant counts only when the shift is material for this column: a heavy
        # tailed column's sampling noise can land near 273.15 by chance.
        if (named is not None and abs(b1) >= 0.5 * std_r) or abs(b1) >= 2 * std_r:
            words = f"values shifted by {b1:+.4g} with the same spread"
            return SkewFinding(
                column, "offset", words + (f": {named}" if named else ""), b1, evidence
            )
    if e_affine <= _TIGHT:
        for affine, (fa, fb) in _AFFINE.items():
            if abs(a - fa) <= 0.05 * fa and abs(b - fb) <= 0.1 * abs(fb) + 0.1 * std_r:
                return SkewFinding(column, "affine", affine, a, evidence)
    return SkewFinding(
        column,
        "drift",
        "the distribution changed in a way no unit, offset or encoding change explains "
        "(ordinary drift, see the drift checks)",
        None,
        evidence,
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


# ---------------------------------------------------------------------------------------------
# Categorical columns
# ---------------------------------------------------------------------------------------------


def _tvd(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    return 0.5 * float(np.abs(p - q).sum())


def _categorical_skew(column: str, ref: Any, cur: Any) -> SkewFinding:
    cats = list(ref.categories)
    p_ref = np.asarray(ref.counts, dtype=np.float64) / max(ref.n, 1)
    present = np.asarray(cur.counts, dtype=np.float64) / max(cur.n, 1)
    unseen = {str(k): v / max(cur.n, 1) for k, v in dict(cur.unseen).items()}
    miss_r, miss_c = ref.n_missing / max(ref.n, 1), cur.n_missing / max(cur.n, 1)
    evidence: dict[str, Any] = {
        "reference": dict(zip(cats, p_ref.tolist(), strict=True)),
        "current": dict(zip(cats, present.tolist(), strict=True)),
        "unseen": unseen,
        "missing_share": [miss_r, miss_c],
    }
    tokens = {k: v for k, v in unseen.items() if k.strip().lower() in _MISSING_TOKENS}
    token_share = sum(tokens.values())
    if miss_r >= 0.05 and miss_c < miss_r / 2 and token_share >= 0.5 * miss_r:
        return SkewFinding(
            column,
            "missing_encoding",
            f"missing values seem to be served as {sorted(tokens)}: missing share "
            f"{miss_r:.1%} -> {miss_c:.1%}",
            token_share,
            evidence,
        )
    ref_tokens = [c for c in cats if c.strip().lower() in _MISSING_TOKENS]
    if ref_tokens:
        share = float(sum(p_ref[cats.index(c)] for c in ref_tokens))
        if share >= 0.05 and miss_c - miss_r >= 0.5 * share:
            return SkewFinding(
                column,
                "missing_encoding",
                f"the reference's {ref_tokens} ({share:.1%}) seem to be served as missing",
                share,
                evidence,
            )
    unseen_share = sum(unseen.values()) if cur.n_unseen is None else cur.n_unseen / max(cur.n, 1)
    if unseen_share >= 0.5:
        return _recoded(column, cats, p_ref, unseen, evidence)
    base = _tvd(p_ref, present)
    evidence["tvd"] = base
    if base < 0.05:
        return SkewFinding(column, "none", "category shares match the reference", None, evidence)
    best = min(
        itertools.combinations(range(len(cats)), 2),
        key=lambda ij: _tvd(p_ref, present[_swap(len(cats), *ij)]),
        default=None,
    )
    if best is not None:
        swapped = _tvd(p_ref, present[_swap(len(cats), *best)])
        evidence["tvd_after_swap"] = swapped
        if swapped <= 0.25 * base and swapped < 0.05:
            i, j = best
            return SkewFinding(
                column,
                "category_swap",
                f"categories {cats[i]!r} and {cats[j]!r} seem swapped (total variation "
                f"{base:.3f}, {swapped:.3f} after swapping them back)",
                base,
                evidence,
            )
    k = int(np.argmax(present)) if present.size else 0
    if present.size and present[k] >= 0.5 and present[k] - p_ref[k] >= 0.3:
        return SkewFinding(
            column,
            "constant_fill",
            f"{present[k]:.1%} of rows are {cats[k]!r} (reference {p_ref[k]:.1%}): a constant "
            "or default value seems to be filled in",
            float(present[k]),
            evidence,
        )
    return SkewFinding(
        column,
        "drift",
        "category shares changed; no swap or recoding explains it (ordinary drift)",
        None,
        evidence,
    )


def _swap(n: int, i: int, j: int) -> NDArray[np.intp]:
    idx = np.arange(n)
    idx[[i, j]] = idx[[j, i]]
    return idx


def _recoded(
    column: str,
    cats: Sequence[str],
    p_ref: NDArray[np.float64],
    unseen: Mapping[str, float],
    evidence: dict[str, Any],
) -> SkewFinding:
    by_norm = {c.strip().lower(): c for c in cats}
    case_map = {u: by_norm[u.strip().lower()] for u in unseen if u.strip().lower() in by_norm}
    if case_map and sum(unseen[u] for u in case_map) >= 0.5:
        return SkewFinding(
            column,
            "category_recode",
            f"categories served with other case or spacing: {dict(list(case_map.items())[:5])}",
            sum(unseen[u] for u in case_map),
            {**evidence, "mapping": case_map},
        )
    new = sorted(unseen.items(), key=lambda kv: -kv[1])
    old = sorted(zip(cats, p_ref.tolist(), strict=True), key=lambda kv: -kv[1])
    m = min(len(new), len(old))
    gap = 0.5 * sum(abs(new[i][1] - old[i][1]) for i in range(m))
    mapping = {new[i][0]: old[i][0] for i in range(m)}
    if m >= 2 and gap < 0.1:
        return SkewFinding(
            column,
            "category_recode",
            "categories renamed; the reference's shares reappear under new labels "
            f"(matched by share: {dict(list(mapping.items())[:5])})",
            gap,
            {**evidence, "mapping": mapping, "share_gap": gap},
        )
    return SkewFinding(
        column,
        "drift",
        "most values are categories the reference never had, with other shares (ordinary "
        "drift or a new source)",
        None,
        evidence,
    )


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def detect_skew(
    column: str,
    reference: Any,
    current: Any,
    *,
    min_rows: int = 100,
    reference_values: NDArray[np.float64] | None = None,
    current_values: NDArray[np.float64] | None = None,
) -> SkewFinding:
    """Compare one column's reference and early-window profiles and name the suspected skew.

    ``reference`` and ``current`` are column profiles
    (``Profile.columns[column]``; numeric or categorical/boolean). ``reference_values`` and
    ``current_values`` are the column's sorted finite values when they are all at hand (a
    profile's row sample that holds every row, see :meth:`Profile.sample_values`): the
    quantile fits then use exact quantiles instead of the sketch's approximate ones, whose
    random rank error could tip a fit over its tolerance.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from watchkeeper.data import Profile
    >>> from watchkeeper.checks import detect_skew
    >>> rng = np.random.default_rng(0)
    >>> ref = Profile.from_data(pd.DataFrame({"weight_kg": rng.gamma(4.0, 20.0, 2000)}))
    >>> cur = Profile.from_data(pd.DataFrame({"weight_kg": 1000 * rng.gamma(4.0, 20.0, 500)}),
    ...                         ref.schema, reference=ref)
    >>> f = detect_skew("weight_kg", ref.columns["weight_kg"], cur.columns["weight_kg"])
    >>> f.kind, "x1000" in f.transformation
    ('scale', True)
    """
    if type(reference) is not type(current):
        raise InputError(
            f"column {column!r}: reference is {type(reference).__name__}, current is "
            f"{type(current).__name__}; profile the current window with the reference's schema"
        )
    kind = getattr(reference, "kind", None)
    if reference.n < min_rows or current.n < min_rows:
        return SkewFinding(
            column,
            "insufficient_data",
            f"{reference.n:,} reference and {current.n:,} current rows; at least {min_rows:,} "
            "each are needed",
        )
    if kind == "numeric":
        if reference.count < min_rows // 2 or current.count < 1:
            return _missing_only(column, reference, current)
        return _numeric_skew(
            column, _exact(reference, reference_values), _exact(current, current_values)
        )
    if kind in ("categorical", "boolean"):
        return _categorical_skew(column, reference, current)
    return SkewFinding(column, "none", f"{kind} columns are not checked for skew")


class _ExactQuantiles:
    """A numeric column profile whose ``quantile`` reads the column's sorted values."""

    def __init__(self, column: Any, values: NDArray[np.float64]) -> None:
        self._column = column
        self._values = values

    def __getattr__(self, name: str) -> Any:
        return getattr(self._column, name)

    def quantile(self, q: float) -> float:
        # the inverse CDF (numpy's "inverted_cdf"), like the sketch's answer
        rank = max(math.ceil(q * self._values.size) - 1, 0)
        return float(self._values[rank])


def _exact(column: Any, values: NDArray[np.float64] | None) -> Any:
    if values is None or values.size == 0 or values.size != column.count:
        return column
    return _ExactQuantiles(column, values)


def _all_values(profile: Any, column: str) -> NDArray[np.float64] | None:
    """The column's sorted finite values when the profile's row sample holds all of them."""
    try:
        values: NDArray[np.float64] = profile.sample_values(column)
    except (InputError, KeyError):
        return None
    return values


def _missing_only(column: str, ref: Any, cur: Any) -> SkewFinding:
    miss_r, miss_c = ref.n_missing / max(ref.n, 1), cur.n_missing / max(cur.n, 1)
    if miss_c - miss_r >= 0.5:
        return SkewFinding(
            column,
            "constant_fill",
            f"the column is missing in {miss_c:.1%} of rows (reference {miss_r:.1%}): the "
            "feature seems not to be computed online",
            miss_c,
            {"missing_share": [miss_r, miss_c]},
        )
    return SkewFinding(column, "insufficient_data", "too few finite values to compare")


def check_skew(
    reference: Any, current: Any, *, columns: Sequence[str] | None = None, min_rows: int = 100
) -> list[CheckResult]:
    """Training–serving skew checks of every shared numeric and categorical column.

    ``reference`` is the reference profile (:class:`~watchkeeper.data.Profile`) and ``current``
    the early-window profile made with ``reference=reference``. A suspected skew is an
    ``alert`` (check ``skew.training_serving``, subject the column); no change or ordinary drift
    is ``ok`` (``details["kind"]`` says which); too few rows is ``insufficient_data``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from watchkeeper.data import Profile
    >>> from watchkeeper.checks import check_skew
    >>> rng = np.random.default_rng(1)
    >>> ref = Profile.from_data(pd.DataFrame({"temp": rng.normal(15, 5, 2000)}))
    >>> cur = Profile.from_data(pd.DataFrame({"temp": rng.normal(15, 5, 500) + 273.15}),
    ...                         ref.schema, reference=ref)
    >>> [(r.subject, r.status.value, r.details["kind"]) for r in check_skew(ref, cur)]
    [('temp', 'alert', 'offset')]
    """
    names = list(columns) if columns is not None else list(reference.columns)
    results = []
    for name in names:
        if name not in reference.columns or name not in current.columns:
            raise InputError(f"column {name!r} is not in both profiles")
        finding = detect_skew(
            name,
            reference.columns[name],
            current.columns[name],
            min_rows=min_rows,
            reference_values=_all_values(reference, name),
            current_values=_all_values(current, name),
        )
        if finding.kind == "insufficient_data":
            status = Status.INSUFFICIENT_DATA
        else:
            status = Status.ALERT if finding.is_skew else Status.OK
        reason = (
            f"suspected training-serving skew: {finding.transformation}; check how the feature "
            "is computed online against the training pipeline"
            if finding.is_skew
            else finding.transformation
        )
        value = finding.value
        results.append(
            CheckResult(
                check=CHECK,
                subject=name,
                status=status,
                reason=reason,
                value=None if value is None or not math.isfinite(value) else float(value),
                rule="systematic_transformation",
                details={
                    "kind": finding.kind,
                    "transformation": finding.transformation,
                    **_jsonable(finding.evidence),
                },
            )
        )
    return results


def _jsonable(evidence: Mapping[str, Any]) -> dict[str, Any]:
    def conv(x: Any) -> Any:
        if isinstance(x, float | np.floating):
            return float(x) if math.isfinite(x) else None
        if isinstance(x, Mapping):
            return {str(k): conv(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [conv(v) for v in x]
        if isinstance(x, np.integer):
            return int(x)
        return x

    return {str(k): conv(v) for k, v in evidence.items()}
