"""HTML fragments of explanations, through the render hook (the markup lives in
``watchkeeper.report``; see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence

from watchkeeper._extras import render
from watchkeeper.checks import CheckResult
from watchkeeper.explain._global import GlobalExplanation
from watchkeeper.explain._local import Explanation
from watchkeeper.explain._surrogate import PermutationImportance, Surrogate

__all__ = ["explanation_section"]


def explanation_section(
    global_: GlobalExplanation,
    *,
    local: Explanation | None = None,
    rows: int = 3,
    permutation: PermutationImportance | None = None,
    surrogate: Surrogate | None = None,
    drift: Sequence[CheckResult] = (),
    heading: str = "Explanations",
) -> str:
    """An HTML fragment (``<section>``) explaining a model, for any report.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from watchkeeper.explain import global_importance
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> g = global_importance(LinearRegression().fit(X, X[:, 0]), X, n_backgrounds=2)
    >>> html = explanation_section(g)
    >>> html.startswith("<section") and "x0" in html and "waterfall" in html
    True
    """
    return str(
        render(
            "explanation_section",
            global_,
            local=local,
            rows=rows,
            permutation=permutation,
            surrogate=surrogate,
            drift=drift,
            heading=heading,
        )
    )
