"""One monitor cycle over a window of 1,000,000 logged predictions with 20 features.

Usage::

    python benchmarks/monitor.py make  DIR [--rows 1000000]      # the log and the registry
    python benchmarks/monitor.py cycle DIR                       # one cycle, prints JSON
    python benchmarks/monitor.py merge DIR                       # 168 hourly profiles -> week

``make`` writes a SQLite prediction log and registers a model with a 10,000-row reference.
The records go through the gateway's log writer (:class:`~watchkeeper.logstore.GroupCommitWriter`,
batches of 500) with its partial profiler, as ``watchkeeper serve`` logs them: first a week of
10,000 predictions (the version's first), then one monitor cycle over it, which stores the
version's prediction baseline in the log, then ``--rows`` predictions spread over the next
week (one 7-day window), whose hourly partial profiles and log summaries the profiler builds
as they are logged (code without log-time profiling ignores them and reads the rows).
``cycle`` copies nothing: it runs :func:`watchkeeper.monitor.run_cycle` with the default
configuration (``every="7d"``) into a fresh monitor store (both weeks are evaluated) and prints
the wall time, the CPU seconds and the process's peak RSS. Run it with ``PYTHONPATH`` pointing
at the code to measure (e.g. ``git worktree add /tmp/before 3a471db``), each in its own
process, each code on its own copy of the log (older code rebuilds its own indexes on open;
code older than schema format 2 needs the registry made again by itself, from the same
reference data: ``_features(np.random.default_rng(0), 10_000)``), a few times, at several
lengths (``--rows 250000`` to ``4000000``) to see what grows with the window;
BENCHMARKS.md quotes medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

N_FEATURES = 20
PRIOR = 10_000  # predictions logged the week before (the version's baseline)
T0 = 1_700_092_800  # the start of a 7-day window (multiple of 7 days since the epoch)
WEEK = 7 * 86_400


def _features(rng, n: int):  # type: ignore[no-untyped-def]
    import numpy as np
    import pandas as pd

    data = {f"x{i}": rng.normal(0.0, 1.0, n) for i in range(N_FEATURES - 2)}
    data["city"] = rng.choice(np.array(["a", "b", "c", "d"]), n)
    data["count"] = rng.integers(0, 10, n)
    return pd.DataFrame(data)


def _log_rows(rng, writer, sink, t0: float, span: float, rows: int, prefix: str) -> None:  # type: ignore[no-untyped-def]
    from watchkeeper.logstore import PredictionRecord

    step = span / rows
    batch = 50_000
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        frame = _features(rng, n)
        records = frame.to_dict("records")
        preds = rng.normal(10.0, 2.0, n).tolist()
        records = [
            PredictionRecord(f"{prefix}{start + i}", t0 + (start + i) * step, "bench", 1,
                             "champion", rec, preds[i], latency_ms=float(lat))
            for i, (rec, lat) in enumerate(zip(records, rng.gamma(4.0, 0.5, n), strict=True))
        ]  # fmt: skip
        if writer is None:
            sink.write_predictions(records)
        else:
            futures = [writer.submit(records[i : i + 500]) for i in range(0, n, 500)]
            for f in futures:
                f.result()


def make(root: Path, rows: int) -> None:
    import numpy as np
    from sklearn.dummy import DummyRegressor

    from watchkeeper.logstore import SQLiteLogSink
    from watchkeeper.registry import Registry

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with Registry(root=root / "registry") as registry:
        registry.register(
            "bench", DummyRegressor().fit([[0.0]], [1.0]), actor="bench",
            reference=_features(rng, 10_000),
        )  # fmt: skip
    registry = Registry(root=root / "registry")
    sink = SQLiteLogSink(str(root / "predictions.db"), synchronous="normal")
    try:
        from watchkeeper.logstore import GroupCommitWriter, PartialProfiler
    except ImportError:  # code without log-time profiling
        profiler, writer = None, None
    else:
        profiler = PartialProfiler(sink, registry.load_profile)
        writer = GroupCommitWriter(sink, on_commit=profiler.add, max_pending=100_000)
    # The week before: the version's first predictions, which a monitor run turns into its
    # prediction baseline (stored in the log, so that the profiler summarises the next
    # week's predictions binned on it), as in a model served for more than a week.
    _log_rows(rng, writer, sink, T0 - WEEK, WEEK, PRIOR, "p")
    if profiler is not None:
        profiler.flush()
    if writer is not None:
        from watchkeeper.monitor import Monitor, MonitorConfig, MonitorStore, run_cycle

        work = Path(tempfile.mkdtemp(prefix="wk-bench-monitor-"))
        try:
            with MonitorStore(root=work) as store:
                run_cycle(Monitor(MonitorConfig(every="7d")), sink, registry, store, now=T0)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    _log_rows(rng, writer, sink, T0, WEEK, rows, "r")
    if writer is not None and profiler is not None:
        writer.close()
        profiler.close(timeout=None)
        print(json.dumps({"profiled": profiler.profiled_total, "errors": profiler.errors_total}))
    sink.close()
    registry.close()


def cycle(root: Path) -> dict[str, float]:
    from watchkeeper.logstore import SQLiteLogSink
    from watchkeeper.monitor import Monitor, MonitorConfig, MonitorStore, run_cycle
    from watchkeeper.registry import Registry

    work = Path(tempfile.mkdtemp(prefix="wk-bench-monitor-"))
    try:
        sink = SQLiteLogSink(str(root / "predictions.db"))
        registry = Registry(root=root / "registry")
        store = MonitorStore(root=work)
        t, cpu = time.perf_counter(), time.process_time()
        done = run_cycle(
            Monitor(MonitorConfig(every="7d")), sink, registry, store, now=T0 + WEEK + 1
        )
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
        windows = [(w.n_rows, w.status.value) for w in done.summary.windows]
        sink.close()
        registry.close()
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": _peak_mb(), "windows": windows}  # type: ignore[dict-item]


def merge(root: Path) -> dict[str, float]:
    """168 hourly window profiles (20 features, 6,000 rows each) into one week."""
    import numpy as np

    from watchkeeper.data import Profile
    from watchkeeper.monitor import MonitorStore

    rng = np.random.default_rng(1)
    reference = Profile.from_data(_features(rng, 10_000))
    hours = [
        Profile.from_data(_features(rng, 6_000), reference.schema, reference=reference,
                          sample_size=100)
        for _ in range(168)
    ]  # fmt: skip
    t = time.perf_counter()
    week = hours[0]
    for p in hours[1:]:
        week = week.merge(p)
    in_memory = time.perf_counter() - t
    work = Path(tempfile.mkdtemp(prefix="wk-bench-merge-"))
    try:
        from datetime import UTC, datetime

        with MonitorStore(root=work) as store:
            for h, p in enumerate(hours):
                start = datetime.fromtimestamp(T0 + 3600 * h, UTC)
                end = datetime.fromtimestamp(T0 + 3600 * (h + 1), UTC)
                store.write_window("bench", 1, "champion", start, end, "time", p.n_rows, 0, [],
                                   run_id="b", window_profiles={"features": p})  # fmt: skip
            t = time.perf_counter()
            stored = store.merged_profile("bench", version=1)
            from_store = time.perf_counter() - t
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert stored.n_rows == week.n_rows == 168 * 6_000
    return {"merge_in_memory_ms": 1e3 * in_memory, "merge_from_store_ms": 1e3 * from_store}


def _peak_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["make", "cycle", "merge"])
    parser.add_argument("root", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    if args.what == "make":
        make(args.root, args.rows)
        return 0
    out = cycle(args.root) if args.what == "cycle" else merge(args.root)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
