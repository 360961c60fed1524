"""Baseline (a) of ``serving.py``: a bare FastAPI endpoint that calls ``predict_proba``.

No validation beyond what a JSON parse gives, no logging, no metrics: the floor every serving
layer is compared with. It accepts the same body as watchkeeper's ``/v1`` predict endpoint and
answers with the same information (label and class probabilities per record), so the two are
timed on identical requests.

Configured through the environment (set by ``serving.py``): ``WK_BENCH_MODEL`` (a joblib file)
and ``WK_BENCH_FEATURES`` (comma-separated column order). Run with
``uvicorn _serving_baseline:app --no-access-log``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import joblib
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

FEATURES = os.environ["WK_BENCH_FEATURES"].split(",")
MODEL = joblib.load(os.environ["WK_BENCH_MODEL"])
CLASSES = [c.item() if hasattr(c, "item") else c for c in MODEL.classes_]

app = FastAPI()


def _records(body: Any) -> list[dict[str, Any]]:
    # watchkeeper's /v1 shape: one record is a JSON object, a batch a list of them.
    return [body] if isinstance(body, dict) else body


@app.post("/predict")
async def predict(request: Request) -> JSONResponse:
    records = _records(json.loads(await request.body()))
    X = np.array([[r[f] for f in FEATURES] for r in records], dtype=np.float64)
    proba = MODEL.predict_proba(X)
    labels = [CLASSES[i] for i in proba.argmax(axis=1)]
    return JSONResponse({"predictions": labels, "probabilities": proba.tolist()})


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}
