"""Errors the gateway answers with: an HTTP status and one entry per bad field.

Every 4xx and 5xx body has the same shape, ``{"error": ..., "detail": [{"field": ...,
"problem": ...}]}``, so clients parse one format and learn what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper.exceptions import InputError

__all__ = ["MAX_PROBLEMS", "ApiError", "FieldProblem", "first_line"]

#: Most problems listed in one response; the rest are counted.
MAX_PROBLEMS = 100


@dataclass(frozen=True)
class FieldProblem:
    """What is wrong with one field of a request."""

    field: str
    problem: str

    def to_dict(self) -> dict[str, str]:
        """``{"field": ..., "problem": ...}``, the shape of every ``detail`` entry."""
        return {"field": self.field, "problem": self.problem}


class ApiError(InputError):
    """A request the gateway refuses, with its HTTP status and what was wrong.

    Examples
    --------
    >>> err = ApiError("invalid input", [FieldProblem("age", "expected a number")])
    >>> err.status, err.to_dict()["detail"]
    (422, [{'field': 'age', 'problem': 'expected a number'}])
    """

    def __init__(
        self,
        error: str,
        problems: Sequence[FieldProblem] = (),
        *,
        status: int = 422,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.problems = tuple(problems)
        self.status = status
        self.headers = dict(headers or {})

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        detail = [p.to_dict() for p in self.problems[:MAX_PROBLEMS]]
        if len(self.problems) > MAX_PROBLEMS:
            detail.append(
                {"field": "", "problem": f"... and {len(self.problems) - MAX_PROBLEMS} more"}
            )
        return {"error": self.error, "detail": detail}


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 500 characters; its type if empty).

    Examples
    --------
    >>> first_line(ValueError("bad input\\nat line 3"))
    'bad input'
    """
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:500]
