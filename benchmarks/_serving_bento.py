"""BentoML peer of ``serving.py``: the benchmark model as a BentoML 1.4 service.

Runs in ``benchmarks/.venv-serving-peers``. The body is BentoML's JSON form of the API's
arguments, ``{"records": [{feature: value, ...}, ...]}``; the answer carries the label and
class probabilities of every record, like the other servers'. Configured through the
environment (set by ``serving.py``): ``WK_BENCH_MODEL``, ``WK_BENCH_FEATURES`` and
``WK_BENCH_WORKERS``. Run with ``bentoml serve _serving_bento:BusyHour``.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import joblib
import numpy as np

FEATURES = os.environ["WK_BENCH_FEATURES"].split(",")


@bentoml.service(workers=int(os.environ.get("WK_BENCH_WORKERS", "1")))
class BusyHour:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["WK_BENCH_MODEL"])
        self.classes = [c.item() if hasattr(c, "item") else c for c in self.model.classes_]

    @bentoml.api
    def predict(self, records: list[dict[str, float]]) -> dict[str, Any]:
        X = np.array([[r[f] for f in FEATURES] for r in records], dtype=np.float64)
        proba = self.model.predict_proba(X)
        labels = [self.classes[i] for i in proba.argmax(axis=1)]
        return {"predictions": labels, "probabilities": proba.tolist()}
