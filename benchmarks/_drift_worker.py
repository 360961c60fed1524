"""One measurement of one tool on one case, in a fresh interpreter (run by ``drift.py``).

Usage: ``python _drift_worker.py TOOL CASE_JSON PAIR``. Prints one JSON line with the wall
time of the step a user waits for, the memory probes and the tool's verdicts.

Phases, in this order, so that only the tool's own work is timed and charged:

1. import the tool and run it once on the first 2,000 rows (timed, reported, not counted), so
   that lazily loaded modules are in place before anything is measured;
2. ``baseline`` = RSS now (interpreter + libraries, no data);
3. read the Parquet file(s) into pandas (timed, reported, excluded for every tool);
4. reset the RSS high-water mark, run the timed step, read the high-water mark again.

``memory above baseline`` = that high-water mark minus ``baseline``: the input frames the tool
holds plus everything it allocates while it runs.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Scripts run as files, not as a package: make the sibling helper modules importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    peak_rss_bytes,
    release_arrow_pool,
    reset_peak_rss,
    rss_bytes,
    timed,
)

ALPHA = 0.05  # the per-column level of the hand-written scipy loop
WARMUP_ROWS = 2_000


def _read(path: str) -> Any:
    import pandas as pd

    df = pd.read_parquet(path)
    release_arrow_pool()
    return df


def _frame_bytes(*frames: Any) -> int:
    return int(sum(int(df.memory_usage(index=True, deep=True).sum()) for df in frames))


# ---------------------------------------------------------------------------------------------
# Tools. Each returns (step, extract): `step` is timed; `extract(out)` turns its output into
# verdicts afterwards, untimed.
# ---------------------------------------------------------------------------------------------


def _import_tool(tool: str) -> None:
    if tool.startswith("watchkeeper"):
        import watchkeeper  # noqa: F401
        from watchkeeper import Profile, compare  # noqa: F401 - resolve the lazy names now
    elif tool.startswith("evidently"):
        from evidently import Report  # type: ignore[import-not-found]  # noqa: F401
        from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]  # noqa: F401
    elif tool == "nannyml":
        import nannyml  # type: ignore[import-not-found]  # noqa: F401
    elif tool == "scipy":
        import scipy.stats  # noqa: F401
    else:
        raise SystemExit(f"unknown tool {tool!r}")
    # Every tool gets pandas frames read by pyarrow: their import (and pyarrow's lazily loaded
    # Parquet and pandas-conversion modules) belongs to the baseline, not to any tool.
    import pandas  # noqa: F401
    import pyarrow.pandas_compat
    import pyarrow.parquet  # noqa: F401


def _watchkeeper_profile(
    files: dict[str, Any], frames: dict[str, Any]
) -> tuple[Callable[[], Any], Callable[[Any], dict[str, Any]]]:
    from watchkeeper import Profile

    ref = frames["reference"]

    def step() -> Any:
        return Profile.from_data(ref)

    def extract(profile: Any) -> dict[str, Any]:
        save_s, _ = timed(lambda: profile.save(files["profile"]))
        return {
            "details": {
                "save_seconds": save_s,
                "profile_bytes": Path(files["profile"]).stat().st_size,
            }
        }

    return step, extract


def _watchkeeper_report(report: Any) -> dict[str, Any]:
    meta = dict(getattr(report, "meta", {}) or {})
    return {
        "flagged": sorted(report.drifted_columns),
        "dataset_drift": bool(report.drifted),
        "details": {"timings_seconds": meta.get("timings_seconds", {})},
    }


def _watchkeeper(
    files: dict[str, Any], frames: dict[str, Any]
) -> tuple[Callable[[], Any], Callable[[Any], dict[str, Any]]]:
    from watchkeeper import Profile, compare

    cur = frames["current"]

    def step() -> Any:
        # Loading the saved profile is part of what a monitoring job waits for.
        return compare(Profile.load(files["profile"]), cur)

    return step, _watchkeeper_report


def _watchkeeper_raw(
    files: dict[str, Any], frames: dict[str, Any]
) -> tuple[Callable[[], Any], Callable[[Any], dict[str, Any]]]:
    from watchkeeper import compare

    ref, cur = frames["reference"], frames["current"]
    return (lambda: compare(ref, cur)), _watchkeeper_report


def _evidently(num_method: str | None) -> Callable[..., Any]:
    def make(
        files: dict[str, Any], frames: dict[str, Any]
    ) -> tuple[Callable[[], Any], Callable[[Any], dict[str, Any]]]:
        from evidently import Report
        from evidently.presets import DataDriftPreset

        ref, cur = frames["reference"], frames["current"]
        preset = DataDriftPreset() if num_method is None else DataDriftPreset(num_method=num_method)
        # include_tests makes the snapshot carry Evidently's own per-column verdicts; the tests
        # are read off the drift results already computed, so they add no statistical work.
        report = Report([preset], include_tests=True)

        def step() -> Any:
            return report.run(cur, ref)

        def extract(snapshot: Any) -> dict[str, Any]:
            d = snapshot.dict()
            flagged = []
            for test in d["tests"]:
                name = test.get("name", "")
                if name.startswith("Value Drift for column ") and test.get("status") == "FAIL":
                    flagged.append(name.removeprefix("Value Drift for column "))
            methods: dict[str, str] = {}
            share = float("nan")
            for m in d["metrics"]:
                cfg = m.get("config", {})
                if cfg.get("type", "").endswith("ValueDrift"):
                    methods[cfg["column"]] = (
                        f"{cfg.get('method')} (threshold {cfg.get('threshold')})"
                    )
                elif cfg.get("type", "").endswith("DriftedColumnsCount"):
                    share = float(m["value"]["share"])
            return {
                "flagged": sorted(flagged),
                "dataset_drift": bool(share >= 0.5),
                "details": {"methods": sorted(set(methods.values())), "drifted_share": share},
            }

        return step, extract

    return make


def _nannyml(
    files: dict[str, Any], frames: dict[str, Any]
) -> tuple[Callable[[], Any], Callable[[Any], dict[str, Any]]]:
    import nannyml as nml

    ref, cur = frames["reference"], frames["current"]
    columns = list(files["numeric_columns"]) + list(files["categorical_columns"])
    # Defaults: Jensen-Shannon for both kinds, about 10 chunks, thresholds at 3 standard
    # deviations of the reference chunks' statistic.
    calc = nml.UnivariateDriftCalculator(column_names=columns)
    fit_seconds: list[float] = []

    def step() -> Any:
        # fit is reported apart (like watchkeeper's profile build); calculate is the step.
        fit_s, _ = timed(lambda: calc.fit(ref))
        fit_seconds.append(fit_s)
        calc_s, result = timed(lambda: calc.calculate(cur))
        return calc_s, result

    def extract(out: Any) -> dict[str, Any]:
        calc_s, result = out
        df = result.filter(period="analysis").to_df()
        flagged = []
        for col in columns:
            alerts = [c for c in df.columns if c[0] == col and c[-1] == "alert"]
            if any(bool(df[c].fillna(False).astype(bool).any()) for c in alerts):
                flagged.append(col)
        return {
            "flagged": sorted(flagged),
            "dataset_drift": bool(flagged),
            "seconds_override": calc_s,
            "fit_seconds": fit_seconds[-1],
            "details": {"methods": ["jensen_shannon (default)"], "chunks": len(df)},
        }

    return step, extract


def _scipy(
    files: dict[str, Any], frames: dict[str, Any]
) -> tuple[Callable[[], Any], Callable[[Any], dict[str, Any]]]:
    import numpy as np
    import pandas as pd
    from scipy import stats

    ref, cur = frames["reference"], frames["current"]
    numeric, categorical = list(files["numeric_columns"]), list(files["categorical_columns"])

    def step() -> Any:
        # What a hand-written loop does: one two-sample test per column at 0.05, no
        # multiple-testing correction, no effect-size floor.
        pvalues: dict[str, float] = {}
        for col in numeric:
            pvalues[col] = float(stats.ks_2samp(ref[col].to_numpy(), cur[col].to_numpy()).pvalue)
        for col in categorical:
            counts = pd.concat(
                [ref[col].value_counts(sort=False), cur[col].value_counts(sort=False)], axis=1
            ).fillna(0)
            table = counts.to_numpy(dtype=np.float64).T
            table = table[:, table.sum(axis=0) > 0]
            pvalues[col] = float(stats.chi2_contingency(table).pvalue)
        return pvalues

    def extract(pvalues: dict[str, float]) -> dict[str, Any]:
        flagged = sorted(c for c, p in pvalues.items() if p < ALPHA)
        return {
            "flagged": flagged,
            "dataset_drift": bool(flagged),
            "details": {
                "methods": ["ks_2samp (numeric)", "chi2_contingency (categorical)"],
                "alpha": ALPHA,
            },
        }

    return step, extract


TOOLS: dict[str, Callable[..., Any]] = {
    "watchkeeper-profile": _watchkeeper_profile,
    "watchkeeper": _watchkeeper,
    "watchkeeper-raw": _watchkeeper_raw,
    "evidently-default": _evidently(None),
    "evidently-ks": _evidently("ks"),
    "nannyml": _nannyml,
    "scipy": _scipy,
}

# Which frames each tool is handed (and charged for in the memory ratio).
NEEDS = {
    "watchkeeper-profile": ("reference",),
    "watchkeeper": ("current",),
}


def _head(path: str, rows: int) -> Any:
    import pyarrow.parquet as pq

    batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows))
    return batch.to_pandas()


def _warm_up(tool: str, files: dict[str, Any], paths: dict[str, str]) -> None:
    """Run the tool once on the first WARMUP_ROWS rows, untimed, before the baseline.

    Every tool loads parts of itself on first use (watchkeeper's lazy scipy/scikit-learn
    imports, Evidently's metric and widget modules, NannyML's methods). That one-off cost is
    the same whatever the data size, so it is kept out of every tool's time and memory alike;
    its wall time is still reported as ``warmup_seconds``.
    """
    frames = {k: _head(p, WARMUP_ROWS) for k, p in paths.items()}
    step, _ = TOOLS[tool](files, frames)
    step()


def main(argv: list[str]) -> None:
    tool, files_json, pair = argv
    files = json.loads(files_json)

    import_s, _ = timed(lambda: _import_tool(tool))
    needs = NEEDS.get(tool, ("reference", "current"))
    paths = {"reference": files["reference"], "current": files["current"][pair]}
    warmup_s, _ = timed(lambda: _warm_up(tool, files, {k: paths[k] for k in needs}))
    gc.collect()
    release_arrow_pool()
    baseline = rss_bytes()

    read_s, frames = timed(lambda: {k: _read(paths[k]) for k in needs})
    input_bytes = _frame_bytes(*frames.values())
    step, extract = TOOLS[tool](files, frames)

    load_peak = peak_rss_bytes()
    before = rss_bytes()
    peak_reset = reset_peak_rss()
    seconds, out = timed(step)
    call_peak = peak_rss_bytes()

    verdict = extract(out)
    seconds = float(verdict.pop("seconds_override", seconds))
    result = {
        "tool": tool,
        "case": files["case"],
        "pair": pair,
        "rows": files["rows"],
        "seconds": seconds,
        "import_seconds": import_s,
        "warmup_seconds": warmup_s,
        "read_seconds": read_s,
        "input_bytes": input_bytes,
        "baseline_rss": baseline,
        "rss_before_step": before,
        "step_peak_rss": call_peak,
        "process_peak_rss": max(load_peak, call_peak),
        "peak_reset": peak_reset,
        "flagged": [],
        "dataset_drift": None,
        **verdict,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
