"""Options shared by several commands, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["MlflowExperiment", "MlflowRun", "MlflowTrackingUri"]

MlflowRun = Annotated[
    str | None,
    typer.Option(
        "--mlflow-run", metavar="RUN_ID", help="Log the report to this existing MLflow run."
    ),
]
MlflowExperiment = Annotated[
    str | None,
    typer.Option(
        "--mlflow-experiment",
        metavar="NAME",
        help="Log the report to a new run in this MLflow experiment (created if missing).",
    ),
]
MlflowTrackingUri = Annotated[
    str | None,
    typer.Option(
        "--mlflow-tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI); alone, logs to a new run "
        "in the default experiment.",
    ),
]
