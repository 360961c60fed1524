"""Shapes of request and response bodies, for the OpenAPI document.

Handlers parse bodies themselves (to report every bad field in one response and to keep the
hot path free of per-request model building); these pydantic models only describe the
bodies so that the generated document is exact.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ERROR_RESPONSES",
    "ErrorBody",
    "FeedbackResponse",
    "ModelList",
    "ModelName",
    "PredictResponse",
    "VersionNumber",
    "feedback_request_schema",
    "predict_request_schema",
]

#: Model names as the registry allows them (it also refuses ``..``, answered with 404).
ModelName = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="Registered model name.",
    ),
]
VersionNumber = Annotated[
    str, Path(pattern=r"^[1-9][0-9]{0,9}$", description="Registry version number.")
]

_SCALAR: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "null"},
    ]
}


class Problem(BaseModel):
    """One bad field."""

    field: str = Field(description="Where: a field name, '[i].name' in a batch, 'header.x'.")
    problem: str = Field(description="What is wrong and what is expected.")


class ErrorBody(BaseModel):
    """Every error response."""

    error: str
    detail: list[Problem] = Field(default_factory=list)
    error_id: str | None = Field(default=None, description="For 500s: find it in the server log.")


class PredictResponse(BaseModel):
    """Predictions for the records of one request, in order."""

    model: str
    version: int = Field(description="Registry version that answered.")
    arm: str = Field(description="Route arm (alias) that answered.")
    ids: list[str] = Field(description="Prediction id of each record, for feedback.")
    predictions: list[Any]
    scores: list[dict[str, float | None]] | None = Field(
        description="Class probabilities per record (classifiers), else null."
    )
    outlier_scores: list[float] | None = Field(
        default=None,
        description="Outlier score per record (higher is more unlike the reference); only "
        "when the version answering was registered with an outlier detector.",
    )
    outliers: list[bool] | None = Field(
        default=None,
        description="Whether each record's outlier score is above the detector's calibrated "
        "threshold; present with outlier_scores.",
    )


class FeedbackResponse(BaseModel):
    """How many feedback records matched a logged prediction."""

    received: int
    matched: int
    unknown: int
    unknown_ids: list[str]


class ServedArm(BaseModel):
    """One alias of a route and the version it serves."""

    version: int
    format: str


class ServedModelInfo(BaseModel):
    """A served model and its route."""

    model_config = ConfigDict(extra="allow")

    name: str
    route: dict[str, Any]
    route_source: str
    arms: dict[str, ServedArm]
    problems: dict[str, str]


class ModelList(BaseModel):
    """Served models and models that cannot be served, with why."""

    models: list[ServedModelInfo]
    not_served: dict[str, str]


def predict_request_schema() -> dict[str, Any]:
    """OpenAPI request body of the v1 predict endpoint."""
    record = {
        "type": "object",
        "description": "One record: feature name to value; optional 'id' for the prediction id.",
        "additionalProperties": _SCALAR,
        "minProperties": 1,
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            record,
                            {"type": "array", "items": record, "minItems": 1},
                        ]
                    },
                    "examples": {
                        "one": {"value": {"temp": 0.3, "hour": 8, "workingday": True}},
                        "batch": {"value": [{"id": "a1", "temp": 0.3}, {"id": "a2", "temp": 0.7}]},
                    },
                }
            },
        }
    }


def feedback_request_schema() -> dict[str, Any]:
    """OpenAPI request body of the v1 feedback endpoint."""
    item = {
        "type": "object",
        "required": ["id"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 128},
            "label": {
                "description": "The ground truth (any JSON value; for a ranking model the "
                "relevant item ids, or an object item -> relevance >= 0)."
            },
            "flag": {"type": "boolean", "description": "Mark the prediction as bad."},
            "note": {"type": "string", "maxLength": 2000},
        },
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [item, {"type": "array", "items": item, "minItems": 1}]}
                }
            },
        }
    }


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": why}
    for code, why in (
        (400, "Malformed JSON."),
        (401, "Missing or unknown bearer token."),
        (403, "The token lacks the scope."),
        (404, "Unknown model or version."),
        (413, "Body or batch too large."),
        (422, "Invalid input: one entry per bad field."),
        (503, "Models still loading, an arm unavailable, or the log unavailable."),
    )
}
