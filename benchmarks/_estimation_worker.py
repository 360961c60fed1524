"""One run of one performance estimator on one NannyML dataset (run by ``estimation.py``).

Usage:

- ``python _estimation_worker.py export DATA_DIR`` (peers venv): write NannyML's bundled car
  loan and car price datasets as Parquet (reference; analysis with its targets joined).
- ``python _estimation_worker.py TOOL DATASET CHUNK_SIZE DATA_DIR``: TOOL is ``nannyml`` or
  ``watchkeeper``. Prints one JSON line: fit and estimate wall times and, per chunk and
  metric, the estimate with its interval.

Phases: import the tool and run it once on the first 2,000 rows (warm-up, not timed), read
the Parquet files (not timed), then time ``fit(reference)`` and the estimate over every chunk
of the analysis period. Targets are dropped from the analysis frame before either tool sees it.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import timed

DATASETS: dict[str, dict[str, Any]] = {
    "car_loan": {
        "kind": "binary",
        "loader": "load_synthetic_car_loan_dataset",
        "target": "repaid",
        "score": "y_pred_proba",
        "prediction": "y_pred",
        "features": [
            "car_value", "salary_range", "debt_to_income_ratio", "loan_length",
            "repaid_loan_on_prev_car", "size_of_downpayment", "driver_tenure",
        ],
        "metrics": ["roc_auc", "accuracy", "precision", "recall", "f1"],
    },
    "car_price": {
        "kind": "regression",
        "loader": "load_synthetic_car_price_dataset",
        "target": "y_true",
        "prediction": "y_pred",
        "features": [
            "car_age", "km_driven", "price_new", "accident_count", "door_count", "fuel",
            "transmission",
        ],
        "metrics": ["mae", "rmse"],
    },
}  # fmt: skip
WARMUP_ROWS = 2_000


def export(data_dir: Path) -> None:
    import nannyml

    data_dir.mkdir(parents=True, exist_ok=True)
    for name, spec in DATASETS.items():
        reference, analysis, targets = getattr(nannyml, spec["loader"])()
        analysis = analysis.merge(targets, on="id", how="left")
        reference.to_parquet(data_dir / f"{name}_reference.parquet", index=False)
        analysis.to_parquet(data_dir / f"{name}_analysis.parquet", index=False)
    print(json.dumps({"exported": sorted(DATASETS)}))


def _nannyml(spec: dict[str, Any], chunk_size: int) -> tuple[Any, Any]:
    import nannyml

    if spec["kind"] == "binary":
        est = nannyml.CBPE(
            y_pred_proba=spec["score"], y_pred=spec["prediction"], y_true=spec["target"],
            metrics=spec["metrics"], chunk_size=chunk_size, problem_type="classification_binary",
        )  # fmt: skip
    else:
        est = nannyml.DLE(
            feature_column_names=spec["features"], y_pred=spec["prediction"],
            y_true=spec["target"], metrics=spec["metrics"], chunk_size=chunk_size,
        )  # fmt: skip

    def extract(result: Any) -> list[dict[str, list[float]]]:
        df = result.filter(period="analysis").to_df()
        chunks = []
        for _, row in df.iterrows():
            chunk = {}
            for m in spec["metrics"]:
                value, se = float(row[(m, "value")]), float(row[(m, "sampling_error")])
                lower = float(row[(m, "lower_confidence_boundary")])
                upper = float(row[(m, "upper_confidence_boundary")])
                chunk[m] = [value, lower, upper, se]
            chunks.append(chunk)
        return chunks

    return est, extract


def _watchkeeper(spec: dict[str, Any], chunk_size: int) -> tuple[Any, Any]:
    from watchkeeper.checks import CBPE, DLE

    if spec["kind"] == "binary":
        est: Any = CBPE(
            spec["metrics"], score=spec["score"], prediction=spec["prediction"],
            target=spec["target"], features=spec["features"], chunk_size=chunk_size,
        )  # fmt: skip
    else:
        est = DLE(
            spec["metrics"], prediction=spec["prediction"], target=spec["target"],
            features=spec["features"], chunk_size=chunk_size,
        )  # fmt: skip

    def extract(chunks: Any) -> list[dict[str, list[float]]]:
        out = []
        for chunk in chunks:
            found = {}
            for r in chunk.results:
                found[r.check.removeprefix("estimated.")] = [r.value, r.lower, r.upper, None]
            out.append(found)
        return out

    return est, extract


def run(tool: str, dataset: str, chunk_size: int, data_dir: Path) -> dict[str, Any]:
    import pandas as pd

    spec = DATASETS[dataset]
    make = {"nannyml": _nannyml, "watchkeeper": _watchkeeper}[tool]
    reference = pd.read_parquet(data_dir / f"{dataset}_reference.parquet")
    analysis = pd.read_parquet(data_dir / f"{dataset}_analysis.parquet")
    analysis = analysis.drop(columns=[spec["target"]])

    def estimate(est: Any, frame: Any) -> Any:
        return est.estimate(frame) if tool == "nannyml" else est.estimate_chunks(frame)

    # Warm-up on a small slice: lazily imported modules count for no one.
    warm, _ = make(spec, 500)
    warm.fit(reference.iloc[:WARMUP_ROWS])
    estimate(warm, analysis.iloc[:WARMUP_ROWS])

    est, extract = make(spec, chunk_size)
    fit_seconds, _ = timed(lambda: est.fit(reference))
    estimate_seconds, result = timed(lambda: estimate(est, analysis))
    return {
        "tool": tool,
        "dataset": dataset,
        "chunk_size": chunk_size,
        "fit_seconds": fit_seconds,
        "estimate_seconds": estimate_seconds,
        "chunks": extract(result),
    }


def main(argv: list[str]) -> None:
    warnings.simplefilter("ignore")
    if argv[0] == "export":
        export(Path(argv[1]))
        return
    tool, dataset, chunk_size, data_dir = argv
    print(json.dumps(run(tool, dataset, int(chunk_size), Path(data_dir))))


if __name__ == "__main__":
    main(sys.argv[1:])
