"""Weak segments: slices of the data where the model does much worse than on the rest.

Every feature is cut into slices, and each slice's error is tested against the error of all
other rows:

- numeric features at ``max_bins`` quantiles of the data given, or of a reference profile's
  quantile sketch (so every window is cut at the same points); a numeric feature with at most
  ``max_bins`` distinct values gets one slice per value;
- categorical and boolean features one slice per category; categories with fewer than
  ``min_size`` rows, and any beyond the ``max_categories`` most frequent, are pooled into one
  slice (``"city in {Bonn, Graz, ...}"``);
- missing values form their own slice (``"age is missing"``);
- with ``pairs=True`` also every non-empty intersection of two slices of different features
  (``"hr in [17, 19] & workingday = 1"``).

The error is per row: 0/1 (wrong label) for classifiers, the absolute (or squared) error for
regressors, or any per-row loss passed as ``errors``. Tests are one-sided (is the slice
*worse*?): for 0/1 errors the pooled two-proportion z-test, or Fisher's exact test when an
expected cell count is below 5; for losses Welch's t-test on the means (or the Mann–Whitney U
test, ``test="mann_whitney"``). Decisions control errors and ignore trivia: slices with fewer
than ``min_size`` rows (or whose rest has fewer) are ``insufficient_data`` with their size;
the p-values of all judged slices of one call are adjusted together (Benjamini–Hochberg by
default); a slice is reported weak (``warn``) only when significant *and* its error exceeds
the rest's by at least ``effect_floor`` times the rest's error.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats as _sps

from watchkeeper.checks._fairness_stats import (
    mean_interval,
    newcombe_interval,
    two_proportion_test,
    welch_interval,
    welch_test,
)
from watchkeeper.checks._result import CheckResult, Status
from watchkeeper.checks._segment_slices import Slice, data_slices
from watchkeeper.exceptions import InputError
from watchkeeper.stats import Correction, adjust_p_values, wilson_interval

__all__ = ["check_weak_segments"]

CHECK = "segments.weak"

SegmentTask = Literal["classification", "regression"]
FloatArray = NDArray[np.float64]

# Integer-valued labels with at most this many distinct values are class labels.
_MAX_CLASSES = 10


# -- per-row errors ----------------------------------------------------------------------------


def _values(frame: Any, values: Any, what: str) -> Any:
    import pandas as pd

    if isinstance(values, str):
        if values not in frame.columns:
            raise InputError(f"{what} column {values!r} is not in the frame")
        series = frame[values]
    else:
        series = pd.Series(np.asarray(values) if not isinstance(values, pd.Series) else values)
    if len(series) != len(frame):
        raise InputError(f"{what} has {len(series):,} values but the frame has {len(frame):,} rows")
    return series.reset_index(drop=True)


def _is_label(series: Any) -> bool:
    import pandas as pd

    dtype = series.dtype
    return bool(not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))


def _infer_task(y_true: Any, y_pred: Any) -> SegmentTask:
    if _is_label(y_true) or _is_label(y_pred):
        return "classification"
    both = np.concatenate([s.to_numpy(dtype=np.float64, na_value=np.nan) for s in (y_true, y_pred)])
    both = both[np.isfinite(both)]
    if np.all(both == np.round(both)) and np.unique(both).size <= _MAX_CLASSES:
        return "classification"
    return "regression"


def _row_errors(
    frame: Any,
    errors: Any,
    y_true: Any,
    y_pred: Any,
    task: SegmentTask | None,
    loss: Literal["absolute", "squared"],
) -> tuple[FloatArray, SegmentTask, str]:
    """Per-row error (NaN where unknown), the task and the name of the error measure."""
    if errors is not None:
        if y_true is not None or y_pred is not None:
            raise InputError("pass either errors= or y_true= and y_pred=, not both")
        e = _values(frame, errors, "errors").to_numpy(dtype=np.float64, na_value=np.nan)
        known = e[np.isfinite(e)]
        zero_one = bool(np.isin(known, (0.0, 1.0)).all())
        if task == "classification" and not zero_one:
            raise InputError(
                "classification errors must be 0 (right) or 1 (wrong); pass task='regression' "
                "for other per-row losses"
            )
        the_task: SegmentTask = task or ("classification" if zero_one else "regression")
        return e, the_task, "error rate" if the_task == "classification" else "mean loss"
    if y_true is None or y_pred is None:
        raise InputError("pass errors= (one per row) or both y_true= and y_pred=")
    truth, pred = _values(frame, y_true, "y_true"), _values(frame, y_pred, "y_pred")
    the_task = task or _infer_task(truth, pred)
    unknown = (truth.isna() | pred.isna()).to_numpy(dtype=bool)
    if the_task == "classification":
        wrong = truth.to_numpy(dtype=object) != pred.to_numpy(dtype=object)
        e = wrong.astype(np.float64)
        e[unknown] = math.nan
        return e, the_task, "error rate"
    try:
        diff = truth.to_numpy(dtype=np.float64, na_value=np.nan) - pred.to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    except (TypeError, ValueError) as exc:
        raise InputError(f"regression targets and predictions must be numbers: {exc}") from exc
    if loss == "absolute":
        return np.abs(diff), the_task, "mean absolute error"
    if loss == "squared":
        return diff * diff, the_task, "mean squared error"
    raise InputError(f"loss must be 'absolute' or 'squared', got {loss!r}")


# -- the test of one slice against the rest ----------------------------------------------------


def _one_sided(p_two_sided: float, difference: float) -> float:
    """One-sided ("greater") p-value from a symmetric two-sided test."""
    return p_two_sided / 2 if difference > 0 else 1 - p_two_sided / 2


def _compare(
    inside: FloatArray,
    outside: FloatArray,
    task: SegmentTask,
    test: Literal["welch", "mann_whitney"],
    confidence: float,
) -> dict[str, Any]:
    n1, n2 = inside.size, outside.size
    if task == "classification":
        x1, x2 = float(inside.sum()), float(outside.sum())
        e1, e2 = x1 / n1, x2 / n2
        pooled = (x1 + x2) / (n1 + n2)
        expected = min(n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled))
        if expected < 5:
            table = [[round(x1), n1 - round(x1)], [round(x2), n2 - round(x2)]]
            p = float(_sps.fisher_exact(table, alternative="greater").pvalue)
            name = "Fisher exact (one-sided)"
        else:
            p = _one_sided(two_proportion_test(x1, n1, x2, n2), e1 - e2)
            name = "two-proportion z (one-sided)"
        lo, hi = wilson_interval(round(x1), n1, confidence)
        d_lo, d_hi = newcombe_interval(x1, n1, x2, n2, confidence)
        extra: dict[str, Any] = {"errors": round(x1), "rest_errors": round(x2)}
    else:
        s1, ss1 = float(inside.sum()), float(np.dot(inside, inside))
        s2, ss2 = float(outside.sum()), float(np.dot(outside, outside))
        e1, e2 = s1 / n1, s2 / n2
        if test == "mann_whitney":
            p = float(_sps.mannwhitneyu(inside, outside, alternative="greater").pvalue)
            name = "Mann-Whitney U (one-sided)"
        else:
            d, _se, p_two = welch_test(n1, s1, ss1, n2, s2, ss2)
            p = _one_sided(p_two, d)
            name = "Welch t (one-sided)"
        lo, hi = mean_interval(n1, s1, ss1, confidence)
        d_lo, d_hi = welch_interval(n1, s1, ss1, n2, s2, ss2, confidence)
        extra = {}
    return {
        "error": e1,
        "rest_error": e2,
        "lower": lo,
        "upper": hi,
        "difference": e1 - e2,
        "difference_interval": [d_lo, d_hi],
        "ratio": e1 / e2 if e2 > 0 else None,
        "p_value": p,
        "test": name,
        **extra,
    }


# -- entry point -------------------------------------------------------------------------------


def check_weak_segments(
    frame: Any,
    *,
    errors: Any = None,
    y_true: Any = None,
    y_pred: Any = None,
    features: Sequence[str] | None = None,
    task: SegmentTask | None = None,
    reference: Any = None,
    max_bins: int = 5,
    max_categories: int = 20,
    pairs: bool = False,
    min_size: int = 50,
    alpha: float = 0.05,
    correction: Correction = "bh",
    effect_floor: float = 0.25,
    loss: Literal["absolute", "squared"] = "absolute",
    test: Literal["welch", "mann_whitney"] = "welch",
    confidence: float = 0.95,
) -> list[CheckResult]:
    """Slices of the data where the model does much worse than on the rest.

    Parameters
    ----------
    frame
        The rows (pandas or polars DataFrame, Arrow table, CSV/Parquet path) with the features.
    errors
        Per-row error: 0/1 for classifiers, any loss for regressors; an array or the name of
        a column of ``frame``. Rows where it is missing are left out.
    y_true, y_pred
        Instead of ``errors``: targets and predictions (arrays or column names); the error is
        0/1 (wrong label) for classifiers and the ``loss`` for regressors.
    features
        Columns to slice (default: every column of ``frame`` not named by ``errors``,
        ``y_true`` or ``y_pred``).
    task
        ``"classification"`` or ``"regression"``. Inferred when omitted: labels that are not
        numbers, or integers with at most 10 distinct values, are classes; 0/1 ``errors`` are
        classification errors.
    reference
        A reference :class:`~watchkeeper.data.Profile`: numeric features are cut at its
        quantiles rather than the data's, so windows are sliced alike.
    max_bins
        Quantile bins per numeric feature (at least 2).
    max_categories
        Most frequent categories that get their own slice; the others are pooled.
    pairs
        Also test every non-empty intersection of two slices of different features.
    min_size
        Fewest rows a slice (and its rest) needs to be judged; smaller slices are
        ``insufficient_data`` with their size.
    alpha, correction
        Error rate controlled across all judged slices of the call and its procedure
        (``"bh"``: false discovery rate, Benjamini–Hochberg).
    effect_floor
        A significant slice is weak only if its error is at least ``1 + effect_floor`` times
        the rest's (``0`` disables the floor).
    loss
        Regression error from ``y_true``/``y_pred``: ``"absolute"`` or ``"squared"``.
    test
        Test of regression losses: ``"welch"`` (means) or ``"mann_whitney"`` (ranks).
    confidence
        Level of the intervals of each slice's error and of its difference from the rest.

    Returns
    -------
    list of CheckResult
        One ``segments.weak`` result per slice, subject the slice in words, value its error
        and ``lower``/``upper`` the interval of that error, ``threshold`` the error it must
        exceed (the rest's times ``1 + effect_floor``), ``p_value`` adjusted. Ranked: weak
        slices (``warn``) first, then the other judged slices, each by excess error over the
        rest, then ``insufficient_data`` slices by size; ``details["rank"]`` holds the rank.

    Raises
    ------
    InputError
        Neither ``errors`` nor ``y_true`` and ``y_pred``; lengths that do not match; an
        unknown feature; settings out of range.

    Examples
    --------
    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"hour": rng.integers(0, 24, 3000),
    ...                    "weather": rng.choice(["clear", "mist", "rain"], 3000)})
    >>> wrong = rng.random(3000) < np.where(df["weather"] == "rain", 0.3, 0.1)
    >>> top = check_weak_segments(df, errors=wrong.astype(int))[0]
    >>> top.subject, top.status.value, round(top.value, 2), round(top.details["rest_error"], 2)
    ('weather = rain', 'warn', 0.3, 0.1)
    """
    import pandas as pd

    if max_bins < 2:
        raise InputError(f"max_bins must be at least 2, got {max_bins}")
    if max_categories < 1 or min_size < 1:
        raise InputError("max_categories and min_size must be at least 1")
    if not 0 < alpha < 1 or not 0 < confidence < 1 or effect_floor < 0:
        raise InputError("alpha and confidence must be in (0, 1), effect_floor non-negative")
    if test not in ("welch", "mann_whitney"):
        raise InputError(f"test must be 'welch' or 'mann_whitney', got {test!r}")
    if not isinstance(frame, pd.DataFrame):
        from watchkeeper.data import read_table

        frame = read_table(frame).to_pandas()
    frame = frame.reset_index(drop=True)
    e, the_task, measure = _row_errors(frame, errors, y_true, y_pred, task, loss)
    named = {v for v in (errors, y_true, y_pred) if isinstance(v, str)}
    if features is None:
        names = [str(c) for c in frame.columns if c not in named]
    else:
        names = [features] if isinstance(features, str) else list(features)
    unknown = [f for f in names if f not in frame.columns]
    if unknown:
        raise InputError(f"features {unknown} are not in the frame; columns: {list(frame.columns)}")
    if not names:
        raise InputError("no features to slice: pass features=")
    known = np.isfinite(e)
    rows, e = frame.loc[known, list(names)].reset_index(drop=True), e[known]
    slices = data_slices(
        rows,
        names,
        reference,
        max_bins=max_bins,
        min_size=min_size,
        max_categories=max_categories,
        pairs=pairs,
    )
    settings = _Settings(
        the_task, measure, min_size, alpha, correction, effect_floor, test, confidence
    )
    return _judge(slices, e, int((~known).sum()), settings)


@dataclass(frozen=True, slots=True)
class _Settings:
    task: SegmentTask
    measure: str
    min_size: int
    alpha: float
    correction: Correction
    effect_floor: float
    test: Literal["welch", "mann_whitney"]
    confidence: float

    @property
    def rule(self) -> str:
        return f"{self.correction} at alpha={self.alpha}, floor {self.effect_floor:g}"


def _judge(
    slices: Sequence[Slice], e: FloatArray, n_unknown: int, cfg: _Settings
) -> list[CheckResult]:
    n = e.size
    overall = float(e.mean()) if n else math.nan
    found: list[dict[str, Any] | None] = []
    for s in slices:
        size = int(s.mask.sum())
        if min(size, n - size) < cfg.min_size:
            found.append(None)
        else:
            found.append(_compare(e[s.mask], e[~s.mask], cfg.task, cfg.test, cfg.confidence))
    raw = np.array([math.nan if f is None else f["p_value"] for f in found], dtype=np.float64)
    adjusted, reject = adjust_p_values(raw, alpha=cfg.alpha, method=cfg.correction)
    results: list[tuple[tuple[int, float], CheckResult]] = []
    for s, f, adj, sig in zip(slices, found, adjusted, reject, strict=True):
        size = int(s.mask.sum())
        base = {
            "features": list(s.definition),
            "slice": _plain(s.definition),
            "size": size,
            "share": size / n if n else 0.0,
            "rest_size": n - size,
            "overall_error": overall,
            "metric": cfg.measure,
            "rows_without_error": n_unknown,
        }
        if f is None:
            small = size if size < cfg.min_size else n - size
            whose = "the slice has" if size < cfg.min_size else "the rest of the data has"
            reason = (
                f"{s.subject} not judged: {whose} {small:,} rows, fewer than "
                f"min_size={cfg.min_size}"
            )
            result = CheckResult(
                CHECK, s.subject, Status.INSUFFICIENT_DATA, reason,
                threshold=float(cfg.min_size), rule="minimum slice size", details=base,
            )  # fmt: skip
            results.append(((2, -size), result))
            continue
        parents = [(p.subject, float(e[p.mask].mean())) for p in s.parents]
        result = _finish(s.subject, f, float(adj), bool(sig), base, cfg, parents)
        results.append(((0 if result.status is Status.WARN else 1, -f["difference"]), result))
    results.sort(key=lambda kr: kr[0])
    return [
        dataclasses.replace(r, details={**r.details, "rank": i + 1})
        for i, (_key, r) in enumerate(results)
    ]


def _finish(
    subject: str,
    f: dict[str, Any],
    adj: float,
    significant: bool,
    base: dict[str, Any],
    cfg: _Settings,
    parents: Sequence[tuple[str, float]],
) -> CheckResult:
    e1, e2, d = f["error"], f["rest_error"], f["difference"]
    bar = e2 * (1 + cfg.effect_floor)
    big = d > 0 and e1 >= bar
    # A pair is weak in its own right only if it is also worse than each of its two slices
    # by the floor; otherwise the weaker single slice explains it.
    worst = max(parents, key=lambda p: p[1], default=None)
    explained = worst is not None and e1 < worst[1] * (1 + cfg.effect_floor)
    level = f"{cfg.confidence:.0%}"
    ratio = "" if f["ratio"] is None else f", {f['ratio']:.3g}x"
    reason = (
        f"{cfg.measure} {e1:.4g} ({level} CI {f['lower']:.4g} to {f['upper']:.4g}) on "
        f"{base['size']:,} rows with {subject} vs {e2:.4g} on the other {base['rest_size']:,} "
        f"(difference {d:+.4g}{ratio}, adjusted p={adj:.3g})"
    )
    if significant and big and not explained:
        status = Status.WARN
        reason += ": the model does much worse on this slice; look at its rows"
    else:
        status = Status.OK
        if significant and big and worst is not None:
            reason += f": explained by {worst[0]} ({cfg.measure} {worst[1]:.4g})"
        elif significant and d > 0:
            reason += f": worse, but below the effect floor ({cfg.measure} {bar:.4g})"
        elif d > 0:
            reason += ": not significantly worse"
    details = {**base, **{k: v for k, v in f.items() if k not in ("error", "lower", "upper")}}
    details["adjusted_p_value"] = adj
    details["significant"] = significant
    if parents:
        details["slice_errors"] = dict(parents)
    return CheckResult(
        CHECK, subject, status, reason, value=e1, threshold=bar, lower=f["lower"],
        upper=f["upper"], p_value=adj, rule=cfg.rule, details=_plain(details),
    )  # fmt: skip


def _plain(x: Any) -> Any:
    """JSON-ready copy: numpy numbers as Python ones, non-finite floats as ``None``."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.bool_ | bool):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    return x
