"""/readyz tells the truth about the prediction log: not ready (with the reason) while the
log cannot be written, ready again once it can, also for a gateway started on a log whose
disk is read-only (a real tmpfs remounted read-only: needs root, as in CI)."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.gateway.conftest import service_unavailable

from watchkeeper.gateway import create_app
from watchkeeper.gateway._log import WriterLog
from watchkeeper.logstore import GroupCommitWriter, SQLiteLogSink

from ._apps import churn_record, fresh_root, gateway, serve, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def log_mount(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "logdisk"
    point.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        service_unavailable("mount(8) is not installed")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        service_unavailable(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _remount(point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(point)], check=True)


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


class _TurnsReadOnly(SQLiteLogSink):
    """A real SQLite log whose disk turns read-only while it is open (the kernel refuses to
    remount a file system read-only while a file on it is open for writing, so the fault is
    injected where SQLite reports it)."""

    read_only = False

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        with super()._transaction() as conn:
            yield conn


async def test_readyz_follows_a_log_that_turns_read_only(root: Path) -> None:
    sink = _TurnsReadOnly(root / "predictions.db")
    app = create_app(settings_for(root), log=WriterLog(GroupCommitWriter(sink)))
    async with serve(app) as client:
        assert (await client.get("/readyz")).status_code == 200
        ok = await client.post("/v1/models/churn/predict", json=churn_record(1))
        assert ok.status_code == 200
        sink.read_only = True
        # the first write to fail shows it (a commit of the last seconds proves the log
        # writable without a probe, which would otherwise wait behind busy writers)
        refused = await client.post("/v1/models/churn/predict", json=churn_record(2))
        assert refused.status_code == 503
        _expire_probe(client)
        ready = await client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert any("prediction log cannot be written" in p for p in ready.json()["problems"])
        assert "readonly database" in ready.text
        v2 = await client.get("/v2/health/ready")
        assert v2.status_code == 400
        assert v2.json()["ready"] is False
        sink.read_only = False
        _expire_probe(client)
        again = await client.get("/readyz")
        assert again.status_code == 200, again.text
        back = await client.post("/v1/models/churn/predict", json=churn_record(3))
        assert back.status_code == 200
    app.state.ctx.log.close()


async def test_a_gateway_started_on_a_read_only_log_is_not_ready(
    root: Path, log_mount: Path
) -> None:
    log = log_mount / "predictions.db"
    async with gateway(root, log_path=str(log)):
        pass  # creates the log file
    _remount(log_mount, "ro")
    try:
        async with gateway(root, log_path=str(log)) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert "prediction log cannot be written" in ready.text
            _remount(log_mount, "rw")
            _expire_probe(client)
            again = await client.get("/readyz")
            assert again.status_code == 200, again.text
            answer = await client.post("/v1/models/churn/predict", json=churn_record(4))
            assert answer.status_code == 200, answer.text
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _remount(log_mount, "rw")


def _expire_probe(client: object) -> None:
    # the verdict is cached for a second; forget it rather than sleep
    transport = client._transport  # type: ignore[attr-defined]
    transport.app.state.ctx.log_probe = None
