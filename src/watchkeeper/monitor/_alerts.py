"""Alert evaluation: window results in, deduplicated firing and resolved events out.

Each rule is evaluated per *alert key* — (rule, model, version, arm, subject) — window by
window in time order:

- a window **meets** the rule when any matching result meets its condition, **fails** it when
  none does and at least one could be judged, and is **unknown** otherwise (``insufficient
  data``, a missing number); unknown windows neither extend nor break a streak;
- after ``for`` consecutive windows that meet it the alert **fires** (one event, however long
  it stays true), unless the same key fired less than ``cooldown`` ago (then it fires at the
  first window after the cooldown that still meets it);
- the first window that fails it **resolves** a firing alert (one event).

Each window is evaluated once per key; a window seen again is skipped, except the latest one
if it could not be judged then (e.g. its labels had not arrived), so re-running over the same
history never double-counts. State, events and deliveries are stored in the monitor database
in one transaction before anything is delivered; delivery failures are recorded and never
stop evaluation.

Same data, same decisions: every transition is decided by the windows' event time (window
end; the cooldown too), never by the wall clock, and the results of a window are judged in
a fixed order. Evaluators of one database are serialised (SQLite's write lock taken at
``BEGIN IMMEDIATE``, a PostgreSQL advisory lock), and a unique index on (key, kind, window
end) makes each transition one row even if two monitors (the gateway's schedule and a
manual ``watchkeeper monitor run``, or two processes at once) evaluate the same windows.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from watchkeeper.checks import Status
from watchkeeper.exceptions import InputError, WatchkeeperError
from watchkeeper.monitor import _alert_tables as t
from watchkeeper.monitor._alert_event import AlertEvent, alert_key
from watchkeeper.monitor._alert_rules import AlertConfig, AlertRule
from watchkeeper.monitor._channels import Delivery, deliver
from watchkeeper.storage import READ_ONLY, as_utc, create_engine, now_utc, safe_url

if TYPE_CHECKING:
    from watchkeeper.monitor._store import MonitorStore

__all__ = ["AlertEvaluator", "AlertOutcome", "AlertStoreError", "WindowResult"]

_PG_LOCK = 0x7761_6C72  # serialises evaluators of one PostgreSQL database


class AlertStoreError(WatchkeeperError):
    """The alert tables cannot be read or written."""


class WindowResult(Protocol):
    """One check result of one window, as the monitor history stores it (``WindowCheck``)."""

    @property
    def model(self) -> str: ...
    @property
    def version(self) -> Any: ...
    @property
    def arm(self) -> str: ...
    @property
    def window_start(self) -> datetime: ...
    @property
    def window_end(self) -> datetime: ...
    @property
    def check(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def status(self) -> Any: ...
    @property
    def value(self) -> float | None: ...
    @property
    def lower(self) -> float | None: ...
    @property
    def upper(self) -> float | None: ...
    @property
    def threshold(self) -> float | None: ...
    @property
    def reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AlertOutcome:
    """What one evaluation produced.

    Parameters
    ----------
    events
        Firing and resolved events, in window order.
    deliveries
        ``(event id, delivery)`` for every channel of every event.
    windows
        Window evaluations made (per alert key), skipped repeats excluded.
    """

    events: tuple[AlertEvent, ...]
    deliveries: tuple[tuple[int, Delivery], ...]
    windows: int

    @property
    def failed(self) -> tuple[tuple[int, Delivery], ...]:
        """Deliveries that did not get through."""
        return tuple(d for d in self.deliveries if not d[1].ok)


@dataclass
class _State:
    key: str
    rule: str
    model: str
    version: str
    arm: str
    subject: str
    streak: int = 0
    firing: bool = False
    last_window_end: datetime | None = None
    last_met: bool | None = None
    fired_at: datetime | None = None
    fired_event: int | None = None
    known: bool = False


class _Stopped:
    """What a resolution of a stopped stream reports (no window judged it)."""

    def __init__(self, state: _State, last: datetime) -> None:
        self.check = f"alert.{state.rule}"
        self.status = Status.INSUFFICIENT_DATA
        self.value = None
        self.threshold = None
        self.reason = (
            f"no window of v{state.version} ({state.arm}) since {last:%Y-%m-%d %H:%M} UTC while "
            "the model's other streams went on: the stream stopped (version replaced or arm "
            "removed), so its alert is resolved"
        )
        self.window_start = last
        self.window_end = last


@dataclass(frozen=True, slots=True)
class _Judged:
    met: bool | None
    result: Any


def _utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise InputError(f"window bounds must be datetimes, got {value!r}")
    return as_utc(value)


def _result_order(result: Any) -> tuple[str, str, str]:
    # The store's order is not part of the contract: judge a window's results in a fixed one.
    return (str(result.check), str(result.subject), Status(result.status).value)


def _event_order(item: tuple[datetime, AlertEvent, _State]) -> tuple[Any, ...]:
    end, event, _ = item
    return (end, event.model, event.version, event.arm, event.rule, event.subject, event.kind)


def _judge(rule: AlertRule, results: Sequence[Any]) -> _Judged:
    verdicts = [(rule.when.holds(Status(r.status), r.value, r.lower, r.upper), r) for r in results]
    met = [r for v, r in verdicts if v is True]
    if met:
        return _Judged(True, max(met, key=lambda r: Status(r.status).severity))
    failed = [r for v, r in verdicts if v is False]
    if failed:
        return _Judged(False, failed[0])
    return _Judged(None, results[0])


class AlertEvaluator:
    """Evaluate alert rules over window results, store state and events, deliver them.

    Parameters
    ----------
    config
        Rules and channels (default: :meth:`AlertConfig.default`).
    url
        Database URL (default: SQLite ``<root>/monitor.db``, the monitor history's).
    root
        Project folder used when ``url`` is not given.
    attempts, backoff, max_backoff, sleep
        Delivery retries (see :func:`deliver`).
    timeout
        Seconds to wait for a locked database.
    stale_after
        A firing alert of a (version, arm) that got no window for this long while other
        streams of its model went on (a replaced champion, a removed shadow) is resolved,
        saying so. ``None`` keeps such alerts firing until a window judges them.

    Examples
    --------
    >>> from dataclasses import dataclass, replace
    >>> from datetime import UTC, datetime, timedelta
    >>> @dataclass
    ... class R:  # a window result as the monitor history returns it
    ...     window_end: datetime
    ...     status: str
    ...     model: str = "churn"; version: str = "1"; arm: str = "champion"
    ...     check: str = "drift.ks"; subject: str = "age"; value: float = 0.3
    ...     lower: None = None; upper: None = None; threshold: float = 0.1; reason: str = "-"
    ...     @property
    ...     def window_start(self): return self.window_end - timedelta(hours=1)
    >>> t0 = datetime(2024, 5, 1, tzinfo=UTC)
    >>> rules = AlertConfig.from_dict({"rules": [{"name": "drift", "check": "drift.*",
    ...                                           "when": "status >= alert", "for": 2}]})
    >>> with AlertEvaluator(rules, "sqlite://") as alerts:
    ...     hours = [t0 + timedelta(hours=h) for h in range(4)]
    ...     out = alerts.evaluate([R(hours[0], "alert"), R(hours[1], "alert"),
    ...                            R(hours[2], "alert"), R(hours[3], "ok")])
    ...     [(e.kind, e.window_end.hour) for e in out.events]
    [('firing', 1), ('resolved', 3)]
    """

    def __init__(
        self,
        config: AlertConfig | None = None,
        url: str | None = None,
        *,
        root: str | Path = ".watchkeeper",
        attempts: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 10.0,
        stale_after: timedelta | None = timedelta(days=14),
    ) -> None:
        self.config = AlertConfig.default() if config is None else config
        self.stale_after = stale_after
        self.url = url if url is not None else f"sqlite:///{Path(root) / 'monitor.db'}"
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self._engine = create_engine(self.url, timeout=timeout)
        try:
            with self._begin() as conn:
                t.migrate(conn)
        except BaseException:
            self._engine.dispose()
            raise

    # -- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _begin(self, *, write: bool = True) -> Iterator[sa.Connection]:
        # Writers are serialised (SQLite's write lock, a PostgreSQL advisory lock); readers
        # (dashboard, CLI) take neither.
        try:
            with self._engine.connect() as conn:
                if not write:
                    conn.execution_options(**{READ_ONLY: True})
                with conn.begin():
                    if write and conn.dialect.name == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
                    yield conn
        except sa.exc.DBAPIError as exc:
            detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            raise AlertStoreError(
                f"cannot use the alert tables in {safe_url(self.url)}: {detail}. Check the URL, "
                "that the server is running, and the file permissions"
            ) from exc

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> AlertEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self, results: Iterable[WindowResult]) -> AlertOutcome:
        """Evaluate every rule over ``results`` (any order, any windows), store, deliver."""
        grouped: dict[tuple[str, str, str, str, str], dict[datetime, list[Any]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for result in results:
            for rule in self.config.rules:
                if rule.matches(result.check, result.subject, result.model):
                    ident = (rule.name, result.model, str(result.version), result.arm)
                    grouped[(*ident, result.subject)][_utc(result.window_end)].append(result)
        if not grouped:
            return AlertOutcome((), (), 0)
        with self._begin() as conn:
            events, judged = self._advance(conn, grouped)
            events += sorted(self._retire_stale(conn, grouped), key=_event_order)
            pending = self._record(conn, events)
        sent = self._deliver(pending)
        stored = tuple(event for event, _ in pending)
        return AlertOutcome(stored, sent, judged)

    def evaluate_store(
        self, store: MonitorStore, *, model: str | None = None, since: datetime | None = None
    ) -> AlertOutcome:
        """Evaluate the monitor history in ``store`` (every model, or ``model``), from
        ``since`` (window end) on; windows evaluated before are skipped, so the whole history
        may be passed again safely."""
        models = [model] if model is not None else store.models()
        return self.evaluate([r for m in models for r in store.results(m, since=since)])

    def _advance(
        self,
        conn: sa.Connection,
        grouped: dict[tuple[str, str, str, str, str], dict[datetime, list[Any]]],
    ) -> tuple[list[tuple[datetime, AlertEvent, _State]], int]:
        states = self._load(conn, [alert_key(*ident) for ident in grouped])
        events: list[tuple[datetime, AlertEvent, _State]] = []
        judged = 0
        for ident, windows in grouped.items():
            key = alert_key(*ident)
            state = states.get(key) or _State(key, *ident)
            rule = self.config.rule(ident[0])
            for end in sorted(windows):
                last = state.last_window_end
                if last is not None and (
                    end < last or (end == last and state.last_met is not None)
                ):
                    continue
                judged += 1
                verdict = _judge(rule, sorted(windows[end], key=_result_order))
                event = self._step(rule, state, end, verdict)
                if event is not None:
                    events.append((end, event, state))
            self._save(conn, state)
        events.sort(key=_event_order)
        return events, judged

    def _retire_stale(
        self,
        conn: sa.Connection,
        grouped: dict[tuple[str, str, str, str, str], dict[datetime, list[Any]]],
    ) -> list[tuple[datetime, AlertEvent, _State]]:
        """Resolve firing alerts of streams that stopped: a (version, arm) of a model with no
        window for ``stale_after`` while the model's other streams went on (a replaced
        champion, a removed shadow arm). Without this they would stay firing for ever."""
        if self.stale_after is None:
            return []
        newest: dict[str, datetime] = {}
        for (_, model, *_rest), windows in grouped.items():
            end = max(windows)
            newest[model] = max(newest.get(model, end), end)
        events: list[tuple[datetime, AlertEvent, _State]] = []
        rows = conn.execute(
            sa.select(t.state.c.key).where(
                t.state.c.model.in_(list(newest)), t.state.c.firing.is_(True)
            )
        ).all()
        states = self._load(conn, [row.key for row in rows])
        for state in states.values():
            last = state.last_window_end
            if last is None or newest[state.model] - last < self.stale_after:
                continue
            rule = self.config.rule(state.rule)
            state.firing, state.streak = False, 0
            stopped = _Stopped(state, last)
            events.append(
                (newest[state.model], self._event("resolved", rule, state, stopped), state)
            )
            self._save(conn, state)
        return events

    def _step(
        self, rule: AlertRule, state: _State, end: datetime, verdict: _Judged
    ) -> AlertEvent | None:
        state.last_window_end, state.last_met = end, verdict.met
        if verdict.met is None:
            return None
        if not verdict.met:
            state.streak = 0
            if not state.firing:
                return None
            state.firing = False
            return self._event("resolved", rule, state, verdict.result)
        state.streak += 1
        cooled = state.fired_at is None or end - state.fired_at >= rule.cooldown
        if state.firing or state.streak < rule.for_windows or not cooled:
            return None
        state.firing, state.fired_at = True, end
        return self._event("firing", rule, state, verdict.result)

    @staticmethod
    def _event(kind: str, rule: AlertRule, state: _State, result: Any) -> AlertEvent:
        assert state.fired_at is not None
        return AlertEvent(
            kind="firing" if kind == "firing" else "resolved",
            rule=rule.name,
            severity=rule.severity,
            model=state.model,
            version=state.version,
            arm=state.arm,
            subject=state.subject,
            check=result.check,
            status=Status(result.status).value,
            value=result.value,
            threshold=result.threshold,
            reason=str(result.reason),
            window_start=_utc(result.window_start),
            window_end=_utc(result.window_end),
            started_at=state.fired_at,
            condition=str(rule.when),
            windows=state.streak if kind == "firing" else 0,
            summary=rule.summary,
            labels=rule.labels,
        )

    def _load(self, conn: sa.Connection, keys: list[str]) -> dict[str, _State]:
        found: dict[str, _State] = {}
        for start in range(0, len(keys), 500):
            rows = conn.execute(
                sa.select(t.state).where(t.state.c.key.in_(keys[start : start + 500]))
            ).all()
            for row in rows:
                found[row.key] = _State(
                    key=row.key,
                    rule=row.rule,
                    model=row.model,
                    version=row.version,
                    arm=row.arm,
                    subject=row.subject,
                    streak=int(row.streak),
                    firing=bool(row.firing),
                    last_window_end=None
                    if row.last_window_end is None
                    else as_utc(row.last_window_end),
                    last_met=row.last_met,
                    fired_at=None if row.fired_at is None else as_utc(row.fired_at),
                    fired_event=row.fired_event,
                    known=True,
                )
        return found

    @staticmethod
    def _save(conn: sa.Connection, state: _State) -> None:
        values = {
            "rule": state.rule,
            "model": state.model,
            "version": state.version,
            "arm": state.arm,
            "subject": state.subject,
            "streak": state.streak,
            "firing": state.firing,
            "last_window_end": state.last_window_end,
            "last_met": state.last_met,
            "fired_at": state.fired_at,
            "fired_event": state.fired_event,
            "updated_at": now_utc(),
        }
        if state.known:
            conn.execute(sa.update(t.state).where(t.state.c.key == state.key).values(**values))
        else:
            conn.execute(sa.insert(t.state).values(key=state.key, **values))
            state.known = True

    def _record(
        self, conn: sa.Connection, events: list[tuple[datetime, AlertEvent, _State]]
    ) -> list[tuple[AlertEvent, tuple[str, ...]]]:
        now = now_utc()
        stored: list[tuple[AlertEvent, tuple[str, ...]]] = []
        for _, event, state in events:
            try:
                with conn.begin_nested():
                    new_id = conn.execute(
                        sa.insert(t.events).values(**t.event_values(event, now))
                    ).inserted_primary_key
            except sa.exc.IntegrityError:
                # Already stored by another evaluator of the same window: once is enough.
                continue
            assert new_id is not None
            event_id = int(new_id[0])
            if event.kind == "firing":
                state.fired_event = event_id
                conn.execute(
                    sa.update(t.state)
                    .where(t.state.c.key == state.key, t.state.c.firing.is_(True))
                    .values(fired_event=event_id)
                )
            channels = self.config.rule(event.rule).channels
            for channel in channels:
                conn.execute(
                    sa.insert(t.deliveries).values(
                        event_id=event_id,
                        channel=channel,
                        state="pending",
                        attempts=0,
                        error=None,
                        updated_at=now,
                    )
                )
            stored.append((replace(event, id=event_id), channels))
        return stored

    def _deliver(
        self, pending: list[tuple[AlertEvent, tuple[str, ...]]]
    ) -> tuple[tuple[int, Delivery], ...]:
        sent: list[tuple[int, Delivery]] = []
        for event, channels in pending:
            for name in channels:
                outcome = deliver(
                    name,
                    self.config.channels[name],
                    event,
                    attempts=self.attempts,
                    backoff=self.backoff,
                    max_backoff=self.max_backoff,
                    sleep=self.sleep,
                )
                assert event.id is not None
                sent.append((event.id, outcome))
        if sent:
            self._mark(sent)
        return tuple(sent)

    def _mark(self, sent: Sequence[tuple[int, Delivery]]) -> None:
        now = now_utc()
        d = t.deliveries.c
        with self._begin() as conn:
            for event_id, outcome in sent:
                conn.execute(
                    sa.update(t.deliveries)
                    .where(d.event_id == event_id, d.channel == outcome.channel)
                    .values(
                        state="delivered" if outcome.ok else "failed",
                        attempts=d.attempts + outcome.attempts,
                        error=outcome.error,
                        updated_at=now,
                    )
                )

    def redeliver(self) -> tuple[tuple[int, Delivery], ...]:
        """Try again every delivery still pending (a crash between storing and sending) or
        failed, through the channels configured now."""
        d = t.deliveries.c
        with self._begin() as conn:
            rows = conn.execute(
                sa.select(t.events, d.channel)
                .join(t.deliveries, d.event_id == t.events.c.id)
                .where(d.state != "delivered")
                .order_by(t.events.c.id, d.id)
            ).all()
        by_event: dict[int, tuple[AlertEvent, list[str]]] = {}
        for row in rows:
            if row.channel in self.config.channels:
                entry = by_event.setdefault(int(row.id), (t.row_to_event(row), []))
                entry[1].append(row.channel)
        return self._deliver([(e, tuple(c)) for e, c in by_event.values()])

    # -- reading ------------------------------------------------------------------------

    def events(
        self,
        model: str | None = None,
        *,
        rule: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AlertEvent]:
        """Stored events, oldest first (the newest ``limit`` when given)."""
        c = t.events.c
        query = sa.select(t.events).order_by(c.id.desc())
        if model is not None:
            query = query.where(c.model == model)
        if rule is not None:
            query = query.where(c.rule == rule)
        if since is not None:
            query = query.where(c.window_end >= _utc(since))
        if limit is not None:
            query = query.limit(limit)
        with self._begin(write=False) as conn:
            rows = conn.execute(query).all()
        return [t.row_to_event(r) for r in reversed(rows)]

    def firing(self, model: str | None = None) -> list[AlertEvent]:
        """The firing event of every alert that is firing now."""
        s = t.state.c
        query = (
            sa.select(t.events)
            .join(t.state, s.fired_event == t.events.c.id)
            .where(s.firing.is_(True))
            .order_by(t.events.c.id)
        )
        if model is not None:
            query = query.where(s.model == model)
        with self._begin(write=False) as conn:
            return [t.row_to_event(r) for r in conn.execute(query).all()]

    def deliveries(self, event_id: int) -> list[dict[str, Any]]:
        """Delivery records of one event: channel, state, attempts, error."""
        d = t.deliveries.c
        with self._begin(write=False) as conn:
            rows = conn.execute(
                sa.select(d.channel, d.state, d.attempts, d.error)
                .where(d.event_id == event_id)
                .order_by(d.id)
            ).all()
        return [dict(r._mapping) for r in rows]
