"""Performance estimation without labels: watchkeeper's CBPE/DLE against NannyML's.

Run from the repository root with the project's interpreter::

    .venv/bin/python benchmarks/estimation.py            # 5 runs per tool, writes BENCHMARKS.md
    .venv/bin/python benchmarks/estimation.py --quick    # 1 run, prints the section only

Data: NannyML's bundled synthetic datasets — car loan (binary classifier, CBPE) and car price
(regressor, DLE) — exported once to Parquet by the peers venv (``benchmarks/data/estimation``).
Both tools fit on the reference period and estimate every chunk of the analysis period (same
consecutive chunks of the same size); each estimate is compared with the metric the held-back
labels give on that chunk. Every run is a fresh subprocess (``_estimation_worker.py``); tools
alternate run by run so that load from other work falls on both alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

# Scripts run as files, not as a package: make the sibling helper modules importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
from _common import (
    BENCH_DIR,
    DATA_DIR,
    PEERS_PYTHON,
    PROJECT_PYTHON,
    log,
    machine_description,
    md_table,
    median,
    package_versions,
    run_worker,
    write_section,
)
from _estimation_worker import DATASETS
from drift import _git_commit, ensure_peers_venv

WORKER = BENCH_DIR / "_estimation_worker.py"
EST_DATA = DATA_DIR / "estimation"
RAW_RESULTS = BENCH_DIR / "results" / "estimation.json"
NOTES = BENCH_DIR / "estimation_notes.md"
TOOLS = {"nannyml": PEERS_PYTHON, "watchkeeper": PROJECT_PYTHON}
LABELS = {
    ("car_loan", "nannyml"): "NannyML `CBPE`",
    ("car_loan", "watchkeeper"): "watchkeeper `CBPE`",
    ("car_price", "nannyml"): "NannyML `DLE`",
    ("car_price", "watchkeeper"): "watchkeeper `DLE`",
}
# (dataset, chunk size): NannyML's documented chunk size for each dataset, and 1,000 rows for
# more (and smaller) chunks, where intervals matter more.
CONFIGS = [("car_loan", 5000), ("car_loan", 1000), ("car_price", 6000), ("car_price", 1000)]
TIME_TARGET = 3.0  # NannyML fit + estimate time / watchkeeper's


def ensure_data() -> None:
    if all(
        (EST_DATA / f"{d}_{p}.parquet").exists()
        for d in DATASETS
        for p in ("reference", "analysis")
    ):
        return
    log("exporting NannyML's bundled datasets to Parquet ...")
    run_worker(PEERS_PYTHON, WORKER, ["export", str(EST_DATA)])


def realised(dataset: str, chunk_size: int) -> list[dict[str, float]]:
    """The metric each analysis chunk's labels give (scikit-learn, the common yardstick)."""
    from sklearn import metrics as skm

    spec = DATASETS[dataset]
    frame = pd.read_parquet(EST_DATA / f"{dataset}_analysis.parquet")
    out = []
    for start in range(0, len(frame), chunk_size):
        c = frame.iloc[start : start + chunk_size]
        y = c[spec["target"]].to_numpy()
        if spec["kind"] == "binary":
            pred, score = c[spec["prediction"]].to_numpy(), c[spec["score"]].to_numpy()
            out.append(
                {
                    "roc_auc": skm.roc_auc_score(y, score),
                    "accuracy": skm.accuracy_score(y, pred),
                    "precision": skm.precision_score(y, pred),
                    "recall": skm.recall_score(y, pred),
                    "f1": skm.f1_score(y, pred),
                }
            )
        else:
            err = y - c[spec["prediction"]].to_numpy()
            out.append({"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean()))})
    return out


def run(repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"configs": []}
    for dataset, chunk_size in CONFIGS:
        log(f"{dataset}, chunks of {chunk_size:,} rows")
        runs: dict[str, list[dict[str, Any]]] = {t: [] for t in TOOLS}
        for i in range(repeats):
            for tool, python in TOOLS.items():
                log(f"  {tool:12s} run {i + 1}/{repeats}")
                commit = _git_commit() if tool == "watchkeeper" else None
                r = run_worker(python, WORKER, [tool, dataset, str(chunk_size), str(EST_DATA)])
                r["load_1min"] = os.getloadavg()[0]
                if commit:
                    r["commit"] = commit
                runs[tool].append(r)
        out["configs"].append(
            {
                "dataset": dataset,
                "chunk_size": chunk_size,
                "realised": realised(dataset, chunk_size),
                "runs": runs,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Scores and Markdown
# ---------------------------------------------------------------------------------------------


def accuracy_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Per tool and metric: mean absolute estimation error and interval coverage."""
    spec = DATASETS[config["dataset"]]
    truth = config["realised"]
    rows = []
    for metric in spec["metrics"]:
        row: dict[str, Any] = {"metric": metric}
        for tool in TOOLS:
            chunks = config["runs"][tool][-1]["chunks"]
            est = np.array([c[metric][0] for c in chunks], dtype=float)
            lo = np.array([c[metric][1] for c in chunks], dtype=float)
            hi = np.array([c[metric][2] for c in chunks], dtype=float)
            real = np.array([t[metric] for t in truth])
            row[f"{tool}_error"] = float(np.mean(np.abs(est - real)))
            row[f"{tool}_coverage"] = float(np.mean((lo <= real) & (real <= hi)))
            row[f"{tool}_width"] = float(np.mean(hi - lo))
            if tool == "nannyml":
                # NannyML's band is +-3 sampling errors; +-1.96 is the like-for-like 95 %.
                se = np.array([c[metric][3] for c in chunks], dtype=float)
                row["nannyml_coverage95"] = float(np.mean(np.abs(est - real) <= 1.96 * se))
        row["n_chunks"] = len(truth)
        rows.append(row)
    return rows


def _f(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 10 else f"{x:,.1f}"


def _seconds(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{median(values):.3f} ({min(values):.3f} to {max(values):.3f})"


def render(results: dict[str, Any]) -> str:
    lines = [
        "## Performance estimation without labels",
        "",
        f"Written by `benchmarks/estimation.py` on {results['date']} ({results['repeats']} run{'s' if results['repeats'] != 1 else ''} per tool and configuration, alternating; re-run with `make bench` or `.venv/bin/python benchmarks/estimation.py`).",
        "",
        f"**Machine**: {results['machine']['cpu']}, {results['machine']['usable_cpus']} usable CPUs (of {results['machine']['logical_cpus']}), {results['machine']['ram_gib']} GiB RAM, {results['machine']['os']}; 1-minute load average during the runs {results['load_min']:.1f} to {results['load_max']:.1f} (the machine is shared). **Versions**: watchkeeper at commit {results['commit']}, NannyML {results['versions']['peers'].get('nannyml', '?')} (LightGBM {results['versions']['peers'].get('lightgbm', '?')}), scikit-learn {results['versions']['project'].get('scikit-learn', '?')} (watchkeeper's side).",
        "",
        "**Data**: NannyML's bundled synthetic datasets, as NannyML ships them: *car loan* (binary classifier; 50,000 reference and 50,000 analysis rows; CBPE) and *car price* (regressor; 60,000 + 60,000 rows; DLE). Both tools fit on the reference and estimate consecutive chunks of the analysis period of the same size; each estimate is compared with the metric the chunk's held-back labels give (scikit-learn). *error* is the mean absolute difference between estimate and realised metric over the chunks; *coverage* the share of chunks whose realised metric lies inside the tool's interval. watchkeeper's intervals are 95 % prediction intervals for the realised metric; NannyML's band is its default ±3 sampling errors (*coverage ±1.96 se* recomputes it at 95 % for a like-for-like reading).",
        "",
        "**Timed**: `fit(reference)` and the estimate of every chunk (`estimate(analysis)` for NannyML, `estimate_chunks(analysis)` for watchkeeper), in a fresh process after a warm-up run on 2,000 rows and after the Parquet read. Default settings for both, except that watchkeeper's CBPE and DLE also check every window's rows against the reference support (its feature columns are passed). NannyML's LightGBM uses all cores; watchkeeper fits on one thread.",
        "",
    ]
    acc_header = [
        "dataset, chunk", "metric", "chunks", "NannyML error", "watchkeeper error",
        "error ratio (wk / NannyML)", "NannyML coverage (±3 se)", "NannyML coverage ±1.96 se",
        "watchkeeper coverage (95 %)", "NannyML mean width", "watchkeeper mean width",
    ]  # fmt: skip
    acc_rows = []
    time_rows = []
    for config in results["configs"]:
        name = f"{config['dataset'].replace('_', ' ')}, {config['chunk_size']:,}"
        for row in accuracy_rows(config):
            ratio = (
                row["watchkeeper_error"] / row["nannyml_error"]
                if row["nannyml_error"]
                else float("nan")
            )
            acc_rows.append(
                [
                    name, row["metric"], row["n_chunks"], _f(row["nannyml_error"]), _f(row["watchkeeper_error"]),
                    f"{ratio:.2f}", f"{row['nannyml_coverage']:.0%}", f"{row['nannyml_coverage95']:.0%}",
                    f"{row['watchkeeper_coverage']:.0%}", _f(row["nannyml_width"]), _f(row["watchkeeper_width"]),
                ]
            )  # fmt: skip
        totals = {}
        for tool in TOOLS:
            runs = config["runs"][tool]
            totals[tool] = median(r["fit_seconds"] + r["estimate_seconds"] for r in runs)
        ratio = totals["nannyml"] / totals["watchkeeper"]
        status = "met" if ratio >= TIME_TARGET else f"NOT met ({TIME_TARGET / ratio:.1f}x short)"
        for tool in TOOLS:
            runs = config["runs"][tool]
            time_rows.append(
                [
                    name, LABELS[(config["dataset"], tool)],
                    _seconds([r["fit_seconds"] for r in runs]),
                    _seconds([r["estimate_seconds"] for r in runs]),
                    _seconds([r["fit_seconds"] + r["estimate_seconds"] for r in runs]),
                    f"{ratio:.1f}x, target {TIME_TARGET:g}x {status}" if tool == "watchkeeper" else "",
                ]
            )  # fmt: skip
    lines += ["### Estimation error and interval coverage", "", md_table(acc_header, acc_rows), ""]
    time_header = [
        "dataset, chunk", "tool", "fit (s): median (range)", "estimate, all chunks (s)",
        "fit + estimate (s)", "NannyML / watchkeeper (fit + estimate)",
    ]  # fmt: skip
    lines += ["### Run time", "", md_table(time_header, time_rows), ""]
    if NOTES.exists():
        lines += [NOTES.read_text(encoding="utf-8").strip(), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run per tool; print, do not write")
    parser.add_argument("--runs", type=int, default=5, help="runs per tool and configuration")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    parser.add_argument("--from-json", type=Path, help="re-render saved raw results")
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        ensure_peers_venv()
        ensure_data()
        repeats = 1 if args.quick else args.runs
        results = run(repeats)
        loads = [
            r["load_1min"] for c in results["configs"] for rs in c["runs"].values() for r in rs
        ]
        results.update(
            {
                "date": dt.date.today().isoformat(),
                "repeats": repeats,
                "machine": machine_description(),
                "load_min": min(loads),
                "load_max": max(loads),
                "commit": _git_commit(),
                "versions": {
                    "peers": package_versions(
                        PEERS_PYTHON, ["nannyml", "lightgbm", "scikit-learn"]
                    ),
                    "project": package_versions(PROJECT_PYTHON, ["scikit-learn", "numpy"]),
                },
            }
        )
        if not args.quick:
            RAW_RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RAW_RESULTS.write_text(json.dumps(results, indent=1), encoding="utf-8")
    body = render(results)
    if args.quick or args.no_write:
        print(body)
    else:
        write_section("estimation", body)
        log("wrote the estimation section of BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
