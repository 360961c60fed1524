"""Explanation benchmark: TreeSHAP on 10,000 rows of the demo model, end to end.

The demo model (``watchkeeper.demo._model.make_model``: one-hot weather + histogram gradient
boosting in a scikit-learn ``Pipeline``) is trained on January-March of the bundled bike-share
data as the demo does. ``watchkeeper.explain.Explainer`` explains it in its 9 input features
(TreeSHAP on the 12 transformed columns, one-hot attributions summed back). Timed, each
``--repeats`` times on one thread (BLAS/OpenMP limited to 1):

- ``fit`` of the explainer (background sample, pipeline mapping, shap's tree conversion);
- ``explain`` of 10,000 rows (the 8,645 hours of 2011 resampled with replacement, seeded),
  and of 1 and 100 rows (the gateway's default row limit);
- shap's ``TreeExplainer.shap_values`` alone on the same 10,000 transformed rows (what the
  wrapper adds: encoding, the pipeline's transform, predictions for the additivity check);
- the model-agnostic Permutation explainer on 100 rows, for contrast.

Writes its section of ``BENCHMARKS.md`` (``--quick``: 1,000 rows, one repeat, print only).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    REPO_DIR,
    machine_description,
    md_table,
    package_versions,
    run_benchmark,
)

RESULTS = REPO_DIR / "benchmarks" / "results" / "explain.json"


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def collect(quick: bool, repeats: int) -> dict[str, Any]:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from watchkeeper.datasets import BIKESHARE_FEATURES, load_bikeshare
    from watchkeeper.demo._model import make_model
    from watchkeeper.explain import Explainer
    from watchkeeper.explain._backends import load_shap

    n_rows = 1_000 if quick else 10_000
    features = list(BIKESHARE_FEATURES)
    data = load_bikeshare()
    train = data[data["month"].isin((1, 2, 3))]
    rng = np.random.default_rng(0)
    rows = data[features].iloc[rng.integers(0, len(data), size=n_rows)].reset_index(drop=True)
    shap = load_shap()
    out: dict[str, Any] = {"n_rows": n_rows, "repeats": repeats, "train_rows": len(train)}
    with threadpool_limits(1):
        model = make_model(features).fit(train[features], train["bikers"])
        fit_times, explainer = _timed(lambda: Explainer(model).fit(train[features]), repeats)
        out["fit_s"] = fit_times
        transformed = model[:-1].transform(rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = shap.TreeExplainer(model[-1], feature_perturbation="tree_path_dependent")

        def shap_chunks() -> None:
            for start in range(0, n_rows, 2_000):
                tree.shap_values(transformed[start : start + 2_000], check_additivity=False)

        # Round robin, so that load from other work on the machine hits all three alike.
        out["explain_s"], out["shap_alone_s"], out["shap_chunks_s"] = [], [], []
        for _ in range(repeats):
            seconds, e = _timed(lambda: explainer.explain(rows), 1)
            out["explain_s"] += seconds
            out["shap_alone_s"] += _timed(
                lambda: tree.shap_values(transformed, check_additivity=False), 1
            )[0]
            out["shap_chunks_s"] += _timed(shap_chunks, 1)[0]
        out["method"], out["details"] = e.method, dict(e.details)
        out["additivity_error"] = e.additivity_error
        out["top_features"] = [
            [name, float(v)]
            for name, v in sorted(zip(e.feature_names, e.mean_abs(), strict=True),
                                  key=lambda t: -t[1])[:5]
        ]  # fmt: skip
        one = rows.iloc[:1]
        out["explain_1_s"] = _timed(lambda: explainer.explain(one), max(20, repeats))[0]
        hundred = rows.iloc[:100]
        out["explain_100_s"] = _timed(lambda: explainer.explain(hundred), repeats * 3)[0]
        sampled = Explainer(model, method="permutation").fit(train[features])
        perm_rows = rows.iloc[:20]
        out["permutation_rows"] = len(perm_rows)
        out["permutation_s"] = _timed(lambda: sampled.explain(perm_rows), 1)[0]
    out["machine"] = machine_description()
    out["versions"] = package_versions(
        sys.executable, ["numpy", "scikit-learn", "shap", "pandas", "watchkeeper"]
    )
    return out


def _s(values: Sequence[float]) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.3g}"
    return f"{med:.3g} ({min(values):.3g}–{max(values):.3g})"


def _ms(values: Sequence[float]) -> str:
    return _s([1000 * v for v in values])


def render(r: dict[str, Any]) -> str:
    n = r["n_rows"]
    per_row = 1e6 * statistics.median(r["explain_s"]) / n
    rows = [
        ["`Explainer(model).fit(train)`", "—", _s(r["fit_s"]), "s"],
        [f"`explain` {n:,} rows (TreeSHAP, input features)", f"{n:,}", _s(r["explain_s"]), "s"],
        [f"shap `TreeExplainer.shap_values` alone, {n:,} transformed rows, one call",
         f"{n:,}", _s(r["shap_alone_s"]), "s"],
        ["the same in calls of 2,000 rows (as `explain` does)", f"{n:,}",
         _s(r["shap_chunks_s"]), "s"],
        ["`explain` 1 row", "1", _ms(r["explain_1_s"]), "ms"],
        ["`explain` 100 rows (gateway default limit)", "100", _ms(r["explain_100_s"]), "ms"],
        [f"Permutation explainer, {r['permutation_rows']} rows (contrast)",
         str(r["permutation_rows"]), _s(r["permutation_s"]), "s"],
    ]  # fmt: skip
    machine = r["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
    top = ", ".join(f"{name} {value:.1f}" for name, value in r["top_features"])
    gap = statistics.median(r["explain_s"]) - statistics.median(r["shap_chunks_s"])
    overhead = f"{gap:+.2g} s over the chunked shap calls (medians; the spread between runs on this shared machine is of the same order)"
    return f"""## Explanations: TreeSHAP on the demo model

**What is timed** (`benchmarks/explain.py`): the demo's demand model (one-hot weather +
`HistGradientBoostingRegressor(max_iter=200)` in a scikit-learn `Pipeline`, trained on
January–March, {r["train_rows"]:,} rows) explained by `watchkeeper.explain.Explainer` in its 9
input features: path-dependent TreeSHAP on the {r["details"].get("transformed_features")}
transformed columns, the one-hot attributions summed back into `weathersit`. Rows: the 8,645
hours of 2011 resampled with replacement to {n:,} (seeded). One thread (BLAS/OpenMP limited to
1); median of {r["repeats"]} runs (range in brackets).

{md_table(["step", "rows", "time", "unit"], rows)}

{n:,} rows take {per_row:.0f} µs per row end to end; additivity holds to
{r["additivity_error"]:.1e} (attributions + expected value = prediction). Largest mean
|attribution| (bikers per hour): {top}. `explain` adds to shap's own TreeSHAP calls the
pipeline's transform of the rows, the model's predictions (kept for the additivity check) and
the encoding of the input frame: {overhead}. The Permutation explainer, which
`method="auto"` only uses when no exact algorithm applies, is orders of magnitude slower per
row: it evaluates the model on hundreds of masked copies of each row.

- machine: {machine["cpu"]}, {machine["usable_cpus"]} usable of {machine["logical_cpus"]} logical
  CPUs, {machine["ram_gib"]} GiB, {machine["os"]}; shared with other work while measured
- {versions}
"""


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(
        argv,
        description=__doc__.split("\n\n")[0],
        section="explain",
        results=RESULTS,
        collect=collect,
        render=render,
        default_repeats=5,
        repeats_help="runs per measurement",
    )


if __name__ == "__main__":
    raise SystemExit(main())
