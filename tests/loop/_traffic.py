"""A synthetic service for loop tests: traffic routed as the registry says, logged with
late labels, in event time. Requests are written straight into the prediction log (the
gateway's own tests cover HTTP); a canary assigns requests by a hash of their id, as a
sticky route does."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from watchkeeper.gateway import RouteStore
from watchkeeper.logstore import FeedbackRecord, PredictionRecord
from watchkeeper.registry import Registry

MODEL = "demand"
FEATURES = ["x1", "x2"]
T0 = 1_700_006_400.0  # 2023-11-15 00:00 UTC
DAY = 86_400.0
STEP = 600.0  # one request every ten minutes
SHIFT_AT = T0  # the concept changes at once: x2 now matters three times as much


def truth(x: np.ndarray, ts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    coef = np.where(ts < SHIFT_AT, 1.0, 3.0)
    return 2.0 * x[:, 0] + coef * x[:, 1] + rng.normal(0, 0.5, len(ts))


def reference_frame(seed: int = 0, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    ts = T0 - DAY * 30 + np.arange(n) * STEP
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "label": truth(x, ts, rng)})


def register_champion(registry: Registry) -> int:
    ref = reference_frame()
    model = LinearRegression().fit(ref[FEATURES], ref["label"])
    v = registry.register(MODEL, model, reference=ref[FEATURES], actor="test")
    registry.set_alias(MODEL, "champion", v.version, actor="test", reason="first")
    return v.version


class Traffic:
    """Serve ``[start, end)`` of event time as the stored route says."""

    def __init__(
        self,
        registry: Registry,
        sink: Any,
        *,
        seed: int = 1,
        label_lag_days: float = 1.0,
        challenger_bias: float = 0.0,
        challenger_error_rate: float = 0.0,
    ) -> None:
        self.registry = registry
        self.sink = sink
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.lag = label_lag_days * DAY
        self.bias = challenger_bias
        self.error_rate = challenger_error_rate
        self.routes = RouteStore(registry)
        self.models: dict[int, Any] = {}
        self.served = {"champion": 0, "challenger": 0}

    def _model(self, alias: str) -> tuple[int, Any]:
        v = self.registry.get_version(MODEL, alias).version
        if v not in self.models:
            self.models[v] = self.registry.load_model(MODEL, v)
        return v, self.models[v]

    def _draw(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Seeded by the period: a process that restarts serves the same requests again.
        self.rng = np.random.default_rng([self.seed, int(start)])
        ts = np.arange(start, end, STEP)
        x = self.rng.normal(size=(len(ts), 2))
        return ts, x, truth(x, ts, self.rng)

    def feedback(self, start: float, end: float) -> None:
        """(Re)send the labels of ``[start, end)`` (a restart after a partial write)."""
        ts, _, y = self._draw(start, end)
        self.sink.write_feedback(
            [
                FeedbackRecord(f"r{int(t)}", float(t + self.lag), float(y[i]))
                for i, t in enumerate(ts)
            ]
        )

    def serve(self, start: float, end: float) -> None:
        ts, x, y = self._draw(start, end)
        route = self.routes.get(MODEL)
        mode = "single" if route is None else route.mode
        frame = pd.DataFrame(x, columns=FEATURES)
        cv, champion = self._model("champion")
        pred = champion.predict(frame)
        ids = [f"r{int(t)}" for t in ts]
        arms = np.array(["champion"] * len(ts), dtype=object)
        records = []
        if mode in ("canary", "shadow"):
            hv, challenger = self._model("challenger")
            cpred = challenger.predict(frame) + self.bias
            errors = self.rng.uniform(size=len(ts)) < self.error_rate
        if mode == "canary":
            share = route.shares()["challenger"]
            u = np.array([_unit(i) for i in ids])
            arms = np.where(u < share, "challenger", "champion")
        for i, t in enumerate(ts):
            feats = {"x1": float(x[i, 0]), "x2": float(x[i, 1])}
            if arms[i] == "challenger":
                status = "error" if errors[i] else "ok"
                records.append(
                    PredictionRecord(
                        ids[i],
                        float(t),
                        MODEL,
                        hv,
                        "challenger",
                        feats,
                        None if errors[i] else float(cpred[i]),
                        status=status,
                        error="boom" if errors[i] else None,
                    )
                )
            else:
                records.append(
                    PredictionRecord(ids[i], float(t), MODEL, cv, "champion", feats, float(pred[i]))
                )
            self.served[arms[i]] += 1
            if mode == "shadow":
                status = "error" if errors[i] else "ok"
                records.append(
                    PredictionRecord(
                        ids[i],
                        float(t),
                        MODEL,
                        hv,
                        "challenger",
                        feats,
                        None if errors[i] else float(cpred[i]),
                        shadow=True,
                        status=status,
                        error="boom" if errors[i] else None,
                    )
                )
        self.sink.write_predictions(records)
        self.sink.write_feedback(
            [FeedbackRecord(ids[i], float(t + self.lag), float(y[i])) for i, t in enumerate(ts)]
        )


def _unit(key: str) -> float:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


GATE = {
    "generalisation": {
        "folds": 3,
        "learning_curve": False,
        "validation_curve": False,
        "early_stopping": False,
    },
    "robustness": {"enabled": False},
    "calibration": {"enabled": False},
}
