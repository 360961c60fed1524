"""Serving benchmark: watchkeeper's gateway against a bare FastAPI endpoint, MLServer and BentoML.

Run from the repository root with the project's interpreter, on a quiet machine::

    .venv/bin/python benchmarks/serving.py            # full run, writes BENCHMARKS.md
    .venv/bin/python benchmarks/serving.py --quick    # 3 s per point, prints the section only
    .venv/bin/python benchmarks/serving.py --servers fastapi,watchkeeper --workers 1 --no-write

One model for everyone: a scikit-learn ``HistGradientBoostingClassifier`` that predicts a
"busy hour" (more bikers than the training months' median) of the bundled bike-share data,
fitted once here and handed to every server as the same bytes (a joblib file for the bare
endpoint, MLServer and BentoML; the same estimator registered in a watchkeeper registry).
Every server runs on 127.0.0.1 in its own process group and is stopped afterwards; every
answer is checked against the local model's probabilities before the server is timed.

Load: ``wrk`` (``apt-get install wrk``), closed loop, one thread, 16 connections, a fixed
request body per point; a Lua ``done`` hook prints requests, errors and latency percentiles as
JSON. Servers are visited round-robin over the repetitions, so load from other work on the
shared machine falls on all of them alike; the medians are reported. The peers live in
``benchmarks/.venv-serving-peers`` (``requirements-serving-peers.txt`` plus the project's
scikit-learn version, so the pickled model loads unchanged), telemetry off.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Scripts run as files, not as a package: make the sibling helper modules importable.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    PROJECT_PYTHON,
    REPO_DIR,
    RESULTS_FILE,
    log,
    machine_description,
    md_table,
    median,
    package_versions,
    write_section,
)

PEERS_VENV = BENCH_DIR / ".venv-serving-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
PEERS_REQUIREMENTS = BENCH_DIR / "requirements-serving-peers.txt"
RAW_RESULTS = BENCH_DIR / "results" / "serving.json"
MODEL_NAME = "busy-hour"
WEATHER_CODES = {"clear": 1, "cloudy/misty": 2, "light rain/snow": 3, "heavy rain/snow": 4}

# Telemetry off for every server; one OpenMP/BLAS thread per process so that no server's
# model call fans out over cores the load generator and the other worker need (BentoML sets
# this for its workers anyway; here everyone gets the same).
SERVER_ENV = {
    "DO_NOT_TRACK": "1",
    "BENTOML_DO_NOT_TRACK": "true",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}

CONCURRENCY = 16
BATCH_SIZES = (1, 100)
P99_TARGET_MS = 25.0
BASELINE_RATIO_TARGET = 0.9  # watchkeeper / bare FastAPI throughput
PEER_RATIO_TARGET = 2.0  # watchkeeper / best peer throughput


# ---------------------------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------------------------


def _project_sklearn() -> str:
    proc = subprocess.run(
        [str(PROJECT_PYTHON), "-c", "import sklearn; print(sklearn.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def ensure_peers_venv() -> None:
    """Create or refresh the peers' venv from the requirements file (+ the project's sklearn)."""
    sklearn = _project_sklearn()
    stamp = PEERS_VENV / ".requirements-digest"
    digest = hashlib.sha256(PEERS_REQUIREMENTS.read_bytes() + sklearn.encode()).hexdigest()[:16]
    if PEERS_PYTHON.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return
    if not PEERS_PYTHON.exists():
        log(f"creating {PEERS_VENV.relative_to(REPO_DIR)} ...")
        # The base interpreter, not this venv's, so the peers venv does not chain to ours.
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True)
    log("installing the peer servers (requirements-serving-peers.txt) ...")
    pip = [str(PEERS_PYTHON), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(PEERS_REQUIREMENTS), f"scikit-learn=={sklearn}"], check=True)
    stamp.write_text(digest + "\n")


def _git_commit() -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "unknown"


def _load_average() -> float:
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------------------------------------
# The model and the request bodies
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """The fitted model on disk, its registry, and the rows every request is made of."""

    workdir: Path
    model_file: Path
    registry_root: Path
    features: tuple[str, ...]
    classes: tuple[Any, ...]
    rows: list[dict[str, int | float]]  # evaluation rows, JSON-ready, in feature order
    proba: list[list[float]]  # the local model's probabilities for `rows`


def prepare(workdir: Path) -> Prepared:
    """Fit the model, save it for every server, register it in a fresh watchkeeper registry."""
    import joblib
    from sklearn.ensemble import HistGradientBoostingClassifier

    from watchkeeper.datasets import BIKESHARE_FEATURES, load_bikeshare
    from watchkeeper.registry import Registry

    features = tuple(BIKESHARE_FEATURES)
    data = load_bikeshare()
    # Every server receives plain numbers (MLServer's default sklearn runtime takes one numeric
    # tensor), so the weather travels as its severity code, 1 (clear) to 4 (heavy rain/snow),
    # as in the UCI source.
    data["weathersit"] = data["weathersit"].map(WEATHER_CODES).astype("int64")
    train = data[data["month"] <= 6]
    evaluate = data[data["month"] > 6]
    threshold = float(train["bikers"].median())
    y = (train["bikers"] > threshold).astype("int64")
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    # Fitted on a plain matrix: every server then hands the model a numpy matrix built from
    # the request (watchkeeper maps field names to columns through the registered schema).
    model.fit(train[list(features)].to_numpy(dtype="float64"), y)

    model_file = workdir / "model.joblib"
    joblib.dump(model, model_file)
    registry_root = workdir / "watchkeeper"
    with Registry(root=registry_root) as registry:
        version = registry.register(
            MODEL_NAME,
            model,
            reference=train[list(features)],
            description="benchmark: busy hour (bikers above the Jan-Jun median)",
            actor="benchmark",
        )
        registry.set_alias(MODEL_NAME, "champion", version.version, actor="benchmark")

    sample = evaluate.sample(n=max(BATCH_SIZES), random_state=0)[list(features)]
    rows = [{f: _number(v) for f, v in zip(features, row, strict=True)} for row in sample.values]
    proba = model.predict_proba(sample.to_numpy(dtype="float64"))
    classes = tuple(c.item() for c in model.classes_)
    return Prepared(workdir, model_file, registry_root, features, classes, rows, proba.tolist())


def _number(value: Any) -> int | float:
    # Integer-valued columns (hour, weekday, flags, weather code) travel as JSON integers.
    f = float(value)
    return int(f) if f.is_integer() else f


@dataclass(frozen=True)
class Endpoint:
    """One way of asking a server for predictions: path, body, and how to read the answer."""

    key: str
    label: str
    path: str
    body: Callable[[Prepared, int], Any]
    probabilities: Callable[[Any, Prepared], list[list[float]]]


def _records_body(prep: Prepared, n: int) -> Any:
    # watchkeeper's /v1 shape: one record is a JSON object, a batch a list of them.
    return prep.rows[0] if n == 1 else prep.rows[:n]


def _bento_body(prep: Prepared, n: int) -> Any:
    # BentoML's JSON form of the API's arguments.
    return {"records": prep.rows[:n]}


def _v2_tensor_body(prep: Prepared, n: int) -> dict[str, Any]:
    # One [n, k] FP64 tensor: MLServer's sklearn runtime's native input.
    flat = [float(r[f]) for r in prep.rows[:n] for f in prep.features]
    return {
        "inputs": [
            {"name": "input-0", "shape": [n, len(prep.features)], "datatype": "FP64", "data": flat}
        ],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }


def _proba_from_records(answer: Any, prep: Prepared) -> list[list[float]]:
    return [list(map(float, p)) for p in answer["probabilities"]]


def _proba_from_v2(answer: Any, prep: Prepared) -> list[list[float]]:
    for out in answer["outputs"]:
        if out["name"] in ("predict_proba", "probabilities", "scores"):
            n, k = out["shape"]
            data = [float(x) for x in out["data"]]
            if data and isinstance(out["data"][0], list):  # nested (row-major) form
                data = [float(x) for row in out["data"] for x in row]
            return [data[i * k : (i + 1) * k] for i in range(n)]
    raise RuntimeError(f"no probability output among {[o['name'] for o in answer['outputs']]}")


def _proba_from_watchkeeper(answer: Any, prep: Prepared) -> list[list[float]]:
    # {"scores": [{"<class>": p, ...}, ...]}, keyed by the class label as text.
    return [[float(item[str(c)]) for c in prep.classes] for item in answer["scores"]]


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ready_path: str


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    group: str  # "a" baseline, "b" watchkeeper, "c" peer
    launch: Callable[[Prepared, int, int, Path], Launch]
    endpoints: tuple[Endpoint, ...]


def _baseline_launch(prep: Prepared, port: int, workers: int, scratch: Path) -> Launch:
    return Launch(
        argv=[
            str(PROJECT_PYTHON),
            "-m",
            "uvicorn",
            "_serving_baseline:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env={"WK_BENCH_MODEL": str(prep.model_file), "WK_BENCH_FEATURES": ",".join(prep.features)},
        cwd=BENCH_DIR,
        ready_path="/readyz",
    )


def _watchkeeper_launch(prep: Prepared, port: int, workers: int, scratch: Path) -> Launch:
    return Launch(
        argv=[
            str(PROJECT_PYTHON),
            "-m",
            "watchkeeper.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--root",
            str(prep.registry_root),
        ],
        env={},
        cwd=scratch,
        ready_path="/readyz",
    )


def _mlserver_launch(prep: Prepared, port: int, workers: int, scratch: Path) -> Launch:
    folder = scratch / "mlserver"
    folder.mkdir(exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        # MLServer has one HTTP process; its way to use several cores is a pool of inference
        # processes. With one worker, inference runs in the HTTP process (no IPC hop).
        "parallel_workers": workers if workers > 1 else 0,
        "debug": False,
    }
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(prep.model_file), "version": "v1"},
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    (folder / "model-settings.json").write_text(json.dumps(model_settings))
    return Launch(
        argv=[str(PEERS_VENV / "bin" / "mlserver"), "start", str(folder)],
        env={},
        cwd=folder,
        ready_path=f"/v2/models/{MODEL_NAME}/ready",
    )


def _bentoml_launch(prep: Prepared, port: int, workers: int, scratch: Path) -> Launch:
    return Launch(
        argv=[
            str(PEERS_VENV / "bin" / "bentoml"),
            "serve",
            "_serving_bento:BusyHour",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--working-dir",
            str(BENCH_DIR),
        ],
        env={
            "WK_BENCH_MODEL": str(prep.model_file),
            "WK_BENCH_FEATURES": ",".join(prep.features),
            "WK_BENCH_WORKERS": str(workers),
            # Per-request access lines cost throughput; no other server writes them either.
            "BENTOML_CONFIG_OPTIONS": "api_server.logging.access.enabled=false",
        },
        cwd=scratch,
        ready_path="/readyz",
    )


SERVERS: dict[str, Server] = {
    "fastapi": Server(
        "fastapi",
        "bare FastAPI endpoint, `predict_proba` inline, no logging",
        "a",
        _baseline_launch,
        (
            Endpoint(
                "records",
                "`/predict`, JSON records",
                "/predict",
                _records_body,
                _proba_from_records,
            ),
        ),
    ),
    "watchkeeper": Server(
        "watchkeeper",
        "watchkeeper gateway, durable log + metrics",
        "b",
        _watchkeeper_launch,
        (
            Endpoint(
                "v1",
                "`/v1/models/{name}/predict`, JSON records",
                f"/v1/models/{MODEL_NAME}/predict",
                _records_body,
                _proba_from_watchkeeper,
            ),
            Endpoint(
                "v2",
                "`/v2/models/{name}/infer`, one [n, 9] tensor (MLServer's body)",
                f"/v2/models/{MODEL_NAME}/infer",
                _v2_tensor_body,
                _proba_from_v2,
            ),
        ),
    ),
    "mlserver": Server(
        "mlserver",
        "MLServer 1.7, sklearn runtime",
        "c",
        _mlserver_launch,
        (
            Endpoint(
                "v2",
                "`/v2/models/{name}/infer`, one [n, 9] tensor",
                f"/v2/models/{MODEL_NAME}/infer",
                _v2_tensor_body,
                _proba_from_v2,
            ),
        ),
    ),
    "bentoml": Server(
        "bentoml",
        "BentoML 1.4 service",
        "c",
        _bentoml_launch,
        (
            Endpoint(
                "records",
                '`/predict`, `{"records": [...]}`',
                "/predict",
                _bento_body,
                _proba_from_records,
            ),
        ),
    ),
}


@contextlib.contextmanager
def running(
    server: Server, prep: Prepared, workers: int, scratch: Path
) -> Iterator[tuple[str, int]]:
    """Start `server` on a free loopback port, wait until ready, yield its base URL and
    process id, stop it (and everything it started)."""
    port = free_port()
    spec = server.launch(prep, port, workers, scratch)
    python = PEERS_PYTHON if server.group == "c" else PROJECT_PYTHON
    env = {**os.environ, **SERVER_ENV, **spec.env}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    log_file = scratch / f"{server.key}-{workers}w-{port}.log"
    with open(log_file, "wb") as out:
        # A session of its own so that the whole tree (uvicorn/bentoml workers, MLServer's
        # inference pool) is stopped through its process group, and nothing else is.
        proc = subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base + spec.ready_path, proc, log_file, timeout=120.0)
        yield base, proc.pid
    finally:
        _stop(proc)


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks used: user + system) of every live process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, ..., utime (14th field of the line), stime (15th).
        table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def descendants(root: int, table: dict[int, tuple[int, int]] | None = None) -> list[int]:
    """`root` and every live process below it (BentoML's workers leave its process group)."""
    table = _process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by `root` and its live descendants.

    Divided by the requests served in a window, it is the server's CPU cost per request:
    a number that other work on a shared machine disturbs far less than throughput.
    """
    table = _process_table()
    ticks = sum(table[pid][1] for pid in descendants(root, table))
    return ticks / os.sysconf("SC_CLK_TCK")


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_file: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_file.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(f"server exited with {proc.returncode}:\n" + "\n".join(tail))
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s (log: {log_file})")


def _start_time(pid: int) -> str | None:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Remember (pid, start time) of the whole tree now: a worker that survives its parent is
    # killed below only if it is still that same process (pids can be reused).
    tree = [(pid, _start_time(pid)) for pid in descendants(proc.pid)]
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # Workers that outlived their parent would keep the port and the cores busy.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid, started in tree:
        if started is not None and _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def post_json(url: str, body: bytes) -> Any:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def check_answer(endpoint: Endpoint, answer: Any, prep: Prepared, n: int) -> None:
    """Refuse to time a server that does not return the local model's probabilities."""
    expected = prep.proba[:n]
    got = endpoint.probabilities(answer, prep)
    if len(got) != len(expected):
        raise RuntimeError(f"{endpoint.path}: {len(got)} answers for {len(expected)} records")
    worst = max(
        abs(g - e)
        for gr, er in zip(got, expected, strict=True)
        for g, e in zip(gr, er, strict=True)
    )
    if worst > 1e-9:
        raise RuntimeError(f"{endpoint.path}: probabilities differ from the model's by {worst:.3g}")


# ---------------------------------------------------------------------------------------------
# Load generation
# ---------------------------------------------------------------------------------------------

_WRK_SCRIPT = """
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %f, "non_2xx": %d, "errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def run_wrk(url: str, body_file: Path, seconds: float, connections: int) -> dict[str, Any]:
    script = body_file.with_suffix(".lua")
    script.write_text(_WRK_SCRIPT.format(body=body_file))
    argv = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    raw = json.loads(lines[-1])
    seconds_run = raw["duration_us"] / 1e6
    return {
        "rps": raw["requests"] / seconds_run,
        "p50_ms": raw["p50_us"] / 1e3,
        "p90_ms": raw["p90_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "requests": raw["requests"],
        "non_2xx": raw["non_2xx"],
        "errors": raw["errors"],
    }


PY_SPY = PEERS_VENV / "bin" / "py-spy"
PROFILE_DIR = BENCH_DIR / "results" / "serving-profiles"


@contextlib.contextmanager
def profiled(root: int, seconds: float, name: str, enabled: bool) -> Iterator[None]:
    """Sample the server's processes with py-spy for `seconds` while the block runs; write
    the hottest functions (self time, per thread) to ``results/serving-profiles/NAME.txt``.

    py-spy samples from outside the process (ptrace), so the server runs unmodified; its
    sampling still costs a little CPU, which is why profiles come from a separate run.
    """
    if not enabled:
        yield
        return
    # The workers (uvicorn's supervisor only forwards signals), or the server itself.
    pids = [pid for pid in descendants(root) if pid != root] or [root]
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    procs = []
    for pid in pids:
        raw = PROFILE_DIR / f"{name}-{pid}.raw"
        argv = [str(PY_SPY), "record", "-p", str(pid), "-d", f"{seconds:g}", "-r", "250"]
        argv += ["--format", "raw", "--threads", "--nonblocking", "-o", str(raw)]
        procs.append(
            (raw, subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        )
    try:
        yield
    finally:
        lines = []
        for raw, proc in procs:
            proc.wait(timeout=seconds + 60)
            if raw.exists():
                lines.append(_summarise_profile(raw))
                raw.unlink()
        (PROFILE_DIR / f"{name}.txt").write_text("\n".join(lines))


def _summarise_profile(raw: Path, top: int = 25) -> str:
    """Self time per function (and per thread) from py-spy's collapsed stacks."""
    import collections
    import re

    per_function: collections.Counter[str] = collections.Counter()
    per_thread: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        per_thread[re.sub(r"\(\d+\)", "", frames[0])] += n
        per_function[re.sub(r":\d+\)$", ")", frames[-1])] += n
    out = [f"{raw.stem}: {total} samples (active threads only)", "threads:"]
    out += [f"  {100 * n / total:5.1f}%  {t}" for t, n in per_thread.most_common()]
    out.append("self time:")
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in per_function.most_common(top)]
    return "\n".join(out) + "\n"


def measure(
    servers: Sequence[str],
    workers_list: Sequence[int],
    batch_sizes: Sequence[int],
    reps: int,
    seconds: float,
    warmup: float,
    prep: Prepared,
    scratch: Path,
    profile: bool = False,
) -> list[dict[str, Any]]:
    """Round-robin over repetitions, servers and worker counts; one row per measured point."""
    bodies: dict[tuple[str, str, int], Path] = {}
    rows: list[dict[str, Any]] = []
    for rep in range(reps):
        for workers in workers_list:
            for key in servers:
                server = SERVERS[key]
                log(f"rep {rep + 1}/{reps}: {key}, {workers} worker(s) ...")
                with running(server, prep, workers, scratch) as (base, pid):
                    for endpoint in server.endpoints:
                        for n in batch_sizes:
                            name = (key, endpoint.key, n)
                            if name not in bodies:
                                bodies[name] = scratch / f"{key}-{endpoint.key}-{n}.json"
                                body = endpoint.body(prep, n)
                                bodies[name].write_bytes(json.dumps(body).encode())
                            body_bytes = bodies[name].read_bytes()
                            url = base + endpoint.path
                            check_answer(endpoint, post_json(url, body_bytes), prep, n)
                            run_wrk(url, bodies[name], warmup, CONCURRENCY)
                            load_before = _load_average()
                            cpu_before = tree_cpu_seconds(pid)
                            tag = f"{key}-{endpoint.key}-{workers}w-{n}"
                            with profiled(pid, seconds, tag, profile and server.group == "b"):
                                result = run_wrk(url, bodies[name], seconds, CONCURRENCY)
                            cpu = tree_cpu_seconds(pid) - cpu_before
                            result["server_cpu_ms"] = 1000 * cpu / max(result["requests"], 1)
                            row = {
                                "server": key,
                                "endpoint": endpoint.key,
                                "workers": workers,
                                "batch": n,
                                "rep": rep,
                                "load_before": load_before,
                                "load_after": _load_average(),
                                **result,
                            }
                            log(
                                f"  {endpoint.key:8s} batch {n:>3}: {result['rps']:8.1f} req/s, "
                                f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
                                f"server CPU {result['server_cpu_ms']:.2f} ms/req, "
                                f"non-2xx {result['non_2xx']}, errors {result['errors']}"
                            )
                            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Summary and BENCHMARKS.md
# ---------------------------------------------------------------------------------------------


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians over the repetitions of each (server, endpoint, workers, batch) point."""
    groups: dict[tuple[str, str, int, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(
            (row["server"], row["endpoint"], row["workers"], row["batch"]), []
        ).append(row)
    out = []
    for (server, endpoint, workers, batch), items in groups.items():
        out.append(
            {
                "server": server,
                "endpoint": endpoint,
                "workers": workers,
                "batch": batch,
                "runs": len(items),
                "rps": median(r["rps"] for r in items),
                "p50_ms": median(r["p50_ms"] for r in items),
                "p99_ms": median(r["p99_ms"] for r in items),
                "server_cpu_ms": median(r["server_cpu_ms"] for r in items),
                "failed": sum(r["non_2xx"] + r["errors"] for r in items),
                "requests": sum(r["requests"] for r in items),
            }
        )
    return out


def _fmt(x: float) -> str:
    if x != x:  # NaN
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _endpoint_label(server: str, endpoint: str) -> str:
    for e in SERVERS[server].endpoints:
        if e.key == endpoint:
            return e.label
    return endpoint


def targets(summary: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The issue's targets per worker count and batch size, measured on watchkeeper's /v1."""
    index = {(s["server"], s["endpoint"], s["workers"], s["batch"]): s for s in summary}
    out = []
    for workers in sorted({s["workers"] for s in summary}):
        for batch in sorted({s["batch"] for s in summary}):
            wk = index.get(("watchkeeper", "v1", workers, batch))
            if wk is None:
                continue
            where = f"{workers} worker(s), {batch} record(s)"
            base = index.get(("fastapi", "records", workers, batch))
            if base is not None:
                ratio = wk["rps"] / base["rps"]
                out.append(
                    _target_row(
                        where,
                        f"throughput / bare FastAPI >= {BASELINE_RATIO_TARGET}",
                        ratio,
                        BASELINE_RATIO_TARGET,
                    )
                )
                out.append(
                    [
                        where,
                        "(context) server CPU per request, watchkeeper / bare FastAPI",
                        f"{wk['server_cpu_ms']:.2f} / {base['server_cpu_ms']:.2f} ms "
                        f"= {wk['server_cpu_ms'] / base['server_cpu_ms']:.2f}x",
                        "-",
                    ]
                )
            peers = [
                s
                for s in summary
                if SERVERS[s["server"]].group == "c"
                and s["workers"] == workers
                and s["batch"] == batch
            ]
            if peers:
                best = max(peers, key=lambda s: s["rps"])
                ratio = wk["rps"] / best["rps"]
                out.append(
                    _target_row(
                        where,
                        f"throughput / best peer ({best['server']}) >= {PEER_RATIO_TARGET:g}",
                        ratio,
                        PEER_RATIO_TARGET,
                    )
                )
            p99 = wk["p99_ms"]
            ok = p99 <= P99_TARGET_MS
            status = "met" if ok else f"NOT met ({p99 - P99_TARGET_MS:.1f} ms over)"
            out.append(
                [
                    where,
                    f"p99 at {CONCURRENCY} clients <= {P99_TARGET_MS:g} ms",
                    f"{p99:.1f} ms",
                    status,
                ]
            )
    return out


def _target_row(where: str, what: str, ratio: float, target: float) -> list[str]:
    status = "met" if ratio >= target else f"NOT met ({(1 - ratio / target) * 100:.0f}% short)"
    return [where, what, f"{ratio:.2f}x", status]


def render(meta: dict[str, Any], summary: Sequence[dict[str, Any]], notes: str) -> str:
    machine = meta["machine"]
    versions = meta["versions"]
    lines = [
        "## Serving",
        "",
        f"Written by `benchmarks/serving.py` on {meta['date']} (commit `{meta['commit']}`; "
        f"{meta['seconds']:g} s per point after a {meta['warmup']:g} s warm-up, "
        f"{meta['reps']} round-robin repetition(s), medians shown; re-run with "
        "`.venv/bin/python benchmarks/serving.py`).",
        "",
        f"**Machine**: {machine['cpu']}, {machine['usable_cpus']} usable cores, "
        f"{machine['ram_gib']} GiB RAM, {machine['os']}; load generator and servers on the same "
        f"2 cores; 1-minute load average {meta['load_start']} before the run, "
        f"{meta['load_end']} after it (other work shares the machine).",
        "",
        f"**Versions**: Python {versions['project'].get('python')}; "
        f"fastapi {versions['project'].get('fastapi')}, uvicorn {versions['project'].get('uvicorn')}, "
        f"scikit-learn {versions['project'].get('scikit-learn')}; "
        f"MLServer {versions['peers'].get('mlserver')} (mlserver-sklearn "
        f"{versions['peers'].get('mlserver-sklearn')}), BentoML {versions['peers'].get('bentoml')} "
        f"(their venv, scikit-learn {versions['peers'].get('scikit-learn')}); wrk "
        f"{meta['wrk']}.",
        "",
        "**Model**: `HistGradientBoostingClassifier(max_iter=100, random_state=0)` predicting a "
        "busy hour (bikers above the January-June median) from the 9 weather and calendar "
        "features of the bundled bike-share data, fitted on January-June; requests carry "
        "rows of July-December. The same fitted estimator everywhere (joblib file; registered "
        "in a watchkeeper registry for the gateway), every answer checked against the local "
        "model's probabilities (max abs difference 1e-9) before timing.",
        "",
        f"**Load**: `wrk -t 1 -c {CONCURRENCY}` (closed loop, {CONCURRENCY} concurrent "
        "clients, keep-alive), one fixed body per point: 1 record or 100 records. Each server "
        "answers with the label and class probabilities of every record. "
        "`OMP_NUM_THREADS=1` for every server; telemetry off; no access log.",
        "",
        "| server | endpoint | workers | records / request | req/s | records/s | p50 (ms) | p99 (ms) | server CPU per request (ms) | failed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    group_order = {"a": 0, "b": 1, "c": 2}
    ordered = sorted(
        summary,
        key=lambda s: (
            s["workers"],
            s["batch"],
            group_order[SERVERS[s["server"]].group],
            s["server"],
            s["endpoint"],
        ),
    )
    for s in ordered:
        server = SERVERS[s["server"]]
        lines.append(
            f"| ({server.group}) {server.label} | {_endpoint_label(s['server'], s['endpoint'])} | "
            f"{s['workers']} | {s['batch']} | {_fmt(s['rps'])} | {_fmt(s['rps'] * s['batch'])} | "
            f"{_fmt(s['p50_ms'])} | {_fmt(s['p99_ms'])} | {_fmt(s['server_cpu_ms'])} | "
            f"{s['failed']} of {s['requests']:,} |"
        )
    lines += ["", "### Targets (watchkeeper `/v1`)", ""]
    lines.append(md_table(["point", "target", "measured", "status"], targets(summary)))
    if notes.strip():
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


NOTES_FILE = BENCH_DIR / "serving_notes.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="3 s per point, 1 repetition, 1 worker; prints only"
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="comma-separated subset of " + ",".join(SERVERS),
    )
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per point")
    parser.add_argument("--reps", type=int, default=2, help="round-robin repetitions")
    parser.add_argument(
        "--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone"
    )
    parser.add_argument("--from-json", type=Path, help="re-render a previous run's raw results")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample watchkeeper's server with py-spy during each point (results/serving-profiles/); "
        "implies --no-write, since sampling costs CPU",
    )
    args = parser.parse_args(argv)

    if args.from_json:
        raw = json.loads(args.from_json.read_text())
        section = render(raw["meta"], summarise(raw["rows"]), _notes())
        print(section)
        if not args.no_write:
            write_section("serving", section)
        return 0

    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown server(s) {unknown}; choose from {', '.join(SERVERS)}")
    workers_list = [int(w) for w in args.workers.split(",")]
    seconds, warmup, reps = args.seconds, args.warmup, args.reps
    if args.quick:
        seconds, warmup, reps, workers_list = 3.0, 1.0, 1, [1]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    if args.profile or any(SERVERS[s].group == "c" for s in servers):
        ensure_peers_venv()

    meta: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "commit": _git_commit(),
        "machine": machine_description(),
        "versions": {
            "project": package_versions(
                PROJECT_PYTHON, ["fastapi", "uvicorn", "scikit-learn", "prometheus-client"]
            ),
            "peers": package_versions(
                PEERS_PYTHON, ["mlserver", "mlserver-sklearn", "bentoml", "scikit-learn"]
            )
            if PEERS_PYTHON.exists()
            else {},
        },
        "wrk": _wrk_version(),
        "seconds": seconds,
        "warmup": warmup,
        "reps": reps,
        "load_start": _load_average(),
    }
    with tempfile.TemporaryDirectory(prefix="wk-serving-") as tmp:
        scratch = Path(tmp)
        log("fitting and registering the model ...")
        prep = prepare(scratch)
        rows = measure(
            servers, workers_list, BATCH_SIZES, reps, seconds, warmup, prep, scratch, args.profile
        )
    meta["load_end"] = _load_average()
    summary = summarise(rows)
    section = render(meta, summary, _notes())
    print(section)
    if not (args.quick or args.profile):
        # Raw numbers are kept even with --no-write: a long run is never lost.
        RAW_RESULTS.parent.mkdir(exist_ok=True)
        RAW_RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
        log(f"wrote {RAW_RESULTS.relative_to(REPO_DIR)}")
    if not (args.quick or args.no_write or args.profile):
        write_section("serving", section)
        log(f"wrote the serving section of {RESULTS_FILE.name}")
    return 0


def _notes() -> str:
    return NOTES_FILE.read_text(encoding="utf-8") if NOTES_FILE.exists() else ""


def _wrk_version() -> str:
    proc = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    text = (proc.stdout + proc.stderr).split()
    return text[1] if len(text) > 1 else "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
