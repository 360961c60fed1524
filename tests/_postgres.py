"""Start and stop a throwaway PostgreSQL server for tests.

The server lives in a temporary folder, listens on 127.0.0.1 on a free port, trusts local
connections and is tuned for speed over durability (fsync off): it only ever holds test data.
As root (CI containers) it runs as the ``postgres`` user, since PostgreSQL refuses root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PostgresServer", "PostgresUnavailableError", "serve_postgres", "start_postgres"]


class PostgresUnavailableError(RuntimeError):
    """PostgreSQL cannot be started on this machine; the message says why."""


@dataclass
class PostgresServer:
    """A running throwaway server; :meth:`stop` removes it and its files."""

    base: Path
    port: int
    bin_dir: Path
    run_as: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default ``postgres`` database."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL of database ``name`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self) -> str:
        """Create an empty database with a fresh name and return its URL."""
        name = f"wk_{uuid.uuid4().hex[:16]}"
        self._execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def create_schema(self) -> str:
        """Create an empty schema and return a URL whose connections use only it.

        Much cheaper than a database per test (a database copies ~8 MB of template files).
        """
        name = f"wk_{uuid.uuid4().hex[:16]}"
        self._execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url}?options=-csearch_path%3D{name}"

    def _execute(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(statement)

    def stop(self) -> None:
        """Stop the server immediately and delete its data folder."""
        subprocess.run(
            [
                *self.run_as,
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.base / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def find_bin_dir() -> Path | None:
    """Folder holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's layout)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    return Path(found[-1]).parent if found else None


def _major(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_postgres(*, durable: bool = False) -> PostgresServer:
    """Initialise and start a server; raise :class:`PostgresUnavailableError` if impossible.

    The server trades durability for speed (``fsync``, ``synchronous_commit`` and
    ``full_page_writes`` off) unless ``durable``: then it runs with PostgreSQL's defaults, every
    commit flushed to the write-ahead log on disk (for benchmarks). Settings given on the
    command line win over ``ALTER SYSTEM``, so durability is decided here, at start.
    """
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailableError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql"
        )
    base = Path(tempfile.mkdtemp(prefix="wk-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise PostgresUnavailableError(
                "running as root, PostgreSQL needs a 'postgres' user to run as"
            ) from exc
        os.chown(base, user.pw_uid, user.pw_gid)
        runuser = shutil.which("runuser")
        if runuser is None:
            shutil.rmtree(base, ignore_errors=True)
            raise PostgresUnavailableError("running as root needs runuser (util-linux)")
        run_as = [runuser, "-u", "postgres", "--"]
    try:
        _run(
            "initdb",
            [
                *run_as,
                str(bin_dir / "initdb"),
                "-D",
                str(base / "data"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )
        for _attempt in range(5):
            port = _free_port()
            options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
            if not durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            done = subprocess.run(
                [
                    *run_as,
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(base / "data"),
                    "-o",
                    options,
                    "-l",
                    str(base / "server.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=90,
            )
            if done.returncode == 0:
                return PostgresServer(base, port, bin_dir, run_as)
        log = (base / "server.log").read_text(errors="replace")[-2000:]
        raise PostgresUnavailableError(f"pg_ctl could not start PostgreSQL: {log}")
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


def _run(what: str, command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise PostgresUnavailableError(f"{what} failed: {(done.stderr or done.stdout)[-2000:]}")


def serve_postgres() -> Iterator[PostgresServer]:
    """Body of a PostgreSQL fixture: a server for the fixture's scope, stopped afterwards.

    Skips when PostgreSQL cannot start, or fails under ``WATCHKEEPER_REQUIRE_SERVICES=1``
    (CI, where ``.ci/run`` installs it).
    """
    import pytest

    try:
        server = start_postgres()
    except PostgresUnavailableError as exc:
        if os.environ.get("WATCHKEEPER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"required service unavailable: {exc}", pytrace=False)
        pytest.skip(str(exc))
    yield server
    server.stop()
