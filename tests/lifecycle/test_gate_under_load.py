"""Same model, same data, same seed: the same statistical verdict, whatever the machine's load.

The gate runs once on its own and once beside CPU-burning processes (one per core). Every
statistical result must be identical; latency and memory are reported apart as budgets and
cannot turn the verdict. No timing is asserted (durations are printed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from watchkeeper.lifecycle import validate
from watchkeeper.lifecycle._report import BUDGET_CHECKS, GateReport


def statistical(report: GateReport) -> list[tuple[Any, ...]]:
    return [
        (r.check, r.subject, r.status.value, r.value, r.lower, r.upper, r.reason)
        for r in report.results
        if r.check not in BUDGET_CHECKS
    ]


def test_a_cpu_burning_neighbour_changes_no_statistical_result(
    clf_frame: pd.DataFrame, fast: Any
) -> None:
    # Budgets far below any real cost: they are exceeded on any machine, idle or busy, and
    # still leave the verdict and the exit code alone (not enforced).
    cfg = fast(serving={"p50_budget_ms": {"1": 1e-9}, "p99_budget_ms": {"50": 1e-9}})
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    started = time.perf_counter()
    quiet = validate(model, clf_frame, target="y", config=cfg, random_state=3)
    print(f"\nquiet gate: {time.perf_counter() - started:.1f} s")
    burn = "while True:\n    pass"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(os.cpu_count() or 2)]
    try:
        started = time.perf_counter()
        busy = validate(model, clf_frame, target="y", config=cfg, random_state=3)
        print(f"busy gate ({len(burners)} CPU burners): {time.perf_counter() - started:.1f} s")
    finally:
        for p in burners:
            p.kill()
            p.wait()
    assert statistical(busy) == statistical(quiet)
    assert len(statistical(quiet)) >= 8
    assert (busy.passed, busy.exit_code, busy.blessed) == (quiet.passed, quiet.exit_code, None)
    for report in (quiet, busy):
        assert {r.check for r in report.budgets} == {"gate.latency", "gate.memory"}
        assert not report.budgets_passed  # the tiny budgets are exceeded ...
        assert all(r.status.value == "warn" for r in report.budget_failures)
        assert not any(r.check in BUDGET_CHECKS for r in report.failures)  # ... apart
        assert report.to_dict()["budgets"]["passed"] is False
        latency = report.by_check("gate.latency")[0].details
        assert latency["clock"] == "process CPU time, one thread"
