"""Prediction-log benchmark: what durable logging costs, per-record commits vs group commit.

Measures records/s and the latency a request pays for its log write (submit until the commit
that holds it returned) for:

- per-record commits: one ``SQLiteLogSink.write_predictions([record])`` per record, one thread;
- group commit: ``GroupCommitWriter`` with concurrent producers, each waiting for its
  record's future before sending the next (as gateway request handlers do);

each with ``synchronous="full"`` (fsync per commit, survives power loss) and ``"normal"``
(survives a killed process). Also times ``read_window`` and ``export_parquet`` on the log
written. Writes its section of ``BENCHMARKS.md`` (``--quick``: a smaller smoke run that only
prints).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DATA_DIR,
    REPO_DIR,
    log,
    machine_description,
    md_table,
    run_benchmark,
)

from watchkeeper.logstore import (
    FeedbackRecord,
    GroupCommitWriter,
    PredictionRecord,
    SQLiteLogSink,
    export_parquet,
)

N_FEATURES = 20
BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "logstore.json"
NOTES = BENCH_DIR / "logstore_notes.md"


def make_record(tag: str, i: int) -> PredictionRecord:
    features = {f"f{j:02d}": (i * 7 + j) % 1000 / 10 for j in range(N_FEATURES - 2)}
    features["plan"] = ("free", "pro", "team")[i % 3]
    features["country"] = ("FR", "DE", "US", "BR")[i % 4]
    return PredictionRecord(
        id=f"{tag}-{i}",
        ts=time.time(),
        model="bench",
        version=1,
        arm="champion",
        features=features,
        prediction=i % 2,
        scores={"0": 0.3, "1": 0.7},
        latency_ms=1.5,
    )


class TimedSink:
    """Records the exact duration of every write the writer makes (benchmark only)."""

    def __init__(self, inner: SQLiteLogSink) -> None:
        self.inner = inner
        self.seconds: list[float] = []
        self.sizes: list[int] = []

    def write_predictions(self, records: Sequence[PredictionRecord]) -> None:
        t0 = time.perf_counter()
        self.inner.write_predictions(records)
        self.seconds.append(time.perf_counter() - t0)
        self.sizes.append(len(records))

    def write_feedback(self, records: Sequence[FeedbackRecord]) -> Any:
        return self.inner.write_feedback(records)

    def read_window(self, model: str, **kw: Any) -> Any:
        return self.inner.read_window(model, **kw)

    def close(self) -> None:
        self.inner.close()


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def per_record(folder: Path, synchronous: str, n: int, producers: int = 1) -> dict[str, Any]:
    """Every record in its own transaction, from ``producers`` threads (no group commit)."""
    path = folder / f"per-record-{synchronous}-{producers}.db"
    sink = SQLiteLogSink(path, synchronous=synchronous)  # type: ignore[arg-type]
    per_producer = n // producers
    latencies: list[list[float]] = [[] for _ in range(producers)]
    barrier = threading.Barrier(producers + 1)

    def produce(p: int) -> None:
        mine = latencies[p]
        barrier.wait()
        for i in range(per_producer):
            record = make_record(f"p{p}", i)
            t0 = time.perf_counter()
            sink.write_predictions([record])
            mine.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    sink.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    flat = [x for lat in latencies for x in lat]
    return {
        "records": per_producer * producers,
        "wall_s": wall,
        "latencies": flat,
        "commit_seconds": flat if producers == 1 else [],
        "commits": per_producer * producers,
    }


def group(
    folder: Path, synchronous: str, n: int, producers: int, delay_ms: float, keep: bool = False
) -> dict[str, Any]:
    path = folder / f"group-{synchronous}-{delay_ms}.db"
    sink = TimedSink(SQLiteLogSink(path, synchronous=synchronous))  # type: ignore[arg-type]
    writer = GroupCommitWriter(sink, max_delay_ms=delay_ms)
    per_producer = n // producers
    latencies: list[list[float]] = [[] for _ in range(producers)]
    barrier = threading.Barrier(producers + 1)

    def produce(p: int) -> None:
        mine = latencies[p]
        barrier.wait()
        for i in range(per_producer):
            record = make_record(f"g{p}", i)
            t0 = time.perf_counter()
            writer.submit(record).result()
            mine.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    writer.close()
    stats = writer.stats()
    assert stats["committed_total"] == per_producer * producers, stats
    assert stats["failed_total"] == 0, stats
    sink.close()
    if not keep:
        path.unlink()
    return {
        "records": per_producer * producers,
        "wall_s": wall,
        "latencies": [x for lat in latencies for x in lat],
        "commit_seconds": sink.seconds,
        "commits": len(sink.seconds),
        "path": path,
    }


def group_async(
    folder: Path, synchronous: str, n: int, tasks: int, delay_ms: float
) -> dict[str, Any]:
    """Group commit from asyncio: ``tasks`` coroutines each awaiting ``writer.log(record)``."""
    path = folder / f"async-{synchronous}-{delay_ms}.db"
    sink = TimedSink(SQLiteLogSink(path, synchronous=synchronous))  # type: ignore[arg-type]
    writer = GroupCommitWriter(sink, max_delay_ms=delay_ms)
    per_task = n // tasks
    latencies: list[float] = []

    async def produce(p: int) -> None:
        for i in range(per_task):
            record = make_record(f"a{p}", i)
            t0 = time.perf_counter()
            await writer.log(record)
            latencies.append(time.perf_counter() - t0)

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(produce(p) for p in range(tasks)))
        return time.perf_counter() - start

    wall = asyncio.run(main())
    writer.close()
    assert writer.committed_total == per_task * tasks
    sink.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {
        "records": per_task * tasks,
        "wall_s": wall,
        "latencies": latencies,
        "commit_seconds": sink.seconds,
        "commits": len(sink.seconds),
    }


def reads(path: Path, root: Path) -> dict[str, float]:
    sink = SQLiteLogSink(path)
    n = sink.count("bench")
    t0 = time.perf_counter()
    table = sink.read_window("bench")
    window_s = time.perf_counter() - t0
    assert table.num_rows == n
    t0 = time.perf_counter()
    sink.read_window("bench", last=1_000)
    last_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    export_parquet(sink, root, until=time.time() + 86_400)
    export_s = time.perf_counter() - t0
    sink.close()
    return {"rows": n, "window_s": window_s, "last_1000_s": last_s, "export_s": export_s}


def fmt(x: float, digits: int = 3) -> str:
    if x != x:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def ms(x: float) -> str:
    return fmt(x * 1000)


def loadavg() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return "-"


def filesystem(path: Path) -> str:
    try:
        out = subprocess.run(
            ["df", "--output=fstype", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[-1]
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(quick: bool, repeats: int) -> tuple[list[dict[str, Any]], dict[str, float], str]:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="logstore-", dir=DATA_DIR))
    fs = filesystem(folder)
    n_per = {"full": 160 if quick else 800, "normal": 800 if quick else 4_800}
    n_group = 2_000 if quick else 20_000
    producers = 16
    tasks = 64
    configs: list[tuple[str, str, Callable[[], dict[str, Any]]]] = []
    for sync in ("full", "normal"):
        configs.append(
            ("per-record commit, 1 thread", sync, lambda s=sync: per_record(folder, s, n_per[s]))
        )
        configs.append(
            (
                f"per-record commit, {producers} producers",
                sync,
                lambda s=sync: per_record(folder, s, n_per[s], producers),
            )
        )
        for delay in (0.0, 2.0):
            configs.append(
                (
                    f"group commit, {producers} producers, max_delay_ms={delay:g}",
                    sync,
                    lambda s=sync, d=delay: group(folder, s, n_group, producers, d),
                )
            )
        for delay in (0.0, 2.0):
            configs.append(
                (
                    f"group commit, {tasks} asyncio tasks, max_delay_ms={delay:g}",
                    sync,
                    lambda s=sync, d=delay: group_async(folder, s, n_group, tasks, d),
                )
            )
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        for r in range(repeats):  # round-robin: load from other work falls on every config
            for name, sync, fn in configs:
                log(f"[{r + 1}/{repeats}] {name}, synchronous={sync}")
                out = fn()
                results.setdefault((name, sync), []).append(out)
        log("reads and export")
        kept = group(folder, "normal", n_group, producers, 2.0, keep=True)
        read_numbers = reads(kept["path"], folder / "parquet")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for (name, sync), runs in results.items():
        rates = [run["records"] / run["wall_s"] for run in runs]
        rows.append(
            {
                "name": name,
                "synchronous": sync,
                "records": runs[0]["records"],
                "records_per_s": statistics.median(rates),
                "latency_p50": statistics.median(quantile(r["latencies"], 0.5) for r in runs),
                "latency_p99": statistics.median(quantile(r["latencies"], 0.99) for r in runs),
                "commit_p50": statistics.median(quantile(r["commit_seconds"], 0.5) for r in runs),
                "commit_p99": statistics.median(quantile(r["commit_seconds"], 0.99) for r in runs),
                "records_per_commit": statistics.median(r["records"] / r["commits"] for r in runs),
            }
        )
    return rows, read_numbers, fs


def collect(quick: bool, repeats: int) -> dict[str, Any]:
    """Run everything and return the raw numbers with what they were measured on."""
    rows, read_numbers, fs = run(quick, repeats)
    commit = subprocess.run(
        ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "commit": commit or "unknown",
        "repeats": repeats,
        "quick": quick,
        "machine": machine_description(),
        "filesystem": fs,
        "loadavg": loadavg(),
        "rows": rows,
        "reads": read_numbers,
    }


def render(result: dict[str, Any]) -> str:
    rows, read_numbers, machine = result["rows"], result["reads"], result["machine"]
    base = {
        r["synchronous"]: r["records_per_s"]
        for r in rows
        if r["name"].startswith("per-record") and "producers" in r["name"]
    }
    table = md_table(
        [
            "mode",
            "synchronous",
            "records",
            "records/s",
            "vs per-record, same producers",
            "latency per record p50 (ms)",
            "p99 (ms)",
            "commit p50 (ms)",
            "commit p99 (ms)",
            "records per commit",
        ],
        [
            [
                r["name"],
                r["synchronous"],
                f"{r['records']:,}",
                fmt(r["records_per_s"]),
                f"{r['records_per_s'] / base[r['synchronous']]:.1f}x",
                ms(r["latency_p50"]),
                ms(r["latency_p99"]),
                ms(r["commit_p50"]),
                ms(r["commit_p99"]),
                fmt(r["records_per_commit"]),
            ]
            for r in rows
        ],
    )
    notes = NOTES.read_text(encoding="utf-8").strip() if NOTES.exists() else ""
    return f"""## Prediction log

Written by `benchmarks/logstore.py` on {result["date"]} (commit {result["commit"]}; median of {result["repeats"]} runs per row, run round-robin; re-run with `.venv/bin/python benchmarks/logstore.py`, raw numbers in `benchmarks/results/logstore.json`). Machine: {machine["cpu"]}, {machine["usable_cpus"]} usable CPUs, {machine["os"]}; SQLite file on {result["filesystem"]}; load average after the runs {result["loadavg"]} (a machine shared with other work: compare rows of one run, not runs).

**What is timed**: records of {N_FEATURES} features (18 numbers, 2 strings) with a prediction and two class scores. *Latency per record* is what a request pays for durable logging: from handing the record over until the commit holding it returned (per-record: the `write_predictions([record])` call, waiting for the sink's lock included; group commit: `GroupCommitWriter.submit(record).result()`). With *16 producers* each of 16 threads waits for its record before sending the next, as threaded request handlers do; with *64 asyncio tasks* each of 64 coroutines on one event loop awaits `writer.log(record)` before sending the next, as the ASGI gateway's handlers do. *Commit* is one `write_predictions` transaction as the sink saw it (not measured apart for 16 per-record producers). `synchronous="full"` fsyncs the WAL at every commit (survives power loss); `"normal"` does not (survives `kill -9`, which `tests/logstore/test_durability.py` checks in both modes).

{table}

Reading back the {read_numbers["rows"]:,} records of one `normal` group-commit run: `read_window` (all rows, {N_FEATURES} feature columns, labels joined) {fmt(read_numbers["window_s"])} s; `read_window(last=1000)` {ms(read_numbers["last_1000_s"])} ms; `export_parquet` of the same rows {fmt(read_numbers["export_s"])} s.

{notes}
"""


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(
        argv,
        description=__doc__.split("\n\n")[0],
        section="logstore",
        results=RESULTS,
        collect=collect,
        render=render,
        default_repeats=3,
        repeats_help="runs per configuration",
    )


if __name__ == "__main__":
    raise SystemExit(main())
