"""Scale benchmark: time and peak memory at 1M, 10M and 100M rows x 20 columns from Parquet.

Run from the repository root with the project's interpreter::

    .venv/bin/python benchmarks/scale.py --sizes 1M,10M        # writes BENCHMARKS.md
    .venv/bin/python benchmarks/scale.py --sizes 100M --tools watchkeeper-compare
    .venv/bin/python benchmarks/scale.py --quick               # 100,000 rows, prints only
    .venv/bin/python benchmarks/scale.py --from-json benchmarks/results/scale.json

Each size's current file (seeded, `_scale_data.py`) is written once to ``--data-dir``
(default ``/tmp/watchkeeper-bench``, outside the repository: 100M rows take 16 GB) and read
by every tool; the reference is a 1M-row file of the same distribution (a training set's
size). Each measurement is a fresh process (``_scale_worker.py``) whose process tree's RSS is
sampled every 0.2 s; a tool is stopped above ``--cap-gb`` (the machine is shared) or after
``--timeout`` seconds, and the table says so. Results merge into
``benchmarks/results/scale.json`` by (size, tool), so sizes can be run at different times.
``--delete-data`` removes the data files afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    MB,
    PEERS_PYTHON,
    QUIET_ENV,
    REPO_DIR,
    log,
    machine_description,
    md_table,
    package_versions,
    write_section,
)
from _scale_data import DRIFTED, write

WORKER = BENCH_DIR / "_scale_worker.py"
RAW_RESULTS = BENCH_DIR / "results" / "scale.json"
REFERENCE_ROWS = 1_000_000

TOOLS: dict[str, tuple[str, str]] = {
    "watchkeeper-profile": ("watchkeeper `profile` (Parquet streamed, no reference)", "project"),
    "watchkeeper-compare": ("watchkeeper `compare(profile, parquet)` (streamed)", "project"),
    "spark-compare": ("watchkeeper Spark engine, local[2] (profile + compare)", "project"),
    "evidently": ("Evidently `DataDriftPreset()` (pandas)", "peers"),
    "nannyml": ("NannyML `UnivariateDriftCalculator` fit + calculate (pandas)", "peers"),
}


def _size(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * mult)


def _tree_rss(pid: int) -> int:
    """RSS of a process and all its descendants (bytes)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total


def _kill_tree(pid: int) -> None:
    stack, seen = [pid], []
    while stack:
        p = stack.pop()
        seen.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    for p in seen:
        with contextlib.suppress(OSError):
            os.kill(p, 9)


def measure(tool: str, args: dict[str, Any], cap_bytes: int, timeout: float) -> dict[str, Any]:
    python = str(PEERS_PYTHON) if TOOLS[tool][1] == "peers" else sys.executable
    env = {**os.environ, **QUIET_ENV, "PYTHONPATH": str(REPO_DIR / "src")}
    if TOOLS[tool][1] == "peers":
        env.pop("PYTHONPATH")
    load_before = os.getloadavg()
    proc = subprocess.Popen(
        [python, str(WORKER), tool, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    peak, stopped = 0, ""
    started = time.perf_counter()
    done = threading.Event()

    def watch() -> None:
        nonlocal peak, stopped
        while not done.is_set():
            rss = _tree_rss(proc.pid)
            peak = max(peak, rss)
            if rss > cap_bytes:
                stopped = f"stopped above {cap_bytes / 2**30:.0f} GB"
                _kill_tree(proc.pid)
                return
            if time.perf_counter() - started > timeout:
                stopped = f"stopped after {timeout / 60:.0f} min"
                _kill_tree(proc.pid)
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    done.set()
    watcher.join()
    wall = time.perf_counter() - started
    result: dict[str, Any] = {
        "tool": tool,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "tree_peak_rss_bytes": peak,
        "wall_seconds": wall,
    }
    lines = [ln for ln in out.strip().splitlines() if ln.startswith("{")]
    if stopped or proc.returncode != 0 or not lines:
        tail = " ".join(err.strip().splitlines()[-3:])[-300:]
        result["failed"] = stopped or f"exit {proc.returncode}: {tail}"
        return result
    result.update(json.loads(lines[-1]))
    result["tree_peak_rss_bytes"] = max(peak, int(result.get("peak_rss_bytes", 0)))
    return result


def run(sizes: list[int], tools: list[str], data_dir: Path, cap_gb: float, timeout: float,
        delete: bool) -> list[dict[str, Any]]:  # fmt: skip
    reference = write(data_dir / "reference-1M.parquet", REFERENCE_ROWS, seed=1, drift=False)
    profile = data_dir / "reference-1M.profile.json"
    if not profile.exists():
        subprocess.run(
            [sys.executable, "-c", "import sys; from watchkeeper.data import Profile; "
             "Profile.from_parquet(sys.argv[1]).save(sys.argv[2])", str(reference), str(profile)],
            check=True, env={**os.environ, "PYTHONPATH": str(REPO_DIR / "src")},
        )  # fmt: skip
    results = []
    for rows in sizes:
        log(f"writing {rows:,} rows ...")
        t0 = time.perf_counter()
        current = write(data_dir / f"current-{rows}.parquet", rows, seed=2, drift=True)
        log(f"  written in {time.perf_counter() - t0:.0f} s")
        for tool in tools:
            args = {
                "reference": str(reference),
                "reference_profile": str(profile),
                "current": str(current),
                "out": str(data_dir / f"profile-{rows}.json"),
            }
            log(f"{tool} on {rows:,} rows ...")
            r = measure(tool, args, int(cap_gb * 2**30), timeout)
            r["size"] = rows
            log(f"  {r.get('seconds', r['wall_seconds']):.1f} s, "
                f"{r['tree_peak_rss_bytes'] / MB:,.0f} MB {r.get('failed', '')}")  # fmt: skip
            results.append(r)
        if delete:
            current.unlink(missing_ok=True)
    return results


def _cell_time(r: dict[str, Any]) -> str:
    if "failed" in r:
        return f"— ({r['failed']})"
    return f"{r['seconds']:,.1f} s"


def _flagged(r: dict[str, Any]) -> str:
    if "failed" in r or r["tool"] == "watchkeeper-profile":
        return "—"
    flagged = r.get("flagged", [])
    hits = [c for c in flagged if c in DRIFTED]
    false = [c for c in flagged if c not in DRIFTED]
    return f"{len(hits)}/2 drifted" + (f", {len(false)} false alarms" if false else "")


def render(saved: dict[str, Any]) -> str:
    results = sorted(saved["results"], key=lambda r: (r["size"], list(TOOLS).index(r["tool"])))
    m = saved["machine"]
    rows = [
        [
            f"{r['size']:,}",
            TOOLS[r["tool"]][0],
            _cell_time(r),
            f"{r['tree_peak_rss_bytes'] / MB:,.0f} MB",
            _flagged(r),
            " / ".join(f"{x:.1f}" for x in r["load_before"][:1] + r["load_after"][:1]),
        ]
        for r in results
    ]
    sizes = sorted({r["size"] for r in results})
    spark_start = [r.get("session_start_seconds") for r in results if r["tool"] == "spark-compare"]
    spark_start = [s for s in spark_start if s is not None]
    lines = [
        "## Scale: 1M, 10M and 100M rows from Parquet",
        "",
        f"Written by `benchmarks/scale.py` ({', '.join(f'{s:,}' for s in sizes)} rows measured; "
        f"last run {m.get('date', '?')}, commit {m.get('commit', '?')}).",
        "",
        "**Data** (seeded, `benchmarks/_scale_data.py`, written row group by row group outside "
        "the repository): the current file has N rows x 20 float64 columns, `f00` shifted by "
        "0.05 sigma and `f01` scaled by 1.05; the reference is 1,000,000 rows of the unshifted "
        "distribution (its profile is saved once, as a monitoring job would keep it).",
        "",
        "**What is measured**: one fresh process per cell, the whole job a user waits for "
        "*including reading the Parquet data* (streaming tools read while they compute, so the "
        "read cannot be separated). Peak memory is the RSS high-water mark of the process tree "
        "(sampled every 0.2 s, and the process's own `VmHWM`): the Spark row adds its JVM and "
        "Python workers. Peers get the 1M reference and the N-row current as pandas frames, as "
        "their APIs require; they are stopped above a memory cap or a time limit (the machine is "
        "shared), which the table reports.",
        "",
        md_table(
            ["rows", "tool", "time", "peak RSS", "verdict", "load 1-min before / after"], rows
        ),
        "",
        f"**Machine**: {m.get('cpu', '?')}, {m.get('usable_cpus', '?')} usable CPUs, "
        f"{m.get('ram_gib', '?')} GiB RAM, {m.get('os', '?')}. The machine was shared with "
        "about eight other engineers' builds and tests while this ran: the load column shows "
        "the 1-minute load average (2 cores) before and after each cell, so the times are "
        "upper bounds; memory does not depend on load.",
        "",
    ]
    if spark_start:
        lines.append(
            f"Spark's time includes starting a local session ({min(spark_start):.0f}–"
            f"{max(spark_start):.0f} s here)."
        )
        lines.append("")
    lines += [
        "**Reading**: watchkeeper's streamed `compare` and `profile` hold one 1M-row batch "
        "(about 160 MB of values, a few times that while it is profiled) plus the profiles, "
        "whatever the file's size; the pandas-based peers need the whole current frame in "
        "memory (1.6 GB per 10M rows before any work). See `docs/spark.md` for when the Spark "
        "engine pays off.",
    ]
    if saved.get("notes"):
        lines += ["", saved["notes"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1M,10M", help="comma-separated: 1M,10M,100M")
    parser.add_argument("--tools", default=",".join(TOOLS), help=", ".join(TOOLS))
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/watchkeeper-bench"))
    parser.add_argument("--cap-gb", type=float, default=12.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per cell")
    parser.add_argument("--delete-data", action="store_true")
    parser.add_argument("--quick", action="store_true", help="100,000 rows, prints only")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--from-json", type=Path)
    parser.add_argument("--notes", default=None, help="a paragraph added under the table")
    parser.add_argument(
        "--results", type=Path, default=RAW_RESULTS, help="raw results JSON to merge into"
    )
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        if args.notes is not None:
            saved["notes"] = args.notes
            args.from_json.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    else:
        tools = [t for t in args.tools.split(",") if t]
        for t in tools:
            if t not in TOOLS:
                parser.error(f"unknown tool {t!r}; choose from {', '.join(TOOLS)}")
        sizes = [100_000] if args.quick else [_size(s) for s in args.sizes.split(",") if s]
        if any(TOOLS[t][1] == "peers" for t in tools):
            from drift import ensure_peers_venv

            ensure_peers_venv()
        new = run(sizes, tools, args.data_dir, args.cap_gb, args.timeout, args.delete_data)
        saved = {"results": []}
        if args.results.exists() and not args.quick:
            saved = json.loads(args.results.read_text(encoding="utf-8"))
        keys = {(r["size"], r["tool"]) for r in new}
        saved["results"] = [r for r in saved["results"] if (r["size"], r["tool"]) not in keys]
        saved["results"] += new
        machine = machine_description()
        machine["date"] = dt.date.today().isoformat()
        machine["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_DIR
        ).stdout.strip()
        saved["machine"] = machine
        saved["versions"] = {
            "project": package_versions(sys.executable, ["numpy", "pyarrow", "pyspark"]),
            **(
                {"peers": package_versions(PEERS_PYTHON, ["evidently", "nannyml", "pandas"])}
                if PEERS_PYTHON.exists()
                else {}
            ),
        }
        if args.notes is not None:
            saved["notes"] = args.notes
    body = render(saved)
    print(body)
    if not (args.from_json or args.quick):
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    if args.write if args.write is not None else not args.quick:
        write_section("scale", body)
        log("wrote the scale section of BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
