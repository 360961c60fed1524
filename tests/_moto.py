"""Start and stop a real S3-compatible server (moto in server mode) for tests.

The server is moto's own process (``moto_server``), listening on 127.0.0.1 on a free port; the
clients under test (s3fs, pyarrow through fsspec) talk HTTP to it exactly as to any S3 endpoint.
Credentials are dummies: moto accepts any.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["S3Server", "serve_s3"]

REGION = "us-east-1"


class S3UnavailableError(RuntimeError):
    """The S3-compatible server cannot be started here; the message says why."""


@dataclass
class S3Server:
    """A running moto server; :meth:`stop` ends it."""

    process: subprocess.Popen[bytes]
    endpoint_url: str

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options that reach this server."""
        return {
            "endpoint_url": self.endpoint_url,
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"region_name": REGION},
        }

    @property
    def env(self) -> dict[str, str]:
        """Environment variables through which a child process reaches this server."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def create_bucket(self) -> str:
        """Create an empty bucket with a fresh name and return it."""
        import boto3

        name = f"wk-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_s3() -> S3Server:
    """Start ``moto_server`` and wait until it answers; raise if it cannot start."""
    exe = Path(sys.executable).with_name("moto_server")
    command = [str(exe)] if exe.exists() else [shutil.which("moto_server") or "moto_server"]
    try:
        import s3fs  # noqa: F401  (the client the tests use)
    except ImportError as exc:
        raise S3UnavailableError("s3fs is not installed: pip install -e '.[dev]'") from exc
    port = _free_port()
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    try:
        process = subprocess.Popen(
            [*command, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    except OSError as exc:
        message = f"moto_server cannot start ({exc}): pip install 'moto[server]'"
        raise S3UnavailableError(message) from exc
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise S3UnavailableError(f"moto_server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return S3Server(process, url)
        except OSError:
            time.sleep(0.1)
    process.kill()
    process.wait(10)
    raise S3UnavailableError("moto_server did not answer within 30 s")


def serve_s3() -> Iterator[S3Server]:
    """Body of an S3 fixture: skips without moto, fails under WATCHKEEPER_REQUIRE_SERVICES=1."""
    import pytest

    try:
        server = start_s3()
    except S3UnavailableError as exc:
        if os.environ.get("WATCHKEEPER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"required service unavailable: {exc}", pytrace=False)
        pytest.skip(str(exc))
    yield server
    server.stop()
