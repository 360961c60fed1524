"""Numbers behind the per-column plots of a comparison (rendered by ``report`` as inline SVG)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

__all__ = ["plot_data"]

_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def _shares(counts: Any) -> list[float]:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return [float(x) for x in (c / total if total else c)]


def _fmt_edge(x: float) -> str:
    return f"{x:.3g}"


def plot_data(name: str, kind: str, ref: Any, cur: Any) -> dict[str, Any]:
    """Reference and current shares per bin (numeric) or category, plus quantiles."""
    rc = ref.profile.columns[name]
    cc = cur.profile.columns[name]
    if kind == "embedding":
        return {}
    if kind == "text":
        # The words-per-document histogram on the reference's bins.
        if not rc.has_features or not cc.has_features:
            return {}
        rc, cc = rc.descriptors["words"], cc.descriptors["words"]
        edges = [float(e) for e in rc.bin_edges]
        labels = (
            [f"≤ {_fmt_edge(edges[0])} words"]
            + [f"{_fmt_edge(a)} – {_fmt_edge(b)}" for a, b in itertools.pairwise(edges)]
            + [f"> {_fmt_edge(edges[-1])}"]
            if edges
            else ["all"]
        )
        return {
            "type": "bins",
            "labels": labels,
            "reference": _shares(rc.bin_counts),
            "current": _shares(cc.bin_counts),
            "reference_mean": rc.mean,
            "current_mean": cc.mean,
        }
    if kind == "numeric":
        edges = [float(e) for e in rc.bin_edges]
        labels = (
            [f"≤ {_fmt_edge(edges[0])}"]
            + [f"{_fmt_edge(a)} – {_fmt_edge(b)}" for a, b in itertools.pairwise(edges)]
            + [f"> {_fmt_edge(edges[-1])}"]
            if edges
            else ["all"]
        )
        cur_q = cur.quantiles(name, _QUANTILES)
        ref_q = [float(rc.quantile(q)) for q in _QUANTILES] if int(rc.count) else []
        return {
            "type": "bins",
            "labels": labels,
            "reference": _shares(rc.bin_counts),
            "current": _shares(cc.bin_counts),
            "quantiles": list(_QUANTILES),
            "reference_quantiles": ref_q,
            "current_quantiles": cur_q,
            "reference_mean": float(rc.mean) if int(rc.count) else None,
            "current_mean": float(cc.mean) if int(cc.count) else None,
        }
    cats = [str(c) for c in rc.categories]
    ref_counts = [*list(rc.counts), int(rc.other_count)]
    cur_counts = [*list(cc.counts), int(cc.other_count)]
    return {
        "type": "categories",
        "labels": [*cats, "(other)"],
        "reference": _shares(ref_counts),
        "current": _shares(cur_counts),
    }
