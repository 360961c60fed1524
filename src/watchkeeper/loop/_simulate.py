"""Seeded, vectorised simulations of many rollouts decided the way the runner decides them.

Each simulated rollout serves ``requests`` requests, one per tick; the label of request ``t``
arrives at tick ``t + label_delay``; at every label the confidence sequence is looked at
(the runner's :func:`~watchkeeper.loop.gather_evidence` uses the same sequences and the
same verdict rule). Losses are normal with standard deviation ``sd``: in a shadow the
per-request difference ``champion - challenger`` has mean ``effect``; in a canary each request
is answered by one arm, the challenger's loss lower by ``effect``. Positive ``effect``: the
challenger is better.

A canary starts at ``steps[0]`` % and moves to the next step once ``step_labels`` labels of
challenger requests arrived at the current step, as the runner does; it never reaches
100 % without a verdict. ``peeked`` adds the share of rollouts in which a fixed-horizon
t-test read at every label would ever have called the challenger better.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from watchkeeper.exceptions import InputError
from watchkeeper.stats import (
    confidence_sequence,
    fixed_horizon_n,
    two_sample_confidence_sequence,
)

__all__ = ["SimulationSummary", "simulate_rollouts"]


@dataclass(frozen=True)
class SimulationSummary:
    """Shares of verdicts over the simulated rollouts and how long they took.

    ``median_labels``/``p95_labels``: labels at the verdict (rollouts with a verdict);
    ``median_requests``/``p95_requests``: requests the challenger answered (canary) or
    shadowed (shadow) before the verdict; ``fixed_horizon_labels``: labels a fixed-horizon
    z-test needs for 90 % power at the same effect (paired, or two-sample at the final
    share); ``peeked_better``: share a t-test read at every label called better.
    """

    mode: str
    effect: float
    rollouts: int
    requests: int
    label_delay: int
    better: float
    worse: float
    no_verdict: float
    median_labels: float | None
    p95_labels: float | None
    median_requests: float | None
    p95_requests: float | None
    fixed_horizon_labels: int | None
    peeked_better: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return asdict(self)


def simulate_rollouts(
    *,
    mode: Literal["shadow", "canary"] = "shadow",
    effect: float = 0.0,
    rollouts: int = 200,
    requests: int = 20_000,
    sd: float = 1.0,
    label_delay: int = 0,
    steps: tuple[float, ...] = (5.0, 25.0, 50.0),
    step_labels: int = 200,
    alpha: float = 0.05,
    t_opt: float = 1000.0,
    margin: float = 0.0,
    min_labels: int = 30,
    peeked: bool = False,
    seed: int = 0,
) -> SimulationSummary:
    """Simulate ``rollouts`` rollouts and summarise their verdicts.

    Examples
    --------
    >>> s = simulate_rollouts(effect=0.3, rollouts=50, requests=3000, seed=1)
    >>> s.better >= 0.9, s.worse
    (True, 0.0)
    """
    if mode not in ("shadow", "canary"):
        raise InputError(f"mode is shadow or canary, got {mode!r}")
    if rollouts < 1 or requests < 2 or label_delay < 0:
        raise InputError("need rollouts >= 1, requests >= 2 and label_delay >= 0")
    rng = np.random.default_rng(seed)
    n_labels = requests - label_delay  # labels that arrive within the budget
    if n_labels < 2:
        raise InputError("label_delay leaves no labels within the budget")
    if mode == "shadow":
        psi = rng.normal(effect, sd, (rollouts, requests))[:, :n_labels]
        z = np.ones((rollouts, requests), dtype=bool)  # every request is shadowed
        cs = confidence_sequence(psi, alpha=alpha, t_opt=t_opt, min_n=min_labels)
    else:
        z, pi = _canary_assignment(rng, rollouts, requests, steps, step_labels, label_delay)
        loss = rng.normal(1.0, sd, (rollouts, requests)) - effect * z
        psi = None
        cs = two_sample_confidence_sequence(
            loss[:, :n_labels], z[:, :n_labels], pi[:, :n_labels], alpha=alpha, t_opt=t_opt,
            min_n=min_labels,
        )  # fmt: skip
    better_at = _first(cs.lower > margin)
    worse_at = _first(cs.upper < -margin)
    decided_at = np.minimum(better_at, worse_at)
    better = better_at < worse_at
    worse = worse_at < better_at
    decided = decided_at < n_labels
    labels = decided_at[decided] + 1
    # The verdict comes when label k arrives, at tick k - 1 + label_delay; the challenger has
    # answered (or shadowed) every request up to that tick.
    ticks = np.minimum(decided_at + label_delay, requests - 1)
    served = np.cumsum(z, axis=1)[np.arange(rollouts), ticks][decided]
    peeked_better = None
    if peeked:
        peeked_better = _peeked_t(psi, min_labels)
    fixed = None
    if effect != 0:
        if mode == "shadow":
            fixed = fixed_horizon_n(effect, sd, alpha=alpha)
        else:
            share = steps[-1] / 100.0
            per = fixed_horizon_n(effect, sd * np.sqrt(1 / share + 1 / (1 - share)), alpha=alpha)
            fixed = int(per)
    return SimulationSummary(
        mode=mode,
        effect=effect,
        rollouts=rollouts,
        requests=requests,
        label_delay=label_delay,
        better=float(np.mean(better & decided)),
        worse=float(np.mean(worse & decided)),
        no_verdict=float(np.mean(~decided)),
        median_labels=_q(labels, 50),
        p95_labels=_q(labels, 95),
        median_requests=_q(served, 50),
        p95_requests=_q(served, 95),
        fixed_horizon_labels=fixed,
        peeked_better=peeked_better,
    )


def _canary_assignment(
    rng: np.random.Generator,
    rollouts: int,
    requests: int,
    steps: tuple[float, ...],
    step_labels: int,
    delay: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Assignments and propensities of a ramp that moves on after ``step_labels`` labels of
    challenger requests arrived at the current step."""
    shares = [s / 100.0 for s in steps if s < 100.0]
    u = rng.uniform(size=(rollouts, requests))
    pi = np.full((rollouts, requests), shares[0])
    z = u < pi
    start = np.zeros(rollouts, dtype=np.int64)
    ticks = np.arange(requests)
    for share in shares[1:]:
        # labels of challenger requests arriving by tick t: requests up to t - delay
        lab = np.cumsum(z, axis=1)
        prior = lab[np.arange(rollouts), np.maximum(start - delay - 1, 0)]
        before = np.where(start - delay - 1 >= 0, prior, 0)
        reached: np.ndarray = np.asarray((lab - before[:, None]) >= step_labels)
        idx = np.where(reached.any(axis=1), reached.argmax(axis=1) + delay + 1, requests)
        idx = np.maximum(idx, start + 1)
        later = ticks[None, :] >= idx[:, None]
        pi = np.where(later, share, pi)
        z = u < pi
        start = np.minimum(idx, requests)
    return z, pi


def _peeked_t(psi: np.ndarray | None, min_labels: int) -> float:
    from scipy import stats

    if psi is not None:
        d = psi
        t = np.arange(1, d.shape[1] + 1)
        mean = np.cumsum(d, axis=1) / t
        var = (np.cumsum(d * d, axis=1) - t * mean**2) / np.maximum(t - 1, 1)
        look = slice(min_labels - 1, None)
        tstat = mean[:, look] / np.sqrt(np.maximum(var[:, look], 1e-300) / t[look])
        return float((tstat > stats.t.ppf(0.975, t[look] - 1)).any(axis=1).mean())
    raise InputError("the peeked t-test is simulated for shadows (paired differences)")


def _first(mask: np.ndarray) -> np.ndarray:
    n = mask.shape[1]
    return np.asarray(np.where(mask.any(axis=1), mask.argmax(axis=1), n))


def _q(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None
