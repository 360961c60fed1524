"""Concept-drift benchmark: watchkeeper's detectors on River's synthetic streams with known drifts.

Run from the repository root with the project's interpreter::

    .venv/bin/python benchmarks/concept_drift.py           # 3 seeds x 6 streams, writes BENCHMARKS.md
    .venv/bin/python benchmarks/concept_drift.py --quick   # 1 seed, abrupt drifts only, prints

Each stream chains River's ``ConceptDriftStream`` over four concepts of one generator (SEA,
Agrawal, STAGGER; seeded, nothing downloaded), so it has three drifts at known positions. An
online classifier (River's ``HoeffdingTreeClassifier``) predicts each row and then learns it
(prequential, test-then-train); its 0/1 errors are the stream every detector watches, with
watchkeeper's default parameters. Two baselines put the numbers in proportion: one that alarms
at every row and one that alarms every ``PERIOD`` rows (seeded phase).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    PROJECT_PYTHON,
    RESULTS_FILE,
    log,
    machine_description,
    md_table,
    median,
    package_versions,
    write_section,
)

RAW_RESULTS = BENCH_DIR / "results" / "concept_drift.json"
NOTES = BENCH_DIR / "concept_drift_notes.md"

SEGMENT = 5_000  # rows per concept; drifts at SEGMENT, 2*SEGMENT, 3*SEGMENT
QUICK_SEGMENT = 2_500
ACCEPT = 2_500  # a signal within this many rows after a drift detects it
GRADUAL_WIDTH = 1_000
# River's sigmoid overflows for width 1 (exp(4 * position / width)); 50 rows is abrupt at
# this scale (95 % of the switch happens within ~40 rows).
ABRUPT_WIDTH = 50
PERIOD = 1_000  # the periodic baseline's period
PRETRAIN = 2_000  # rows of the first concept the tree learns before the error stream starts

# generator -> the four concepts (constructor keywords) chained by ConceptDriftStream
GENERATORS: dict[str, list[dict[str, Any]]] = {
    "SEA": [{"variant": v, "noise": 0.1} for v in (0, 1, 2, 3)],
    "Agrawal": [{"classification_function": f, "perturbation": 0.05} for f in (0, 2, 4, 6)],
    "STAGGER": [{"classification_function": f} for f in (0, 1, 2, 0)],
}
DETECTORS = ["adwin", "page_hinkley", "ddm", "eddm", "kswin"]
BASELINES = ["always", "periodic"]


def make_stream(generator: str, seed: int, segment: int, width: int) -> Any:
    """Four concepts of ``generator`` with drifts at ``segment``, ``2 segment``, ``3 segment``."""
    from river.datasets import synth

    cls = getattr(synth, generator)
    concepts = [cls(seed=seed + 17 * i, **kw) for i, kw in enumerate(GENERATORS[generator])]
    # Nested from the end: each inner stream starts (about) ``segment`` rows after its parent's.
    stream = concepts[-1]
    for i, concept in reversed(list(enumerate(concepts[:-1]))):
        stream = synth.ConceptDriftStream(
            stream=concept, drift_stream=stream, position=segment, width=width, seed=seed + i
        )
    return stream


def error_stream(generator: str, seed: int, segment: int, width: int) -> list[int]:
    """Prequential 0/1 errors of a Hoeffding tree over the stream.

    The tree first learns ``PRETRAIN`` rows of the first concept (another seed), as a deployed
    model would have been trained before monitoring starts; otherwise its error falls while it
    learns from scratch and two-sided detectors rightly signal that change.
    """
    from river import tree
    from river.datasets import synth

    model = tree.HoeffdingTreeClassifier()
    first = getattr(synth, generator)(seed=seed + 1_000, **GENERATORS[generator][0])
    for x, y in first.take(PRETRAIN):
        model.learn_one(x, y)
    errors = []
    for x, y in make_stream(generator, seed, segment, width).take(4 * segment):
        errors.append(int(model.predict_one(x) != y))
        model.learn_one(x, y)
    return errors


def signals(name: str, errors: Sequence[int], seed: int) -> tuple[list[int], float]:
    """Signal positions of a detector or baseline, and the seconds it took."""
    n = len(errors)
    if name == "always":
        return list(range(n)), 0.0
    if name == "periodic":
        phase = random.Random(seed).randrange(PERIOD)
        return list(range(phase, n, PERIOD)), 0.0
    from watchkeeper.checks import get_detector, run_detector

    det = get_detector(name)
    t0 = time.perf_counter()
    run = run_detector(det, errors)
    return list(run.drift_indices), time.perf_counter() - t0


def score(hits: Sequence[int], drifts: Sequence[int]) -> dict[str, Any]:
    """Delay of the first signal within ``ACCEPT`` rows of each drift; every other signal is a
    false alarm."""
    delays: list[int | None] = []
    used: set[int] = set()
    for d in drifts:
        first = next((h for h in hits if d <= h < d + ACCEPT), None)
        delays.append(None if first is None else first - d)
        if first is not None:
            used.add(first)
    return {"delays": delays, "false_alarms": len(hits) - len(used)}


def run_stream(generator: str, kind: str, seed: int, segment: int) -> dict[str, Any]:
    width = ABRUPT_WIDTH if kind == "abrupt" else GRADUAL_WIDTH
    t0 = time.perf_counter()
    errors = error_stream(generator, seed, segment, width)
    model_s = time.perf_counter() - t0
    drifts = [segment, 2 * segment, 3 * segment]
    out: dict[str, Any] = {
        "generator": generator,
        "kind": kind,
        "seed": seed,
        "rows": len(errors),
        "drifts": drifts,
        "error_rate_by_segment": [
            round(sum(errors[i : i + segment]) / segment, 4) for i in range(0, len(errors), segment)
        ],
        "model_seconds": round(model_s, 2),
        "detectors": {},
    }
    for name in DETECTORS + BASELINES:
        hits, seconds = signals(name, errors, seed)
        out["detectors"][name] = {
            **score(hits, drifts),
            "n_signals": len(hits),
            "seconds": round(seconds, 3),
        }
    log(
        f"{generator:8s} {kind:7s} seed {seed}: error rate by concept "
        f"{out['error_rate_by_segment']}, "
        + ", ".join(
            f"{n} {out['detectors'][n]['delays']}/{out['detectors'][n]['false_alarms']}fa"
            for n in DETECTORS
        )
    )
    return out


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

LABELS = {
    "adwin": "ADWIN",
    "page_hinkley": "Page-Hinkley",
    "ddm": "DDM",
    "eddm": "EDDM",
    "kswin": "KSWIN",
    "always": "baseline: alarm at every row",
    "periodic": f"baseline: alarm every {PERIOD:,} rows",
}


def summarise(runs: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    delays = [d for r in runs for d in r["detectors"][name]["delays"]]
    found = [d for d in delays if d is not None]
    false = sum(r["detectors"][name]["false_alarms"] for r in runs)
    rows = sum(r["rows"] for r in runs)
    seconds = sum(r["detectors"][name]["seconds"] for r in runs)
    return {
        "drifts": len(delays),
        "missed": len(delays) - len(found),
        "median_delay": median(found) if found else None,
        "mean_delay": sum(found) / len(found) if found else None,
        "false_alarms": false,
        "rows": rows,
        "mtfa": rows / false if false else None,
        "us_per_row": 1e6 * seconds / rows if seconds else None,
    }


def _row(name: str, s: dict[str, Any]) -> list[str]:
    def num(x: float | None, fmt: str = ",.0f") -> str:
        return "–" if x is None else format(x, fmt)

    mtfa = f"none in {s['rows']:,} rows" if s["mtfa"] is None else f"{s['mtfa']:,.0f}"
    return [
        LABELS[name],
        num(s["median_delay"]),
        num(s["mean_delay"]),
        f"{s['missed']} / {s['drifts']}",
        f"{s['false_alarms']:,}",
        mtfa,
        num(s["us_per_row"], ",.1f") if name in DETECTORS else "–",
    ]


HEADER = [
    "detector",
    "median delay (rows)",
    "mean delay (rows)",
    "missed / drifts",
    "false alarms",
    "mean rows between false alarms",
    "µs per row",
]


def render(runs: list[dict[str, Any]], machine: dict[str, Any], versions: dict[str, str]) -> str:
    seeds = sorted({r["seed"] for r in runs})
    kinds = sorted({r["kind"] for r in runs})
    segment = runs[0]["drifts"][0]
    lines = [
        "## Concept drift",
        "",
        f"Written by `benchmarks/concept_drift.py` on {machine.get('date', '?')} "
        f"({len(runs)} streams: {', '.join(GENERATORS)} x {', '.join(kinds)} drifts x "
        f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}; re-run with `make bench` or "
        "`.venv/bin/python benchmarks/concept_drift.py`).",
        "",
        f"**Streams**: River's `ConceptDriftStream` chaining four concepts of one generator, "
        f"{segment:,} rows each, so three drifts at rows {segment:,}, {2 * segment:,} and "
        f"{3 * segment:,}: SEA variants 0→1→2→3 (10 % label noise), Agrawal functions "
        "0→2→4→6 (5 % perturbation), STAGGER functions 0→1→2→0. *abrupt*: "
        f"width {ABRUPT_WIDTH} (River overflows at width 1); *gradual*: width {GRADUAL_WIDTH:,} (delays counted from the middle of the transition). "
        f"**Error stream**: a `HoeffdingTreeClassifier`, trained first on {PRETRAIN:,} rows of "
        "the first concept (another seed), predicts each row, then learns it (prequential); its 0/1 errors are fed to every detector with watchkeeper's default "
        "parameters. The tree keeps learning, so the error rate jumps at a drift and then "
        "recovers: a late signal is a miss in practice.",
        "",
        f"**Scoring**: the first signal within {ACCEPT:,} rows after a drift detects it (its "
        "distance to the drift is the delay); a drift without one is missed; every other "
        "signal is a false alarm. *Mean rows between false alarms* is all rows of all streams "
        "divided by the false alarms. The baselines show what the numbers mean: alarming at "
        "every row has zero delay and no misses but a false alarm per row; alarming every "
        f"{PERIOD:,} rows has about {PERIOD // 2:,} rows of delay and a false alarm per "
        f"{PERIOD:,} rows. A useful detector beats the periodic baseline on both.",
        "",
        "### All streams",
        "",
        md_table(HEADER, [_row(n, summarise(runs, n)) for n in DETECTORS + BASELINES]),
        "",
    ]
    for gen in GENERATORS:
        for kind in kinds:
            sub = [r for r in runs if r["generator"] == gen and r["kind"] == kind]
            if not sub:
                continue
            rates = " / ".join(
                f"{100 * sum(r['error_rate_by_segment'][i] for r in sub) / len(sub):.1f} %"
                for i in range(4)
            )
            lines += [
                f"### {gen}, {kind}",
                "",
                f"Error rate of the tree per concept (mean over seeds): {rates}.",
                "",
                md_table(HEADER, [_row(n, summarise(sub, n)) for n in DETECTORS]),
                "",
            ]
    if NOTES.exists():
        lines += [NOTES.read_text(encoding="utf-8").strip(), ""]
    m = machine
    lines += [
        "### Machine",
        "",
        f"- CPU: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable); "
        f"RAM {m['ram_gib']} GiB",
        f"- OS: {m['os']}",
        f"- load average before / after the run: {m['load_before']} / {m['load_after']} "
        "(only the µs-per-row column depends on it)",
        "- project `.venv`: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
    ]
    return "\n".join(lines)


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", "src/watchkeeper/checks"],
            capture_output=True,
            text=True,
            check=True,
            cwd=BENCH_DIR.parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds", type=int, default=None, help="seeds per stream (default 3; 1 with --quick)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: 1 seed, abrupt drifts only, {QUICK_SEGMENT:,} rows per concept, prints only",
    )
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the Concept drift section of BENCHMARKS.md (default: only for a full run)",
    )
    parser.add_argument(
        "--from-json", type=Path, default=None, help="re-render from saved raw results"
    )
    args = parser.parse_args(argv)

    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        body = render(saved["runs"], saved["machine"], saved["versions"])
        if args.write is not False:
            write_section("concept-drift", body)
        print(body)
        return 0

    seeds = args.seeds or (1 if args.quick else 3)
    segment = QUICK_SEGMENT if args.quick else SEGMENT
    kinds = ["abrupt"] if args.quick else ["abrupt", "gradual"]
    write = args.write if args.write is not None else not args.quick

    machine = machine_description()
    machine["date"] = dt.date.today().isoformat()
    machine["load_before"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    runs = [
        run_stream(gen, kind, seed, segment)
        for gen in GENERATORS
        for kind in kinds
        for seed in range(seeds)
    ]
    machine["load_after"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = package_versions(PROJECT_PYTHON, ["watchkeeper", "river", "numpy", "scipy"])
    versions["watchkeeper checks at commit"] = _git_commit()
    body = render(runs, machine, versions)
    if write:
        write_section("concept-drift", body)
        RAW_RESULTS.parent.mkdir(exist_ok=True)
        RAW_RESULTS.write_text(
            json.dumps({"machine": machine, "versions": versions, "runs": runs}, indent=1) + "\n",
            encoding="utf-8",
        )
        log(f"wrote the Concept drift section of {RESULTS_FILE.name} and {RAW_RESULTS.name}")
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
