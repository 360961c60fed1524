"""Fixed costs of profiles: merging 168 hourly profiles, loading a saved profile, starting
``watchkeeper compare``.

Prints one JSON document of medians (and every run) for the code on ``PYTHONPATH``; run it
once with the old code and once with the new to compare them in the same session, e.g.::

    PYTHONPATH=/path/to/old/src .venv/bin/python benchmarks/profiles.py --label before
    PYTHONPATH=src .venv/bin/python benchmarks/profiles.py --label after

Measured:

- ``merge``: 168 hourly profiles (20 features: 18 numbers, a category, a count; 500 rows
  each; row samples of 100) merged into a week, in memory (``Profile.merge_all`` when the
  code has it, else the chain of pairwise ``merge``) and from a SQLite monitor store
  (``MonitorStore.merged_profile``: reading the stored profiles, decoding and merging them).
- ``load``: ``Profile.load`` of a 1,000,000 x 20 reference profile (row sample of 100,000)
  as ``Profile.save`` writes it by default, and its size on disk.

Every figure is a median over ``--runs`` runs, as wall seconds and as CPU seconds (user +
system, of this process and the processes it ran): on a shared machine the wall time is
mostly waiting for a core.
- ``startup``: wall seconds of whole processes: ``watchkeeper --help``, ``watchkeeper compare
  profile current.parquet`` (2,000 current rows) and importing what ``compare`` needs.

The section ``profiles`` of ``BENCHMARKS.md`` is hand-written from these outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _cpu() -> float:
    # This process and its finished children: on a shared machine wall time is mostly
    # waiting for a core, CPU time is the work done.
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _median_runs(fn: Callable[[], Any], runs: int) -> dict[str, Any]:
    times, cpus = [], []
    for _ in range(runs):
        c0, t0 = _cpu(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    return {
        "median_s": statistics.median(times),
        "median_cpu_s": statistics.median(cpus),
        "runs_s": times,
        "runs_cpu_s": cpus,
    }


def _frame(n: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {f"x{i}": rng.normal(size=n) for i in range(18)}
    data["city"] = rng.choice(list("abcdefgh"), n)
    data["count"] = rng.integers(0, 20, n).astype(float)
    return pd.DataFrame(data)


def bench_merge(runs: int, work: Path) -> dict[str, Any]:
    from watchkeeper.data import Profile
    from watchkeeper.monitor import MonitorStore

    reference = Profile.from_data(_frame(10_000, 0), sample_size=100)
    week = _frame(168 * 500, 1)
    hours = [
        Profile.from_data(
            week.iloc[h * 500 : (h + 1) * 500], reference=reference, sample_size=100, n_jobs=1
        )
        for h in range(168)
    ]

    def chain() -> Any:
        out = hours[0]
        for p in hours[1:]:
            out = out.merge(p)
        return out

    merge_all = getattr(Profile, "merge_all", None)
    out: dict[str, Any] = {
        "pairwise_chain": _median_runs(chain, runs),
        "n_way": None if merge_all is None else _median_runs(lambda: merge_all(hours), runs),
    }
    t0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    with MonitorStore(root=work) as store:
        for h, profile in enumerate(hours):
            store.write_window(
                "m", 1, "champion",
                datetime.fromtimestamp(t0 + 3600 * h, UTC),
                datetime.fromtimestamp(t0 + 3600 * (h + 1), UTC),
                "time", 500, 0, [], run_id="r", window_profiles={"features": profile},
            )  # fmt: skip
        out["store"] = _median_runs(lambda: store.merged_profile("m", version=1), runs)
        out["store_read_only"] = _median_runs(lambda: store.window_profiles("m", version=1), runs)
    return out


def bench_load(runs: int, work: Path) -> dict[str, Any]:
    from watchkeeper.data import Profile

    profile = Profile.from_data(_frame(1_000_000, 2))
    path = profile.save(work / "reference-profile.json")
    out: dict[str, Any] = {"bytes": path.stat().st_size}
    Profile.load(path)  # warm: sketch library and page cache
    out.update(_median_runs(lambda: Profile.load(path), runs))
    return out


def _process(args: list[str], runs: int) -> dict[str, Any]:
    def once() -> None:
        done = subprocess.run(args, capture_output=True, text=True, env=os.environ.copy())
        if done.returncode not in (0, 1):  # 1: findings
            raise RuntimeError(f"{args} failed: {done.stderr[-500:]}")

    once()  # warm the page cache
    return _median_runs(once, runs)


def bench_startup(runs: int, work: Path) -> dict[str, Any]:
    from watchkeeper.data import Profile

    reference = _frame(20_000, 3)
    profile = Profile.from_data(reference)
    path = profile.save(work / "profile.json")  # the name the issue uses; content decides
    current = work / "current.parquet"
    _frame(2_000, 4).to_parquet(current)
    cli = [sys.executable, "-m", "watchkeeper.cli"]
    imports = (
        "import watchkeeper.cli, watchkeeper.cli._drift, watchkeeper.report._compare; "
        "from watchkeeper.checks import run_comparison"
    )
    return {
        "python_bare": _process([sys.executable, "-c", "pass"], runs),
        "help": _process([*cli, "--help"], runs),
        "compare_imports": _process([sys.executable, "-c", imports], runs),
        "compare": _process([*cli, "compare", str(path), str(current)], runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="merge,load,startup")
    args = parser.parse_args()
    import watchkeeper

    result: dict[str, Any] = {
        "label": args.label,
        "source": os.path.dirname(watchkeeper.__file__),
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
    }
    benches = {"merge": bench_merge, "load": bench_load, "startup": bench_startup}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            work = Path(tmp) / name
            work.mkdir()
            result[name] = benches[name](args.runs, work)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
