"""Monitor gauges: which result each series shows, stream gauges, retired streams, format."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from watchkeeper.checks import CheckResult, Status
from watchkeeper.monitor import MonitorCollector, MonitorStore, render_monitor_metrics
from watchkeeper.monitor._gauges import MONITOR_GAUGES

T0 = datetime(2024, 5, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _write(store: MonitorStore, version: int, hour: int, labels: int, *found: CheckResult) -> None:
    start = T0 + hour * HOUR
    store.write_window(
        "churn", version, "champion", start, start + HOUR, "time", 400, labels, found, run_id="r"
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MonitorStore]:
    with MonitorStore(root=tmp_path) as s:
        # version 1 retired after hour 0; version 2 serves hours 30-31
        _write(s, 1, 0, 400, CheckResult("drift.ks", "x", Status.ALERT, "drifted", value=0.4))
        _write(
            s,
            2,
            30,
            300,
            CheckResult("drift.ks", "x", Status.ALERT, "drifted", value=0.3, threshold=0.1),
            CheckResult(
                "performance.accuracy", "model", Status.OK, "fine", value=0.8, lower=0.75,
                upper=0.85,
            ),
        )  # fmt: skip
        _write(
            s,
            2,
            31,
            100,
            CheckResult("drift.ks", "x", Status.OK, "no drift", value=0.01, threshold=0.1),
            CheckResult("performance.accuracy", "model", Status.INSUFFICIENT_DATA, "few labels"),
            CheckResult("quality.missing_share", "x", Status.OK, "none"),
        )
        yield s


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _key(name: str, check: str | None = None, subject: str = "", version: str = "2") -> tuple:
    labels = {"model": "churn", "version": version, "arm": "champion"}
    if check is not None:
        labels.update(check=check, subject=subject)
    return (name, tuple(sorted(labels.items())))


def test_series_show_the_newest_judged_result(store: MonitorStore) -> None:
    got = _samples(render_monitor_metrics(store).decode())
    # drift: the newest window judged it, so the earlier alert is gone
    assert got[_key("watchkeeper_monitor_status", "drift.ks", "x")] == 0.0
    assert got[_key("watchkeeper_monitor_value", "drift.ks", "x")] == 0.01
    # accuracy: the newest window waits for labels; the last measured value stays visible
    assert got[_key("watchkeeper_monitor_status", "performance.accuracy", "model")] == 0.0
    assert got[_key("watchkeeper_monitor_value", "performance.accuracy", "model")] == 0.8
    assert got[_key("watchkeeper_monitor_lower", "performance.accuracy", "model")] == 0.75
    assert got[_key("watchkeeper_monitor_upper", "performance.accuracy", "model")] == 0.85
    # a result without a value has a status and no value series
    assert got[_key("watchkeeper_monitor_status", "quality.missing_share", "x")] == 0.0
    assert _key("watchkeeper_monitor_value", "quality.missing_share", "x") not in got
    # stream gauges come from the newest window
    end = (T0 + 32 * HOUR).timestamp()
    assert got[_key("watchkeeper_monitor_window_end_timestamp_seconds")] == end
    assert got[_key("watchkeeper_monitor_label_coverage_ratio")] == 0.25


def test_retired_streams_are_not_exported(store: MonitorStore) -> None:
    got = _samples(render_monitor_metrics(store).decode())
    assert not [k for k in got if dict(k[1]).get("version") == "1"]
    # within the lookback they are
    families = list(MonitorCollector(store, lookback=timedelta(days=3)).collect())
    versions = {s.labels["version"] for f in families for s in f.samples}
    assert versions == {"1", "2"}


def test_every_contract_gauge_is_typed_even_without_history(tmp_path: Path) -> None:
    with MonitorStore(root=tmp_path) as empty:
        text = render_monitor_metrics(empty).decode()
    assert {f.name for f in text_string_to_metric_families(text)} == set(MONITOR_GAUGES)
    assert all(f"# TYPE {name} gauge" in text for name in MONITOR_GAUGES)


def test_reads_are_cached_and_a_broken_store_fails_soft(store: MonitorStore) -> None:
    calls = []

    def source() -> MonitorStore:
        calls.append(1)
        return store

    collector = MonitorCollector(source, max_age=60.0)
    list(collector.collect())
    list(collector.collect())
    assert len(calls) == 1

    class Broken:
        def latest(self, model: str | None = None) -> list[object]:
            from watchkeeper.monitor import MonitorStoreError

            raise MonitorStoreError("database is locked")

    families = list(MonitorCollector(Broken(), max_age=0.0).collect())
    assert {f.name for f in families} == set(MONITOR_GAUGES)
    assert not [s for f in families for s in f.samples]
