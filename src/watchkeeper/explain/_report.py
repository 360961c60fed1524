"""One explanation report: global importance with its noise floor, permutation importance,
a global surrogate and a few single predictions, as JSON and self-contained HTML.

This is what ``watchkeeper explain`` writes; :func:`explanation_section` gives the same
content as a fragment for other reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchkeeper._extras import render
from watchkeeper.explain._frame import model_frame, sample_rows
from watchkeeper.explain._global import GlobalExplanation, global_importance
from watchkeeper.explain._local import Method
from watchkeeper.explain._model import ModelView, Output
from watchkeeper.explain._render import explanation_section
from watchkeeper.explain._surrogate import (
    PermutationImportance,
    Surrogate,
    permutation_importance,
    surrogate,
)

__all__ = ["ExplanationReport", "explanation_report"]


@dataclass(frozen=True, eq=False)
class ExplanationReport:
    """Everything ``watchkeeper explain`` computes about a model on some rows."""

    title: str
    importance: GlobalExplanation
    permutation: PermutationImportance | None = None
    surrogate: Surrogate | None = None
    local_rows: int = 5
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (the local explanation of ``local_rows`` rows)."""
        local = self.importance.local
        return {
            "title": self.title,
            "meta": dict(self.meta),
            "importance": self.importance.to_dict(),
            "permutation_importance": (
                None if self.permutation is None else self.permutation.to_dict()
            ),
            "surrogate": None if self.surrogate is None else self.surrogate.to_dict(),
            "local": None if local is None else local.head(self.local_rows).to_dict(),
        }

    def html(self) -> str:
        """A complete, self-contained HTML page."""
        subtitle = ", ".join(f"{k}: {v}" for k, v in self.meta.items())
        body = explanation_section(
            self.importance,
            rows=self.local_rows,
            permutation=self.permutation,
            surrogate=self.surrogate,
        )
        return str(render("explanation_page", self.title, body, subtitle=subtitle))

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` to ``path`` (atomically)."""
        from watchkeeper.data import write_json_atomic

        return write_json_atomic(Path(path), self.to_dict())

    def to_html(self, path: str | Path) -> Path:
        """Write :meth:`html` to ``path``."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.html(), encoding="utf-8")
        return out


def explanation_report(
    model: Any,
    X: Any,
    *,
    background: Any = None,
    title: str = "Model explanation",
    max_rows: int | None = 1000,
    local_rows: int = 5,
    n_backgrounds: int = 5,
    permutation_repeats: int = 5,
    surrogate_depth: int = 3,
    method: Method = "auto",
    output: Output = "auto",
    target_class: Any = None,
    random_state: int = 0,
    meta: Mapping[str, Any] | None = None,
) -> ExplanationReport:
    """Global importance (with noise floor), permutation importance and a surrogate on a
    seeded sample of at most ``max_rows`` rows of ``X``, and ``local_rows`` waterfalls.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> report = explanation_report(LinearRegression().fit(X, 2 * X[:, 1]), X, max_rows=100,
    ...                             n_backgrounds=2, permutation_repeats=2)
    >>> report.importance.ranking(), report.surrogate.fidelity_metric
    (['x1', 'x0'], 'r2')
    >>> "<svg" in report.html()
    True
    """
    frame, _ = sample_rows(model_frame(ModelView.of(model).native, X), max_rows, random_state)
    importance = global_importance(
        model,
        frame,
        background=background,
        n_backgrounds=n_backgrounds,
        method=method,
        output=output,
        target_class=target_class,
        random_state=random_state,
    )
    permutation = (
        permutation_importance(
            model, frame, n_repeats=permutation_repeats, max_rows=None, random_state=random_state
        )
        if permutation_repeats >= 2
        else None
    )
    fitted = (
        surrogate(model, frame, max_depth=surrogate_depth, random_state=random_state)
        if surrogate_depth > 0 and len(frame) >= 8
        else None
    )
    return ExplanationReport(
        title=title,
        importance=importance,
        permutation=permutation,
        surrogate=fitted,
        local_rows=local_rows,
        meta=dict(meta or {}),
    )
