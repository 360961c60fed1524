"""kill -9 durability: every id the child reported as logged is in the database, once.

A real child process writes through a GroupCommitWriter and prints each id only after its
future resolved (as the gateway answers only after the commit). The parent kills it with
SIGKILL mid-stream, then opens the database (SQLite recovers the WAL) and checks that every
printed id is there and nothing is duplicated. Repeated on the same file, so writing after a
crash is covered too.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.logstore import PostgresLogSink, SQLiteLogSink

CHILD = Path(__file__).with_name("_durability_child.py")


def _run_and_kill(db: Path, synchronous: str, min_ids: int, url: str | None = None) -> list[str]:
    """Start the child, read ids until ``min_ids`` arrived, SIGKILL it, return every id."""
    log = db.with_suffix(".stderr")
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), url or str(db), synchronous, "4"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert proc.stdout is not None
    ids: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(ids) < min_ids and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            ids.append(line.rstrip("\n"))
        os.kill(proc.pid, signal.SIGKILL)
        # lines already in the pipe were printed after their commit: they count too
        rest = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(ids) >= min_ids, f"the child reported only {len(ids)} ids: {log.read_text()[-2000:]}"
    complete = rest.split("\n")[:-1]  # a last line cut by the kill has no newline
    return ids + complete


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_reported_ids_survive_sigkill(tmp_path: Path, synchronous: str) -> None:
    db = tmp_path / "log.db"
    reported: list[str] = []
    for _ in range(3):
        reported += _run_and_kill(db, synchronous, min_ids=300)
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = [r[0] for r in conn.execute("SELECT id FROM predictions")]
        finally:
            conn.close()
        assert len(stored) == len(set(stored)), "an id was stored twice"
        missing = set(reported) - set(stored)
        assert not missing, f"{len(missing)} reported ids are not in the log"
        # the child may have committed more than it managed to print before dying
        assert len(stored) >= len(set(reported))
    assert len(reported) == len(set(reported))
    with SQLiteLogSink(db) as sink:
        window = sink.read_window("durable")
        assert set(reported) <= set(window.column("id").to_pylist())


@pytest.mark.service
def test_reported_ids_survive_sigkill_on_postgresql(tmp_path: Path, log_postgres: Any) -> None:
    """The same kill -9 test against a real PostgreSQL server: three children in turn, each
    killed mid-stream, every reported id stored exactly once."""
    url = log_postgres.create_schema()
    reported: list[str] = []
    for _ in range(3):
        reported += _run_and_kill(tmp_path / "pg", "full", min_ids=300, url=url)
        with PostgresLogSink(url) as sink:
            window = sink.read_window("durable")
            stored = window.column("id").to_pylist()
            assert sink.count() == len(stored)
        assert len(stored) == len(set(stored)), "an id was stored twice"
        missing = set(reported) - set(stored)
        assert not missing, f"{len(missing)} reported ids are not in the log"
    assert len(reported) == len(set(reported))
