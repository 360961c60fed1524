"""Every example of docs/scale-out.md runs: the Python blocks (their printed lines are checked
against the text that follows each block), the ``watchkeeper serve`` line against a real
PostgreSQL server, and the ``kubectl kustomize`` line."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests._postgres import serve_postgres

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "scale-out.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```(?:\n\nprints (.*?)\.(?:\s|$))?", re.S)


def _blocks(kind: str) -> list[tuple[str, str | None]]:
    return [(m[2], m[3]) for m in BLOCK.finditer(DOC.read_text()) if m[1] == kind]


def _commands() -> list[list[str]]:
    return [
        shlex.split(line.removeprefix("$ "))
        for code, _ in _blocks("console")
        for line in code.splitlines()
        if line.startswith("$ ")
    ]


def test_python_examples_print_what_the_text_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = _blocks("python")
    assert len(blocks) >= 2
    namespace: dict[str, Any] = {}
    for code, printed in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(DOC), "exec"), namespace)
        assert printed is not None, f"no 'prints ...' after the block:\n{code}"
        want = [p.strip("`") for p in re.findall(r"`[^`]+`", printed)]
        assert out.getvalue().splitlines() == want


@pytest.fixture(scope="module")
def docs_postgres() -> Iterator[Any]:
    yield from serve_postgres()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.service
def test_serve_example_runs_on_postgresql(tmp_path: Path, docs_postgres: Any) -> None:
    (serve,) = [c for c in _commands() if c[:2] == ["watchkeeper", "serve"]]
    url = docs_postgres.create_database()
    port = _free_port()
    argv = [url if a.startswith("postgresql://") else a for a in serve[1:]]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-auth", "--root", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    server = subprocess.Popen([sys.executable, "-m", "watchkeeper.cli", *argv], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    try:
        deadline, up = time.monotonic() + 300, False
        while time.monotonic() < deadline and server.poll() is None and not up:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    up = True
            except OSError:
                time.sleep(0.5)
        assert up, f"watchkeeper serve did not come up (exit {server.poll()})"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode(errors="replace")
    assert "Uvicorn running" in output
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:  # serve created the log tables
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables")}
    assert {"log_predictions", "log_feedback"} <= tables


def test_kustomize_example_renders() -> None:
    (kustomize,) = [c for c in _commands() if c[0] == "kubectl"]
    kubectl = Path(sys.executable).with_name("kubectl")
    done = subprocess.run([str(kubectl), *kustomize[1:]], cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "kind: HorizontalPodAutoscaler" in done.stdout
