"""Fixtures for the gateway's process-level tests: a registry with trained demo models, real
``watchkeeper serve`` subprocesses on free loopback ports, a real Prometheus scraping them,
and a bounded load generator.

Everything binds to 127.0.0.1, every loop is bounded in count and time, and every process a
fixture starts is stopped by that fixture (by its own process group, nothing else).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MODEL = "busy-hour"
PROMETHEUS_BIN = "/usr/bin/prometheus"
#: Seconds a server or Prometheus gets to become ready before the test fails.
START_TIMEOUT = 90.0


def service_unavailable(reason: str) -> None:
    """tests/conftest.py's skip-or-fail (fail under WATCHKEEPER_REQUIRE_SERVICES=1)."""
    # tests/ is not a package (pytest runs with --import-mode=importlib): load it by path.
    name = "_watchkeeper_tests_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parents[1] / "conftest.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    sys.modules[name].service_unavailable(reason)


# ---------------------------------------------------------------------------------------------
# A registry with two trained versions of one demo model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoRegistry:
    """A registry folder to copy, and what the tests need to know about its models.

    ``rows`` are JSON-ready feature records of the second half of 2011 (not trained on);
    ``features`` the model inputs; ``versions`` the alias -> version map at the start.
    """

    template: Path
    features: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    versions: Mapping[str, int]
    classes: tuple[str, ...]

    def copy_to(self, dest: Path) -> Path:
        """A private copy of the registry (tests change aliases and routes)."""
        shutil.copytree(self.template, dest)
        return dest


def _pipeline(max_iter: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from watchkeeper.datasets import BIKESHARE_FEATURES

    numeric = [f for f in BIKESHARE_FEATURES if f != "weathersit"]
    encode = ColumnTransformer(
        [
            ("weather", OneHotEncoder(handle_unknown="ignore"), ["weathersit"]),
            ("numbers", "passthrough", numeric),
        ]
    )
    model = HistGradientBoostingClassifier(max_iter=max_iter, random_state=0)
    return Pipeline([("encode", encode), ("model", model)])


@pytest.fixture(scope="session")
def demo_registry(tmp_path_factory: pytest.TempPathFactory) -> DemoRegistry:
    """``busy-hour``: is an hour busier than the January-June median? Version 1 (alias
    ``champion``) is trained on January-June, version 2 (alias ``challenger``) on
    January-September, so the two answer differently and a response says which one spoke."""
    from watchkeeper.datasets import BIKESHARE_FEATURES, load_bikeshare
    from watchkeeper.registry import Registry

    features = tuple(BIKESHARE_FEATURES)
    data = load_bikeshare()
    first_half = data[data["month"] <= 6]
    threshold = float(first_half["bikers"].median())
    labels = (data["bikers"] > threshold).map({True: "busy", False: "quiet"})
    root = tmp_path_factory.mktemp("gateway-registry") / "root"
    with Registry(root=root) as registry:
        for version, (months, max_iter) in enumerate(((6, 30), (9, 40)), start=1):
            train = data["month"] <= months
            model = _pipeline(max_iter).fit(data.loc[train, list(features)], labels[train])
            registry.register(
                MODEL,
                model,
                reference=data.loc[train, list(features)],
                description=f"busy hour, trained on months 1-{months}",
                actor="tests",
            )
            alias = "champion" if version == 1 else "challenger"
            registry.set_alias(MODEL, alias, version, actor="tests")
    later = data[data["month"] > 6].sample(n=500, random_state=0)[list(features)]
    rows = tuple(
        {f: (v.item() if hasattr(v, "item") else v) for f, v in zip(features, row, strict=True)}
        for row in later.itertuples(index=False)
    )
    return DemoRegistry(root, features, rows, {"champion": 1, "challenger": 2}, ("busy", "quiet"))


# ---------------------------------------------------------------------------------------------
# `watchkeeper serve` in a subprocess
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One plain HTTP request: (status, body), 4xx/5xx included."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


@dataclass
class GatewayProcess:
    """A ``watchkeeper serve`` subprocess (its own process group) on a loopback port."""

    root: Path
    workers: int
    log_file: Path
    env: dict[str, str]
    predict_token: str
    admin_token: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The SQLite prediction log (the gateway's default place under ``root``)."""
        return self.root / "predictions.db"

    @property
    def headers(self) -> dict[str, str]:
        """Headers of a client holding a predict token."""
        return {"Authorization": f"Bearer {self.predict_token}"}

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def start(self, timeout: float = START_TIMEOUT) -> GatewayProcess:
        """Start the server and wait until ``/readyz`` says the models are loaded."""
        argv = [
            sys.executable, "-m", "watchkeeper.cli", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--root", str(self.root), "--workers", str(self.workers),
        ]  # fmt: skip
        with open(self.log_file, "ab") as out:
            # A session of its own: kill -9 and teardown reach the supervisor and every
            # worker through the process group, and nothing else.
            self.proc = subprocess.Popen(
                argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"watchkeeper serve exited with {self.proc.returncode}:\n{self.log_tail()}",
                    pytrace=False,
                )
            try:
                status, _ = http("GET", self.base_url + "/readyz", timeout=2.0)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                status = 0
            if status == 200:
                return self
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"gateway not ready after {timeout:.0f} s:\n{self.log_tail()}", pytrace=False)
        raise AssertionError("unreachable")

    def kill(self) -> None:
        """SIGKILL the supervisor and every worker at once (the crash under test)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # Workers that outlived their supervisor would hold the port and the log.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def pids(self) -> list[int]:
        """The supervisor and its live children (uvicorn workers)."""
        assert self.proc is not None
        found = [self.proc.pid]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Field 4 (after the parenthesised command) is the parent pid; field 5 the group.
            after = stat.rsplit(")", 1)[1].split()
            if int(after[2]) == self.proc.pid and int(entry.name) != self.proc.pid:
                found.append(int(entry.name))
        return found

    def rss_bytes(self) -> int:
        """Resident memory of the supervisor and its workers, summed."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def metrics(self) -> str:
        """The ``/metrics`` text of the server."""
        status, body = http("GET", self.base_url + "/metrics", headers=self.headers)
        assert status == 200, body[:500]
        return body.decode()


def _die_with_parent() -> None:
    # If the test process dies without its teardown (SIGTERM, a crashed runner), the kernel
    # sends the server SIGTERM too, so no server outlives the tests that started it.
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def gateway_env(
    predict_token: str, admin_token: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a served gateway: tokens on, one BLAS/OpenMP thread (2 cores)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WATCHKEEPER_", "PROMETHEUS_MULTIPROC"))
    }
    env.update(
        {
            "WATCHKEEPER_PREDICT_TOKENS": predict_token,
            "WATCHKEEPER_ADMIN_TOKENS": admin_token,
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


StartGateway = Callable[..., GatewayProcess]


@pytest.fixture
def start_gateway(demo_registry: DemoRegistry, tmp_path: Path) -> Iterator[StartGateway]:
    """Factory: ``start_gateway(workers=2, env={...}, root=None)`` starts a server on a fresh
    copy of the demo registry (or on ``root``) and stops it at teardown."""
    started: list[GatewayProcess] = []

    def start(
        *, workers: int = 2, env: Mapping[str, str] | None = None, root: Path | None = None
    ) -> GatewayProcess:
        if root is None:
            root = demo_registry.copy_to(tmp_path / f"root-{len(started)}")
        predict_token = "p-" + secrets.token_urlsafe(24)
        admin_token = "a-" + secrets.token_urlsafe(24)
        server = GatewayProcess(
            root=root,
            workers=workers,
            log_file=tmp_path / f"gateway-{len(started)}.log",
            env=gateway_env(predict_token, admin_token, env),
            predict_token=predict_token,
            admin_token=admin_token,
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def gateway_server(
    demo_registry: DemoRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """One server with two workers for a whole test module (tests that change routes, kill
    or slow the server use ``start_gateway`` instead)."""
    tmp = tmp_path_factory.mktemp("gateway")
    predict_token = "p-" + secrets.token_urlsafe(24)
    admin_token = "a-" + secrets.token_urlsafe(24)
    server = GatewayProcess(
        root=demo_registry.copy_to(tmp / "root"),
        workers=2,
        log_file=tmp / "gateway.log",
        env=gateway_env(predict_token, admin_token),
        predict_token=predict_token,
        admin_token=admin_token,
    )
    try:
        yield server.start()
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------------------------


@dataclass
class Prometheus:
    """A throwaway Prometheus server on a loopback port."""

    port: int
    proc: subprocess.Popen[bytes]
    log_file: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant-query result vector (``[{"metric": {...}, "value": [ts, "v"]}, ...]``)."""
        import json

        url = self.base_url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, body = http("GET", url)
        assert status == 200, body[:500]
        payload = json.loads(body)
        assert payload["status"] == "success", payload
        result: list[dict[str, Any]] = payload["data"]["result"]
        return result

    def targets_up(self) -> bool:
        return any(float(r["value"][1]) == 1.0 for r in self.query("up"))


def start_prometheus(
    tmp: Path, targets: Sequence[str], *, metrics_path: str = "/metrics", bearer: str | None = None
) -> Prometheus:
    """Start /usr/bin/prometheus scraping ``targets`` (host:port) every second."""
    if not Path(PROMETHEUS_BIN).exists():
        service_unavailable(f"{PROMETHEUS_BIN} is not installed (apt-get install prometheus)")
    auth = f"    authorization:\n      credentials: {bearer}\n" if bearer else ""
    config = (
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: watchkeeper\n"
        f"    metrics_path: {metrics_path}\n"
        f"{auth}"
        "    static_configs:\n"
        f"      - targets: [{', '.join(repr(t) for t in targets)}]\n"
    )
    (tmp / "prometheus.yml").write_text(config)
    port = free_port()
    log_file = tmp / "prometheus.log"
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            [
                PROMETHEUS_BIN,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    server = Prometheus(port, proc, log_file)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            service_unavailable(
                f"prometheus exited with {proc.returncode}: {log_file.read_text()[-2000:]}"
            )
        try:
            status, _ = http("GET", server.base_url + "/-/ready", timeout=2.0)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            status = 0
        if status == 200:
            return server
        time.sleep(0.2)
    stop_process_group(proc)
    service_unavailable(f"prometheus not ready after {START_TIMEOUT:.0f} s")
    raise AssertionError("unreachable")


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def prometheus(gateway_server: GatewayProcess, tmp_path: Path) -> Iterator[Prometheus]:
    """A Prometheus that scrapes ``gateway_server`` every second (with its predict token)."""
    server = start_prometheus(
        tmp_path, [f"127.0.0.1:{gateway_server.port}"], bearer=gateway_server.predict_token
    )
    try:
        yield server
    finally:
        stop_process_group(server.proc)


# ---------------------------------------------------------------------------------------------
# Bounded load
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One request of a load run: status (0 when the connection failed) and parsed body."""

    status: int
    body: Any
    started: float
    error: str | None = None
    index: int = -1  # the ``i`` its body was made with


@dataclass
class LoadRun:
    """Requests sent by :func:`run_load` so far (filled from a background thread)."""

    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.status == 200]

    def snapshot(self) -> list[Outcome]:
        with self.lock:
            return list(self.outcomes)


def run_load(
    url: str,
    bodies: Callable[[int], tuple[bytes, Mapping[str, str]]],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    run: LoadRun | None = None,
    timeout: float = 30.0,
) -> LoadRun:
    """POST ``bodies(i)`` (body, extra headers) with ``concurrency`` clients until
    ``max_requests`` were sent, ``max_seconds`` passed or ``run.stop`` is set.

    Connection failures are recorded as status 0, never raised: a test that kills the server
    mid-run reads them back.
    """
    import httpx

    run = run or LoadRun()
    counter = iter(range(max_requests))
    deadline = time.monotonic() + max_seconds

    async def client(http_client: httpx.AsyncClient) -> None:
        import json

        for i in counter:
            if run.stop.is_set() or time.monotonic() > deadline:
                return
            body, headers = bodies(i)
            started = time.monotonic()
            try:
                resp = await http_client.post(url, content=body, headers=dict(headers))
            except httpx.HTTPError as exc:
                outcome = Outcome(0, None, started, f"{type(exc).__name__}: {exc}", i)
            else:
                try:
                    parsed = json.loads(resp.content)
                except ValueError:
                    parsed = resp.text
                outcome = Outcome(resp.status_code, parsed, started, None, i)
            with run.lock:
                run.outcomes.append(outcome)

    async def main() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as http_client:
            await asyncio.gather(*(client(http_client) for _ in range(concurrency)))

    asyncio.run(main())
    return run


@contextlib.contextmanager
def load_in_background(
    url: str,
    bodies: Callable[[int], tuple[bytes, Mapping[str, str]]],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    timeout: float = 30.0,
) -> Iterator[LoadRun]:
    """:func:`run_load` in a thread; leaving the block stops it and waits for it."""
    run = LoadRun()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_load(
                url,
                bodies,
                concurrency=concurrency,
                max_requests=max_requests,
                max_seconds=max_seconds,
                run=run,
                timeout=timeout,
            )
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    thread = threading.Thread(target=target, name="load", daemon=True)
    thread.start()
    try:
        yield run
    finally:
        run.stop.set()
        thread.join(timeout=max_seconds + timeout + 60)
    if errors:
        raise errors[0]
