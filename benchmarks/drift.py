"""Drift benchmark: watchkeeper against Evidently, NannyML and a scipy loop on the same data.

Run from the repository root with the project's interpreter::

    .venv/bin/python benchmarks/drift.py              # 1,000,000 rows, writes BENCHMARKS.md
    .venv/bin/python benchmarks/drift.py --quick      # 100,000 rows, prints the section only

Every measurement is a fresh subprocess (``_drift_worker.py``) on Parquet files written once
(``_drift_data.py``): watchkeeper runs in the project's ``.venv``, the peers in
``benchmarks/.venv-peers``, created here from ``requirements-peers.txt`` when missing.
Reading the Parquet files into pandas is excluded from every tool's time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Scripts run as files, not as a package: make the sibling helper modules importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    DATA_DIR,
    MB,
    PEERS_PYTHON,
    PEERS_REQUIREMENTS,
    PEERS_VENV,
    PROJECT_PYTHON,
    RESULTS_FILE,
    log,
    machine_description,
    md_table,
    median,
    package_versions,
    run_worker,
    write_section,
)
from _drift_data import CASES, MEAN_SHIFT, PAIRS, SCALE, ensure_case

WORKER = BENCH_DIR / "_drift_worker.py"
FULL_ROWS = 1_000_000
QUICK_ROWS = 100_000
RAW_RESULTS = BENCH_DIR / "results" / "drift.json"


# tool -> (label, interpreter, runs on the drift pair at full size: 1 where a run is long)
TOOLS: dict[str, tuple[str, str, int | None]] = {
    "watchkeeper": ("watchkeeper `compare(profile, current)`", "project", None),
    "watchkeeper-raw": ("watchkeeper `compare(reference, current)`", "project", None),
    "evidently-default": ("Evidently `DataDriftPreset()`", "peers", 1),
    "evidently-ks": ('Evidently `DataDriftPreset(num_method="ks")`', "peers", 1),
    "nannyml": ("NannyML `UnivariateDriftCalculator` (calculate)", "peers", None),
    "scipy": ("scipy loop (`ks_2samp` / `chi2_contingency`)", "peers", None),
}
PROFILE_TOOL = "watchkeeper-profile"

# (peer, target ratio peer time / watchkeeper time)
TIME_TARGETS = {"evidently-default": 50.0, "nannyml": 3.0, "scipy": 2.0}
MEMORY_TARGET = 1.5  # peak memory above the import baseline / bytes of the input frames


# ---------------------------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------------------------


def _requirements_digest() -> str:
    return hashlib.sha256(PEERS_REQUIREMENTS.read_bytes()).hexdigest()[:16]


def ensure_peers_venv() -> None:
    """Create or refresh benchmarks/.venv-peers from requirements-peers.txt."""
    stamp = PEERS_VENV / ".requirements-digest"
    digest = _requirements_digest()
    if PEERS_PYTHON.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return
    if not PEERS_PYTHON.exists():
        log(f"creating {PEERS_VENV.relative_to(BENCH_DIR.parent)} ...")
        # The base interpreter, not this venv's, so the peers venv does not chain to ours.
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    log("installing the peer tools (requirements-peers.txt) ...")
    pip = [str(PEERS_PYTHON), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(PEERS_REQUIREMENTS)], check=True)
    stamp.write_text(digest + "\n")


# The parts of watchkeeper that `compare` and `Profile` run; other helpers' work elsewhere in
# src/ (gateway, registry, ...) does not change what is measured.
_MEASURED_PATHS = (
    "src/watchkeeper/__init__.py",
    "src/watchkeeper/_extras.py",
    "src/watchkeeper/exceptions.py",
    "src/watchkeeper/stats",
    "src/watchkeeper/data",
    "src/watchkeeper/checks",
    "src/watchkeeper/report",
)


def _git_commit() -> str:
    """Last commit of the measured watchkeeper code, flagged when it had uncommitted changes."""

    def git(*args: str) -> str:
        proc = subprocess.run(
            ["git", "-C", str(BENCH_DIR.parent), *args], capture_output=True, text=True, check=False
        )
        return proc.stdout.strip()

    head = git("log", "-1", "--format=%h", "--", *_MEASURED_PATHS) or "unknown"
    dirty = git("status", "--porcelain", "--", *_MEASURED_PATHS)
    return f"{head} (+ uncommitted changes)" if dirty else head


def check_watchkeeper() -> None:
    code = "from watchkeeper import Profile, compare"
    proc = subprocess.run(
        [str(PROJECT_PYTHON), "-c", code], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
        raise SystemExit(
            f"watchkeeper is not importable from {PROJECT_PYTHON} ({tail[0]}).\n"
            "Run `make venv` first, or pass --tools without the watchkeeper entries."
        )


# ---------------------------------------------------------------------------------------------
# Measurement plan
# ---------------------------------------------------------------------------------------------


def _python_for(tool: str) -> Path:
    if tool == PROFILE_TOOL or TOOLS[tool][1] == "project":
        return PROJECT_PYTHON
    return PEERS_PYTHON


def _runs(tool: str, pair: str, repeats: int) -> int:
    # Timing comes from the drift pair; the no-drift pair is there for its verdicts (and its
    # single time is shown too).
    if pair != "drift":
        return 1
    fixed = TOOLS[tool][2] if tool in TOOLS else None
    return min(repeats, fixed) if fixed is not None else repeats


def _one(tool: str, files_json: str, pair: str, label: str) -> dict[str, Any]:
    log(f"  {tool:19s} {pair:8s} {label}")
    # The code under test may change while a long run goes on (shared repository): record the
    # commit each measurement imported.
    commit = _git_commit() if _python_for(tool) == PROJECT_PYTHON else None
    result = run_worker(_python_for(tool), WORKER, [tool, files_json, pair])
    result["load_1min"] = os.getloadavg()[0]
    if commit is not None:
        result["commit"] = commit
    return result


def aggregate(tool: str, pair: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    flagged = {tuple(r["flagged"]) for r in results}
    return {
        "tool": tool,
        "pair": pair,
        "runs": results,
        "seconds": [r["seconds"] for r in results],
        "seconds_median": median(r["seconds"] for r in results),
        "fit_seconds_median": median(r["fit_seconds"] for r in results if "fit_seconds" in r),
        "input_bytes": results[0]["input_bytes"],
        # Worst run: peak memory is a bound, not a typical value.
        "peak_above_baseline": max(r["step_peak_rss"] - r["baseline_rss"] for r in results),
        "step_growth": max(r["step_peak_rss"] - r["rss_before_step"] for r in results),
        "process_peak_rss": max(r["process_peak_rss"] for r in results),
        "flagged": list(results[-1]["flagged"]),
        "flagged_consistent": len(flagged) == 1,
        "dataset_drift": results[-1]["dataset_drift"],
        "details": results[-1].get("details", {}),
    }


def run_case(case: str, rows: int, tools: Sequence[str], repeats: int) -> dict[str, Any]:
    files = ensure_case(case, rows, DATA_DIR)
    files_json = files.to_json()
    out: dict[str, Any] = {"case": case, "rows": rows, "files": json.loads(files_json), "tools": {}}
    log(f"case {case}: {rows:,} rows, columns {', '.join(CASES[case].columns)}")
    if any(t.startswith("watchkeeper") for t in tools):
        # The saved reference profile comes first: `watchkeeper` loads it.
        runs = [
            _one(PROFILE_TOOL, files_json, "drift", f"run {i + 1}/{repeats}")
            for i in range(repeats)
        ]
        out["profile"] = aggregate(PROFILE_TOOL, "drift", runs)
    # Round robin over the tools, so that load from other work on a shared machine falls on
    # every tool alike rather than on whichever ran during the busy minute.
    collected: dict[tuple[str, str], list[dict[str, Any]]] = {
        (t, p): [] for t in tools for p in PAIRS
    }
    for pair in PAIRS:
        for i in range(repeats):
            for tool in tools:
                n = _runs(tool, pair, repeats)
                if i < n:
                    collected[tool, pair].append(_one(tool, files_json, pair, f"run {i + 1}/{n}"))
    for tool in tools:
        out["tools"][tool] = {pair: aggregate(tool, pair, collected[tool, pair]) for pair in PAIRS}
    return out


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _s(x: float) -> str:
    if x != x:  # NaN
        return "-"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def _time_cell(seconds: Sequence[float]) -> str:
    if len(seconds) == 1:
        return f"{_s(seconds[0])} (1 run)"
    lo, hi = min(seconds), max(seconds)
    return f"{_s(median(seconds))} ({_s(lo)} to {_s(hi)}, {len(seconds)} runs)"


def _ratio(x: float) -> str:
    return f"{x:,.1f}x" if x >= 1 else f"{x:.2g}x"


def _mb(n: float) -> str:
    return f"{n / MB:,.0f}"


def _cols(cols: Sequence[str]) -> str:
    return ", ".join(cols) if cols else "none"


def _verdict(flagged: Sequence[str], expected: Sequence[str]) -> str:
    missed = [c for c in expected if c not in flagged]
    false = [c for c in flagged if c not in expected]
    parts = [_cols(flagged)]
    notes = []
    if missed:
        notes.append(f"missed {', '.join(missed)}")
    if false:
        notes.append(f"{len(false)} false")
    if notes:
        parts.append(f"({'; '.join(notes)})")
    return " ".join(parts)


def _case_table(case_out: dict[str, Any]) -> str:
    expected = case_out["files"]["expected_drift"]
    tools = case_out["tools"]
    wk = tools.get("watchkeeper", {}).get("drift", {}).get("seconds_median")
    rows = []
    for tool, pairs in tools.items():
        d, n = pairs["drift"], pairs["nodrift"]
        ratio = "1" if tool == "watchkeeper" else (_ratio(d["seconds_median"] / wk) if wk else "-")
        fit = _fit(case_out, tool)
        consistent = (
            "" if d["flagged_consistent"] and n["flagged_consistent"] else " (runs disagree)"
        )
        rows.append(
            [
                TOOLS[tool][0],
                _time_cell(d["seconds"]),
                _s(n["seconds_median"]),
                ratio,
                _s(fit) if fit else "-",
                _mb(d["peak_above_baseline"]),
                f"{d['peak_above_baseline'] / d['input_bytes']:.2f}",
                _mb(d["step_growth"]),
                _verdict(d["flagged"], expected) + consistent,
                _verdict(n["flagged"], []),
            ]
        )
    header = [
        "tool",
        "time, drift pair (s): median (range)",
        "time, no-drift pair (s)",
        "time / watchkeeper",
        "fit or profile build (s)",
        "peak above baseline (MB)",
        "peak / input",
        "allocated by the step (MB)",
        f"flagged, drift pair (expected {_cols(expected)})",
        "flagged, no-drift pair",
    ]
    return md_table(header, rows)


def _fit(case_out: dict[str, Any], tool: str) -> float:
    """Median one-off preparation time: watchkeeper's profile build, NannyML's fit; else 0."""
    if tool == "watchkeeper" and "profile" in case_out:
        return float(case_out["profile"]["seconds_median"])
    fit = float(case_out["tools"][tool]["drift"]["fit_seconds_median"])
    return 0.0 if fit != fit else fit


def _target_row(case: str, what: str, ratio: float, target: float) -> list[str]:
    ok = ratio >= target
    status = "met" if ok else f"NOT met ({target / ratio:.1f}x short of the target)"
    return [case, what, _ratio(ratio), status]


def _targets(case_out: dict[str, Any]) -> list[list[str]]:
    tools = case_out["tools"]
    wk = tools.get("watchkeeper", {}).get("drift")
    rows: list[list[str]] = []
    if wk is None:
        return rows
    case = case_out["case"]
    wk_s = wk["seconds_median"]
    for peer, target in TIME_TARGETS.items():
        if peer not in tools:
            continue
        peer_s = tools[peer]["drift"]["seconds_median"]
        what = f"time: {peer} / watchkeeper >= {target:g}x"
        rows.append(_target_row(case, what, peer_s / wk_s, target))
        if peer == "nannyml":
            # Both have a one-off preparation step; compare them with it included as well.
            ratio = (peer_s + _fit(case_out, peer)) / (wk_s + _fit(case_out, "watchkeeper"))
            what = f"time incl. fit / profile build: {peer} / watchkeeper >= {target:g}x"
            rows.append(_target_row(case, what, ratio, target))
    mem = wk["peak_above_baseline"] / wk["input_bytes"]
    ok = mem <= MEMORY_TARGET
    rows.append(
        [
            case,
            f"memory: watchkeeper peak above baseline / input <= {MEMORY_TARGET:g}",
            f"{mem:.2f}",
            "met" if ok else f"NOT met (over by {mem / MEMORY_TARGET - 1:.0%})",
        ]
    )
    return rows


def _wk_breakdown(results: list[dict[str, Any]]) -> str:
    rows = []
    for case_out in results:
        for tool in ("watchkeeper", "watchkeeper-raw"):
            if tool not in case_out["tools"]:
                continue
            runs = case_out["tools"][tool]["drift"]["runs"]
            stages: dict[str, list[float]] = {}
            for r in runs:
                for k, v in r.get("details", {}).get("timings_seconds", {}).items():
                    stages.setdefault(k, []).append(float(v))
            if stages:
                cells = ", ".join(f"{k} {_s(median(v))}" for k, v in stages.items())
                rows.append([case_out["case"], f"`{tool}`", cells])
    if not rows:
        return ""
    return md_table(
        ["case", "run", "stages (median s, from `report.meta['timings_seconds']`)"], rows
    )


def _commits(results: list[dict[str, Any]]) -> str:
    seen: list[str] = []
    runs = [r for c in results for r in c.get("profile", {}).get("runs", [])]
    runs += [r for c in results for p in c["tools"].values() for a in p.values() for r in a["runs"]]
    for r in runs:
        if "commit" in r and r["commit"] not in seen:
            seen.append(r["commit"])
    if not seen:
        return "commit recorded at the start only (see above)"
    if len(seen) == 1:
        return f"commit {seen[0]} in every run"
    return "the code changed during the run, runs saw commits " + ", ".join(seen)


def _load_range(results: list[dict[str, Any]]) -> str:
    loads = [
        r["load_1min"]
        for case_out in results
        for pairs in case_out["tools"].values()
        for agg in pairs.values()
        for r in agg["runs"]
    ]
    return f"{min(loads):.2f} to {max(loads):.2f}" if loads else "-"


def render(
    results: list[dict[str, Any]],
    machine: dict[str, Any],
    versions: dict[str, dict[str, str]],
    repeats: int,
) -> str:
    rows = results[0]["rows"]
    lines = [
        "## Drift",
        "",
        f"Written by `benchmarks/drift.py` on {machine.get('date', '?')} "
        f"({rows:,} rows per frame; {repeats} run{'s' if repeats > 1 else ''} per tool on the drift pair, "
        "1 for Evidently and for every no-drift pair; re-run with "
        "`make bench` or `.venv/bin/python benchmarks/drift.py`).",
        "",
        "**Data** (seeded, `benchmarks/_drift_data.py`, Parquet under `benchmarks/data/`): reference and "
        f"two current frames per case. *numeric*: 20 N(0,1) columns; the drifted current moves the "
        f"mean of `x00` by {MEAN_SHIFT} sigma and scales `x01` by {SCALE}. *mixed*: 10 numeric "
        "columns (same two drifts) and 5 categorical columns with 10 Zipf-distributed levels, where "
        "the rarest level of `c00` doubles its share (3.4 % to 6.6 %). The no-drift current is an "
        "independent draw of the reference distribution: everything flagged on it is a false alarm.",
        "",
        "**What is timed**: the call a user waits for, in a fresh process per run, after the "
        "tool is imported and the Parquet files are read into pandas (the read is excluded for "
        "every tool). watchkeeper: `Profile.load(path)` + `compare(profile, current)` with "
        "default settings (the profile build is timed apart, in the *fit or profile build* "
        "column); `compare(reference, current)` without a profile is shown as well. Evidently: "
        "`Report([DataDriftPreset(...)], include_tests=True).run(current, reference)` (the tests "
        "only carry Evidently's own per-column verdicts). NannyML: `calculate(current)` on a "
        "`UnivariateDriftCalculator` with default methods and chunking, fitted on the reference "
        "(fit timed apart; a column counts as flagged when any analysis chunk alerts). scipy: "
        "one test per column at p < 0.05 without correction. Times are medians (with the range "
        "over runs: on a loaded 2-core machine single runs of sub-second steps vary by 2x or "
        "more, threaded code such as watchkeeper's more than single-threaded peers); *time / "
        "watchkeeper* is the ratio of medians, peer over watchkeeper's "
        "`compare(profile, current)`.",
        "",
        "**Memory**: *peak above baseline* is the process's peak RSS during the timed step (the "
        "kernel's high-water mark, reset just before the step) minus its RSS after the imports, "
        "before the data were read: the input frames the tool holds plus all it allocates. "
        "*peak / input* divides it by the in-memory size of the frames handed to the tool "
        "(current only for `compare(profile, current)`, reference + current for the others). "
        "*allocated by the step* is the peak minus the RSS just before the step (the tool's own "
        "working memory, without the frames it was handed). *peak above baseline* also counts "
        "what the Parquet read left resident (a few tens of MB), so it is an upper bound.",
        "",
    ]
    for case_out in results:
        lines += [f"### Case *{case_out['case']}*", "", _case_table(case_out), ""]
    target_rows = [r for case_out in results for r in _targets(case_out)]
    if target_rows:
        lines += [
            "### Targets",
            "",
            md_table(["case", "target", "measured", "status"], target_rows),
            "",
        ]
    breakdown = _wk_breakdown(results)
    if breakdown:
        lines += ["### Where watchkeeper's time goes", "", breakdown, ""]
    notes = BENCH_DIR / "drift_notes.md"
    if notes.exists():
        lines += [notes.read_text(encoding="utf-8").strip(), ""]
    m = machine
    lines += [
        "### Machine",
        "",
        f"- CPU: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable); RAM {m['ram_gib']} GiB",
        f"- OS: {m['os']}",
        f"- load average before / after the run: {m['load_before']} / {m['load_after']}; "
        f"1-minute load after each measurement: {_load_range(results)} (the machine is shared "
        "with other work, which may have run at the same time)",
        f"- BLAS environment: {m['blas_env'] or 'none set'}",
        "- project `.venv`: " + ", ".join(f"{k} {v}" for k, v in versions["project"].items()),
        f"- watchkeeper code measured: {_commits(results)}",
        "- `benchmarks/.venv-peers`: "
        + ", ".join(f"{k} {v}" for k, v in versions["peers"].items()),
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        type=int,
        default=None,
        help=f"rows per frame (default {FULL_ROWS:,}; {QUICK_ROWS:,} with --quick)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="runs per tool on the drift pair (default 5; 1 with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: fewer rows, one run each, prints instead of writing BENCHMARKS.md",
    )
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES)
    )
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help="comma-separated: " + ", ".join(TOOLS)
    )
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the Drift section of BENCHMARKS.md (default: only for a full-size run)",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help=f"re-render the section from saved raw results (e.g. {RAW_RESULTS.relative_to(BENCH_DIR.parent)}) without measuring",
    )
    args = parser.parse_args(argv)

    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        body = render(saved["results"], saved["machine"], saved["versions"], saved["repeats"])
        if args.write is not False:
            write_section("drift", body)
            log(f"re-rendered the Drift section of {RESULTS_FILE.name} from {args.from_json}")
        print(body)
        return 0

    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    repeats = args.repeats or (1 if args.quick else 5)
    write = args.write if args.write is not None else (rows == FULL_ROWS and not args.quick)
    cases = [c for c in args.cases.split(",") if c]
    tools = [t for t in args.tools.split(",") if t]
    for name in cases:
        if name not in CASES:
            parser.error(f"unknown case {name!r}; choose from {', '.join(CASES)}")
    for name in tools:
        if name not in TOOLS:
            parser.error(f"unknown tool {name!r}; choose from {', '.join(TOOLS)}")

    if any(TOOLS[t][1] == "peers" for t in tools):
        ensure_peers_venv()
    if any(TOOLS[t][1] == "project" for t in tools):
        check_watchkeeper()

    machine = machine_description()
    machine["date"] = dt.date.today().isoformat()
    commit = _git_commit()  # at the start: the code that is measured
    machine["load_before"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    results = [run_case(case, rows, tools, repeats) for case in cases]
    machine["load_after"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = {
        "project": package_versions(
            PROJECT_PYTHON, ["watchkeeper", "numpy", "scipy", "pandas", "pyarrow", "scikit-learn"]
        ),
        "peers": package_versions(
            PEERS_PYTHON, ["evidently", "nannyml", "numpy", "scipy", "pandas", "pyarrow"]
        )
        if PEERS_PYTHON.exists()
        else {},
    }
    versions["project"]["last commit of the measured code at start"] = commit
    body = render(results, machine, versions, repeats)
    if write:
        write_section("drift", body)
        RAW_RESULTS.parent.mkdir(exist_ok=True)
        RAW_RESULTS.write_text(
            json.dumps(
                {"machine": machine, "versions": versions, "repeats": repeats, "results": results},
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
        log(
            f"wrote the Drift section of {RESULTS_FILE.name} and {RAW_RESULTS.relative_to(BENCH_DIR.parent)}"
        )
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
