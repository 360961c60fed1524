"""Shared helpers for the benchmark scripts: machine description, memory probes, Markdown output.

Only the standard library is imported at module level, so that the same file serves the
project's ``.venv`` (orchestrators) and the peers' ``benchmarks/.venv-peers`` (workers).
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
RESULTS_FILE = REPO_DIR / "BENCHMARKS.md"
PROJECT_PYTHON = REPO_DIR / ".venv" / "bin" / "python"
PEERS_VENV = BENCH_DIR / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
PEERS_REQUIREMENTS = BENCH_DIR / "requirements-peers.txt"

# Telemetry off for every peer: a benchmark must not phone home, and network calls would
# pollute the timings anyway.
QUIET_ENV = {"DO_NOT_TRACK": "1", "NML_DISABLE_USAGE_LOGGING": "1"}

MB = 1024.0 * 1024.0


# ---------------------------------------------------------------------------------------------
# Memory probes (Linux /proc; the benchmark is documented as Linux-only)
# ---------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line; this benchmark needs Linux")


def rss_bytes() -> int:
    """Resident set size of this process now."""
    return _status_kb("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """High-water mark of the resident set size since start or the last `reset_peak_rss`."""
    return _status_kb("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0) so that a phase can be measured alone.

    Returns False when the kernel refuses; callers then report the whole-process peak.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def release_arrow_pool() -> None:
    """Give back memory the allocators kept after a Parquet read.

    The read is outside every measurement, but jemalloc/mimalloc keep freed pages mapped, which
    would be charged to whichever tool runs next in the process.
    """
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - both venvs have pyarrow
        pass
    else:
        pa.default_memory_pool().release_unused()
    # glibc keeps freed heap pages (its mmap threshold grows after large frees); trimming hands
    # them back so that the next phase's allocations show up as RSS growth instead of reusing
    # pages the read left behind.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - non-glibc systems
        pass


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call (perf_counter) and its return value."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(values: Iterable[float]) -> float:
    vals = list(values)
    return statistics.median(vals) if vals else float("nan")


# ---------------------------------------------------------------------------------------------
# Machine description
# ---------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    m = re.search(r"^model name\s*:\s*(.+)$", text, flags=re.MULTILINE)
    return m.group(1).strip() if m else (platform.processor() or "unknown")


def _mem_total_gib() -> float:
    try:
        text = Path("/proc/meminfo").read_text(encoding="ascii")
    except OSError:
        return float("nan")
    m = re.search(r"^MemTotal:\s+(\d+) kB", text, flags=re.MULTILINE)
    return int(m.group(1)) / (1024 * 1024) if m else float("nan")


def _os_name() -> str:
    try:
        text = Path("/etc/os-release").read_text(encoding="utf-8")
        m = re.search(r'^PRETTY_NAME="?([^"\n]+)"?$', text, flags=re.MULTILINE)
        if m:
            return f"{m.group(1)}, kernel {platform.release()}"
    except OSError:
        pass
    return platform.platform()


def machine_description() -> dict[str, Any]:
    """What the numbers were measured on (this process's view of the machine)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        usable = os.cpu_count() or 0
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "ram_gib": round(_mem_total_gib(), 1),
        "os": _os_name(),
        "blas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
    }


def package_versions(python: Path | str, packages: Sequence[str]) -> dict[str, str]:
    """Versions of `packages` as seen by interpreter `python` (missing ones are left out)."""
    code = (
        "import json, sys, platform\n"
        "from importlib import metadata\n"
        "out = {'python': platform.python_version()}\n"
        f"for name in {list(packages)!r}:\n"
        "    try:\n"
        "        out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, str] = json.loads(proc.stdout)
    return result


# ---------------------------------------------------------------------------------------------
# Subprocess workers
# ---------------------------------------------------------------------------------------------


def run_worker(
    python: Path | str, script: Path, args: Sequence[str], *, timeout: float = 3600
) -> dict[str, Any]:
    """Run `script` in a fresh interpreter; it prints one JSON object as its last stdout line.

    A fresh process per measurement keeps tools from sharing caches and makes the peak-memory
    probe belong to one tool and one run.
    """
    env = {**os.environ, **QUIET_ENV}
    proc = subprocess.run(
        [str(python), str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise RuntimeError(
            f"worker {script.name} {' '.join(args)} failed (exit {proc.returncode}):\n{tail}"
        )
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"worker {script.name} {' '.join(args)} printed no JSON result")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# BENCHMARKS.md
# ---------------------------------------------------------------------------------------------

_HEADER = (
    "# Benchmarks\n\n"
    "Numbers written by the scripts in `benchmarks/` (`make bench`). Each section is rewritten\n"
    "by its own script between its markers; edit the scripts, not the numbers.\n"
)


def write_section(name: str, body: str, path: Path = RESULTS_FILE) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in `path`.

    The rest of the file is left as it is, so each benchmark owns only its own section.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else _HEADER
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table; numbers are expected pre-formatted as strings."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out.extend("| " + " | ".join(str(c) for c in row) + " |" for row in rows)
    return "\n".join(out)


def run_benchmark(
    argv: Sequence[str] | None,
    *,
    description: str,
    section: str,
    results: Path,
    collect: Callable[[bool, int], Any],
    render: Callable[[Any], str],
    default_repeats: int,
    repeats_help: str = "runs per measurement",
) -> int:
    """The command line every single-section benchmark shares: run (or re-render saved
    results), print the section, and write it with the raw JSON unless ``--quick``."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small smoke run; prints only")
    parser.add_argument("--repeats", type=int, default=None, help=repeats_help)
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write BENCHMARKS.md and the JSON results (default: yes, except with --quick)",
    )
    parser.add_argument("--from-json", type=Path, help="re-render saved results, run nothing")
    args, _unknown = parser.parse_known_args(argv)  # run_all.py passes every script its args
    if args.from_json:
        result = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        result = collect(args.quick, args.repeats or (1 if args.quick else default_repeats))
    body = render(result)
    print(body)
    if args.write if args.write is not None else not (args.quick or args.from_json):
        if not args.from_json:
            results.parent.mkdir(parents=True, exist_ok=True)
            results.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        write_section(section, body)
        log(f"wrote the {section} section of BENCHMARKS.md")
    return 0
