"""Always-valid sequential inference: confidence sequences and mixture SPRT.

A shadow or canary is looked at again and again as labels arrive. A fixed-horizon test read at
every look inflates its false-positive rate far above ``alpha``; the procedures here keep their
guarantee at every look and at any stopping time.

- :func:`confidence_sequence`: the asymptotic confidence sequence of Waudby-Smith, Arbour,
  Sinha, Kennedy and Ramdas, "Time-uniform central limit theory and asymptotic confidence
  sequences", Annals of Statistics (2024), with Robbins' normal-mixture boundary
  (their Section 2):

  .. math:: \\hat\\mu_t \\pm \\hat\\sigma_t \\sqrt{\\frac{2(t\\rho^2+1)}{t^2\\rho^2}
            \\log\\frac{\\sqrt{t\\rho^2+1}}{\\alpha}}

  with the tuning parameter ``rho`` chosen to make the sequence tightest at ``t_opt``
  (the closed form given in the paper):
  :math:`\\rho^2 = (-2\\log\\alpha + \\log(1 - 2\\log\\alpha)) / t^*`.
- :func:`paired_confidence_sequence`: the mean of paired differences (shadow: both models
  answer the same requests).
- :func:`two_sample_confidence_sequence`: the difference of two means from one stream of
  randomised requests (canary) through inverse-propensity weighting, Waudby-Smith et al.
  (2024, Section 4): :math:`\\psi_i = (1 - Z_i) Y_i / (1 - \\pi_i) - Z_i Y_i / \\pi_i`, whose
  mean is ``E[Y | champion] - E[Y | challenger]`` for any predictable assignment
  probability :math:`\\pi_i` (a canary ramp changes it between steps).
- :func:`msprt`: the normal-mixture sequential probability ratio test of Johari, Pekelis and
  Walsh, "Always valid inference: continuous monitoring of A/B tests", Operations Research
  70(3) (2022), Section 3: :math:`\\Lambda_n = \\sqrt{\\sigma^2/(\\sigma^2 + n\\tau^2)}
  \\exp\\{n^2\\tau^2(\\bar X_n - \\theta_0)^2 / (2\\sigma^2(\\sigma^2 + n\\tau^2))\\}`, always-valid
  p-value :math:`p_n = \\min(p_{n-1}, 1/\\Lambda_n)`.

Every function works on the last axis, so thousands of simulated rollouts are one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.exceptions import InputError

__all__ = [
    "ConfidenceSequence",
    "SequentialVerdict",
    "confidence_sequence",
    "fixed_horizon_n",
    "ipw_differences",
    "msprt",
    "paired_confidence_sequence",
    "rho_for",
    "sequential_verdict",
    "two_sample_confidence_sequence",
]

Verdict = Literal["better", "worse", "equivalent", "continue"]


@dataclass(frozen=True)
class ConfidenceSequence:
    """A time-uniform confidence sequence on a mean, one interval per observation.

    Parameters
    ----------
    estimate
        Running mean after each observation (last axis).
    lower, upper
        Bounds after each observation: the running intersection of the intervals from
        ``min_n`` on (``-inf``/``+inf`` before), so the bounds only ever tighten.
    alpha
        Probability that the true mean ever leaves the sequence.
    rho
        Tuning parameter of the normal-mixture boundary.
    min_n
        Observations before the first interval (the asymptotics need a burn-in).
    method
        Name of the construction.

    Examples
    --------
    >>> cs = confidence_sequence([1.0, 2.0, 3.0, 4.0], min_n=2, t_opt=4)
    >>> cs.n, round(float(cs.estimate[-1]), 2), bool(cs.lower[-1] < 2.5 < cs.upper[-1])
    (4, 2.5, True)
    """

    estimate: NDArray[np.float64]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    alpha: float
    rho: float
    min_n: int
    method: str = "asymptotic-normal-mixture"

    @property
    def n(self) -> int:
        """Number of observations (length of the last axis)."""
        return int(self.estimate.shape[-1])

    def last(self) -> tuple[float, float, float]:
        """``(estimate, lower, upper)`` after the last observation of a 1-d sequence."""
        if self.estimate.ndim != 1 or self.n == 0:
            raise InputError("last() needs a non-empty one-dimensional sequence")
        return float(self.estimate[-1]), float(self.lower[-1]), float(self.upper[-1])

    def to_dict(self, points: int = 60) -> dict[str, object]:
        """JSON form of a 1-d sequence, thinned to about ``points`` evenly spaced looks."""
        if self.estimate.ndim != 1:
            raise InputError("to_dict() needs a one-dimensional sequence")
        idx = _thin(self.n, points)

        def clean(a: NDArray[np.float64]) -> list[float | None]:
            return [float(v) if math.isfinite(v) else None for v in a[idx]]

        return {
            "method": self.method,
            "alpha": self.alpha,
            "rho": self.rho,
            "min_n": self.min_n,
            "n": self.n,
            "t": [int(i) + 1 for i in idx],
            "estimate": clean(self.estimate),
            "lower": clean(self.lower),
            "upper": clean(self.upper),
        }


@dataclass(frozen=True)
class SequentialVerdict:
    """What a confidence sequence says about a challenger against a margin.

    ``verdict`` is ``better`` when the lower bound cleared ``+margin``, ``worse`` when the
    upper bound cleared ``-margin``, ``equivalent`` when the sequence lies inside
    ``(-margin, +margin)`` after ``min_exposure`` observations, else ``continue``; ``at`` is
    the number of observations at which it was first reached (``None`` for ``continue``).

    Examples
    --------
    >>> SequentialVerdict("continue", None, 10, 0.1, -0.3, 0.5).to_dict()["verdict"]
    'continue'
    """

    verdict: Verdict
    at: int | None
    n: int
    estimate: float
    lower: float
    upper: float

    def to_dict(self) -> dict[str, object]:
        """Plain JSON form (non-finite bounds become ``None``)."""
        return {
            "verdict": self.verdict,
            "at": self.at,
            "n": self.n,
            "estimate": _finite(self.estimate),
            "lower": _finite(self.lower),
            "upper": _finite(self.upper),
        }


def rho_for(t_opt: float, alpha: float) -> float:
    """The normal-mixture parameter that makes the sequence tightest after ``t_opt``
    observations (the closed form of Waudby-Smith et al. 2024).

    Examples
    --------
    >>> round(rho_for(1000, 0.05), 4)
    0.0891
    """
    _check_alpha(alpha)
    if not t_opt > 0:
        raise InputError(f"t_opt must be a positive number of observations, got {t_opt!r}")
    k = -2.0 * math.log(alpha)
    return math.sqrt((k + math.log(k + 1.0)) / t_opt)


def confidence_sequence(
    x: ArrayLike,
    *,
    alpha: float = 0.05,
    t_opt: float = 500.0,
    min_n: int = 30,
) -> ConfidenceSequence:
    """Asymptotic confidence sequence on the mean of ``x`` (two-sided, level ``1 - alpha``).

    Valid uniformly over time for i.i.d. (or martingale-difference) observations with finite
    variance, whatever rule decides when to look and when to stop. Works along the last
    axis, so a ``(rollouts, n)`` array gives one sequence per rollout.

    Parameters
    ----------
    x
        Observations in arrival order; non-finite values are refused.
    alpha
        Probability that the mean ever leaves the sequence.
    t_opt
        Number of observations at which the sequence should be tightest.
    min_n
        Burn-in: no interval (``-inf, +inf``) before ``min_n`` observations, where the
        variance estimate is still unreliable.

    Returns
    -------
    ConfidenceSequence

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> cs = confidence_sequence(rng.normal(0.3, 1.0, 4000), t_opt=1000)
    >>> bool(cs.lower[-1] > 0), bool(cs.lower[-1] < 0.3 < cs.upper[-1])
    (True, True)
    """
    arr = _values(x)
    _check_alpha(alpha)
    if not isinstance(min_n, int) or min_n < 2:
        raise InputError(f"min_n must be an integer >= 2, got {min_n!r}")
    t = np.arange(1, arr.shape[-1] + 1, dtype=np.float64)
    return _sequence(arr, t >= min_n, alpha=alpha, t_opt=t_opt, min_n=min_n)


def _sequence(
    arr: NDArray[np.float64],
    ready: NDArray[np.bool_],
    *,
    alpha: float,
    t_opt: float,
    min_n: int,
    method: str = "asymptotic-normal-mixture",
) -> ConfidenceSequence:
    rho = rho_for(t_opt, alpha)
    n = arr.shape[-1]
    t = np.arange(1, n + 1, dtype=np.float64)
    # Centre on the first value so the running variance does not lose digits to cancellation.
    shift = arr[..., :1] if n else 0.0
    c = arr - shift
    s1 = np.cumsum(c, axis=-1)
    s2 = np.cumsum(c * c, axis=-1)
    mean_c = s1 / t
    var = np.maximum(s2 / t - mean_c * mean_c, 0.0)
    estimate = mean_c + shift
    r2 = rho * rho
    radius = np.sqrt(var) * np.sqrt(
        2.0 * (t * r2 + 1.0) / (t * t * r2) * np.log(np.sqrt(t * r2 + 1.0) / alpha)
    )
    lower = np.where(ready, estimate - radius, -np.inf)
    upper = np.where(ready, estimate + radius, np.inf)
    lower = np.maximum.accumulate(lower, axis=-1)
    upper = np.minimum.accumulate(upper, axis=-1)
    return ConfidenceSequence(estimate, lower, upper, float(alpha), rho, min_n, method)


def paired_confidence_sequence(
    champion_loss: ArrayLike,
    challenger_loss: ArrayLike,
    *,
    alpha: float = 0.05,
    t_opt: float = 500.0,
    min_n: int = 30,
) -> ConfidenceSequence:
    """Confidence sequence on ``E[champion loss - challenger loss]`` from paired losses
    (positive: the challenger makes smaller losses).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> base = rng.exponential(1.0, 3000)
    >>> cs = paired_confidence_sequence(base + 0.2, base + rng.normal(0, 0.5, 3000))
    >>> bool(cs.lower[-1] > 0)
    True
    """
    a, b = _values(champion_loss), _values(challenger_loss)
    if a.shape != b.shape:
        raise InputError(f"paired losses need the same shape, got {a.shape} and {b.shape}")
    cs = confidence_sequence(a - b, alpha=alpha, t_opt=t_opt, min_n=min_n)
    return ConfidenceSequence(
        cs.estimate, cs.lower, cs.upper, cs.alpha, cs.rho, cs.min_n, "paired-asymptotic"
    )


def ipw_differences(
    loss: ArrayLike, challenger: ArrayLike, propensity: ArrayLike, *, centre: bool = True
) -> NDArray[np.float64]:
    """Inverse-propensity-weighted terms whose mean is ``E[champion loss] - E[challenger
    loss]`` (Waudby-Smith et al. 2024, Section 4).

    With ``centre``, each loss is first reduced by the mean of the losses *before* it (a
    predictable control variate): the terms keep their mean, because
    ``E[(1 - Z)/(1 - pi) - Z/pi] = 0`` for any constant fixed before ``Z`` is drawn, and
    their variance no longer carries the losses' common level.

    Parameters
    ----------
    loss
        Loss of the request on the arm that answered it.
    challenger
        ``True`` where the challenger answered.
    propensity
        Probability with which the request was sent to the challenger, fixed before it was
        drawn (the canary percentage of the step, over 100); strictly between 0 and 1.
    centre
        Subtract the running mean of the earlier losses first.

    Examples
    --------
    >>> ipw_differences([1.0, 2.0], [False, True], [0.5, 0.5], centre=False).tolist()
    [2.0, -4.0]
    >>> ipw_differences([1.0, 2.0], [False, True], [0.5, 0.5]).tolist()
    [2.0, -2.0]
    """
    y = _values(loss)
    z = np.asarray(challenger, dtype=bool)
    p = np.asarray(propensity, dtype=np.float64)
    if z.shape != y.shape:
        raise InputError(f"loss and challenger need the same shape, got {y.shape}, {z.shape}")
    p = np.broadcast_to(p, y.shape)
    if not bool(np.all((p > 0) & (p < 1))):
        raise InputError("propensities must lie strictly between 0 and 1 (0 % < canary < 100 %)")
    if centre and y.shape[-1]:
        t = np.arange(y.shape[-1], dtype=np.float64)
        earlier = np.cumsum(y, axis=-1) - y  # sum of the losses before each one
        y = y - np.where(t > 0, earlier / np.maximum(t, 1.0), 0.0)
    return np.where(z, -y / p, y / (1.0 - p))


def two_sample_confidence_sequence(
    loss: ArrayLike,
    challenger: ArrayLike,
    propensity: ArrayLike,
    *,
    alpha: float = 0.05,
    t_opt: float = 500.0,
    min_n: int = 30,
) -> ConfidenceSequence:
    """Confidence sequence on ``E[champion loss] - E[challenger loss]`` from a randomised
    canary stream (two independent samples, assignment probability known per request).

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> z = rng.uniform(size=20000) < 0.25
    >>> loss = rng.exponential(1.0, 20000) + np.where(z, 0.0, 0.3)
    >>> cs = two_sample_confidence_sequence(loss, z, 0.25, t_opt=5000)
    >>> bool(cs.lower[-1] > 0)
    True
    """
    psi = ipw_differences(loss, challenger, propensity)
    _check_alpha(alpha)
    if not isinstance(min_n, int) or min_n < 2:
        raise InputError(f"min_n must be an integer >= 2, got {min_n!r}")
    # The weighted terms are heavily skewed when few requests went to one arm: the burn-in
    # counts ``min_n`` labelled requests on *each* arm before the first interval.
    z = np.asarray(challenger, dtype=bool)
    ready = (np.cumsum(z, axis=-1) >= min_n) & (np.cumsum(~z, axis=-1) >= min_n)
    return _sequence(
        psi, ready, alpha=alpha, t_opt=t_opt, min_n=min_n, method="two-sample-ipw-asymptotic"
    )


def sequential_verdict(
    cs: ConfidenceSequence, *, margin: float = 0.0, min_exposure: int | None = None
) -> SequentialVerdict:
    """First verdict a 1-d confidence sequence reached, looking at every observation.

    ``better`` once the lower bound exceeds ``margin``; ``worse`` once the upper bound falls
    below ``-margin``; ``equivalent`` once, after ``min_exposure`` observations (default
    ``cs.min_n``), the whole interval lies inside ``(-margin, margin)``; else ``continue``.

    Examples
    --------
    >>> cs = confidence_sequence(np.full(200, -1.0) + np.tile([0.5, -0.5], 100), t_opt=100)
    >>> v = sequential_verdict(cs, margin=0.1)
    >>> v.verdict, v.at is not None
    ('worse', True)
    """
    if cs.estimate.ndim != 1:
        raise InputError("sequential_verdict() needs a one-dimensional sequence")
    if not (math.isfinite(margin) and margin >= 0):
        raise InputError(f"margin must be a finite number >= 0, got {margin!r}")
    exposure = cs.min_n if min_exposure is None else int(min_exposure)
    t = np.arange(1, cs.n + 1)
    hits = {
        "better": cs.lower > margin,
        "worse": cs.upper < -margin,
        "equivalent": (cs.lower > -margin) & (cs.upper < margin) & (t >= exposure),
    }
    first: tuple[int, str] | None = None
    for name, mask in hits.items():
        if mask.any():
            at = int(np.argmax(mask)) + 1
            if first is None or at < first[0]:
                first = (at, name)
    if cs.n == 0:
        return SequentialVerdict("continue", None, 0, math.nan, -math.inf, math.inf)
    if first is None:
        est, lo, hi = cs.last()
        return SequentialVerdict("continue", None, cs.n, est, lo, hi)
    at, name = first
    i = at - 1
    return SequentialVerdict(
        name,  # type: ignore[arg-type]
        at,
        cs.n,
        float(cs.estimate[i]),
        float(cs.lower[i]),
        float(cs.upper[i]),
    )


def msprt(
    x: ArrayLike,
    *,
    theta0: float = 0.0,
    tau2: float = 1.0,
    sigma2: float | None = None,
    min_n: int = 30,
) -> NDArray[np.float64]:
    """Always-valid p-values of the normal-mixture SPRT of ``mean(x) == theta0``
    (Johari, Pekelis and Walsh 2022), one per observation, along the last axis.

    Parameters
    ----------
    x
        Observations (paired differences, or IPW terms for a two-sample stream).
    theta0
        Mean under the null hypothesis.
    tau2
        Variance of the normal mixing distribution: larger favours large effects early.
    sigma2
        Variance of one observation; the running sample variance when omitted (a plug-in
        for an unknown variance).
    min_n
        Burn-in for the plug-in variance: p-values are 1 before ``min_n`` observations
        (ignored when ``sigma2`` is given).

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> p = msprt(rng.normal(0.5, 1.0, 500), sigma2=1.0)
    >>> bool(p[-1] < 0.001), bool(np.all(np.diff(p) <= 0))
    (True, True)
    """
    arr = _values(x)
    if not (math.isfinite(tau2) and tau2 > 0):
        raise InputError(f"tau2 must be a positive number, got {tau2!r}")
    n = arr.shape[-1]
    t = np.arange(1, n + 1, dtype=np.float64)
    mean = np.cumsum(arr, axis=-1) / t
    if sigma2 is None:
        second = np.cumsum(arr * arr, axis=-1) / t
        var = np.maximum(second - mean * mean, 1e-12)
    else:
        if not (math.isfinite(sigma2) and sigma2 > 0):
            raise InputError(f"sigma2 must be a positive number, got {sigma2!r}")
        var = np.full_like(mean, sigma2)
    log_lambda = 0.5 * np.log(var / (var + t * tau2)) + (
        t * t * tau2 * (mean - theta0) ** 2 / (2.0 * var * (var + t * tau2))
    )
    p = np.minimum(1.0, np.exp(-log_lambda))
    if sigma2 is None:
        p = np.where(t < min_n, 1.0, p)
    return np.minimum.accumulate(p, axis=-1)


def fixed_horizon_n(effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.9) -> int:
    """Observations a fixed-horizon two-sided z-test on a mean needs to detect ``effect``
    with ``power``: :math:`n = ((z_{1-\\alpha/2} + z_{power})\\,\\sigma / \\delta)^2`.

    Examples
    --------
    >>> fixed_horizon_n(0.1, 1.0)
    1051
    """
    from scipy.special import ndtri

    _check_alpha(alpha)
    if not (0 < power < 1) or not (effect != 0 and sd > 0):
        raise InputError("need 0 < power < 1, a non-zero effect and a positive sd")
    z = float(ndtri(1 - alpha / 2) + ndtri(power))
    return math.ceil((z * sd / abs(effect)) ** 2)


def _values(x: ArrayLike) -> NDArray[np.float64]:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"expected numbers, got {type(x).__name__}: {exc}") from exc
    if arr.ndim == 0:
        raise InputError("expected a sequence of observations, got a single number")
    if not bool(np.all(np.isfinite(arr))):
        raise InputError("observations must be finite (drop rows without a label or a loss)")
    return arr


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise InputError(f"alpha must be in (0, 1), got {alpha!r}")


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _thin(n: int, points: int) -> NDArray[np.int64]:
    if n <= points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, points).round().astype(np.int64))
