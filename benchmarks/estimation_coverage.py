"""Do CBPE's and DLE's 95 % intervals mean what they say? Coverage where the assumptions hold,
and where the analysis period breaks them.

Run from the repository root with the project's interpreter::

    .venv/bin/python benchmarks/estimation_coverage.py            # writes BENCHMARKS.md
    .venv/bin/python benchmarks/estimation_coverage.py --quick    # fewer repetitions, prints

Data: NannyML's bundled car loan (binary, CBPE) and car price (regression, DLE) datasets,
exported to Parquet by ``estimation.py`` (run it once first, or this script runs its export).

*Where the assumptions hold* means chunks drawn from the reference period itself, cross-fitted:
in each repetition the reference rows are split at random into a half to fit on and a held-out
half; the estimator is fitted on the first half and estimates one chunk of ``chunk_size`` rows
drawn from the held-out half, whose labels give the realised metric (scikit-learn). A fresh
split and a fresh fit per repetition make the repetitions independent, so the share of covered
chunks is a binomial proportion and its noise band is exact (Clopper–Pearson, 95 %). *Analysis*
coverage fits on the whole reference and estimates consecutive chunks of the analysis period;
those chunks are reported apart by whether the support check flagged them, with the known
concept shift of the second half (see the estimation notes) stated beside them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
from _common import BENCH_DIR, log, machine_description, md_table, write_section
from _estimation_worker import DATASETS
from estimation import EST_DATA, ensure_data

RAW_RESULTS = BENCH_DIR / "results" / "estimation_coverage.json"
# Each repetition's single fit serves one independent chunk of every size of its dataset.
CHUNK_SIZES = {"car_loan": (5000, 1000), "car_price": (6000, 1000)}
REPETITIONS = {"car_loan": 200, "car_price": 100}
LEVEL = 0.95


def realised(spec: dict[str, Any], chunk: pd.DataFrame) -> dict[str, float]:
    """The metric the chunk's labels give (scikit-learn, the common yardstick)."""
    from sklearn import metrics as skm

    y = chunk[spec["target"]].to_numpy()
    if spec["kind"] == "binary":
        pred, score = chunk[spec["prediction"]].to_numpy(), chunk[spec["score"]].to_numpy()
        return {
            "roc_auc": skm.roc_auc_score(y, score),
            "accuracy": skm.accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred, zero_division=0.0),
            "recall": skm.recall_score(y, pred, zero_division=0.0),
            "f1": skm.f1_score(y, pred, zero_division=0.0),
        }
    err = y - chunk[spec["prediction"]].to_numpy()
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean()))}


def estimator(spec: dict[str, Any], seed: int) -> Any:
    from watchkeeper.checks import CBPE, DLE

    if spec["kind"] == "binary":
        return CBPE(
            spec["metrics"], score=spec["score"], prediction=spec["prediction"],
            target=spec["target"], features=spec["features"], random_state=seed,
        )  # fmt: skip
    return DLE(
        spec["metrics"], prediction=spec["prediction"], target=spec["target"],
        features=spec["features"], random_state=seed,
    )  # fmt: skip


def _record(results: Any, truth: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in results:
        metric = r.check.removeprefix("estimated.")
        out[metric] = {
            "value": r.value,
            "lower": r.lower,
            "upper": r.upper,
            "realised": truth[metric],
            "flagged": "assumption_warning" in r.details,
        }
    return out


def calibration_curve(spec: dict[str, Any], reference: pd.DataFrame) -> Any:
    """The chance of the positive class given the score on the whole reference (isotonic,
    scikit-learn's): the process the redrawn labels come from."""
    from sklearn.isotonic import IsotonicRegression

    score = reference[spec["score"]].to_numpy(dtype=np.float64)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    return iso.fit(score, reference[spec["target"]].to_numpy(dtype=np.float64)).predict(score)


def reference_coverage(
    dataset: str, repetitions: int, budget: float | None = None, *, redraw: bool = False
) -> dict[int, list[dict[str, Any]]]:
    """One cross-fitted chunk of each size per repetition (fresh split, fresh fit).

    With the reference's own labels every repetition splits the same 50,000 rows, so the
    repetitions share whatever that one sample holds by chance (its departure from a smooth
    calibration curve, say): they are independent given the reference, and their coverage is
    the coverage given this reference. ``redraw`` (binary only) makes each repetition a new
    reference from the same process: the labels are drawn afresh from the reference's
    calibration curve (:func:`calibration_curve`), so the assumptions hold exactly and the
    repetitions are independent draws, as the interval's 95 % promises.

    ``budget`` (seconds) stops early, after the repetition that passes it; the number of
    chunks is reported beside every coverage, so a shortened run says so.
    """
    import time

    spec = DATASETS[dataset]
    reference = pd.read_parquet(EST_DATA / f"{dataset}_reference.parquet")
    n = len(reference)
    if redraw:
        if spec["kind"] != "binary":
            raise ValueError("labels are redrawn for the binary dataset only")
        curve = calibration_curve(spec, reference)
        dtype = reference[spec["target"]].dtype
    rows: dict[int, list[dict[str, Any]]] = {size: [] for size in CHUNK_SIZES[dataset]}
    start = time.monotonic()
    for rep in range(repetitions):
        rng = np.random.default_rng(10_000 + rep)
        if redraw:
            labels = (np.random.default_rng(20_000 + rep).random(n) < curve).astype(dtype)
            reference = reference.assign(**{spec["target"]: labels})
        order = rng.permutation(n)
        fit_rows, held_out = order[: n // 2], order[n // 2 :]
        est = estimator(spec, seed=rep).fit(reference.iloc[np.sort(fit_rows)])
        for size in CHUNK_SIZES[dataset]:
            chunk = reference.iloc[np.sort(rng.choice(held_out, size, replace=False))]
            results = est.estimate(chunk.drop(columns=[spec["target"]]))
            rows[size].append(_record(results, realised(spec, chunk)))
        if budget is not None and time.monotonic() - start > budget:
            log(f"  time budget reached after {rep + 1} repetitions")
            break
    return rows


def analysis_coverage(dataset: str) -> dict[int, list[dict[str, Any]]]:
    """Consecutive analysis chunks of every size, from one fit on the whole reference."""
    spec = DATASETS[dataset]
    reference = pd.read_parquet(EST_DATA / f"{dataset}_reference.parquet")
    analysis = pd.read_parquet(EST_DATA / f"{dataset}_analysis.parquet")
    est = estimator(spec, seed=0).fit(reference)
    out: dict[int, list[dict[str, Any]]] = {}
    for chunk_size in CHUNK_SIZES[dataset]:
        rows = []
        for start in range(0, len(analysis) - chunk_size + 1, chunk_size):
            chunk = analysis.iloc[start : start + chunk_size]
            results = est.estimate(chunk.drop(columns=[spec["target"]]))
            row = _record(results, realised(spec, chunk))
            row["_half"] = "first" if start + chunk_size <= len(analysis) // 2 else "second"
            rows.append(row)
        out[chunk_size] = rows
    return out


def clopper_pearson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    from scipy.stats import beta

    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def binomial_band(n: int, level: float = LEVEL) -> tuple[float, float]:
    """Shares of covered chunks that an exactly 95 % interval gives with probability 95 %."""
    from scipy.stats import binom

    a = (1 - level) / 2
    return float(binom.ppf(a, n, LEVEL)) / n, float(binom.ppf(1 - a, n, LEVEL)) / n


def summarise(rows: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    hits = [r[metric] for r in rows if metric in r and r[metric]["lower"] is not None]
    covered = sum(h["lower"] <= h["realised"] <= h["upper"] for h in hits)
    n = len(hits)
    band = binomial_band(n) if n else (float("nan"), float("nan"))
    return {
        "n": n,
        "covered": covered,
        "coverage": covered / n if n else float("nan"),
        "ci": clopper_pearson(covered, n) if n else (float("nan"), float("nan")),
        "band": band,
        "within_noise": bool(n and band[0] <= covered / n <= band[1]),
        "width": float(np.mean([h["upper"] - h["lower"] for h in hits])) if n else float("nan"),
        "flagged": sum(h["flagged"] for h in hits),
        # z = (realised - estimate) / sd, sd read off the interval's wider side (it is clipped
        # to the metric's range): mean 0 and sd 1 when the interval is right.
        "z": _z([(h["realised"] - h["value"]) / _sd(h) for h in hits]),
        "error": float(np.mean([abs(h["realised"] - h["value"]) for h in hits])) if n else 0.0,
    }


def _sd(h: dict[str, Any]) -> float:
    from scipy.stats import norm

    return max(h["upper"] - h["value"], h["value"] - h["lower"]) / float(norm.ppf(0.975))


def _z(z: list[float]) -> tuple[float, float]:
    values = np.asarray(z, dtype=np.float64)
    if values.size < 2:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1))


def run(
    quick: bool, budget: float | None = None, datasets: list[str] | None = None
) -> dict[str, Any]:
    ensure_data()
    out: dict[str, Any] = {"configs": []}
    for dataset in datasets or list(CHUNK_SIZES):
        reps = REPETITIONS[dataset] // (5 if quick else 1)
        log(f"{dataset}: up to {reps} cross-fitted repetitions ...")
        ref = reference_coverage(dataset, reps, budget)
        log("  analysis chunks ...")
        analysis = analysis_coverage(dataset)
        for chunk_size in CHUNK_SIZES[dataset]:
            ana = analysis[chunk_size]
            out["configs"].append(
                {
                    "dataset": dataset,
                    "chunk_size": chunk_size,
                    "reference": ref[chunk_size],
                    "analysis": ana,
                }
            )
        if DATASETS[dataset]["kind"] == "binary":
            log(f"{dataset}: up to {reps} repetitions with labels redrawn ...")
            redrawn = reference_coverage(dataset, reps, budget, redraw=True)
            for chunk_size in CHUNK_SIZES[dataset]:
                out["configs"].append(
                    {
                        "dataset": dataset,
                        "chunk_size": chunk_size,
                        "labels": "redrawn",
                        "reference": redrawn[chunk_size],
                        "analysis": [],
                    }
                )
    return out


def render(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "## Do the estimation intervals mean what they say?",
        "",
        f"Written by `benchmarks/estimation_coverage.py` on {results['date']} (watchkeeper at "
        f"commit {results['commit']}; {machine['cpu']}, {machine['usable_cpus']} CPUs). Coverage "
        "depends on data and seeds only, not on the machine's load.",
        "",
        "*Reference, cross-fitted*: each repetition splits the reference period at random in "
        "halves, fits on one and estimates one chunk drawn from the other, so the no-concept-"
        "drift and in-support assumptions hold. With the reference's own labels every "
        "repetition reuses the same sample, so the repetitions share what that one sample holds "
        "by chance (for CBPE, its departure from a monotone calibration curve, which the "
        "calibrator smooths away but the chunks, drawn from the same sample, keep): they measure "
        "the coverage given this reference, and part of a shift of their mean z is that shared "
        "component. *Labels redrawn* (CBPE): each repetition first draws every reference label "
        "afresh from the reference's calibration curve (isotonic, scikit-learn), a new reference "
        "from a process where the assumptions hold exactly, so the repetitions are independent "
        "and the 95 % is what the interval promises. *Binomial "
        "band*: the range of covered shares an exactly 95 % interval gives with probability "
        "95 % over that many independent chunks; *within noise* says whether the measured share "
        "lies in it. "
        "*Analysis*: the estimator fitted on the whole reference, consecutive chunks of the "
        "analysis period; the second half of both datasets has a concept shift (the chance of "
        "the outcome given the score or the features changes; see the notes of the estimation "
        "section), which no label-free check can see (once labels arrive, the monitor holds each "
        "estimate against them with `check_estimate_consistency`). *mean z*, *sd z*: of z = "
        "(realised - estimate) / sd over the reference chunks, sd read off the interval; 0 and 1 "
        "when the interval is right (standard errors about 1/sqrt(n) and 1/sqrt(2n)). *analysis "
        "error*: mean absolute difference between estimate and realised metric over all "
        "analysis chunks (the set-up of the section *Performance estimation without labels*, "
        "where NannyML's error stands beside it).",
        "",
    ]
    header = [
        "dataset, chunk", "metric", "reference chunks", "coverage (95 % CI)", "binomial band",
        "within noise", "mean z", "sd z", "mean width", "analysis 1st half",
        "analysis 2nd half", "analysis error", "analysis chunks flagged",
    ]  # fmt: skip
    body = []
    for config in results["configs"]:
        name = f"{config['dataset'].replace('_', ' ')}, {config['chunk_size']:,}"
        if config.get("labels") == "redrawn":
            name += ", labels redrawn"
        for metric in DATASETS[config["dataset"]]["metrics"]:
            ref = summarise(config["reference"], metric)
            halves = {
                h: summarise([r for r in config["analysis"] if r["_half"] == h], metric)
                for h in ("first", "second")
            }
            flagged = halves["first"]["flagged"] + halves["second"]["flagged"]
            analysis_error = summarise(config["analysis"], metric)["error"]
            total = halves["first"]["n"] + halves["second"]["n"]
            body.append(
                [
                    name, metric, ref["n"],
                    f"{ref['coverage']:.1%} ({ref['ci'][0]:.1%}–{ref['ci'][1]:.1%})",
                    f"{ref['band'][0]:.1%}–{ref['band'][1]:.1%}",
                    "yes" if ref["within_noise"] else "**no**",
                    f"{ref['z'][0]:+.2f}", f"{ref['z'][1]:.2f}",
                    f"{ref['width']:.4g}",
                    *(
                        [
                            f"{halves['first']['coverage']:.0%} of {halves['first']['n']}",
                            f"{halves['second']['coverage']:.0%} of {halves['second']['n']}",
                            f"{analysis_error:.4g}",
                            f"{flagged} of {total}",
                        ]
                        if total
                        else ["–"] * 4
                    ),
                ]
            )  # fmt: skip
    lines += [md_table(header, body), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the repetitions; print")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    parser.add_argument("--from-json", type=Path, nargs="+", help="re-render saved raw results")
    parser.add_argument("--budget-minutes", type=float, help="per dataset; stop repeating after")
    parser.add_argument("--dataset", choices=list(CHUNK_SIZES), action="append")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.from_json:
        # Several files (one per dataset, say) render as one table, configs in order.
        parts = [json.loads(p.read_text(encoding="utf-8")) for p in args.from_json]
        results = parts[0]
        for part in parts[1:]:
            results["configs"] += part["configs"]
        if len({p["commit"] for p in parts}) > 1:
            results["commit"] = ", ".join(
                f"{p['commit']} ({p['configs'][0]['dataset'].replace('_', ' ')})" for p in parts
            )
    else:
        from drift import _git_commit

        budget = None if args.budget_minutes is None else 60 * args.budget_minutes
        results = run(args.quick, budget, args.dataset)
        results.update(
            {
                "date": dt.date.today().isoformat(),
                "machine": machine_description(),
                "commit": _git_commit(),
            }
        )
        if not args.quick:
            raw = RAW_RESULTS
            if args.dataset:
                raw = raw.with_name(f"{raw.stem}_{'_'.join(args.dataset)}.json")
            raw.parent.mkdir(parents=True, exist_ok=True)
            raw.write_text(json.dumps(results, indent=1), encoding="utf-8")
    body = render(results)
    if args.quick or args.no_write:
        print(body)
    else:
        write_section("estimation-coverage", body)
        log("wrote the estimation-coverage section of BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
