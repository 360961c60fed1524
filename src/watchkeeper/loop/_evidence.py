"""The evidence of a rollout at one moment of event time, read from the prediction log.

Only what had happened by ``now`` counts: requests served at or before ``now`` and labels
that had arrived by then (``label_ts <= now``). Labelled requests enter the quality test in
the order their labels arrived, so every look is a prefix of one sequence and the
confidence sequence's guarantee holds at every look. Label-free guardrails use every
request served by ``now``, so they act before any label arrives.

- shadow: the answering champion and the challenger's shadow copy of the same request give
  paired losses (:func:`~watchkeeper.stats.paired_confidence_sequence`);
- canary: each request was answered by one arm, sent to the challenger with the step's
  probability: inverse-propensity-weighted two-sample terms
  (:func:`~watchkeeper.stats.two_sample_confidence_sequence`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from watchkeeper.exceptions import InputError
from watchkeeper.loop._policy import LoopConfig
from watchkeeper.stats import (
    ConfidenceSequence,
    SequentialVerdict,
    confidence_sequence,
    paired_confidence_sequence,
    sequential_verdict,
    two_sample_confidence_sequence,
)

__all__ = ["Evidence", "GuardrailResult", "gather_evidence", "request_losses"]


@dataclass(frozen=True)
class GuardrailResult:
    """One label-free guardrail at one look: an always-valid interval and its limit."""

    name: str
    alpha: float
    n: int
    estimate: float
    lower: float
    upper: float
    limit: float
    breached: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "name": self.name,
            "alpha": self.alpha,
            "n": self.n,
            "estimate": _finite(self.estimate),
            "lower": _finite(self.lower),
            "upper": _finite(self.upper),
            "limit": self.limit,
            "breached": self.breached,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Evidence:
    """What a rollout's data said at event time ``now``.

    ``verdict`` is the quality test's (on champion loss minus challenger loss: positive
    means the challenger is better); ``sequence`` its confidence sequence thinned for
    storage and charts; ``requests`` the challenger's requests (answered in a canary,
    shadowed in a shadow) up to ``now``; ``labelled`` the labelled observations in the test
    (``labelled_challenger`` of them answered by the challenger).
    """

    mode: str
    now: float
    requests: int
    labelled: int
    labelled_challenger: int
    verdict: SequentialVerdict
    sequence: dict[str, Any]
    guardrails: tuple[GuardrailResult, ...]
    alpha: float
    guardrail_alpha: float

    @property
    def breached(self) -> tuple[GuardrailResult, ...]:
        """Guardrails that call for a rollback."""
        return tuple(g for g in self.guardrails if g.breached)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form, as stored with every loop step."""
        return {
            "mode": self.mode,
            "now": self.now,
            "requests": self.requests,
            "labelled": self.labelled,
            "labelled_challenger": self.labelled_challenger,
            "test": self.verdict.to_dict(),
            "sequence": self.sequence,
            "guardrails": [g.to_dict() for g in self.guardrails],
            "alpha": {
                "quality": self.alpha,
                "guardrails_total": self.guardrail_alpha,
                "guardrail_each": self.guardrail_alpha / max(len(self.guardrails), 1),
                "family": round(self.alpha + self.guardrail_alpha, 12),
            },
        }


def request_losses(kind: str, label: Any, prediction: Any, scores: Any = None) -> np.ndarray:
    """Per-request losses (``absolute``, ``squared``, ``zero_one`` or ``log``).

    Examples
    --------
    >>> request_losses("absolute", [1.0, 3.0], [2.0, 3.5]).tolist()
    [1.0, 0.5]
    >>> request_losses("log", [1, 0], None, ['{"1": 0.8, "0": 0.2}', '{"1": 0.8, "0": 0.2}'])
    array([0.22314355, 1.60943791])
    """
    if kind in ("absolute", "squared"):
        y = np.asarray(label, dtype=np.float64)
        p = np.asarray(prediction, dtype=np.float64)
        err = y - p
        return np.abs(err) if kind == "absolute" else err * err
    if kind == "zero_one":
        return np.array(
            [0.0 if str(a) == str(b) else 1.0 for a, b in zip(label, prediction, strict=True)]
        )
    if kind == "log":
        if scores is None:
            raise InputError("log loss needs the logged class probabilities (scores)")
        logs: list[float] = []
        for y, s in zip(label, scores, strict=True):
            probs = json.loads(s) if isinstance(s, str) else (s or {})
            prob = float(probs.get(str(y), probs.get(y, 0.0)))
            logs.append(-math.log(min(max(prob, 1e-15), 1.0)))
        return np.array(logs)
    raise InputError(f"unknown loss {kind!r}; use absolute, squared, zero_one or log")


def gather_evidence(
    frame: Any,
    policy: LoopConfig,
    *,
    now: float,
    loss: str,
    schedule: Sequence[tuple[float, float]] = (),
) -> Evidence:
    """Evidence of the rollout in ``frame`` (a log window with shadow rows) at ``now``.

    Parameters
    ----------
    frame
        ``read_window(..., include_shadow=True).to_pandas()`` from the rollout's start.
    policy
        The model's policy (aliases, alphas, margins, guardrails).
    now
        Event time of the look, in UTC seconds.
    loss
        Loss kind (see :func:`request_losses`).
    schedule
        Canary only: ``(start, percent)`` of every step so far, in order.
    """
    import pandas as pd

    ts = _seconds(frame["ts"]) if len(frame) else np.array([])
    frame = frame.assign(_ts=ts)
    frame = frame[frame["_ts"] <= now]
    label_ts = _seconds(frame["label_ts"]) if len(frame) else np.array([])
    frame = frame.assign(_label_ts=label_ts)
    has_label = frame["label"].notna() & (frame["_label_ts"] <= now)
    frame = frame.assign(_has_label=has_label)
    if policy.rollout.mode == "shadow":
        return _shadow(frame, policy, now, loss)
    if not schedule:
        raise InputError("a canary's evidence needs its step schedule")
    return _canary(frame, policy, now, loss, schedule, pd)


def _shadow(frame: Any, policy: LoopConfig, now: float, loss: str) -> Evidence:
    live = frame[~frame["shadow"] & (frame["arm"] == policy.champion)]
    copy = frame[frame["shadow"] & (frame["arm"] == policy.challenger)]
    both = live.merge(copy, on="id", suffixes=("", "_ch"), how="inner")
    both = both.sort_values(["_ts", "id"], kind="stable")
    rollout = policy.rollout
    lab = both[both["_has_label"]].sort_values(["_label_ts", "_ts", "id"], kind="stable")
    if len(lab):
        champ = request_losses(loss, lab["label"], lab["prediction"], lab.get("scores"))
        chall = request_losses(loss, lab["label"], lab["prediction_ch"], lab.get("scores_ch"))
        cs = paired_confidence_sequence(
            champ, chall, alpha=rollout.alpha, t_opt=rollout.t_opt, min_n=rollout.min_labels
        )
    else:
        cs = confidence_sequence(np.zeros(0), min_n=rollout.min_labels)
    verdict = sequential_verdict(cs, margin=rollout.margin, min_exposure=rollout.min_exposure)
    guards = _shadow_guardrails(both, policy)
    return _evidence("shadow", now, len(both), len(lab), len(lab), verdict, cs, guards, policy)


def _canary(
    frame: Any,
    policy: LoopConfig,
    now: float,
    loss: str,
    schedule: Sequence[tuple[float, float]],
    pd: Any,
) -> Evidence:
    rows = frame[~frame["shadow"] & frame["arm"].isin((policy.champion, policy.challenger))]
    starts = np.array([s for s, _ in schedule])
    shares = np.array([p / 100.0 for _, p in schedule])
    step = np.searchsorted(starts, rows["_ts"].to_numpy(), side="right") - 1
    rows = rows.assign(_pi=np.where(step >= 0, shares[np.maximum(step, 0)], np.nan))
    # Requests before the first step, or at 100 %, carry no comparison.
    rows = rows[(rows["_pi"] > 0) & (rows["_pi"] < 1)].sort_values(["_ts", "id"], kind="stable")
    z = (rows["arm"] == policy.challenger).to_numpy()
    rollout = policy.rollout
    lab = rows[rows["_has_label"]].sort_values(["_label_ts", "_ts", "id"], kind="stable")
    zl = (lab["arm"] == policy.challenger).to_numpy()
    if len(lab):
        losses = request_losses(loss, lab["label"], lab["prediction"], lab.get("scores"))
        cs = two_sample_confidence_sequence(
            losses, zl, lab["_pi"].to_numpy(), alpha=rollout.alpha, t_opt=rollout.t_opt,
            min_n=rollout.min_labels,
        )  # fmt: skip
    else:
        cs = confidence_sequence(np.zeros(0), min_n=rollout.min_labels)
    verdict = sequential_verdict(cs, margin=rollout.margin, min_exposure=rollout.min_exposure)
    guards = _canary_guardrails(rows, z, policy)
    return _evidence(
        "canary", now, int(z.sum()), len(lab), int(zl.sum()), verdict, cs, guards, policy
    )


def _evidence(
    mode: str,
    now: float,
    requests: int,
    labelled: int,
    labelled_challenger: int,
    verdict: SequentialVerdict,
    cs: ConfidenceSequence,
    guards: tuple[GuardrailResult, ...],
    policy: LoopConfig,
) -> Evidence:
    sequence = cs.to_dict() if cs.n else {"n": 0}
    return Evidence(
        mode, now, requests, labelled, labelled_challenger, verdict, sequence, guards,
        policy.rollout.alpha, policy.guardrails.alpha,
    )  # fmt: skip


# -- guardrails ------------------------------------------------------------------------


def _errors(frame: Any, suffix: str = "") -> np.ndarray:
    failed: np.ndarray = (frame["status" + suffix].astype(str) != "ok").to_numpy(np.float64)
    return failed


def _shadow_guardrails(both: Any, policy: LoopConfig) -> tuple[GuardrailResult, ...]:
    g = policy.guardrails
    a = g.alpha_each
    m = g.min_requests
    out: list[GuardrailResult] = []
    if g.error_rate_increase is not None:
        d = _errors(both, "_ch") - _errors(both)
        out.append(_above("error_rate", d, a, m, g.error_rate_increase, "error rate increase"))
    if g.latency_p99_ms is not None:
        slow = (both["latency_ms_ch"].astype(float) > g.latency_p99_ms).to_numpy(np.float64)
        out.append(
            _above("latency_p99", slow, a, m, 0.01, f"share slower than {g.latency_p99_ms:g} ms")
        )
    if g.prediction_shift is not None:
        out.append(_shift_paired(both, a, m, g.prediction_shift))
    if g.fairness_attribute is not None:
        out.append(_fairness_paired(both, policy, a, m))
    return tuple(out)


def _canary_guardrails(rows: Any, z: np.ndarray, policy: LoopConfig) -> tuple[GuardrailResult, ...]:
    g = policy.guardrails
    a = g.alpha_each
    m = g.min_requests
    pi = rows["_pi"].to_numpy()
    out: list[GuardrailResult] = []
    if g.error_rate_increase is not None:
        out.append(
            _ipw_above(
                "error_rate",
                _errors(rows),
                z,
                pi,
                a,
                m,
                g.error_rate_increase,
                "error rate increase",
            )
        )
    if g.latency_p99_ms is not None:
        slow = (rows["latency_ms"].astype(float) > g.latency_p99_ms).to_numpy(np.float64)[z]
        out.append(
            _above("latency_p99", slow, a, m, 0.01, f"share slower than {g.latency_p99_ms:g} ms")
        )
    if g.prediction_shift is not None:
        pred = _numeric(rows["prediction"])
        if pred is None:
            out.append(_skipped("prediction_shift", a, "predictions are not numbers"))
        else:
            sd = float(np.std(pred[~z])) if (~z).sum() > 1 else 0.0
            scaled = pred / sd if sd > 0 else pred
            out.append(_ipw_shift("prediction_shift", scaled, z, pi, a, m, g.prediction_shift))
    if g.fairness_attribute is not None:
        out.append(_fairness_canary(rows, z, pi, policy, a, m))
    return tuple(out)


def _above(
    name: str, x: np.ndarray, alpha: float, min_n: int, limit: float, what: str
) -> GuardrailResult:
    """Breached when the whole sequence on the mean of ``x`` lies above ``limit``."""
    if len(x) < max(min_n, 2):
        return _waiting(name, alpha, len(x), limit, min_n)
    cs = confidence_sequence(x, alpha=alpha, t_opt=max(len(x), 100), min_n=min_n)
    est, lo, hi = cs.last()
    breached = lo > limit
    reason = f"{what} {est:+.4g} (CS {lo:+.4g} to {hi:+.4g}) " + (
        f"exceeds {limit:g}" if breached else f"not shown above {limit:g}"
    )
    return GuardrailResult(name, alpha, len(x), est, lo, hi, limit, breached, reason)


def _ipw_above(
    name: str,
    y: np.ndarray,
    z: np.ndarray,
    pi: np.ndarray,
    alpha: float,
    min_n: int,
    limit: float,
    what: str,
) -> GuardrailResult:
    """Two-sample: breached when challenger minus champion mean of ``y`` exceeds ``limit``."""
    if min(int(z.sum()), int((~z).sum())) < min_n:
        return _waiting(name, alpha, int(z.sum()), limit, min_n)
    cs = two_sample_confidence_sequence(y, z, pi, alpha=alpha, t_opt=max(len(y), 100), min_n=min_n)
    est, lo, hi = cs.last()
    # The sequence is on champion minus challenger: flip it.
    est, lo, hi = -est, -hi, -lo
    breached = lo > limit
    reason = f"{what} {est:+.4g} (CS {lo:+.4g} to {hi:+.4g}) " + (
        f"exceeds {limit:g}" if breached else f"not shown above {limit:g}"
    )
    return GuardrailResult(name, alpha, int(z.sum()), est, lo, hi, limit, breached, reason)


def _shift_paired(both: Any, alpha: float, min_n: int, limit: float) -> GuardrailResult:
    champ, chall = _numeric(both["prediction"]), _numeric(both["prediction_ch"])
    if champ is None or chall is None:
        return _skipped("prediction_shift", alpha, "predictions are not numbers")
    if len(champ) < max(min_n, 2):
        return _waiting("prediction_shift", alpha, len(champ), limit, min_n)
    sd = float(np.std(champ))
    d = (chall - champ) / (sd if sd > 0 else 1.0)
    cs = confidence_sequence(d, alpha=alpha, t_opt=max(len(d), 100), min_n=min_n)
    return _two_sided("prediction_shift", cs, alpha, limit, "mean prediction shift (sd)")


def _ipw_shift(
    name: str, y: np.ndarray, z: np.ndarray, pi: np.ndarray, alpha: float, min_n: int,
    limit: float,
) -> GuardrailResult:  # fmt: skip
    if min(int(z.sum()), int((~z).sum())) < min_n:
        return _waiting(name, alpha, int(z.sum()), limit, min_n)
    cs = two_sample_confidence_sequence(y, z, pi, alpha=alpha, t_opt=max(len(y), 100), min_n=min_n)
    flipped = ConfidenceSequence(-cs.estimate, -cs.upper, -cs.lower, alpha, cs.rho, cs.min_n)
    return _two_sided(name, flipped, alpha, limit, "mean prediction shift (sd)")


def _two_sided(
    name: str, cs: ConfidenceSequence, alpha: float, limit: float, what: str
) -> GuardrailResult:
    est, lo, hi = cs.last()
    breached = lo > limit or hi < -limit
    reason = f"{what} {est:+.4g} (CS {lo:+.4g} to {hi:+.4g}) " + (
        f"beyond ±{limit:g}" if breached else f"not shown beyond ±{limit:g}"
    )
    return GuardrailResult(name, alpha, cs.n, est, lo, hi, limit, breached, reason)


def _fairness_paired(both: Any, policy: LoopConfig, alpha: float, min_n: int) -> GuardrailResult:
    attr = str(policy.guardrails.fairness_attribute)
    limit = policy.guardrails.fairness_gap_increase
    if attr not in both.columns:
        return _skipped("fairness_gap", alpha, f"column {attr!r} is not in the log")
    champ, chall = _numeric(both["prediction"]), _numeric(both["prediction_ch"])
    if champ is None or chall is None:
        return _skipped("fairness_gap", alpha, "predictions are not numbers")
    groups = both[attr].astype(str).to_numpy()
    bounds = {}
    names = sorted(set(groups))
    for g in names:
        d = (chall - champ)[groups == g]
        if len(d) < max(min_n, 2):
            return _waiting("fairness_gap", alpha, len(both), limit, min_n)
        cs = confidence_sequence(d, alpha=alpha / len(names), t_opt=max(len(d), 100), min_n=min_n)
        bounds[g] = cs.last()
    return _gap(bounds, alpha, len(both), limit, attr)


def _fairness_canary(
    rows: Any, z: np.ndarray, pi: np.ndarray, policy: LoopConfig, alpha: float, min_n: int
) -> GuardrailResult:
    attr = str(policy.guardrails.fairness_attribute)
    limit = policy.guardrails.fairness_gap_increase
    if attr not in rows.columns:
        return _skipped("fairness_gap", alpha, f"column {attr!r} is not in the log")
    pred = _numeric(rows["prediction"])
    if pred is None:
        return _skipped("fairness_gap", alpha, "predictions are not numbers")
    groups = rows[attr].astype(str).to_numpy()
    names = sorted(set(groups))
    bounds = {}
    for g in names:
        mask = groups == g
        if min(int(z[mask].sum()), int((~z[mask]).sum())) < min_n:
            return _waiting("fairness_gap", alpha, int(z.sum()), limit, min_n)
        cs = two_sample_confidence_sequence(
            pred[mask], z[mask], pi[mask], alpha=alpha / len(names),
            t_opt=max(int(mask.sum()), 100), min_n=min_n,
        )  # fmt: skip
        est, lo, hi = cs.last()
        bounds[g] = (-est, -hi, -lo)
    return _gap(bounds, alpha, int(z.sum()), limit, attr)


def _gap(
    bounds: dict[str, tuple[float, float, float]], alpha: float, n: int, limit: float, attr: str
) -> GuardrailResult:
    """The challenger's shift in mean prediction per group: the gap between groups grows by
    at least ``max_{g,h} (lower_g - upper_h)`` with the family's confidence."""
    if len(bounds) < 2:
        return _skipped("fairness_gap", alpha, f"fewer than two groups of {attr!r}")
    lo = max(bounds[g][1] - bounds[h][2] for g in bounds for h in bounds if g != h)
    est = max(bounds[g][0] - bounds[h][0] for g in bounds for h in bounds if g != h)
    hi = max(bounds[g][2] - bounds[h][1] for g in bounds for h in bounds if g != h)
    breached = lo > limit
    reason = f"gap in mean prediction across {attr} grows by {est:+.4g} (lower bound {lo:+.4g})" + (
        f", above {limit:g}" if breached else f", not shown above {limit:g}"
    )
    return GuardrailResult("fairness_gap", alpha, n, est, lo, hi, limit, breached, reason)


def _waiting(name: str, alpha: float, n: int, limit: float, min_n: int) -> GuardrailResult:
    return GuardrailResult(
        name, alpha, n, math.nan, -math.inf, math.inf, limit, False,
        f"{n} requests, waiting for {min_n}",
    )  # fmt: skip


def _skipped(name: str, alpha: float, why: str) -> GuardrailResult:
    return GuardrailResult(name, alpha, 0, math.nan, -math.inf, math.inf, math.nan, False, why)


def _numeric(values: Any) -> np.ndarray | None:
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if bool(np.all(np.isfinite(out))) else None


def _seconds(values: Any) -> np.ndarray:
    """UTC seconds of a timestamp column (NaN where missing)."""
    import pandas as pd

    stamps = pd.Series(pd.to_datetime(values, utc=True))
    seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return seconds.to_numpy(dtype=np.float64, na_value=np.nan)


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None
