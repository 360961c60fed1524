"""False drift alerts over a year of weekly windows: a seeded, vectorised simulation.

What the monitor does each week, for a model with 20 numeric features and no drift:

- each window's profile keeps a row sample of ``window_sample`` rows (10,000), so KS runs on
  ``min(rows, 10,000)`` current values against the reference profile's sample (10,000 rows);
- the 20 feature tests are decided together by the default rule (Benjamini–Hochberg at 0.05
  plus KS's effect floor 0.02), the prediction's KS test against the prediction baseline
  (the version's first ``baseline_rows`` = 1,000 predictions) on its own;
- the default ``drift`` alert rule fires when one subject is ``alert`` in ``for = 2``
  consecutive windows, and resolves when it is not.

Under no drift KS depends only on ranks, so uniform values stand for any continuous feature.
The reference (and the prediction baseline) is drawn once per simulated model and kept for
its 52 windows, as in the monitor: windows share the reference's noise, which makes their
verdicts dependent, and the simulation keeps that dependence. The decision uses the same
rule object as the monitor (:class:`watchkeeper.checks.StatisticalRule`); the p-value is KS's
asymptotic distribution (``scipy.stats.kstwo``), which the monitor's exact p-values match
closely at these sizes.

Run ``python -m tests.monitor._false_alerts`` for the figures quoted in docs/monitoring.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

N_FEATURES = 20
WINDOWS = 52
N_REFERENCE = 10_000
WINDOW_SAMPLE = 10_000
BASELINE_ROWS = 1_000
FOR_WINDOWS = 2  # the default drift rule's ``for``


@dataclass(frozen=True)
class YearResult:
    """Firings of the drift rule per simulated model-year, and the first window each run
    alerted on the shifted feature (``None`` where it never did)."""

    firings: NDArray[np.int64]
    first_alert_window: list[int | None]

    @property
    def per_year(self) -> float:
        return float(self.firings.mean())


def upper_rate(firings: NDArray[np.int64]) -> float:
    """One-sided 95% upper confidence bound of the firings per model-year (Poisson)."""
    from scipy.stats import chi2

    k = int(firings.sum())
    return float(chi2.ppf(0.95, 2 * (k + 1)) / 2) / firings.size


def _ks_d(ref_sorted: NDArray[np.float64], cur_sorted: NDArray[np.float64]) -> float:
    n, m = ref_sorted.size, cur_sorted.size
    both = np.concatenate([ref_sorted, cur_sorted])
    f_ref = np.searchsorted(ref_sorted, both, side="right") / n
    f_cur = np.searchsorted(cur_sorted, both, side="right") / m
    return float(np.abs(f_ref - f_cur).max())


def _p_values(d: NDArray[np.float64], n: int, m: int) -> NDArray[np.float64]:
    from scipy.stats import kstwo

    en = round(n * m / (n + m))
    return np.asarray(kstwo.sf(d, en), dtype=np.float64)


def _statuses(d: NDArray[np.float64], p: NDArray[np.float64], n: int, m: int) -> NDArray[np.bool_]:
    """Alert per test of one family, decided by the monitor's default rule."""
    from watchkeeper.checks import ColumnTest, StatisticalRule, Status
    from watchkeeper.stats import TestResult

    rule = StatisticalRule()
    tests = [
        ColumnTest(f"x{i}", "ks", "numeric", 0.02,
                   TestResult("ks", float(di), float(pi), float(di), n, m))
        for i, (di, pi) in enumerate(zip(d, p, strict=True))
    ]  # fmt: skip
    return np.array([dec.status is Status.ALERT for dec in rule.decide(tests)])


def _firings(alerting: NDArray[np.bool_], for_windows: int = FOR_WINDOWS) -> int:
    """Firings of a ``for = for_windows`` rule over (windows, subjects) alert flags."""
    count = 0
    for s in range(alerting.shape[1]):
        run, firing = 0, False
        for a in alerting[:, s]:
            run = run + 1 if a else 0
            if run >= for_windows and not firing:
                count, firing = count + 1, True
            elif not a:
                firing = False
        # (cooldowns of hours do not matter at weekly windows)
    return count


def simulate_year(
    rows: int, runs: int, *, shift: float = 0.0, seed: int = 0, windows: int = WINDOWS
) -> YearResult:
    """``runs`` model-years of weekly windows of ``rows`` rows; ``shift`` (in standard
    deviations) moves feature 0 from the first window on."""
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    m = min(rows, WINDOW_SAMPLE)
    firings = np.zeros(runs, dtype=np.int64)
    first: list[int | None] = []
    for r in range(runs):
        reference = np.sort(rng.random((N_FEATURES, N_REFERENCE)), axis=1)
        baseline = np.sort(rng.random(BASELINE_ROWS))  # predictions of the first rows
        alerting = np.zeros((windows, N_FEATURES + 1), dtype=bool)
        for w in range(windows):
            cur = rng.random((N_FEATURES, m))
            if shift:
                # a shift of ``shift`` sigma, on the uniform (probability) scale
                cur[0] = norm.cdf(norm.ppf(cur[0]) + shift)
            cur.sort(axis=1)
            d = np.array([_ks_d(reference[i], cur[i]) for i in range(N_FEATURES)])
            alerting[w, :N_FEATURES] = _statuses(d, _p_values(d, N_REFERENCE, m), N_REFERENCE, m)
            pred = np.sort(rng.random(m))
            dp = np.array([_ks_d(baseline, pred)])
            alerting[w, N_FEATURES] = _statuses(
                dp, _p_values(dp, BASELINE_ROWS, m), BASELINE_ROWS, m
            )[0]
        firings[r] = _firings(alerting)
        hits = np.flatnonzero(
            np.convolve(alerting[:, 0], np.ones(FOR_WINDOWS), "valid") >= FOR_WINDOWS
        )
        first.append(int(hits[0]) + FOR_WINDOWS if hits.size else None)
    return YearResult(firings, first)


def main() -> None:
    for rows, runs in ((1_000, 100), (100_000, 60)):
        year = simulate_year(rows, runs, seed=1)
        se = year.firings.std(ddof=1) / np.sqrt(runs)
        print(f"{rows:>7,} rows/window: {year.per_year:.3f} false drift alerts per model-year "
              f"(± {se:.3f}, {runs} model-years)")  # fmt: skip
    shifted = simulate_year(10_000, 100, shift=0.1, seed=2, windows=2)
    within = np.mean([f is not None and f <= 2 for f in shifted.first_alert_window])
    print(f"0.1 sigma shift at 10,000 rows/window: alert within two windows in {within:.1%}")


if __name__ == "__main__":
    main()
