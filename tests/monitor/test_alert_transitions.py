"""Each alert transition is stored once, whoever evaluates the windows and in what order.

Two real processes (as the gateway's scheduled monitor and a manual ``watchkeeper monitor
run`` would be) evaluate the same monitor history in the same database, SQLite and
PostgreSQL, round after round while new windows arrive; the stored events are exactly the
transitions one evaluator alone records. Alert identity includes the arm: a challenger's
resolution never touches the champion's firing alert of the same version.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from watchkeeper.checks import CheckResult, Status
from watchkeeper.monitor import AlertConfig, AlertEvaluator, MonitorStore

T0 = datetime(2024, 5, 1, tzinfo=UTC)
ROUNDS = 6
#: Per stream, one status per hour ("a" alert, "o" ok): fire, resolve, fire again.
STREAMS = {
    (1, "champion"): "aaaooaaaaoaaaooaaaoo",
    (1, "challenger"): "aoaooaoaaoooaoaoaooa",
    (2, "champion"): "oooaaaoooaaaaooaoaaa",
}
SRC = str(Path(__file__).resolve().parents[2] / "src")


def hour(h: int) -> datetime:
    return T0 + timedelta(hours=h)


def write_windows(url: str, upto: int, start: int = 0) -> None:
    """The monitor's stored results of hours ``start`` to ``upto`` for every stream."""
    with MonitorStore(url) as store:
        run = store.start_run()
        for h in range(start, upto):
            for (version, arm), statuses in STREAMS.items():
                alert = statuses[h] == "a"
                found = [
                    CheckResult("drift.ks", "age", Status.ALERT if alert else Status.OK, "-"),
                    CheckResult("performance.mae", "model", Status.OK, "-", value=1.0),
                ]
                store.write_window(
                    "churn", version, arm, hour(h), hour(h + 1), "time", 100, 50, found, run_id=run
                )


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from watchkeeper.monitor import AlertConfig, AlertEvaluator, MonitorStore

    url, go, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    while not go.exists():  # start together
        time.sleep(0.005)
    fired = 0
    with MonitorStore(url) as store, AlertEvaluator(AlertConfig.default(), url,
                                                    timeout=60) as alerts:
        for r in range(rounds):
            # a monitor cycle: whatever the store holds now, evaluated again
            fired += len(alerts.evaluate_store(store).events)
            while not (go.parent / f"round-{r + 1}").exists() and r + 1 < rounds:
                time.sleep(0.005)
    print(fired)
    """
)


def transitions(url: str) -> list[tuple[str, str, str, str, datetime]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT version, arm, rule, kind, window_end FROM wk_alert_events "
                    "ORDER BY window_end, version, arm, rule, kind"
                )
            ).all()
    finally:
        engine.dispose()
    out = []
    for r in rows:
        end = r.window_end if isinstance(r.window_end, datetime) else datetime.fromisoformat(r[4])
        out.append((str(r.version), r.arm, r.rule, r.kind, end.replace(tzinfo=None)))
    return out


def expected_transitions(tmp_path: Path) -> list[tuple[str, str, str, str, datetime]]:
    """What one evaluator alone, given every window at once, stores."""
    url = f"sqlite:///{tmp_path / 'alone.db'}"
    write_windows(url, len(next(iter(STREAMS.values()))))
    with MonitorStore(url) as store, AlertEvaluator(AlertConfig.default(), url) as alerts:
        alerts.evaluate_store(store)
    return transitions(url)


def race(url: str, tmp_path: Path) -> list[int]:
    """Two processes evaluate the same store while new windows arrive between rounds."""
    hours = len(next(iter(STREAMS.values())))
    step = hours // ROUNDS + 1
    with AlertEvaluator(AlertConfig.default(), url):
        pass  # tables exist before the race (their creation is tested elsewhere)
    write_windows(url, step)
    sync = tmp_path / "sync"
    sync.mkdir()
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    argv = [sys.executable, "-c", CHILD, url, str(sync / "go"), str(ROUNDS)]
    children = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        (sync / "go").touch()
        for r in range(1, ROUNDS):
            write_windows(url, min(hours, step * (r + 1)), start=min(hours, step * r))
            (sync / f"round-{r}").touch()
        fired = []
        for child in children:
            out, err = child.communicate(timeout=240)
            assert child.returncode == 0, err[-2000:]
            fired.append(int(out.strip()))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return fired


def check_race(url: str, tmp_path: Path) -> None:
    fired = race(url, tmp_path)
    # One more evaluation after the race picks up windows written after the last round.
    with MonitorStore(url) as store, AlertEvaluator(AlertConfig.default(), url) as alerts:
        fired.append(len(alerts.evaluate_store(store).events))
    stored = transitions(url)
    expected = expected_transitions(tmp_path)
    assert len(expected) >= 10
    assert {arm for _, arm, *_ in expected} == {"champion", "challenger"}
    assert stored == expected  # every transition once, none lost
    assert sum(fired) == len(expected)  # and each was reported (delivered) by one process


def test_two_processes_on_one_sqlite_store_record_each_transition_once(tmp_path: Path) -> None:
    check_race(f"sqlite:///{tmp_path / 'monitor.db'}", tmp_path)


@pytest.mark.service
def test_two_processes_on_one_postgres_store_record_each_transition_once(
    tmp_path: Path, monitor_postgres: Any
) -> None:
    check_race(str(monitor_postgres.create_schema()), tmp_path)


def test_a_transition_is_stored_once_even_when_the_state_is_lost(tmp_path: Path) -> None:
    # The unique (key, kind, window end) index holds even when an evaluator does not know
    # the state another one left (here: the state table emptied between two runs).
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    write_windows(url, 8)
    with MonitorStore(url) as store, AlertEvaluator(AlertConfig.default(), url) as alerts:
        first = alerts.evaluate_store(store).events
        assert first
        with sqlite3.connect(tmp_path / "monitor.db") as db:
            db.execute("DELETE FROM wk_alert_state")
        assert alerts.evaluate_store(store).events == ()
    assert len(transitions(url)) == len(first)


def test_a_challengers_resolution_leaves_the_champions_alert_of_that_version_firing() -> None:
    from watchkeeper.monitor import WindowCheck

    def result(h: int, arm: str, status: str) -> WindowCheck:
        return WindowCheck(
            "churn", 2, arm, hour(h), hour(h + 1), "time", 100, 50, "performance.mae", "model",
            Status(status), "-", value=40.0, threshold=30.0,
        )  # fmt: skip

    rows = [result(0, "champion", "alert"), result(0, "challenger", "alert")]
    rows += [result(1, "challenger", "ok"), result(1, "champion", "alert")]
    for order in (rows, rows[::-1]):
        with AlertEvaluator(AlertConfig.default(), "sqlite://") as alerts:
            events = alerts.evaluate(order).events
            assert [(e.arm, e.kind) for e in events] == [
                ("challenger", "firing"),
                ("champion", "firing"),
                ("challenger", "resolved"),
            ]
            assert [(e.arm, e.rule) for e in alerts.firing("churn")] == [
                ("champion", "performance")
            ]


def test_schema_1_databases_are_deduplicated_and_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    write_windows(url, 6)
    with MonitorStore(url) as store, AlertEvaluator(AlertConfig.default(), url) as alerts:
        alerts.evaluate_store(store)
    stored = transitions(url)
    with sqlite3.connect(tmp_path / "monitor.db") as db:  # back to schema 1, with a duplicate
        db.execute("DROP INDEX uq_wk_alert_events_transition")
        db.execute("UPDATE wk_alert_meta SET value = '1' WHERE key = 'schema_version'")
        columns = [r[1] for r in db.execute("PRAGMA table_info(wk_alert_events)") if r[1] != "id"]
        names = ", ".join(f'"{c}"' for c in columns)
        db.execute(f"INSERT INTO wk_alert_events ({names}) SELECT {names} FROM wk_alert_events")
    assert len(transitions(url)) == 2 * len(stored)
    with AlertEvaluator(AlertConfig.default(), url):
        pass
    assert transitions(url) == stored
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        version = db.execute("SELECT value FROM wk_alert_meta WHERE key = 'schema_version'")
        assert version.fetchone()[0] == "2"
