"""``python -m watchkeeper.demo``: run the story and print what happened.

Everything printed is computed by this run; nothing is canned.
"""

from __future__ import annotations

import argparse
import os
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

    # The demo's models are small: one thread each avoids OpenMP's busy-waiting, which makes
    # gradient boosting many times slower on a machine whose cores are busy with other work.
    # Set before the numerical libraries load (a limit set later misses libraries loaded
    # later, such as scikit-learn's OpenMP runtime); the gateway process inherits it.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")

    from rich.console import Console
    from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: F401 (loads OpenMP)
    from threadpoolctl import threadpool_limits

    from watchkeeper.datasets import BIKESHARE_FEATURES, load_bikeshare
    from watchkeeper.demo._drift import drift_story
    from watchkeeper.demo._index import write_index
    from watchkeeper.demo._model import MODEL_NAME, register_champion
    from watchkeeper.demo._story import LABEL_LAG_DAYS, monitoring_report, serve_story

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

    say(
        "\n[bold]2. Serve the champion; replay April–December through the gateway in time "
        f"order, labels {LABEL_LAG_DAYS} days late; monitor weekly windows; alert[/]"
    )
    serve_story(data, features, out, registry, gate_passed=gate.passed, say=say)

    say("\n[bold]3. Reports[/]")
    monitoring = monitoring_report(out, say)
    months, control = drift_story(
        data, features, out, reference_months=reference_months, profile=profile, say=say
    )
    say("\nregistry history of " + MODEL_NAME + ":")
    for e in registry.history(MODEL_NAME):
        if e.kind == "register":
            what = f"v{e.version} registered"
        elif e.kind == "route":
            what = "route changed"
        elif e.kind == "loop":
            what = "loop step"
        else:
            what = f"{e.alias}: v{e.from_version or '-'} -> v{e.to_version or '-'}"
        reason = e.reason or "—"
        if len(reason) > 64:  # the loop's full evidence is in its steps (loop-summary.json)
            reason = reason[:63] + "…"
        say(f"  {e.at:%H:%M:%S} {e.kind:<8} {what}  ({e.actor}: {reason})", markup=False)
    index = write_index(out, months, control)
    say(f"\nreports: {index} (one HTML and one JSON report per month), monitoring: {monitoring}")
    say(
        "dashboard: run [bold]watchkeeper serve --root "
        f"{out / '.watchkeeper'}[/] and open http://127.0.0.1:8080/dashboard"
    )
    say(f"done in {time.perf_counter() - started:.1f} s")
    return 0
