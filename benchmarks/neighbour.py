"""``compare(profile, current)`` with and without CPU-bound neighbours, by thread count.

Usage::

    .venv/bin/python benchmarks/neighbour.py [--rows 1000000] [--runs 5]

The per-column tests and profiling run on threads, one per core this process may use (CPU
affinity and container quota, ``watchkeeper._extras.usable_cores``). Should a busy machine get
fewer? This script measures it: it writes a reference profile and a current Parquet file
(``--rows`` x 20 numeric columns, one column shifted), then times one fresh process per run of
``compare(profile, current.parquet)`` with the default pool and with one thread — alone, and
beside ``--neighbours`` processes that keep cores busy for the whole measurement. Runs of the
settings alternate, so a drift of the machine's speed spreads over all of them; the section
quotes medians of wall time and of the process's CPU time. Verdicts are checked equal across settings (threads never change results).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROJECT_PYTHON, log, machine_description, md_table, median, write_section

_RUN = """
import json, sys, time
import watchkeeper as wk
n_jobs = None if sys.argv[3] == "default" else int(sys.argv[3])
report = wk.compare(sys.argv[1], sys.argv[2], n_jobs=n_jobs, multivariate=None)
print(json.dumps({"drifted": sorted(report.drifted_columns)}))
"""

_BUSY = "while True:\n    pass\n"

#: What the measurements decided (kept with the script that makes them).
NOTES = (
    "Reading: more threads than free cores still finish sooner, because the scheduler shares "
    "the cores per runnable thread, so the pool keeps one thread per usable core. A pool sized "
    "from the cores other work left idle (their idle share watched for 50 ms) was measured on "
    "2026-12-07 and rejected: beside one CPU-bound neighbour it took 2.01 s against 1.90 s for "
    "two threads, beside three 4.20 s against 3.74 s (1,000,000 rows, medians of 5 and 3 "
    "runs). What changed instead: the usable cores are the CPU affinity capped by the cgroup "
    "CPU quota, so a container with 1.5 CPUs on a large host no longer starts a thread per "
    "host CPU."
)


def _data(folder: Path, rows: int) -> tuple[Path, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from watchkeeper.data import Profile

    rng = np.random.default_rng(0)
    names = [f"f{i:02d}" for i in range(20)]
    reference = pa.table({n: rng.normal(size=rows) for n in names})
    current = {n: rng.normal(size=rows) for n in names}
    current["f00"] = current["f00"] + 0.1
    profile = folder / "reference.wkp"
    Profile.from_data(reference).save(profile)
    data = folder / "current.parquet"
    pq.write_table(pa.table(current), data)
    return profile, data


def _one(profile: Path, data: Path, n_jobs: str) -> dict[str, object]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(PROJECT_PYTHON), "-c", _RUN, str(profile), str(data), n_jobs],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    drifted = json.loads(proc.stdout.strip().splitlines()[-1])["drifted"]
    return {"wall": wall, "cpu": cpu, "drifted": drifted}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--neighbours",
        type=int,
        nargs="+",
        default=[1, 3],
        help="CPU-bound processes beside the runs (one measurement per count, and one without)",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 100,000 rows, 1 run, prints only"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.runs, args.no_write, args.neighbours = 100_000, 1, True, [1]
    cpus = str(len(os.sched_getaffinity(0)))
    settings = {"default": f"default ({cpus} usable cores)", "1": "1 thread"}
    rows_out = []
    verdicts = set()
    with tempfile.TemporaryDirectory() as tmp:
        profile, data = _data(Path(tmp), args.rows)
        for neighbours in (0, *args.neighbours):
            busy = [subprocess.Popen([sys.executable, "-c", _BUSY]) for _ in range(neighbours)]
            try:
                if busy:
                    time.sleep(2)  # the neighbours are running
                load = os.getloadavg()[0]
                runs: dict[str, list[dict[str, object]]] = {k: [] for k in settings}
                _one(profile, data, "default")  # warm the file cache
                for _ in range(args.runs):
                    for key in settings:
                        runs[key].append(_one(profile, data, key))
                        log(f"neighbours={neighbours} n_jobs={key}: {runs[key][-1]['wall']:.2f} s")
            finally:
                for process in busy:
                    process.kill()
                    process.wait()
            base = median(float(r["wall"]) for r in runs["default"])  # type: ignore[arg-type]
            for key, label in settings.items():
                wall = median(float(r["wall"]) for r in runs[key])  # type: ignore[arg-type]
                cpu = median(float(r["cpu"]) for r in runs[key])  # type: ignore[arg-type]
                verdicts.update(json.dumps(r["drifted"]) for r in runs[key])
                rows_out.append(
                    [
                        f"{neighbours} CPU-bound process(es)" if neighbours else "none",
                        f"{load:.1f}",
                        label,
                        f"{wall:.2f} s",
                        f"{wall / base:.2f}x",
                        f"{cpu:.2f} s",
                    ]
                )
    if len(verdicts) != 1:
        raise SystemExit(f"verdicts differ between thread counts: {sorted(verdicts)}")
    machine = machine_description()
    body = "\n".join(
        [
            "## Thread pool and a busy neighbour",
            "",
            f"Written by `benchmarks/neighbour.py` ({args.rows:,} rows x 20 numeric columns, "
            f"{args.runs} alternating runs per setting, medians; fresh process per run, "
            "imports and the Parquet read included; `multivariate=None`).",
            "",
            f"**Machine**: {machine['cpu']}, {machine['usable_cpus']} usable CPUs, "
            f"{machine['ram_gib']} GiB RAM, {machine['os']}.",
            "",
            md_table(
                ["neighbour", "load (1 min)", "threads", "wall", "vs default", "CPU"],
                rows_out,
            ),
            "",
            f"Every setting gave the same verdict ({verdicts.pop()} drifted).",
            "",
            NOTES,
        ]
    )
    if args.no_write:
        print(body)
    else:
        write_section("neighbour", body)
        log("wrote the neighbour section of BENCHMARKS.md")


if __name__ == "__main__":
    main()
