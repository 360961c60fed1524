"""Attribution drift and the likely causes of a degradation: pure functions over results.

:func:`attribution_drift` compares each feature's mean absolute attribution in a window
with the reference. The decision rule, per feature ``j``:

- the change ``d = window - reference`` has standard error
  ``se = sqrt(se_ref**2 + se_win**2)``, each side's :attr:`GlobalExplanation.std_error`
  (rows *and* backgrounds, so it is the noise floor of the difference);
- ``p = 2 * (1 - Phi(|d| / se))`` (normal approximation of a difference of means over at
  least ``min_rows`` rows), adjusted across all features with Benjamini–Hochberg (or the
  chosen correction);
- ``alert`` when the adjusted p-value is at most ``alpha`` **and** ``|d|`` reaches the
  practical floor ``min_change`` times the reference's total importance (so that a large
  window does not alert on a negligible change); a significant change below the floor is
  ``ok`` with ``significant`` in its details; fewer than ``min_rows`` explained rows on
  either side gives ``insufficient_data``.

A feature "fell to noise" when it mattered in the reference (at least ``noise_share`` of
the total importance) and no longer does in the window: its importance is below both
``noise_share`` of the window's total and its own noise floor.

:func:`rank_degradation_causes` reads the per-window results of the monitor (data drift,
attribution drift, realised or estimated performance) and ranks the features whose drift or
loss of relevance coincides with the windows where performance dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.explain._global import Z95, GlobalExplanation
from watchkeeper.stats import Correction, adjust_p_values

__all__ = ["DegradationCause", "attribution_drift", "rank_degradation_causes"]

CHECK = "attribution.drift"


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.4g}"
    return f"{x:.2e}"


def _ranks(g: GlobalExplanation) -> dict[str, int]:
    return {f: i + 1 for i, f in enumerate(g.ranking())}


def attribution_drift(
    reference: GlobalExplanation,
    window: GlobalExplanation,
    *,
    alpha: float = 0.05,
    correction: Correction = "bh",
    min_change: float = 0.05,
    noise_share: float = 0.01,
    min_rows: int = 50,
) -> list[CheckResult]:
    """One ``attribution.drift`` result per feature: did its importance change beyond noise?

    Parameters
    ----------
    reference, window
        Global explanations of the same model output (see
        :func:`~watchkeeper.explain.global_importance`), ideally against the same
        reference background.
    alpha, correction
        Error rate controlled across the features, and how (``"bh"``, ``"by"``, ``"holm"``,
        ``"bonferroni"``, ``"none"``).
    min_change
        Practical floor: the smallest change that can alert, as a share of the reference's
        total importance (``0`` disables it).
    noise_share
        Share of the total importance under which a feature counts as noise.
    min_rows
        Fewer explained rows on either side gives ``insufficient_data``.

    Examples
    --------
    >>> def g(imp, n=500):
    ...     return GlobalExplanation(("a", "b"), np.array(imp), np.array([0.02, 0.02]),
    ...                              np.zeros(2), np.zeros(2), n, 1, "tree", "prediction",
    ...                              "prediction", 0.0)
    >>> [r.status.value for r in attribution_drift(g([1.0, 0.5]), g([1.01, 0.0]))]
    ['ok', 'alert']
    >>> attribution_drift(g([1.0, 0.5]), g([1.01, 0.0]))[1].details["fell_to_noise"]
    True
    """
    if reference.output != window.output:
        raise InputError(
            f"the reference explains the {reference.output_label} but the window the "
            f"{window.output_label}; explain both with the same output"
        )
    if not 0 <= min_change < 1 or not 0 <= noise_share < 1:
        raise InputError("min_change and noise_share are shares: between 0 and 1")
    features = list(reference.features) + [
        f for f in window.features if f not in reference.features
    ]
    total_ref = float(reference.importance.sum())
    total_win = float(window.importance.sum())
    floor = min_change * total_ref
    ranks_ref, ranks_win = _ranks(reference), _ranks(window)
    too_few = min(reference.n_rows, window.n_rows) < min_rows
    rows: list[dict[str, Any]] = []
    p_values = []
    for f in features:
        if f not in reference.features or f not in window.features:
            side = "reference" if f not in reference.features else "window"
            rows.append({"feature": f, "missing": side})
            p_values.append(math.nan)
            continue
        imp_r, se_r = reference.get(f)
        imp_w, se_w = window.get(f)
        delta = imp_w - imp_r
        se = math.sqrt(se_r**2 + se_w**2)
        if se > 0 and math.isfinite(se):
            p = float(2 * norm.sf(abs(delta) / se))
        else:
            p = 1.0 if delta == 0 else 0.0
        p_values.append(math.nan if too_few else p)
        share_r = imp_r / total_ref if total_ref > 0 else 0.0
        share_w = imp_w / total_win if total_win > 0 else 0.0
        fell = share_r >= noise_share and imp_w < max(noise_share * total_win, Z95 * se_w)
        rows.append(
            {
                "feature": f,
                "delta": delta,
                "se": se,
                "p": p,
                "details": {
                    "reference_importance": imp_r,
                    "window_importance": imp_w,
                    "reference_share": share_r,
                    "window_share": share_w,
                    "reference_rank": ranks_ref[f],
                    "window_rank": ranks_win[f],
                    "relative_change": delta / imp_r if imp_r > 0 else None,
                    "noise_floor": Z95 * se,
                    "fell_to_noise": bool(fell),
                    "n_reference": reference.n_rows,
                    "n_window": window.n_rows,
                    "output": reference.output_label,
                },
            }
        )
    adjusted, reject = adjust_p_values(np.asarray(p_values), alpha=alpha, method=correction)
    rule = f"{correction}+effect_floor" if correction != "none" else "p+effect_floor"
    out = []
    for i, row in enumerate(rows):
        f = row["feature"]
        if "missing" in row:
            out.append(
                CheckResult(
                    check=CHECK,
                    subject=f,
                    status=Status.INSUFFICIENT_DATA,
                    reason=f"{f!r} is not explained in the {row['missing']}; explain the same "
                    "features on both sides",
                    rule=rule,
                )
            )
            continue
        delta, se = row["delta"], row["se"]
        details = dict(row["details"])
        if too_few:
            status = Status.INSUFFICIENT_DATA
            reason = (
                f"only {min(reference.n_rows, window.n_rows):,} explained rows on one side; "
                f"at least {min_rows:,} are needed for a verdict"
            )
        else:
            adj = float(adjusted[i])
            details["adjusted_p_value"] = adj
            details["significant"] = bool(reject[i])
            change = (
                f"mean |attribution| {_fmt(details['reference_importance'])} -> "
                f"{_fmt(details['window_importance'])} (change {_fmt(delta)}, noise floor "
                f"±{_fmt(Z95 * se)})"
            )
            if reject[i] and abs(delta) >= floor:
                status = Status.ALERT
                reason = (
                    f"{change}: significant (adjusted p={_fmt(adj)} <= {alpha}) and at least "
                    f"the practical floor {_fmt(floor)} ({min_change:.0%} of total importance)"
                )
            elif reject[i]:
                status = Status.OK
                reason = (
                    f"{change}: statistically detectable (adjusted p={_fmt(adj)}) but below "
                    f"the practical floor {_fmt(floor)}"
                )
            else:
                status = Status.OK
                reason = f"{change}: within the noise (adjusted p={_fmt(adj)} > {alpha})"
            if details["fell_to_noise"]:
                reason += "; the feature's importance fell to noise"
        out.append(
            CheckResult(
                check=CHECK,
                subject=f,
                status=status,
                reason=reason,
                value=delta,
                threshold=floor,
                lower=delta - Z95 * se,
                upper=delta + Z95 * se,
                p_value=row["p"],
                rule=rule,
                details=details,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class DegradationCause:
    """A feature ranked as a likely cause of a performance drop.

    ``score = weight * coincidence * precision``: ``weight`` is the feature's reference share
    of importance (1 without attribution results), ``coincidence`` the share of degraded
    windows in which it drifted or lost relevance, ``precision`` the share of its
    drifting windows that were degraded.
    """

    feature: str
    score: float
    weight: float
    coincidence: float
    precision: float
    drifted_in: tuple[str, ...]
    fell_to_noise_in: tuple[str, ...]
    degraded_windows: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form."""
        return {
            "feature": self.feature,
            "score": self.score,
            "weight": self.weight,
            "coincidence": self.coincidence,
            "precision": self.precision,
            "drifted_in": list(self.drifted_in),
            "fell_to_noise_in": list(self.fell_to_noise_in),
            "degraded_windows": list(self.degraded_windows),
            "reason": self.reason,
        }


_BAD = (Status.WARN, Status.ALERT)


def _windows(
    windows: Mapping[str, Iterable[CheckResult]] | Sequence[Iterable[CheckResult]],
) -> list[tuple[str, list[CheckResult]]]:
    if isinstance(windows, Mapping):
        return [(str(k), list(v)) for k, v in windows.items()]
    return [(str(i), list(v)) for i, v in enumerate(windows)]


def rank_degradation_causes(
    windows: Mapping[str, Iterable[CheckResult]] | Sequence[Iterable[CheckResult]],
) -> list[DegradationCause]:
    """Rank features as likely causes of the windows where performance dropped.

    Parameters
    ----------
    windows
        The results of each window, in time order (a mapping from window label to results,
        or a list): ``performance.*`` / ``estimated.*`` results say whether performance
        dropped (status ``warn`` or ``alert``), ``drift.*`` results whether a column
        drifted (``warn``/``alert``), and ``attribution.drift`` results whether a feature's
        importance fell to noise and how much it mattered in the reference.

    Returns
    -------
    list of DegradationCause
        Every feature that drifted or lost relevance in some window, best-supported cause
        first; features unrelated to any drop have score 0.

    Examples
    --------
    >>> def r(check, subject, status, **details):
    ...     return CheckResult(check, subject, Status(status), "", details=details)
    >>> windows = {
    ...     "w1": [r("performance.mae", "model", "ok"), r("drift.ks", "temp", "alert")],
    ...     "w2": [r("performance.mae", "model", "alert"), r("drift.ks", "hum", "alert"),
    ...            r("drift.ks", "temp", "alert")],
    ... }
    >>> [(c.feature, c.score) for c in rank_degradation_causes(windows)]
    [('hum', 1.0), ('temp', 0.5)]
    """
    items = _windows(windows)
    degraded = [
        label
        for label, results in items
        if any(
            r.check.startswith(("performance.", "estimated.")) and r.status in _BAD for r in results
        )
    ]
    drifted: dict[str, list[str]] = {}
    fell: dict[str, list[str]] = {}
    weight: dict[str, float] = {}
    for label, results in items:
        for r in results:
            if r.check == CHECK:
                share = r.details.get("reference_share")
                if isinstance(share, int | float):
                    weight[r.subject] = float(share)
                if r.details.get("fell_to_noise"):
                    fell.setdefault(r.subject, []).append(label)
            elif r.check.startswith("drift.") and r.status in _BAD:
                drifted.setdefault(r.subject, []).append(label)
    bad = set(degraded)
    out = []
    for feature in sorted(set(drifted) | set(fell)):
        flagged = set(drifted.get(feature, ())) | set(fell.get(feature, ()))
        hits = flagged & bad
        coincidence = len(hits) / len(bad) if bad else 0.0
        precision = len(hits) / len(flagged) if flagged else 0.0
        w = weight.get(feature, 1.0) if weight else 1.0
        score = w * coincidence * precision
        what = []
        if feature in drifted:
            what.append(f"drifted in {len(drifted[feature])} window(s)")
        if feature in fell:
            what.append(f"lost its relevance in {len(fell[feature])} window(s)")
        reason = f"{' and '.join(what)}; {len(hits)} of {len(bad)} degraded window(s) coincide" + (
            f"; {w:.0%} of the reference importance" if weight else ""
        )
        out.append(
            DegradationCause(
                feature=feature,
                score=score,
                weight=w,
                coincidence=coincidence,
                precision=precision,
                drifted_in=tuple(drifted.get(feature, ())),
                fell_to_noise_in=tuple(fell.get(feature, ())),
                degraded_windows=tuple(degraded),
                reason=reason,
            )
        )
    return sorted(out, key=lambda c: (-c.score, -c.weight, c.feature))
