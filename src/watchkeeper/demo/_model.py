"""Demo steps: train, gate and register the demand model; retrain, gate and promote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["loop_train", "make_model", "register_bad_challenger", "register_champion"]

MODEL_NAME = "bikeshare-demand"


def make_model(features: list[str]) -> Any:
    """Gradient-boosted trees on the weather and calendar features (weather as one-hot)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical = ["weathersit"]
    numeric = [f for f in features if f not in categorical]
    encode = ColumnTransformer(
        [
            ("weather", OneHotEncoder(handle_unknown="ignore"), categorical),
            ("numbers", "passthrough", numeric),
        ]
    )
    model = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.08, random_state=0)
    return Pipeline([("encode", encode), ("model", model)])


def loop_train(frame: Any, previous: Any, context: Any) -> Any:
    """The demo's training entry point for the loop (``training.entry_point`` in
    ``loop.toml``): the same gradient-boosted pipeline, fit on the frame the loop built."""
    del previous  # a fresh model each time, not a warm start
    features = list(context.features)
    return make_model(features).fit(frame[features], frame[context.target])


def register_bad_challenger(registry: Any, train: Any, features: list[str]) -> Any:
    """A deliberately bad challenger: the same model trained on bikers per ten minutes
    instead of per hour (a unit bug that offline checks on the wrong target would miss)."""
    model = make_model(features).fit(train[features], train["bikers"] / 6.0)
    return registry.register(
        MODEL_NAME,
        model,
        reference=train[[*features, "bikers"]],
        schema=reference_schema(train[[*features, "bikers"]]),
        tags={"data": "capital-bikeshare-2011", "note": "deliberately bad: target in 10-min units"},
        description="A deliberately bad challenger for the canary demonstration.",
        actor="demo",
    )


def reference_schema(frame: Any) -> Any:
    """The reference's schema with ``bikers`` declared as the target (the log holds it as
    the label; monitoring compares the features and judges performance on the labels)."""
    from watchkeeper.data import Schema

    return Schema.infer(frame).with_roles({"bikers": "target"})


def _gate_config() -> Any:
    from watchkeeper.lifecycle import GateConfig

    # Defaults everywhere but the sizes, kept small so the demo runs in seconds, and one
    # probe: the one-hot encoder treats a wrongly typed weather value as unknown weather
    # instead of refusing it. Type errors are refused earlier, by schema validation of the
    # input, so the model itself may either answer or refuse.
    return GateConfig.from_dict(
        {
            # Three learning-curve points and three values of the regularisation parameter
            # (instead of five and the default grid): the same checks, half the fits.
            "generalisation": {
                "folds": 4,
                "train_sizes": [0.25, 0.5, 1.0],
                "param": "model__l2_regularization",
                "param_range": [0.0, 1.0, 10.0],
            },
            "robustness": {"large_batch_rows": 20_000, "wrong_type": "either"},
            # SHAP importance with its noise floor and a surrogate tree in every gate report.
            "extra_checks": {"explanations": {"max_rows": 300, "backgrounds": 3}},
            # Budgets for a laptop shared with other work; set yours from your SLO.
            "serving": {
                "batch_sizes": [1, 100, 10_000],
                "repeats": 5,
                "p50_budget_ms": {"1": 100, "100": 250, "10000": 3000},
                "p99_budget_ms": {"1": 500, "100": 1000, "10000": 6000},
            },
        }
    )


def register_champion(
    data: Any, features: list[str], months: tuple[int, ...], out: Path, say: Any
) -> tuple[Any, Any, Any]:
    """Train on ``months``, run the validation gate, register, point ``champion`` at it."""
    from watchkeeper.lifecycle import validate
    from watchkeeper.registry import Registry

    train = data[data["month"].isin(months)]
    columns = ["timestamp", *features, "bikers"]
    model = make_model(features)
    report = validate(
        model,
        train[columns],
        target="bikers",
        timestamp="timestamp",
        config=_gate_config(),
        name=f"{MODEL_NAME} (trained on months {months[0]}-{months[-1]})",
    )
    report.to_json(out / "gate-v1.json")
    report.to_html(out / "gate-v1.html")
    _say_gate(report, say)
    registry = Registry(root=out / ".watchkeeper")
    model.fit(train[features], train["bikers"])
    version = registry.register(
        MODEL_NAME,
        model,
        reference=train[[*features, "bikers"]],
        schema=reference_schema(train[[*features, "bikers"]]),
        metrics=_gate_metrics(report),
        params={"max_iter": 200, "learning_rate": 0.08},
        tags={"data": "capital-bikeshare-2011", "months": f"{months[0]}-{months[-1]}"},
        description="Hourly bike demand from weather and calendar features.",
        training_data=train[[*features, "bikers"]],
        actor="demo",
    )
    if report.passed:
        registry.set_alias(MODEL_NAME, "champion", version.version, actor="demo",
                           reason="passed the validation gate")  # fmt: skip
    say(
        f"registered {MODEL_NAME} v{version.version} (sha256 {version.artifact_sha256[:12]}…), "
        f"gate {'PASSED' if report.passed else 'FAILED'} -> "
        + ("alias champion" if report.passed else "not promoted")
    )
    return registry, version, report


def _say_gate(report: Any, say: Any) -> None:
    """The gate's verdict and the evidence behind it, from the report itself."""
    say(report.summary().splitlines()[0])
    shown = ("gate.cv", "gate.overfitting", "gate.comparison")
    for r in report.results:
        if r.check in shown or r.status.value in ("warn", "alert", "error"):
            say(f"  {r.status.value:>5}  {r.check.removeprefix('gate.')}: {r.reason}", markup=False)


def _gate_metrics(report: Any) -> dict[str, float]:
    """Cross-validated means from the gate report, as the version's training metrics."""
    out: dict[str, float] = {}
    for r in report.results:
        if r.check.startswith("gate.cv") and r.value is not None:
            out[f"{r.check.removeprefix('gate.')}.{r.subject}"] = float(r.value)
    return out
