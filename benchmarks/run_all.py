"""Run every benchmark script in this folder (``make bench``).

A benchmark script is any ``benchmarks/*.py`` whose name does not start with ``_`` (helpers)
other than this file. Each runs with the interpreter that runs this file and receives the
arguments given here, so ``run_all.py --quick`` smoke-runs them all (every script accepts
``--quick``). A failing script does not stop the others; the exit status says whether all passed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts() -> list[Path]:
    return sorted(
        p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != "run_all.py"
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
