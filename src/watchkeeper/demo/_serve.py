"""Demo step: serve the registered model and replay 2011 through the gateway, labels late.

The gateway runs as a real ``watchkeeper serve`` process on a free loopback port, with
tokens (one for predictions, one for admin) made up for this run. The replay sends one
request per day of data, in time order, with ``X-Event-Time`` set to the day's last hour so
that the prediction log's times are the data's; each day's true counts are fed back through
the feedback endpoint ``label_lag_days`` later (again with the time they "arrive"), so the
most recent days of any window are still unlabelled, as in production.
"""

from __future__ import annotations

import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoGateway", "ReplayStats", "running_gateway"]


@dataclass
class ReplayStats:
    """What one stretch of replay sent and what the gateway answered."""

    requests: int = 0
    rows: int = 0
    labels_sent: int = 0
    labels_matched: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    versions: dict[int, int] = field(default_factory=dict)
    arms: dict[str, int] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        """Client-side request latency percentile in milliseconds (nearest rank)."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
        return ordered[rank]


@dataclass
class DemoGateway:
    """A running gateway and an HTTP client holding the demo's tokens."""

    url: str
    client: Any
    predict_token: str
    admin_token: str
    model: str
    features: list[str]
    label_lag_days: int
    # (due time, feedback records) waiting to be sent, in due order
    pending: deque[tuple[float, list[dict[str, Any]]]] = field(default_factory=deque)

    def _post(
        self,
        path: str,
        body: Any,
        *,
        token: str,
        event_time: float | None,
        user: str | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        if event_time is not None:
            headers["X-Event-Time"] = f"{event_time:.0f}"
        if user is not None:
            headers["X-User-Id"] = user  # a sticky route sends one caller to one arm
        response = self.client.post(self.url + path, json=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def admin(self, action: str, body: dict[str, Any]) -> Any:
        """Call an admin endpoint (``promote``, ``rollback``) with the admin token."""
        return self._post(
            f"/v1/admin/models/{self.model}/{action}", body, token=self.admin_token, event_time=None
        )

    def reload(self) -> Any:
        """Make the gateway apply stored route and alias changes now (admin)."""
        return self._post("/v1/admin/reload", {}, token=self.admin_token, event_time=None)

    def set_route(self, route: dict[str, Any]) -> Any:
        """Store and apply a route (admin)."""
        response = self.client.put(
            f"{self.url}/v1/admin/models/{self.model}/route",
            json=route,
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )
        if response.status_code != 200:
            raise RuntimeError(f"route change answered {response.status_code}: {response.text}")
        return response.json()

    def replay(
        self,
        frame: Any,
        *,
        target: str,
        stats: ReplayStats | None = None,
        per_row: bool = False,
    ) -> ReplayStats:
        """Send ``frame``'s rows day by day in time order; feed labels back when they are due.

        One request per day, or with ``per_row`` one request per row, sticky on the row's id
        (a canary routes each request on its own). Returns the statistics of this stretch
        (pass ``stats`` to keep adding to one).
        """
        stats = ReplayStats() if stats is None else stats
        frame = frame.sort_values("timestamp")
        days = frame["timestamp"].dt.floor("D")
        lag = self.label_lag_days * 86_400.0
        for _, day in frame.groupby(days, sort=True):
            event = _seconds(day["timestamp"].max())
            self._send_due_labels(event, stats)
            records = [
                {"id": _row_id(ts), **_plain(row)}
                for ts, row in zip(
                    day["timestamp"], day[self.features].to_dict("records"), strict=True
                )
            ]
            if per_row:  # each request at its own hour
                stamps = [_seconds(ts) for ts in day["timestamp"]]
                batches = [([r], t) for r, t in zip(records, stamps, strict=True)]
            else:
                batches = [(records, event)]
            ids: list[str] = []
            for batch, when in batches:
                started = time.perf_counter()
                answer = self._post(
                    f"/v1/models/{self.model}/predict",
                    batch,
                    token=self.predict_token,
                    event_time=when,
                    user=batch[0]["id"] if per_row else None,
                )
                stats.latencies_ms.append((time.perf_counter() - started) * 1000)
                stats.requests += 1
                stats.rows += len(batch)
                stats.versions[answer["version"]] = stats.versions.get(answer["version"], 0) + len(
                    batch
                )
                stats.arms[answer["arm"]] = stats.arms.get(answer["arm"], 0) + len(batch)
                ids.extend(answer["ids"])
            labels = [{"id": pid, "label": int(y)} for pid, y in zip(ids, day[target], strict=True)]
            self.pending.append((event + lag, labels))
        return stats

    def _send_due_labels(self, now: float, stats: ReplayStats) -> None:
        while self.pending and self.pending[0][0] <= now:
            due, labels = self.pending.popleft()
            result = self._post(
                f"/v1/models/{self.model}/feedback",
                labels,
                token=self.predict_token,
                event_time=due,
            )
            stats.labels_sent += len(labels)
            stats.labels_matched += int(result["matched"])

    def flush_labels(self, until: float, stats: ReplayStats) -> None:
        """Send the labels due by ``until`` (UTC seconds)."""
        self._send_due_labels(until, stats)


@contextmanager
def running_gateway(
    root: Path,
    out: Path,
    *,
    model: str,
    features: list[str],
    label_lag_days: int = 3,
) -> Iterator[DemoGateway]:
    """Start ``watchkeeper serve`` on a free loopback port and stop it afterwards."""
    import httpx

    port = _free_port()
    predict_token = "wk-predict-" + secrets.token_urlsafe(24)
    admin_token = "wk-admin-" + secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "WATCHKEEPER_PREDICT_TOKENS": predict_token,
        "WATCHKEEPER_ADMIN_TOKENS": admin_token,
        # A route or alias change reaches the server within this many seconds at most
        # (admin calls apply at once in the worker that takes them).
        "WATCHKEEPER_GATEWAY_REFRESH_INTERVAL": "0.5",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    log_file = out / "gateway.log"
    argv = [
        sys.executable,
        "-m",
        "watchkeeper.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--root",
        str(root),
    ]
    with open(log_file, "wb") as log:
        process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=60.0) as client:
            _wait_ready(client, url, process, log_file)
            yield DemoGateway(
                url, client, predict_token, admin_token, model, features, label_lag_days
            )
    finally:
        _stop(process)


def _wait_ready(client: Any, url: str, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the gateway exited with code {process.returncode}; see {log_file}:\n"
                + log_file.read_text(errors="replace")[-2000:]
            )
        try:
            if client.get(url + "/readyz").status_code == 200:
                return
        except Exception:  # not listening yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the gateway did not become ready within 60 s; see {log_file}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # graceful: the log writer flushes and closes
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _seconds(ts: Any) -> float:
    # The bundled data's times are local (Washington) wall-clock hours; the demo treats them
    # as UTC labels, consistently for predictions, labels and windows.
    return float(ts.tz_localize("UTC").timestamp()) if ts.tzinfo is None else float(ts.timestamp())


def _row_id(ts: Any) -> str:
    return f"bikes-{ts:%Y%m%dT%H}"


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready values (numpy scalars to Python ones)."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in row.items()}
