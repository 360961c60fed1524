"""Alert channels against real loopback endpoints: an HTTP receiver and an SMTP sink."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.checks import Status
from watchkeeper.monitor import (
    AlertConfig,
    AlertEvaluator,
    AlertEvent,
    EmailChannel,
    LogChannel,
    SlackChannel,
    WebhookChannel,
    WindowCheck,
    deliver,
)

SECRET = "T0KEN-s3cr3t-path"
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def event(kind: str = "firing", **kw: Any) -> AlertEvent:
    values: dict[str, Any] = {
        "kind": kind, "rule": "drift", "severity": "warning", "model": "churn", "version": "3",
        "arm": "champion", "subject": "age", "check": "drift.ks", "status": "alert",
        "value": 0.31, "threshold": 0.1, "reason": "KS distance 0.31 above the 0.1 floor",
        "window_start": T0, "window_end": T0 + timedelta(hours=1), "started_at": T0,
        "condition": "status >= alert", "windows": 2, "summary": "Inputs drifted.",
        "labels": {"team": "risk"}, "id": 7,
    }  # fmt: skip
    values.update(kw)
    return AlertEvent(**values)


@dataclass
class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records POSTs and answers ``statuses`` in
    turn (200 once they run out)."""

    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{SECRET}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# webhooks
# ---------------------------------------------------------------------------------------------


def test_webhook_posts_the_documented_json(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WK_TEST_HOOK", receiver.url)
    monkeypatch.setenv("WK_TEST_TOKEN", "bearer-secret")
    channel = WebhookChannel(url_env="WK_TEST_HOOK", token_env="WK_TEST_TOKEN")
    assert deliver("hook", channel, event()).ok
    (got,) = receiver.received
    assert got["path"] == f"/hooks/{SECRET}"
    assert got["headers"]["Authorization"] == "Bearer bearer-secret"
    assert got["headers"]["Content-Type"] == "application/json"
    body = got["body"]
    assert body == event().to_dict()
    assert set(body) == {
        "kind", "key", "rule", "severity", "summary", "condition", "model", "version", "arm",
        "subject", "check", "status", "value", "threshold", "reason", "window_start",
        "window_end", "started_at", "windows", "labels", "id",
    }  # fmt: skip
    assert body["window_end"] == "2024-05-01T01:00:00+00:00"
    assert body["labels"] == {"team": "risk"}


def test_slack_body_has_text_and_blocks(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WK_TEST_SLACK", receiver.url)
    channel = SlackChannel(url_env="WK_TEST_SLACK")
    assert deliver("slack", channel, event()).ok
    assert deliver("slack", channel, event("resolved", status="ok")).ok
    firing, resolved = (r["body"] for r in receiver.received)
    assert firing["text"] == "[FIRING warning] drift on churn v3 (champion), subject age"
    assert [b["type"] for b in firing["blocks"]] == ["section", "section", "context"]
    assert ":warning:" in firing["blocks"][0]["text"]["text"]
    assert "KS distance 0.31" in firing["blocks"][1]["text"]["text"]
    assert "team=risk" in firing["blocks"][2]["elements"][0]["text"]
    assert resolved["text"].startswith("[RESOLVED warning]")
    assert ":white_check_mark:" in resolved["blocks"][0]["text"]["text"]


def test_retries_after_500_with_exponential_backoff(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WK_TEST_HOOK", receiver.url)
    receiver.statuses = [500, 503]
    waits: list[float] = []
    outcome = deliver(
        "hook", WebhookChannel(url_env="WK_TEST_HOOK"), event(), backoff=0.25, sleep=waits.append
    )
    assert outcome.ok
    assert outcome.attempts == 3
    assert waits == [0.25, 0.5]
    assert len(receiver.received) == 3


def test_backoff_is_bounded_and_attempts_are_finite(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WK_TEST_HOOK", receiver.url)
    receiver.statuses = [500] * 10
    waits: list[float] = []
    outcome = deliver(
        "hook",
        WebhookChannel(url_env="WK_TEST_HOOK"),
        event(),
        attempts=5,
        backoff=1.0,
        max_backoff=3.0,
        sleep=waits.append,
    )
    assert not outcome.ok
    assert outcome.attempts == 5
    assert waits == [1.0, 2.0, 3.0, 3.0]
    assert outcome.error is not None
    assert "HTTP 500" in outcome.error


def test_a_4xx_answer_is_not_retried(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WK_TEST_HOOK", receiver.url)
    receiver.statuses = [404]
    waits: list[float] = []
    outcome = deliver("hook", WebhookChannel(url_env="WK_TEST_HOOK"), event(), sleep=waits.append)
    assert (outcome.ok, outcome.attempts, waits) == (False, 1, [])


def test_unreachable_port_fails_after_bounded_retries_without_leaking_the_url(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WK_TEST_HOOK", f"http://127.0.0.1:{closed_port()}/hooks/{SECRET}")
    waits: list[float] = []
    with caplog.at_level(logging.DEBUG):
        outcome = deliver(
            "hook", WebhookChannel(url_env="WK_TEST_HOOK", timeout=2), event(), sleep=waits.append
        )
    assert not outcome.ok
    assert outcome.attempts == 4
    assert len(waits) == 3
    assert "unreachable" in str(outcome.error)
    assert SECRET not in str(outcome.error)
    assert SECRET not in caplog.text
    assert "not delivered" in caplog.text


# ---------------------------------------------------------------------------------------------
# email
# ---------------------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 recording messages (and logins when ``auth``)."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    refuse: list[int] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    sink = SmtpSink(port=closed_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if sink.refuse:
                return f"{sink.refuse.pop(0)} try later"
            sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        sink.logins.append((auth.login, auth.password))
        # handled=False: aiosmtpd answers a refusal with 535 itself.
        return AuthResult(success=auth.password == b"smtp-secret", handled=False)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=sink.port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def test_email_is_delivered_to_the_smtp_sink(
    smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WK_TEST_SMTP_USER", "alerts")
    monkeypatch.setenv("WK_TEST_SMTP_PASSWORD", "smtp-secret")
    channel = EmailChannel(
        host="127.0.0.1",
        port=smtp_sink.port,
        sender="watchkeeper@example.com",
        to=("oncall@example.com", "ml@example.com"),
        username_env="WK_TEST_SMTP_USER",
        password_env="WK_TEST_SMTP_PASSWORD",
    )
    assert deliver("mail", channel, event()).ok
    assert deliver("mail", channel, event("resolved", status="ok")).ok
    assert smtp_sink.logins == [(b"alerts", b"smtp-secret")] * 2
    (sender, rcpts, raw), (_, _, raw_resolved) = smtp_sink.messages
    assert sender == "watchkeeper@example.com"
    assert rcpts == ["oncall@example.com", "ml@example.com"]
    message = message_from_bytes(raw)
    assert message["Subject"] == "[FIRING warning] drift on churn v3 (champion), subject age"
    assert message["X-Watchkeeper-Alert"] == event().key
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert b"KS distance 0.31" in body
    assert b"held for 2 window(s)" in body
    assert message_from_bytes(raw_resolved)["Subject"].startswith("[RESOLVED warning]")


def test_email_transient_refusal_is_retried_and_bad_login_is_not(
    smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = EmailChannel(
        host="127.0.0.1", port=smtp_sink.port, sender="wk@example.com", to=("a@example.com",)
    )
    smtp_sink.refuse = [451]
    waits: list[float] = []
    outcome = deliver("mail", channel, event(), sleep=waits.append)
    assert (outcome.ok, outcome.attempts, len(smtp_sink.messages)) == (True, 2, 1)

    monkeypatch.setenv("WK_TEST_SMTP_USER", "alerts")
    monkeypatch.setenv("WK_TEST_SMTP_PASSWORD", "wrong")
    with_login = EmailChannel(
        host="127.0.0.1",
        port=smtp_sink.port,
        sender="wk@example.com",
        to=("a@example.com",),
        username_env="WK_TEST_SMTP_USER",
        password_env="WK_TEST_SMTP_PASSWORD",
    )
    outcome = deliver("mail", with_login, event(), sleep=waits.append)
    assert (outcome.ok, outcome.attempts) == (False, 1)
    assert "535" in str(outcome.error)
    assert "wrong" not in str(outcome.error)


def test_email_to_a_closed_port_is_retried_then_recorded() -> None:
    channel = EmailChannel(
        host="127.0.0.1", port=closed_port(), sender="wk@example.com", to=("a@example.com",)
    )
    waits: list[float] = []
    outcome = deliver("mail", channel, event(), attempts=3, sleep=waits.append)
    assert (outcome.ok, outcome.attempts, len(waits)) == (False, 3, 2)
    assert "unreachable" in str(outcome.error)


# ---------------------------------------------------------------------------------------------
# log, and the whole path from rules to receiver
# ---------------------------------------------------------------------------------------------


def test_log_channel_levels(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="watchkeeper.alerts"):
        LogChannel().send(event(severity="critical"))
        LogChannel().send(event("resolved", severity="critical"))
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.INFO]
    assert "[FIRING critical] drift" in caplog.records[0].getMessage()


def result(window_end: datetime, status: str) -> WindowCheck:
    return WindowCheck(
        "churn", 3, "champion", window_end - timedelta(hours=1), window_end, "time", 100, 0,
        "drift.ks", "age", Status(status), "KS distance 0.31 above the 0.1 floor", value=0.31,
    )  # fmt: skip


def test_firing_and_resolution_reach_every_channel_once(
    receiver: Receiver, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WK_TEST_HOOK", receiver.url)
    monkeypatch.setenv("WK_TEST_SLACK", receiver.url + "/slack")
    config = AlertConfig.from_dict(
        {
            "channels": {
                "hook": {"type": "webhook", "url_env": "WK_TEST_HOOK"},
                "chat": {"type": "slack", "url_env": "WK_TEST_SLACK"},
                "mail": {"type": "email", "host": "127.0.0.1", "port": smtp_sink.port,
                         "sender": "wk@example.com", "to": ["oncall@example.com"]},
            },
            "rules": [
                {"name": "drift", "check": "drift.*", "when": "status >= alert", "for": 2,
                 "channels": ["hook", "chat", "mail", "log"]},
            ],
        }
    )  # fmt: skip
    rows = [result(T0 + timedelta(hours=h), s) for h, s in enumerate(["alert"] * 5 + ["ok"])]
    with AlertEvaluator(config, f"sqlite:///{tmp_path / 'monitor.db'}") as alerts:
        out = alerts.evaluate(rows[:3])
        out2 = alerts.evaluate(rows)  # overlapping re-run: no duplicate firing
    assert [e.kind for e in (*out.events, *out2.events)] == ["firing", "resolved"]
    assert all(d.ok for _, d in (*out.deliveries, *out2.deliveries))
    hooks = [r["body"] for r in receiver.received if not r["path"].endswith("/slack")]
    chats = [r["body"] for r in receiver.received if r["path"].endswith("/slack")]
    assert [(h["kind"], h["version"], h["window_end"][11:16]) for h in hooks] == [
        ("firing", "3", "01:00"),
        ("resolved", "3", "05:00"),
    ]
    assert hooks[0]["key"] == hooks[1]["key"]
    assert [c["text"][:10] for c in chats] == ["[FIRING wa", "[RESOLVED "]
    assert len(smtp_sink.messages) == 2
