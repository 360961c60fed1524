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

    # The demo's models are small: one thread each avoids OpenMP's busy-waiting, which makes
    # gradient boosting many times slower on a machine whose cores are busy with other work.
    from threadpoolctl import threadpool_limits

    from watchkeeper.datasets import BIKESHARE_FEATURES, load_bikeshare
    from watchkeeper.demo._drift import drift_story
    from watchkeeper.demo._index import write_index
    from watchkeeper.demo._model import MODEL_NAME, register_champion, retrain_challenger

    threadpool_limits(1)
    console = Console(highlight=False)
    say = console.print
    started = time.perf_counter()
    data = load_bikeshare()
    say(
        f"[bold]watchkeeper demo[/] — Capital Bikeshare hourly rentals, 2011 "
        f"({len(data):,} rows, bundled with the package)"
    )
    features = list(BIKESHARE_FEATURES)
    reference_months = (1, 2, 3)

    say("\n[bold]1. Train on January–March, run the validation gate, register[/]")
    registry, v1, gate = register_champion(data, features, reference_months, out, say)
    if not gate.passed:
        say(f"(the demo goes on with v{v1.version} to show monitoring; see gate-v1.html)")
    profile = registry.load_profile(MODEL_NAME, v1.version)

    say("\n[bold]2. Drift and data quality of each later month against the model's reference[/]")
    months, control = drift_story(
        data, features, out, reference_months=reference_months, profile=profile, say=say
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

    first = next((r for r in months if r.drifted), None)
    say("\n[bold]3. Retrain after drift, gate the challenger against the champion, promote[/]")
    if first is None:
        say("no month drifted: nothing to retrain")
    else:
        say(f"drift first detected in {first.label}; retraining on January–June")
        champion_ref = "champion" if gate.passed else v1.version
        retrain_challenger(
            registry, data, features, (1, 2, 3, 4, 5, 6), 7, out, say, champion_ref=champion_ref
        )
    say("\nregistry history of " + MODEL_NAME + ":")
    for e in registry.history(MODEL_NAME):
        what = (
            f"v{e.version} registered"
            if e.kind == "register"
            else f"{e.alias}: v{e.from_version or '-'} -> v{e.to_version or '-'}"
        )
        say(f"  {e.at:%H:%M:%S} {e.kind:<8} {what}  ({e.actor}: {e.reason or '—'})")
    index = write_index(out, months, control)
    say(f"\nreports: {index} (one HTML and one JSON report per month)")
    say(f"done in {time.perf_counter() - started:.1f} s")
    return 0
