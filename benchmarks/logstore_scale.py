"""Log-store scale-out benchmark: records/s written by 1, 2 and 4 gateway worker processes
into each log store (SQLite, PostgreSQL, Parquet on a local folder, Parquet on S3).

Each worker process does what a gateway worker does with its log: it opens the store by URL
(``open_sink``), puts a ``GroupCommitWriter`` in front, and runs 32 asyncio request handlers
that each log one request's records (20 features each; 1 record per request, and 100 on the
two SQL stores) and wait for their commit before logging the next. The workers start together
(a barrier, once every one has imported and connected) and run for a fixed duration; the total
committed records per second is reported, with the CPU time per record of the worker
processes and of the PostgreSQL server's processes, and the records per commit. Every store
and worker count is measured once per round, interleaved, so that the machine's other load
weighs on all alike; the median of ``--repeats`` rounds is reported. No HTTP and no model:
this isolates what the store can absorb, which bounds what a gateway fleet can serve with a
durable log.

Durability is the same everywhere: SQLite ``synchronous="full"`` (fsync per commit), a
PostgreSQL server started for the benchmark with its durable defaults (``fsync``,
``synchronous_commit`` and ``full_page_writes`` on; checked), Parquet files fsynced (local) or
uploaded (S3) before the write returns. The S3 server is moto's in-memory server on this
machine: its numbers show the writer's overhead, not the latency of a real object store.

``--gateway`` adds the issue's acceptance measurement end to end: real ``watchkeeper serve``
processes (a 20-feature linear model, bearer tokens off, loopback) under an HTTP load of 32
concurrent clients, one record per request, measured once every worker has answered:
predictions answered per second by one worker on SQLite and by 1, 2 and 4 workers sharing one
PostgreSQL log. ``--gateway-only`` measures just that table again and keeps the stores' table
of the last saved run. Writes its section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))  # the tests' throwaway PostgreSQL and S3 servers
from _common import log, machine_description, md_table, run_benchmark  # noqa: E402

RESULTS = BENCH_DIR / "results" / "logstore_scale.json"
WORKERS = (1, 2, 4)
HANDLERS = 32  # concurrent request handlers per worker
REQUEST_SIZES = (1, 100)  # records per request
N_FEATURES = 20


def _record(tag: str, i: int) -> Any:
    from watchkeeper.logstore import PredictionRecord

    features: dict[str, Any] = {f"f{j:02d}": (i * 7 + j) % 1000 / 10 for j in range(18)}
    features["plan"] = ("free", "pro", "team")[i % 3]
    features["country"] = ("FR", "DE", "US", "BR")[i % 4]
    return PredictionRecord(f"{tag}-{i}", time.time(), "bench", 1, "champion", features,
                            i % 2, scores={"0": 0.3, "1": 0.7}, latency_ms=1.5)  # fmt: skip


def _worker(url: str, env: dict[str, str], tag: str, seconds: float, per_request: int,
            barriers: tuple[Any, Any, Any], out: Any) -> None:  # fmt: skip
    os.environ.update(env)
    import resource

    from watchkeeper.logstore import GroupCommitWriter, open_sink

    options = json.loads(env.get("BENCH_STORAGE_OPTIONS", "null"))
    sink = open_sink(url, storage_options=options) if options else open_sink(url)
    writer = GroupCommitWriter(sink, max_batch=max(1_000, per_request), max_pending=10_000)
    ready, finished, sampled = barriers

    async def handler(h: int, deadline: float, counts: list[int]) -> None:
        i = 0
        while time.monotonic() < deadline:
            if per_request == 1:
                await writer.log(_record(f"{tag}-{h}", i))
            else:
                await writer.log([_record(f"{tag}-{h}-{i}", k) for k in range(per_request)])
            counts[h] += per_request
            i += 1

    async def main() -> tuple[int, float, float]:
        counts = [0] * HANDLERS
        ready.wait()  # every worker (and the parent's CPU sample) starts together
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        began = time.monotonic()
        await asyncio.gather(*(handler(h, began + seconds, counts) for h in range(HANDLERS)))
        elapsed = time.monotonic() - began
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return sum(counts), elapsed, usage.ru_utime + usage.ru_stime - cpu

    n, elapsed, cpu = asyncio.run(main())
    batch = writer.stats()["mean_batch_records"]
    finished.wait()
    sampled.wait()  # the parent read the server's CPU while this worker's session was open
    writer.close()
    sink.close()
    out.put((n, elapsed, cpu, batch))


def _server_cpu_seconds(postmaster: int | None) -> float:
    """CPU seconds used so far by a local PostgreSQL server and its live processes."""
    if postmaster is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(stat.parent.name) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def measure(url: str, workers: int, seconds: float, env: dict[str, str], per_request: int = 1,
            postmaster: int | None = None) -> dict[str, float]:  # fmt: skip
    """Committed records per second summed over ``workers`` processes, with the CPU time
    per record of the workers and of the PostgreSQL server (``postmaster``), if any."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    barriers = (ctx.Barrier(workers + 1), ctx.Barrier(workers + 1), ctx.Barrier(workers + 1))
    procs = [
        ctx.Process(
            target=_worker,
            args=(url, env, f"w{w}-{time.time_ns()}", seconds, per_request, barriers, out),
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    barriers[0].wait(timeout=300)
    server_cpu = _server_cpu_seconds(postmaster)
    barriers[1].wait(timeout=seconds + 300)
    server_cpu = _server_cpu_seconds(postmaster) - server_cpu
    barriers[2].wait(timeout=60)
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    n = sum(r[0] for r in results)
    return {
        "records_per_s": n / max(r[1] for r in results),
        "worker_cpu_us": 1e6 * sum(r[2] for r in results) / max(n, 1),
        "server_cpu_us": 1e6 * server_cpu / max(n, 1),
        "records_per_commit": statistics.mean(r[3] for r in results),
    }


def _gateway_root(folder: Path) -> Path:
    """A project folder with one registered 20-feature regression model, ``bench``."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    from watchkeeper.registry import Registry

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2_000, N_FEATURES)),
                     columns=[f"f{j:02d}" for j in range(N_FEATURES)])  # fmt: skip
    model = LinearRegression().fit(X, X.sum(axis=1))
    with Registry(root=folder) as registry:
        registry.register("bench", model, reference=X, actor="bench")
        registry.set_alias("bench", "champion", 1, actor="bench")
    return folder


def gateway_rate(root: Path, log_url: str, workers: int, seconds: float) -> float:
    """Records answered per second by ``watchkeeper serve --workers N --log URL``."""
    import signal
    import socket
    import subprocess
    import urllib.request

    from tests.gateway.conftest import run_load

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    argv = [sys.executable, "-m", "watchkeeper.cli", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--root", str(root),
            "--log", log_url, "--no-auth", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("the gateway did not become ready")
        body = json.dumps({f"f{j:02d}": j / 10 for j in range(N_FEATURES)}).encode()
        # Warm up until every worker has answered (ids start with a per-process prefix):
        # /readyz answers as soon as one worker is up, and workers still loading would
        # spend the measured seconds importing
        answered: set[str] = set()
        deadline = time.monotonic() + 300
        while len(answered) < workers and time.monotonic() < deadline:
            warm = run_load(base + "/v1/models/bench/predict",
                            lambda i: (body, {"Content-Type": "application/json"}),
                            concurrency=32, max_requests=10_000_000, max_seconds=2)  # fmt: skip
            answered |= {o.body["ids"][0].split("-")[0] for o in warm.ok()}
        if len(answered) < workers:
            raise RuntimeError(f"only {len(answered)} of {workers} gateway workers answered")
        if shutil.which("wrk"):
            # wrk (C, one thread) loads the 2 shared cores far less than a Python client
            from serving import run_wrk

            body_file = root.parent / "body.json"
            body_file.write_bytes(body)
            got = run_wrk(base + "/v1/models/bench/predict", body_file, seconds, 32)
            if got["non_2xx"] or got["errors"]:
                raise RuntimeError(f"the gateway failed requests under load: {got}")
            return float(got["rps"])
        began = time.monotonic()
        run = run_load(base + "/v1/models/bench/predict",
                       lambda i: (body, {"Content-Type": "application/json"}),
                       concurrency=32, max_requests=10_000_000, max_seconds=seconds)  # fmt: skip
        elapsed = time.monotonic() - began
        return len(run.ok()) / elapsed
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)


def _durable_postgres() -> Any:
    """A throwaway server with PostgreSQL's durable defaults, checked (not the tests' fast
    settings)."""
    from tests._postgres import start_postgres

    server = start_postgres(durable=True)
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=server.port, user="postgres",
                         dbname="postgres", autocommit=True) as conn:  # fmt: skip
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            value = conn.execute(f"SHOW {setting}").fetchone()[0]
            if value != "on":
                server.stop()
                raise RuntimeError(f"the benchmark's PostgreSQL runs with {setting}={value}")
    return server


def collect_gateway(quick: bool, repeats: int) -> dict[str, Any]:
    """Predictions answered per second end to end: one ``watchkeeper serve`` worker on
    SQLite, and 1, 2 and 4 workers sharing one durable PostgreSQL log, interleaved round by
    round."""
    tmp = Path(tempfile.mkdtemp(prefix="wk-logscale-gw-"))
    load_before = os.getloadavg()
    pg = _durable_postgres()
    try:
        root = _gateway_root(tmp / "gateway")
        plan = [("SQLite (synchronous=full)", f"sqlite:///{tmp / 'gateway.db'}", 1)]
        plan += [("PostgreSQL (fsync on)", pg.create_database(), w) for w in WORKERS]
        runs: dict[int, list[float]] = {}
        for r in range(repeats):
            for k, (name, url, workers) in enumerate(plan):
                rate = gateway_rate(root, url, workers, 3.0 if quick else 10.0)
                log(f"gateway on {name}, {workers} worker(s), run {r + 1}: {rate:,.0f}/s")
                runs.setdefault(k, []).append(rate)
        load = os.getloadavg()
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [{"store": name, "workers": workers, "records_per_s": runs[k]}
            for k, (name, _url, workers) in enumerate(plan)]  # fmt: skip
    return {"gateway_rows": rows, "gateway_loadavg": [load_before, load]}


def collect(quick: bool, repeats: int) -> dict[str, Any]:
    if "--gateway-only" in sys.argv:  # the end-to-end table again, the stores' kept
        result = json.loads(RESULTS.read_text(encoding="utf-8"))
        result.update(collect_gateway(quick, repeats))
        return dict(result)
    seconds = 2.0 if quick else 6.0
    tmp = Path(tempfile.mkdtemp(prefix="wk-logscale-"))
    stores: dict[str, tuple[str, dict[str, str]]] = {}
    servers: list[Any] = []
    load_before = os.getloadavg()
    try:
        stores["SQLite (synchronous=full)"] = (f"sqlite:///{tmp / 'log.db'}", {})
        try:
            pg = _durable_postgres()
            servers.append(pg)
            stores["PostgreSQL (fsync on)"] = (pg.create_database(), {})
        except Exception as exc:  # a machine without PostgreSQL still measures the others
            log(f"PostgreSQL skipped: {exc}")
        stores["Parquet, local folder"] = (f"file://{tmp / 'parquet'}", {})
        try:
            from tests._moto import start_s3

            s3 = start_s3()
            servers.append(s3)
            options = json.dumps(s3.storage_options)
            stores["Parquet on S3 (moto server)"] = (
                f"s3://{s3.create_bucket()}/log", {"BENCH_STORAGE_OPTIONS": options},
            )  # fmt: skip
        except Exception as exc:
            log(f"S3 skipped: {exc}")
        postmaster = None
        if "PostgreSQL (fsync on)" in stores:
            postmaster = int((pg.base / "data" / "postmaster.pid").read_text().split()[0])
        # every store at every size, interleaved round by round, so that the machine's other
        # load weighs on all of them alike; 100-record requests on the two SQL stores only
        plan = [(name, size) for size in REQUEST_SIZES for name in stores
                if size == 1 or name in ("SQLite (synchronous=full)", "PostgreSQL (fsync on)")]  # fmt: skip
        runs: dict[tuple[str, int, int], list[dict[str, float]]] = {}
        for r in range(repeats):
            for workers in WORKERS:
                for name, size in plan:
                    url, env = stores[name]
                    got = measure(url, workers, seconds, env, size,
                                  postmaster if name.startswith("PostgreSQL") else None)  # fmt: skip
                    log(f"{name}, {size}-record requests, {workers} worker(s), run {r + 1}: "
                        f"{got['records_per_s']:,.0f} records/s, CPU per record "
                        f"{got['worker_cpu_us']:.0f} us in the workers, "
                        f"{got['server_cpu_us']:.0f} us in the server, "
                        f"{got['records_per_commit']:.0f} records per commit")  # fmt: skip
                    runs.setdefault((name, size, workers), []).append(got)
        rows = [{"store": name, "records_per_request": size, "workers": workers,
                 "records_per_s": [g["records_per_s"] for g in got],
                 "worker_cpu_us": [g["worker_cpu_us"] for g in got],
                 "server_cpu_us": [g["server_cpu_us"] for g in got],
                 "records_per_commit": [g["records_per_commit"] for g in got]}
                for (name, size, workers), got in runs.items()]  # fmt: skip
        load = os.getloadavg()
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "machine": machine_description(),
        "loadavg_before": load_before,
        "loadavg_after": load,
        "seconds": seconds,
        "handlers_per_worker": HANDLERS,
        "rows": rows,
        **(collect_gateway(quick, repeats) if "--gateway" in sys.argv else {}),
    }


def render(result: dict[str, Any]) -> str:
    machine = result["machine"]
    load = ", ".join(f"{x:.1f}" for x in result["loadavg_after"])
    before = result.get("loadavg_before")
    load_note = f"before the run: {', '.join(f'{x:.1f}' for x in before)}; after: {load}" \
        if before else f"after the run: {load}"  # fmt: skip
    rows = result["rows"]
    sizes = sorted({r.get("records_per_request", 1) for r in rows})
    tables = []
    for size in sizes:
        by_store: dict[str, dict[int, float]] = {}
        cpu: dict[str, str] = {}
        for row in rows:
            if row.get("records_per_request", 1) != size:
                continue
            rate = statistics.median(row["records_per_s"])
            by_store.setdefault(row["store"], {})[row["workers"]] = rate
            if row["workers"] == max(WORKERS) and "worker_cpu_us" in row:
                worker = statistics.median(row["worker_cpu_us"])
                server = statistics.median(row["server_cpu_us"])
                cpu[row["store"]] = f"{worker:.0f}" + (f" + {server:.0f}" if server else "")
        table = [[store, *(f"{rates[w]:,.0f}" if w in rates else "-" for w in WORKERS),
                  cpu.get(store, "-")] for store, rates in by_store.items()]  # fmt: skip
        header = ["store", *(f"{w} worker{'s' if w > 1 else ''}" for w in WORKERS),
                  f"CPU µs/record at {max(WORKERS)} workers"]  # fmt: skip
        what = "one record per request" if size == 1 else f"{size} records per request"
        tables.append(f"{what.capitalize()}:\n\n{md_table(header, table)}\n")
    body = "\n".join(tables)
    return f"""## Log stores: records/s by gateway worker processes

Each worker process: `open_sink(url)` + `GroupCommitWriter`, {result["handlers_per_worker"]} asyncio
handlers each logging one request's records and awaiting their commit; all workers start
together and write for {result["seconds"]:g} s; every store and worker count is measured in each
round, interleaved; median of {len(rows[0]["records_per_s"])} rounds. Durable everywhere: SQLite
`synchronous=full`, PostgreSQL with `fsync`, `synchronous_commit` and `full_page_writes` on
(checked at start). CPU per record: the worker processes (user + system) + the PostgreSQL
server's processes. Machine: {machine.get("cpu", "?")}, {machine.get("usable_cpus", "?")} cores
shared by the workers, the server and other engineers' jobs (load average {load_note}).

{body}
{_gateway_table(result.get("gateway_rows") or [], result.get("gateway_loadavg"))}
Produced by `python benchmarks/logstore_scale.py` (`--gateway` adds the end-to-end table); see
docs/scale-out.md for what the numbers mean.
"""


def _gateway_table(rows: list[dict[str, Any]], loadavg: list[Any] | None) -> str:
    if not rows:
        return ""
    table = [[r["store"], r["workers"], f"{statistics.median(r['records_per_s']):,.0f}"]
             for r in rows]  # fmt: skip
    load = ""
    if loadavg:
        before, after = (", ".join(f"{x:.1f}" for x in avg) for avg in loadavg)
        load = f" Load average before: {before}; after: {after}."
    return (
        "End to end (`--gateway`): `watchkeeper serve --workers N --log URL` serving a "
        "20-feature linear model, 32 connections from `wrk` (one thread) on the same machine, "
        "one record per request, measured once every worker answers; predictions "
        f"answered per second (each logged durably before its answer), median of "
        f"{len(rows[0]['records_per_s'])} interleaved rounds.{load}\n\n"
        + md_table(["log", "gateway workers", "predictions/s"], table)
        + "\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(
        argv,
        description=(__doc__ or "").split("\n\n")[0],
        section="logstore-scale",
        results=RESULTS,
        collect=collect,
        render=render,
        default_repeats=2,
        repeats_help="runs per store and worker count",
    )


if __name__ == "__main__":
    raise SystemExit(main())
