"""``python -m watchkeeper.demo``: run the story and print what happened.

Everything printed is computed by this run; nothing is canned.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m watchkeeper.demo",
        description="watchkeeper end to end on the bundled 2011 Capital Bikeshare data.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    from rich.console import Console
    from rich.table import Table

    from watchkeeper.datasets import BIKESHARE_FEATURES, load_bikeshare
    from watchkeeper.demo._drift import drift_story
    from watchkeeper.demo._index import write_index

    console = Console(highlight=False)
    say = console.print
    started = time.perf_counter()
    data = load_bikeshare()
    say(
        f"[bold]watchkeeper demo[/] — Capital Bikeshare hourly rentals, 2011 "
        f"({len(data):,} rows, bundled with the package)"
    )
    say("\n[bold]1. Drift and data quality, month by month[/]")
    _, months, control = drift_story(
        data, list(BIKESHARE_FEATURES), out, reference_months=(1, 2, 3), say=say
    )
    table = Table(show_edge=False, header_style="bold")
    for h in ("month", "rows", "drift", "drifted columns", "quality findings"):
        table.add_column(h)
    for r in months:
        table.add_row(
            r.label,
            f"{r.rows:,}",
            "[red]yes[/]" if r.drifted else "[green]no[/]",
            ", ".join(r.drifted_columns) or "—",
            str(r.quality_findings),
        )
    say(table)
    index = write_index(out, months, control)
    say(f"\nreports: {index} (one HTML and one JSON report per month)")
    say(f"done in {time.perf_counter() - started:.1f} s")
    return 0
