"""Demo step: drift and quality of each later month of 2011 against the reference quarter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MonthResult", "drift_story"]

MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class MonthResult:
    label: str
    rows: int
    drifted: bool
    drifted_columns: list[str]
    quality_findings: int
    json_path: Path
    html_path: Path


def drift_story(
    data: Any,
    features: list[str],
    out: Path,
    *,
    reference_months: tuple[int, ...],
    profile: Any,
    say: Any,
) -> tuple[list[MonthResult], Any]:
    """Compare every later month with the reference profile (the one stored with the model).

    Returns one result per later month and the no-drift control report (two random halves of
    the reference, which must not drift).
    """
    from watchkeeper.report import compare

    columns = [*features, "bikers"]
    ref_df = data[data["month"].isin(reference_months)][columns]
    schema = profile.schema
    profile_path = out / "reference-profile.json"
    profile.save(profile_path)
    say(
        f"reference: {', '.join(MONTH_NAMES[m - 1] for m in reference_months)} 2011, "
        f"{profile.n_rows:,} hourly rows, {len(columns)} columns -> {profile_path}"
    )

    # Control: the reference against itself, split at random. Whatever the rule says here is
    # its behaviour under no drift.
    rng = np.random.default_rng(0)
    mask = rng.random(len(ref_df)) < 0.5
    control = compare(ref_df[mask], ref_df[~mask], schema=schema)
    say(
        f"control (random halves of the reference): "
        f"{'DRIFT' if control.drifted else 'no drift'} "
        f"({control.dataset.n_drifted} of {control.dataset.n_tested} columns)"
    )

    results: list[MonthResult] = []
    months = sorted(m for m in data["month"].unique() if m not in reference_months)
    for m in months:
        cur = data[data["month"] == m][columns]
        report = compare(profile, cur)
        label = f"2011-{m:02d}"
        json_path = out / f"drift-{label}.json"
        html_path = out / f"drift-{label}.html"
        report.to_json(json_path)
        report.to_html(html_path, title=f"Bike rentals, {MONTH_NAMES[m - 1]} 2011 vs reference")
        results.append(
            MonthResult(
                label=label,
                rows=len(cur),
                drifted=report.drifted,
                drifted_columns=report.drifted_columns,
                quality_findings=len(report.quality_findings),
                json_path=json_path,
                html_path=html_path,
            )
        )
    summary = [
        {
            "month": r.label,
            "rows": r.rows,
            "drifted": r.drifted,
            "drifted_columns": r.drifted_columns,
            "quality_findings": r.quality_findings,
            "html": r.html_path.name,
        }
        for r in results
    ]
    (out / "drift-summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return results, control
