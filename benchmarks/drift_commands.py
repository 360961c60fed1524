"""Drift as the user waits for it: whole commands, process start to exit, side by side.

Each tool runs as one fresh process that starts, imports what it needs, reads the Parquet
files and checks every column, as a scheduled job would:

* watchkeeper: ``watchkeeper compare reference.wkp current.parquet`` (the reference profile
  saved once by ``watchkeeper profile``, as a monitoring job keeps it);
* scipy: a script reading both Parquet files and running ``ks_2samp`` per numeric column and
  ``chi2_contingency`` per categorical one (what a hand-written check does);
* NannyML: ``UnivariateDriftCalculator`` ``fit(reference)`` then ``calculate(current)``;
* Evidently: ``Report([DataDriftPreset()]).run(current, reference)``.

The tools take turns (watchkeeper, then each peer, round after round) so that a slower or
busier machine touches all of them alike; every ratio is taken within a round (peer over
watchkeeper), and the table quotes medians. Time is the wall clock of the whole process; CPU
the user + system seconds the kernel accounted to it (``wait4``); memory its peak RSS.

Usage::

    python benchmarks/drift_commands.py                 # 1M rows, writes BENCHMARKS.md
    python benchmarks/drift_commands.py --rounds 1 --rows 20000 --no-write   # smoke run

The peers run in ``benchmarks/.venv-peers`` (made by ``benchmarks/drift.py`` when missing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DATA_DIR,
    PEERS_PYTHON,
    PROJECT_PYTHON,
    QUIET_ENV,
    log,
    machine_description,
    md_table,
    median,
    package_versions,
    write_section,
)
from _drift_data import CASES, ensure_case

FULL_ROWS = 1_000_000
QUICK_ROWS = 20_000
TARGETS = {"scipy": 4.0, "nannyml": 3.0, "evidently": 100.0}

_SCIPY = """
import sys, json
import numpy as np, pyarrow.parquet as pq
from scipy import stats
ref_path, cur_path, numeric, categorical = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:5])
ref, cur = pq.read_table(ref_path), pq.read_table(cur_path)
flagged = []
for c in numeric:
    a = ref.column(c).to_numpy(); b = cur.column(c).to_numpy()
    if stats.ks_2samp(a[~np.isnan(a)], b[~np.isnan(b)]).pvalue < 0.05:
        flagged.append(c)
for c in categorical:
    a = ref.column(c).to_pandas().value_counts(); b = cur.column(c).to_pandas().value_counts()
    table = np.array([a.reindex(a.index.union(b.index)).fillna(0), b.reindex(a.index.union(b.index)).fillna(0)])
    table = table[:, table.sum(axis=0) > 0]
    if stats.chi2_contingency(table).pvalue < 0.05:
        flagged.append(c)
print(json.dumps(sorted(flagged)))
"""

_NANNYML = """
import sys, json
import pandas as pd, nannyml as nml
ref_path, cur_path, numeric, categorical = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:5])
ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
calc = nml.UnivariateDriftCalculator(column_names=numeric + categorical)
calc.fit(ref)
out = calc.calculate(cur).filter(period="analysis").to_df()
flagged = sorted({c for c in numeric + categorical
                  for col in out.columns if col[0] == c and col[-1] == "alert" and out[col].any()})
print(json.dumps(flagged))
"""

_EVIDENTLY = """
import sys, json
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref_path, cur_path = sys.argv[1], sys.argv[2]
ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
snapshot = Report([DataDriftPreset()]).run(cur, ref)
print(len(json.dumps(snapshot.dict(), default=str)))
"""


def _commands(files: Any, profile: Path) -> dict[str, list[str]]:
    import json

    ref, cur = files.reference, files.current["drift"]
    cols = [json.dumps(files.numeric_columns), json.dumps(files.categorical_columns)]
    return {
        "watchkeeper": [str(PROJECT_PYTHON), "-m", "watchkeeper.cli", "compare", str(profile), cur],
        "scipy": [str(PROJECT_PYTHON), "-c", _SCIPY, ref, cur, *cols],
        "nannyml": [str(PEERS_PYTHON), "-c", _NANNYML, ref, cur, *cols],
        "evidently": [str(PEERS_PYTHON), "-c", _EVIDENTLY, ref, cur],
    }


def _run(command: list[str]) -> dict[str, float]:
    """One whole process: wall seconds, CPU seconds (user + system) and peak RSS (MB)."""
    env = {**os.environ, **QUIET_ENV, "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):  # watchkeeper exits 1 only with --fail-on
        raise RuntimeError(f"{command[:4]} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024.0,
    }


def _profile(files: Any) -> Path:
    """The reference profile, saved once (binary, the default) with ``watchkeeper profile``."""
    path = Path(files.reference).with_suffix(".cmd.wkp")
    if not path.exists():
        subprocess.run(
            [str(PROJECT_PYTHON), "-m", "watchkeeper.cli", "profile", files.reference,
             "-o", str(path)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return path


def run_case(case: str, rows: int, rounds: int, evidently_rounds: int) -> dict[str, Any]:
    files = ensure_case(case, rows, DATA_DIR)
    commands = _commands(files, _profile(files))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    ratios: dict[str, list[float]] = {name: [] for name in commands if name != "watchkeeper"}
    for name, command in commands.items():  # warm-up: page cache, bytecode
        if name != "evidently":
            _run(command)
    for r in range(rounds):
        mine = _run(commands["watchkeeper"])
        runs["watchkeeper"].append(mine)
        for name, command in commands.items():
            if name == "watchkeeper" or (name == "evidently" and r >= evidently_rounds):
                continue
            log(f"{case} round {r + 1}/{rounds}: {name}")
            found = _run(command)
            runs[name].append(found)
            ratios[name].append(found["wall"] / mine["wall"])
    return {"case": case, "rows": rows, "runs": runs, "ratios": ratios}


def render(results: list[dict[str, Any]], machine: dict[str, Any], versions: Any) -> str:
    out = [
        "## Drift as whole commands",
        "",
        f"Written by `benchmarks/drift_commands.py` on {machine['date']} ({results[0]['rows']:,} "
        "rows per frame, the data of the Drift section). Each tool is one fresh process that "
        "starts, imports, reads both Parquet files (watchkeeper: its saved reference profile "
        "and the current file) and checks every column; the tools take turns round after "
        "round and each ratio is taken within a round (peer wall time / watchkeeper's), the "
        "table quoting medians (min to max). CPU is user + system seconds of the process.",
        "",
    ]
    for res in results:
        rows = []
        for name, found in res["runs"].items():
            if not found:
                continue
            walls = [r["wall"] for r in found]
            ratio = res["ratios"].get(name)
            target = TARGETS.get(name)
            if ratio:
                met = median(ratio) >= target if target else None
                verdict = f"{median(ratio):.1f}x (target {target:g}x: " + (
                    "met)" if met else f"NOT met, {target / median(ratio):.1f}x short)"
                )
            else:
                verdict = "1"
            rows.append(
                [
                    name,
                    f"{median(walls):.2f} ({min(walls):.2f} to {max(walls):.2f}, "
                    f"{len(found)} run{'s' if len(found) > 1 else ''})",
                    f"{median([r['cpu'] for r in found]):.2f}",
                    f"{median([r['rss_mb'] for r in found]):,.0f}",
                    verdict,
                ]
            )
        out += [
            f"### Case *{res['case']}*",
            "",
            md_table(
                [
                    "command",
                    "wall (s): median (range)",
                    "CPU (s)",
                    "peak RSS (MB)",
                    "peer / watchkeeper (wall, per round)",
                ],
                rows,
            ),
            "",
        ]
    out += [
        "**Machine**: "
        + f"{machine['cpu']}, {machine['usable_cpus']} usable CPUs, {machine['ram_gib']} GiB RAM, "
        + f"{machine['os']}; load average before / after: {machine['load_before']} / "
        + f"{machine['load_after']}. **Versions**: {versions}.",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=FULL_ROWS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--evidently-rounds", type=int, default=1)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 20,000 rows, 1 round, prints only"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.rounds = QUICK_ROWS, 1
    if not PEERS_PYTHON.exists():
        parser.error("benchmarks/.venv-peers is missing: run benchmarks/drift.py once to make it")
    machine = machine_description()
    machine["date"] = dt.date.today().isoformat()
    machine["load_before"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    results = [
        run_case(c, args.rows, args.rounds, args.evidently_rounds) for c in args.cases.split(",")
    ]
    machine["load_after"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = {
        **package_versions(PROJECT_PYTHON, ["watchkeeper", "scipy"]),
        **package_versions(PEERS_PYTHON, ["nannyml", "evidently"]),
    }
    body = render(results, machine, ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(body)
    if args.write if args.write is not None else args.rows == FULL_ROWS:
        write_section("drift-commands", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
