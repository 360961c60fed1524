"""Where alert events go: generic webhook, Slack-compatible webhook, email, log.

Each channel is a frozen configuration with a ``send(event)`` method that raises
:class:`DeliveryError` on failure (``retryable`` says whether trying again can help).
:func:`deliver` retries with exponential backoff, a bounded number of times, and never raises:
an unreachable endpoint is recorded, not allowed to stop the monitor.

Secrets (webhook URLs, tokens, SMTP passwords) are never part of the configuration: it names
the environment variables that hold them, read at send time and never logged or stored.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol

from watchkeeper.exceptions import InputError, WatchkeeperError

if TYPE_CHECKING:
    from watchkeeper.monitor._alert_event import AlertEvent

__all__ = [
    "Channel",
    "Delivery",
    "DeliveryError",
    "EmailChannel",
    "LogChannel",
    "SlackChannel",
    "WebhookChannel",
    "channel_from_dict",
    "deliver",
]

logger = logging.getLogger("watchkeeper.alerts")


class DeliveryError(WatchkeeperError):
    """A channel could not deliver an event; ``retryable`` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    """A destination of alert events."""

    def send(self, event: AlertEvent) -> None:
        """Deliver one event or raise :class:`DeliveryError`."""

    def to_dict(self) -> dict[str, Any]:
        """Plain configuration (names of environment variables, never their values)."""


def _secret(variable: str, what: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        raise DeliveryError(
            f"{what}: environment variable {variable} is not set; export it where the monitor runs",
            retryable=False,
        )
    return value


def _where(url: str) -> str:
    # Webhook URLs carry their secret in the path (Slack) or query: show the host only.
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def _post_json(
    url: str, body: Mapping[str, Any], headers: Mapping[str, str], timeout: float
) -> None:
    where = _where(url)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DeliveryError(f"webhook URL must be http(s), got {where}", retryable=False)
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "watchkeeper", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        retryable = exc.code >= 500 or exc.code in (408, 429)
        raise DeliveryError(
            f"webhook {where} answered HTTP {exc.code}", retryable=retryable
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"webhook {where} unreachable: {reason}", retryable=True) from None


@dataclass(frozen=True, slots=True)
class WebhookChannel:
    """POST the event as JSON (:meth:`AlertEvent.to_dict`) to a URL.

    Parameters
    ----------
    url_env
        Environment variable holding the URL.
    token_env
        Optional environment variable holding a bearer token (``Authorization`` header).
    timeout
        Seconds per attempt.

    Examples
    --------
    >>> WebhookChannel(url_env="WK_ALERT_WEBHOOK_URL").to_dict()["type"]
    'webhook'
    """

    url_env: str
    token_env: str | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        _validate_env(self.url_env, "url_env")
        if self.token_env is not None:
            _validate_env(self.token_env, "token_env")
        if not self.timeout > 0:
            raise InputError(f"webhook timeout must be positive seconds, got {self.timeout!r}")

    def body(self, event: AlertEvent) -> dict[str, Any]:
        """The JSON body sent for ``event``."""
        return event.to_dict()

    def send(self, event: AlertEvent) -> None:
        """POST :meth:`body`."""
        url = _secret(self.url_env, "webhook")
        headers = {}
        if self.token_env is not None:
            headers["Authorization"] = "Bearer " + _secret(self.token_env, "webhook token")
        _post_json(url, self.body(event), headers, self.timeout)

    def to_dict(self) -> dict[str, Any]:
        """Plain configuration."""
        return {"type": "webhook", **asdict(self)}


@dataclass(frozen=True, slots=True)
class SlackChannel:
    """POST a Slack-compatible message (``{"text": ..., "blocks": [...]}``) to a webhook.

    Mattermost, Rocket.Chat and Microsoft Teams' Slack-compatible endpoints accept it too.

    Examples
    --------
    >>> SlackChannel(url_env="WK_SLACK_WEBHOOK_URL").to_dict()["type"]
    'slack'
    """

    url_env: str
    timeout: float = 10.0

    def __post_init__(self) -> None:
        _validate_env(self.url_env, "url_env")
        if not self.timeout > 0:
            raise InputError(f"slack timeout must be positive seconds, got {self.timeout!r}")

    def body(self, event: AlertEvent) -> dict[str, Any]:
        """Text for clients without blocks, and blocks: a header, the details, the labels."""
        icon = {"critical": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}
        mark = ":white_check_mark:" if event.kind == "resolved" else icon.get(event.severity, "")
        details = event.text().split("\n", 1)[1] if "\n" in event.text() else ""
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{mark} *{event.title()}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": details[:2900]}},
        ]
        context = [f"rule `{event.rule}`", f"key `{event.key}`"]
        context += [f"{k}={v}" for k, v in event.labels.items()]
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
        )
        return {"text": event.title(), "blocks": blocks}

    def send(self, event: AlertEvent) -> None:
        """POST :meth:`body`."""
        _post_json(_secret(self.url_env, "slack webhook"), self.body(event), {}, self.timeout)

    def to_dict(self) -> dict[str, Any]:
        """Plain configuration."""
        return {"type": "slack", **asdict(self)}


@dataclass(frozen=True, slots=True)
class EmailChannel:
    """Send a plain-text email through SMTP (optionally STARTTLS and login).

    Parameters
    ----------
    host, port
        SMTP server.
    sender, to
        From address and recipients.
    starttls
        Upgrade the connection with STARTTLS (certificate verified) before logging in.
    username_env, password_env
        Environment variables holding the login; no login when ``username_env`` is unset.
    timeout
        Seconds per connection attempt.

    Examples
    --------
    >>> EmailChannel(host="smtp.example.com", sender="wk@example.com",
    ...              to=("oncall@example.com",)).port
    25
    """

    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 25
    starttls: bool = False
    username_env: str | None = None
    password_env: str | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "to", tuple(self.to))
        if not self.host or not isinstance(self.host, str):
            raise InputError("email channel host: must name the SMTP server")
        if not self.to or not all("@" in str(a) for a in self.to) or "@" not in self.sender:
            raise InputError("email channel sender and to: must be email addresses (to a list)")
        if not 0 < int(self.port) < 65536:
            raise InputError(f"email channel port must be in 1..65535, got {self.port!r}")
        for name in ("username_env", "password_env"):
            if getattr(self, name) is not None:
                _validate_env(getattr(self, name), name)
        if (self.username_env is None) != (self.password_env is None):
            raise InputError("email channel: set both username_env and password_env, or neither")

    def message(self, event: AlertEvent) -> EmailMessage:
        """The email sent for ``event``."""
        message = EmailMessage()
        message["Subject"] = event.title()
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message["X-Watchkeeper-Alert"] = event.key
        message.set_content(event.text() + "\n")
        return message

    def send(self, event: AlertEvent) -> None:
        """Connect, optionally STARTTLS and log in, send :meth:`message`."""
        where = f"SMTP server {self.host}:{self.port}"
        try:
            with smtplib.SMTP(self.host, int(self.port), timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username_env is not None and self.password_env is not None:
                    smtp.login(
                        _secret(self.username_env, "email login"),
                        _secret(self.password_env, "email password"),
                    )
                smtp.send_message(self.message(event))
        except smtplib.SMTPResponseException as exc:
            # 4xx replies are transient by definition (RFC 5321 section 4.2.1), 5xx permanent.
            raise DeliveryError(
                f"{where} refused: {exc.smtp_code}", retryable=400 <= exc.smtp_code < 500
            ) from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError(f"{where} refused every recipient", retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{where} unreachable: {exc}", retryable=True) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain configuration."""
        return {"type": "email", **asdict(self), "to": list(self.to)}


@dataclass(frozen=True, slots=True)
class LogChannel:
    """Write the event to the ``watchkeeper.alerts`` logger (firings of critical rules at
    ERROR, warnings at WARNING, the rest at INFO).

    Examples
    --------
    >>> LogChannel().to_dict()
    {'type': 'log', 'logger': 'watchkeeper.alerts'}
    """

    logger: str = "watchkeeper.alerts"

    def send(self, event: AlertEvent) -> None:
        """Log one line."""
        level = logging.INFO
        if event.kind == "firing":
            level = {"critical": logging.ERROR, "warning": logging.WARNING}.get(
                event.severity, logging.INFO
            )
        logging.getLogger(self.logger).log(
            level, "%s: %s (%s)", event.title(), event.reason, event.key
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain configuration."""
        return {"type": "log", "logger": self.logger}


_TYPES: dict[str, type[Any]] = {
    "webhook": WebhookChannel,
    "slack": SlackChannel,
    "email": EmailChannel,
    "log": LogChannel,
}


def _validate_env(name: object, key: str) -> None:
    if not isinstance(name, str) or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise InputError(
            f"{key} must name an environment variable (letters, digits, '_'), got {name!r}; "
            "put the secret itself in that variable, not in the rules file"
        )


def channel_from_dict(name: str, data: Mapping[str, Any]) -> Channel:
    """Build channel ``name`` from its table in the rules file (``type`` picks the kind).

    Examples
    --------
    >>> channel_from_dict("ops", {"type": "slack", "url_env": "WK_SLACK"}).url_env
    'WK_SLACK'
    >>> channel_from_dict("ops", {"type": "slack", "url": "https://hooks.slack.com/x"})
    Traceback (most recent call last):
    ...
    watchkeeper.exceptions.InputError: channel 'ops' (slack): unknown key 'url' (put secrets ...
    """
    if not isinstance(data, Mapping) or data.get("type") not in _TYPES:
        raise InputError(f"channel {name!r} must be a table with type = one of {', '.join(_TYPES)}")
    kind = data["type"]
    cls = _TYPES[kind]
    valid = {f.name for f in fields(cls)}
    for key in data:
        if key != "type" and key not in valid:
            hint = (
                " (put secrets in an environment variable named by url_env)" if key == "url" else ""
            )
            raise InputError(
                f"channel {name!r} ({kind}): unknown key {key!r}{hint}; valid keys: "
                + ", ".join(sorted(valid))
            )
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k != "type"}
    try:
        channel: Channel = cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"channel {name!r} ({kind}): {exc}") from exc
    except InputError as exc:
        raise InputError(f"channel {name!r} ({kind}): {exc}") from exc
    return channel


@dataclass(frozen=True, slots=True)
class Delivery:
    """Outcome of delivering one event to one channel.

    Parameters
    ----------
    channel
        Channel name.
    ok
        Whether it was delivered.
    attempts
        Attempts made.
    error
        The last error when not delivered (never holds a secret).
    """

    channel: str
    ok: bool
    attempts: int
    error: str | None = None


def deliver(
    name: str,
    channel: Channel,
    event: AlertEvent,
    *,
    attempts: int = 4,
    backoff: float = 1.0,
    max_backoff: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send ``event`` through ``channel``, retrying retryable failures with exponential backoff.

    Waits ``backoff * 2**i`` seconds (at most ``max_backoff``) before retry ``i + 1``; gives
    up after ``attempts`` attempts or at the first failure that retrying cannot fix (a 4xx
    answer, a missing environment variable). Never raises for a delivery failure.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from watchkeeper.monitor._alert_event import AlertEvent
    >>> t = datetime(2024, 5, 1, tzinfo=UTC)
    >>> event = AlertEvent(kind="firing", rule="drift", severity="info", model="m",
    ...                    version="1", arm="champion", subject="x", check="drift.ks",
    ...                    status="alert", value=0.4, threshold=0.1, reason="shifted",
    ...                    window_start=t, window_end=t, started_at=t,
    ...                    condition="status >= alert", windows=1)
    >>> waits = []
    >>> deliver("hook", WebhookChannel(url_env="WK_UNSET_FOR_DOCTEST"), event, sleep=waits.append)
    Delivery(channel='hook', ok=False, attempts=1, error='webhook: environment variable ...')
    >>> deliver("log", LogChannel(), event).ok
    True
    """
    if attempts < 1:
        raise InputError(f"attempts must be at least 1, got {attempts!r}")
    error = "not attempted"
    for attempt in range(1, attempts + 1):
        try:
            channel.send(event)
        except DeliveryError as exc:
            error = str(exc)
            if not exc.retryable or attempt == attempts:
                logger.warning(
                    "alert %s not delivered to channel %r after %d attempt(s): %s",
                    event.key, name, attempt, error,
                )  # fmt: skip
                return Delivery(name, False, attempt, error)
            sleep(min(max_backoff, backoff * 2 ** (attempt - 1)))
        except Exception as exc:  # a broken channel must not stop evaluation or monitoring
            # The type only: an unexpected error's text might quote a secret.
            error = f"unexpected {type(exc).__name__} in channel {name!r}"
            logger.warning("alert %s: %s", event.key, error)
            return Delivery(name, False, attempt, error)
        else:
            return Delivery(name, True, attempt, None)
    return Delivery(name, False, attempts, error)  # pragma: no cover - loop always returns
