"""One measurement of one tool on one file size, in a fresh interpreter (run by ``scale.py``).

Usage: ``python _scale_worker.py TOOL JSON_ARGS``. Prints one JSON line: wall time of the whole
job a user waits for (reading the data included: streaming tools read while they compute),
the process's own RSS high-water mark and the drifted columns found. ``scale.py`` samples the
RSS of the whole process tree as well (Spark runs a JVM and Python workers).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_bytes, rss_bytes


def _watchkeeper_profile(a: dict[str, Any]) -> dict[str, Any]:
    from watchkeeper.data import Profile

    p = Profile.from_parquet(a["current"])
    p.save(a["out"])
    return {"rows": p.n_rows, "flagged": []}


def _watchkeeper_compare(a: dict[str, Any]) -> dict[str, Any]:
    from watchkeeper import compare
    from watchkeeper.data import Profile

    report = compare(Profile.load(a["reference_profile"]), a["current"], stream=True)
    return {"rows": report.meta["n_current_rows"], "flagged": sorted(report.drifted_columns)}


def _spark_compare(a: dict[str, Any]) -> dict[str, Any]:
    from watchkeeper import compare
    from watchkeeper.data import Profile
    from watchkeeper.engines import spark as engine

    t0 = time.perf_counter()
    session = engine.local_session(cores=2)
    session.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter() - t0
    reference = Profile.load(a["reference_profile"])
    profile = engine.profile_parquet(a["current"], reference=reference, spark=session)
    report = compare(reference, profile)
    session.stop()
    return {
        "rows": profile.n_rows,
        "flagged": sorted(report.drifted_columns),
        "session_start_seconds": started,
    }


def _pandas(a: dict[str, Any]) -> tuple[Any, Any]:
    import pandas as pd

    return pd.read_parquet(a["reference"]), pd.read_parquet(a["current"])


def _evidently(a: dict[str, Any]) -> dict[str, Any]:
    from evidently import Report  # type: ignore[import-not-found]
    from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]

    ref, cur = _pandas(a)
    snapshot = Report([DataDriftPreset()], include_tests=True).run(cur, ref)
    flagged = [
        t["name"].removeprefix("Value Drift for column ")
        for t in snapshot.dict()["tests"]
        if t.get("name", "").startswith("Value Drift for column ") and t.get("status") == "FAIL"
    ]
    return {"rows": len(cur), "flagged": sorted(flagged)}


def _nannyml(a: dict[str, Any]) -> dict[str, Any]:
    import nannyml as nml  # type: ignore[import-not-found]

    ref, cur = _pandas(a)
    calc = nml.UnivariateDriftCalculator(column_names=list(ref.columns))
    calc.fit(ref)
    df = calc.calculate(cur).filter(period="analysis").to_df()
    flagged = []
    for col in ref.columns:
        alerts = [c for c in df.columns if c[0] == col and c[-1] == "alert"]
        if any(bool(df[c].fillna(False).astype(bool).any()) for c in alerts):
            flagged.append(col)
    return {"rows": len(cur), "flagged": flagged}


TOOLS = {
    "watchkeeper-profile": _watchkeeper_profile,
    "watchkeeper-compare": _watchkeeper_compare,
    "spark-compare": _spark_compare,
    "evidently": _evidently,
    "nannyml": _nannyml,
}


def main() -> None:
    tool, args = sys.argv[1], json.loads(sys.argv[2])
    base = rss_bytes()
    t0 = time.perf_counter()
    out = TOOLS[tool](args)
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_bytes"] = peak_rss_bytes()
    out["baseline_rss_bytes"] = base
    print(json.dumps(out))


if __name__ == "__main__":
    main()
