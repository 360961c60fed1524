"""kstwo's survival function without scipy.stats: bit-identical to scipy where it is used."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from watchkeeper.stats._kolmogorov import kolmogn_sf
from watchkeeper.stats._ks import kstwo_sf


@pytest.mark.parametrize("n", [1, 2, 7, 140, 141, 500, 1961, 99_999, 100_000, 100_001, 10**6])
def test_matches_scipy_kstwo_sf(n: int) -> None:
    ds = np.concatenate([np.linspace(1e-5, 0.999, 40), np.geomspace(1e-6, 0.5, 40), [0.5, 1.0]])
    if n > 5000:  # scipy's own upper tail is an O(n) sum there (and ours is smirnov_sf)
        ds = ds[n * ds * ds < 2.2]
    covered = 0
    for d in ds:
        ours = kolmogn_sf(n, float(d))
        if ours is None:
            assert n <= 140  # only small samples are left to scipy
            continue
        covered += 1
        assert ours == float(stats.kstwo.sf(d, n)), (n, d)
        assert kstwo_sf(float(d), float(n)) == pytest.approx(ours, rel=1e-9, abs=1e-300)
    assert covered > len(ds) // 3


def test_the_ks_p_value_of_a_large_comparison_does_not_import_scipy_stats() -> None:
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from watchkeeper.stats import ks\n"
        "rng = np.random.default_rng(0)\n"
        "r = ks(rng.normal(size=20_000), rng.normal(size=3_000))\n"
        "assert 0.0 < r.p_value <= 1.0, r\n"
        "print('scipy.stats' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("seed", range(6))
def test_mann_whitney_matches_scipy_bit_for_bit(seed: int) -> None:
    from watchkeeper.stats._mannwhitney import mann_whitney_greater

    rng = np.random.default_rng(seed)
    for n1, n2 in [(3, 5), (6, 6), (9, 40), (200, 3_000), (2_000, 2_000)]:
        for x, y in [
            (rng.normal(0.1, 1, n1), rng.normal(0, 1, n2)),  # continuous
            (rng.integers(0, 4, n1).astype(float), rng.integers(0, 5, n2).astype(float)),  # ties
            (np.ones(n1), np.ones(n2)),  # constant: no evidence (nan, as scipy)
        ]:
            ref = stats.mannwhitneyu(x, y, alternative="greater")
            u, p = mann_whitney_greater(x, y)
            assert u == float(ref.statistic)
            assert p == float(ref.pvalue) or (np.isnan(p) and np.isnan(ref.pvalue))
