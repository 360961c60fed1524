"""Run every benchmark script in this folder (``make bench``).

A benchmark script is any ``benchmarks/*.py`` whose name does not start with ``_`` (helpers)
other than this file and the scripts run by hand (``BY_HAND``: they need arguments, compare
two checkouts of the code, or write a hand-written section). Each runs with the interpreter that runs this file and receives the
arguments given here, so ``run_all.py --quick`` smoke-runs them all (every script accepts
``--quick``). A failing script does not stop the others; the exit status says whether all passed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Run by hand (see benchmarks/README.md), not by ``make bench``.
BY_HAND = frozenset({"run_all.py", "gate.py", "loop_simulations.py", "profiles.py", "monitor.py"})


def scripts() -> list[Path]:
    return sorted(
        p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name not in BY_HAND
    )


def main(argv: list[str]) -> int:
    failed = []
    for script in scripts():
        print(f"== {script.name} {' '.join(argv)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, str(script), *argv], check=False).returncode
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        print(
            f"== {script.name}: {status} in {time.perf_counter() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        if rc != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
