"""The monitor history: one row per check result per window, in SQLite or PostgreSQL.

The same SQLAlchemy Core tables serve both back-ends (the registry's engine set-up: WAL and
``BEGIN IMMEDIATE`` on SQLite, lock timeouts on PostgreSQL). Writes are idempotent: a
window's results are keyed by ``(model, version, arm, window_start, window_end, check,
subject)`` and :meth:`MonitorStore.write_window` replaces, in one transaction, the rows of the
check families it recomputed. A run interrupted midway therefore leaves every window either
fully written or untouched, and the next run completes it without duplicates.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError, WatchkeeperError
from watchkeeper.monitor._records import (
    DetectorState,
    WindowCheck,
    WindowSummary,
    result_row,
    to_check,
    to_summary,
)
from watchkeeper.storage import as_utc

__all__ = [
    "DetectorState",
    "MonitorStore",
    "MonitorStoreError",
    "WindowCheck",
    "WindowSummary",
]

T = TypeVar("T")
SCHEMA_VERSION = 2  # 2: window profiles in the binary layout (profile_bin)
_PG_MIGRATION_LOCK = 0x7761_6D6F  # serialises table creation by concurrent monitors

metadata = sa.MetaData()

meta = sa.Table(
    "wk_monitor_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)


def _window_key() -> list[sa.Column[Any]]:
    return [
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("arm", sa.String(64), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("window_end", sa.DateTime(timezone=True), primary_key=True),
    ]


windows = sa.Table(
    "wk_monitor_windows",
    metadata,
    *_window_key(),
    sa.Column("window_kind", sa.String(8), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("n_labels", sa.Integer, nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(36), nullable=False),
)

results = sa.Table(
    "wk_monitor_results",
    metadata,
    *_window_key(),
    sa.Column("check", sa.String(128), primary_key=True),
    sa.Column("subject", sa.String(256), primary_key=True),
    sa.Column("window_kind", sa.String(8), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("n_labels", sa.Integer, nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("lower", sa.Float, nullable=True),
    sa.Column("upper", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("p_value", sa.Float, nullable=True),
    sa.Column("rule", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    # JSON kept as text: identical behaviour on every backend.
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Index("ix_wk_monitor_results_model_end", "model", "window_end"),
)

#: Per (model, version, arm, detector): the detector's JSON state and how far it was fed.
detectors = sa.Table(
    "wk_monitor_detectors",
    metadata,
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("arm", sa.String(64), primary_key=True),
    sa.Column("detector", sa.String(64), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("position_ts", sa.Float, nullable=False),
    sa.Column("position_id", sa.String(256), nullable=False),
    sa.Column("n_fed", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

#: Per window and kind (``features``, ``predictions``): the window's mergeable profile, made
#: against the version's reference, in the binary layout of :meth:`Profile.to_bytes`
#: (``profile_bin``; rows of schema 1 stores hold the JSON of :meth:`Profile.to_dict` in
#: ``profile`` instead, and still read). Day, week and month views are merges of these,
#: never re-reads of the log.
profiles = sa.Table(
    "wk_monitor_profiles",
    metadata,
    *_window_key(),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("profile", sa.Text, nullable=False),  # JSON (schema 1 rows); "" when binary
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("profile_bin", sa.LargeBinary, nullable=True),
    sa.Index("ix_wk_monitor_profiles_model_end", "model", "kind", "window_end"),
)

runs = sa.Table(
    "wk_monitor_runs",
    metadata,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("n_windows", sa.Integer, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)


class MonitorStoreError(WatchkeeperError):
    """The monitor history cannot be opened, read or written; the message says why."""


class MonitorStore:
    """History of monitoring results (SQLite by default, PostgreSQL through the same code).

    Parameters
    ----------
    url
        Database URL (``sqlite:///...`` or ``postgresql://...``). Default: SQLite at
        ``<root>/monitor.db``.
    root
        Project folder of the embedded defaults.
    timeout
        Seconds to wait for a locked database or a connection before failing.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> from watchkeeper.checks import CheckResult, Status
    >>> tmp = tempfile.TemporaryDirectory()
    >>> store = MonitorStore(root=tmp.name)
    >>> start, end = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 1, 1, tzinfo=UTC)
    >>> found = [CheckResult("serving.error_rate", "model", Status.OK, "0 errors", value=0.0)]
    >>> store.write_window("churn", 1, "champion", start, end, "time", 120, 30, found,
    ...                    run_id="r1")
    >>> [(r.check, r.n_rows, r.status.value) for r in store.results("churn")]
    [('serving.error_rate', 120, 'ok')]
    >>> store.windows("churn")[0].label_coverage
    0.25
    >>> store.close(); tmp.cleanup()
    """

    def __init__(
        self, url: str | None = None, *, root: str | Path = ".watchkeeper", timeout: float = 10.0
    ) -> None:
        from watchkeeper.storage import create_engine, db_errors

        if timeout <= 0:
            raise InputError(f"timeout must be positive seconds, got {timeout!r}")
        if url is None:
            url = f"sqlite:///{Path(root).absolute() / 'monitor.db'}"
        self.timeout = timeout
        self._db_errors = db_errors
        try:
            self._engine = create_engine(url, timeout=timeout)
        except InputError as exc:
            raise InputError(str(exc).replace("registry", "monitor")) from exc
        self.url = self._engine.url
        try:
            self._write(self._migrate)
        except BaseException:
            self._engine.dispose()
            raise

    # -- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from watchkeeper.registry import RegistryError

        try:
            with self._db_errors(self.url, self.timeout):
                yield
        except RegistryError as exc:
            raise MonitorStoreError(str(exc).replace("registry", "monitor history")) from exc

    def _write(self, work: Callable[[sa.Connection], T]) -> T:
        with self._errors(), self._engine.begin() as conn:
            return work(conn)

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        from watchkeeper.storage import READ_ONLY

        with self._errors(), self._engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            with conn.begin():
                yield conn

    def _migrate(self, conn: sa.Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        meta.create(conn, checkfirst=True)
        row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).first()
        if row is None:
            metadata.create_all(conn, checkfirst=True)
            conn.execute(sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
        elif int(row[0]) > SCHEMA_VERSION:
            raise MonitorStoreError(
                f"the monitor database has schema version {row[0]} but this watchkeeper only "
                f"knows up to {SCHEMA_VERSION}; upgrade watchkeeper to use it"
            )
        else:
            profiles.create(conn, checkfirst=True)  # added later; older databases lack it
            if int(row[0]) < 2:
                _add_binary_profile_column(conn)
                conn.execute(
                    sa.update(meta)
                    .where(meta.c.key == "schema_version")
                    .values(value=str(SCHEMA_VERSION))
                )

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> MonitorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        from watchkeeper.storage import safe_url

        return f"MonitorStore({safe_url(self.url)!r})"

    # -- runs --------------------------------------------------------------------------

    def start_run(self) -> str:
        """Record the start of a monitor run and return its id."""
        run_id = uuid.uuid4().hex
        self._write(
            lambda conn: conn.execute(
                sa.insert(runs).values(
                    run_id=run_id,
                    started_at=datetime.now(UTC),
                    status="running",
                    n_windows=0,
                    message="",
                )
            )
        )
        return run_id

    def finish_run(self, run_id: str, *, status: str, n_windows: int, message: str = "") -> None:
        """Record how a run ended (``done`` or ``failed``)."""
        self._write(
            lambda conn: conn.execute(
                sa.update(runs)
                .where(runs.c.run_id == run_id)
                .values(
                    finished_at=datetime.now(UTC),
                    status=status,
                    n_windows=n_windows,
                    message=message[:2000],
                )
            )
        )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` runs, newest first."""
        with self._read() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit))
            return [
                {
                    **row._asdict(),
                    "started_at": as_utc(row.started_at),
                    "finished_at": None if row.finished_at is None else as_utc(row.finished_at),
                }
                for row in rows
            ]

    # -- writing -------------------------------------------------------------------------

    def write_window(
        self,
        model: str,
        version: int,
        arm: str,
        window_start: datetime,
        window_end: datetime,
        window_kind: str,
        n_rows: int,
        n_labels: int,
        found: Sequence[CheckResult],
        *,
        run_id: str,
        replace: Sequence[str] | None = None,
        keep_worst: Sequence[str] = (),
        window_profiles: Mapping[str, Any] | None = None,
    ) -> None:
        """Store one window's results in one transaction (idempotent).

        ``window_profiles`` maps a kind (``"features"``, ``"predictions"``) to the window's
        :class:`~watchkeeper.data.Profile`; they replace the stored ones of those kinds.

        ``replace`` lists the check-name prefixes recomputed (e.g. ``["performance."]``):
        stored rows of those families are deleted before ``found`` is inserted. ``None``
        replaces every row of the window. For prefixes in ``keep_worst`` a stored row with a
        worse status than the new one is kept (a concept-drift signal is never erased by a
        later, quieter batch of the same window).
        """
        start, end = as_utc(window_start), as_utc(window_end)
        now = datetime.now(UTC)
        key = {"model": model, "version": version, "arm": arm}

        def where(table: sa.Table) -> Any:
            c = table.c
            return sa.and_(
                c.model == model,
                c.version == version,
                c.arm == arm,
                c.window_start == start,
                c.window_end == end,
            )

        def work(conn: sa.Connection) -> None:
            stored = {
                (r.check, r.subject): Status(r.status)
                for r in conn.execute(
                    sa.select(results.c.check, results.c.subject, results.c.status).where(
                        where(results)
                    )
                )
            }
            kept: set[tuple[str, str]] = set()  # stored rows worse than their new value
            rows = []
            for r in found:
                old = stored.get((r.check, r.subject))
                if (
                    old is not None
                    and any(r.check.startswith(p) for p in keep_worst)
                    and old.severity > r.status.severity
                ):
                    kept.add((r.check, r.subject))
                else:
                    rows.append(result_row(r))
            doomed = [
                {"b_check": c, "b_subject": s}
                for (c, s) in stored
                if (replace is None or any(c.startswith(p) for p in replace)) and (c, s) not in kept
            ]
            if doomed:
                conn.execute(
                    sa.delete(results).where(
                        where(results),
                        results.c.check == sa.bindparam("b_check"),
                        results.c.subject == sa.bindparam("b_subject"),
                    ),
                    doomed,
                )
            if rows:
                common = {
                    **key,
                    "window_start": start,
                    "window_end": end,
                    "window_kind": window_kind,
                    "n_rows": n_rows,
                    "n_labels": n_labels,
                    "computed_at": now,
                    "run_id": run_id,
                }
                conn.execute(sa.insert(results), [{**common, **r} for r in rows])
            # window counts may change (late labels): keep every result row in step
            conn.execute(
                sa.update(results).where(where(results)).values(n_rows=n_rows, n_labels=n_labels)
            )
            statuses = [
                Status(s)
                for (s,) in conn.execute(sa.select(results.c.status).where(where(results)))
            ]
            worst = max(statuses, key=lambda s: s.severity, default=Status.OK)
            for kind, profile in (window_profiles or {}).items():
                conn.execute(sa.delete(profiles).where(where(profiles), profiles.c.kind == kind))
                conn.execute(
                    sa.insert(profiles).values(
                        **key,
                        window_start=start,
                        window_end=end,
                        kind=kind,
                        n_rows=int(profile.n_rows),
                        profile="",
                        profile_bin=profile.to_bytes(),
                        computed_at=now,
                        run_id=run_id,
                    )
                )
            conn.execute(sa.delete(windows).where(where(windows)))
            conn.execute(
                sa.insert(windows).values(
                    **key,
                    window_start=start,
                    window_end=end,
                    window_kind=window_kind,
                    n_rows=n_rows,
                    n_labels=n_labels,
                    status=worst.value,
                    computed_at=now,
                    run_id=run_id,
                )
            )

        self._write(work)

    # -- detectors -----------------------------------------------------------------------

    def detector_states(self, model: str, version: int, arm: str) -> dict[str, DetectorState]:
        """The persisted detectors of one (model, version, arm), by name."""
        c = detectors.c
        with self._read() as conn:
            rows = conn.execute(
                sa.select(detectors).where(c.model == model, c.version == version, c.arm == arm)
            )
            return {
                r.detector: DetectorState(
                    r.detector, json.loads(r.state), r.position_ts, r.position_id, r.n_fed
                )
                for r in rows
            }

    def save_detectors(
        self,
        model: str,
        version: int,
        arm: str,
        states: Iterable[DetectorState],
        window_results: Sequence[tuple[Any, Sequence[CheckResult]]] = (),
        *,
        run_id: str = "",
    ) -> None:
        """Persist detector states and, in the same transaction, their per-window results.

        ``window_results`` holds ``(window, results)`` pairs where ``window`` has the
        ``window_start``, ``window_end``, ``window_kind``, ``n_rows`` and ``n_labels`` of a
        stored window. A stored result that is worse than the new one is kept.
        """
        states = list(states)
        now = datetime.now(UTC)
        c = detectors.c

        def work(conn: sa.Connection) -> None:
            for s in states:
                conn.execute(
                    sa.delete(detectors).where(
                        c.model == model,
                        c.version == version,
                        c.arm == arm,
                        c.detector == s.detector,
                    )
                )
                conn.execute(
                    sa.insert(detectors).values(
                        model=model,
                        version=version,
                        arm=arm,
                        detector=s.detector,
                        state=json.dumps(s.state),
                        position_ts=s.position_ts,
                        position_id=s.position_id,
                        n_fed=s.n_fed,
                        updated_at=now,
                    )
                )

        # detector states first, then each window: a crash in between re-feeds nothing and
        # at worst leaves one window without its concept rows (never a row fed twice)
        self._write(work)
        for window, found in window_results:
            self.write_window(
                model,
                version,
                arm,
                window.window_start,
                window.window_end,
                window.window_kind,
                window.n_rows,
                window.n_labels,
                found,
                run_id=run_id,
                replace=["concept."],
                keep_worst=["concept."],
            )

    # -- reading -------------------------------------------------------------------------

    def results(
        self,
        model: str,
        *,
        check: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = None,
        arm: str | None = None,
    ) -> list[WindowCheck]:
        """Stored results of ``model`` ordered by window, then check and subject.

        ``check`` is a full name (``"drift.ks"``) or a family ending with a dot
        (``"performance."``); ``since``/``until`` bound the window end (``since <= end <
        until``).
        """
        c = results.c
        query = sa.select(results).where(c.model == model)
        if check is not None:
            query = query.where(
                c.check.startswith(check) if check.endswith(".") else c.check == check
            )
        query = _filtered(query, c, subject, since, until, version, arm)
        query = query.order_by(c.window_end, c.version, c.arm, c.check, c.subject)
        with self._read() as conn:
            return [to_check(r) for r in conn.execute(query)]

    def windows(
        self,
        model: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = None,
        arm: str | None = None,
    ) -> list[WindowSummary]:
        """Evaluated windows of ``model`` ordered by end (``since <= end < until``)."""
        c = windows.c
        query = _filtered(
            sa.select(windows).where(c.model == model), c, None, since, until, version, arm
        )
        query = query.order_by(c.window_end, c.version, c.arm)
        with self._read() as conn:
            return [to_summary(r) for r in conn.execute(query)]

    def window_profiles(
        self,
        model: str,
        kind: str = "features",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = None,
        arm: str | None = None,
    ) -> list[tuple[WindowSummary, Any]]:
        """Stored profiles of ``model``'s windows (``since <= end < until``), ordered by end,
        each with its window (status and label counts as last stored)."""
        from watchkeeper.data import Profile

        p, w = profiles.c, windows.c
        query = (
            sa.select(windows, p.profile, p.profile_bin)
            .join(
                profiles,
                sa.and_(
                    p.model == w.model,
                    p.version == w.version,
                    p.arm == w.arm,
                    p.window_start == w.window_start,
                    p.window_end == w.window_end,
                ),
            )
            .where(w.model == model, p.kind == kind)
        )
        query = _filtered(query, w, None, since, until, version, arm)
        query = query.order_by(w.window_end, w.version, w.arm)
        with self._read() as conn:
            rows = list(conn.execute(query))
        return [(to_summary(r), _decode_profile(Profile, r)) for r in rows]

    def merged_profile(
        self,
        model: str,
        kind: str = "features",
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        version: int | None = None,
        arm: str | None = None,
    ) -> Any:
        """One profile of every stored window in the range (a day, week or month view):
        the merge of the windows' profiles, never a re-read of the log. ``None`` when no
        window in the range has a stored profile.

        Raises
        ------
        InputError
            The windows' profiles cannot merge (e.g. versions with different references:
            pass ``version=``).
        """
        found = self.window_profiles(
            model, kind, since=since, until=until, version=version, arm=arm
        )
        if not found:
            return None
        try:
            # One n-way merge (Profile.merge_all), not a chain of pairwise merges.
            return type(found[0][1]).merge_all(profile for _, profile in found)
        except InputError as exc:
            raise InputError(
                f"the stored {kind} profiles of {model!r} do not merge ({exc}); windows of "
                "versions with different references merge only per version: pass version="
            ) from None

    def models(self) -> list[str]:
        """Models with stored windows, sorted."""
        with self._read() as conn:
            rows = conn.execute(sa.select(windows.c.model).distinct().order_by(windows.c.model))
            return [r[0] for r in rows]

    def latest(self, model: str | None = None) -> list[WindowCheck]:
        """The results of the latest window of each (model, version, arm)."""
        c = windows.c
        last = sa.select(c.model, c.version, c.arm, sa.func.max(c.window_end).label("end"))
        if model is not None:
            last = last.where(c.model == model)
        sub = last.group_by(c.model, c.version, c.arm).subquery()
        r = results.c
        query = (
            sa.select(results)
            .join(
                sub,
                sa.and_(
                    r.model == sub.c.model,
                    r.version == sub.c.version,
                    r.arm == sub.c.arm,
                    r.window_end == sub.c.end,
                ),
            )
            .order_by(r.model, r.version, r.arm, r.check, r.subject)
        )
        with self._read() as conn:
            return [to_check(row) for row in conn.execute(query)]


def _add_binary_profile_column(conn: sa.Connection) -> None:
    """Schema 1 -> 2: the profiles table gains its binary column (rows keep their JSON)."""
    present = {c["name"] for c in sa.inspect(conn).get_columns(profiles.name)}
    if "profile_bin" not in present:
        kind = sa.LargeBinary().compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE {profiles.name} ADD COLUMN profile_bin {kind}"))


def _decode_profile(cls: Any, row: Any) -> Any:
    if row.profile_bin is not None:
        return cls.from_bytes(bytes(row.profile_bin))
    return cls.from_dict(json.loads(row.profile))


def _filtered(
    query: Any,
    c: Any,
    subject: str | None,
    since: datetime | None,
    until: datetime | None,
    version: int | None,
    arm: str | None,
) -> Any:
    if subject is not None:
        query = query.where(c.subject == subject)
    if since is not None:
        query = query.where(c.window_end >= as_utc(since))
    if until is not None:
        query = query.where(c.window_end < as_utc(until))
    if version is not None:
        query = query.where(c.version == version)
    if arm is not None:
        query = query.where(c.arm == arm)
    return query
