"""The monitoring view and its HTML show fairness, skew, attribution drift and weak segments in
their own sections when the history has them, and leave the sections out otherwise."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watchkeeper.checks import CheckResult, Status
from watchkeeper.monitor import MonitorStore
from watchkeeper.report._monitoring import monitor_view
from watchkeeper.report._monitoring_html import render_monitoring

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _window(store: MonitorStore, i: int, results: list[CheckResult]) -> None:
    run = store.start_run()
    start = T0 + timedelta(hours=i)
    store.write_window(
        "loan",
        1,
        "champion",
        start,
        start + timedelta(hours=1),
        "time",
        500,
        400,
        results,
        run_id=run,
    )
    store.finish_run(run, status="done", n_windows=1)


def _health(i: int) -> list[CheckResult]:
    biased = i >= 2
    out = [
        CheckResult("drift.ks", "x1", Status.OK, "no drift", value=0.01),
        CheckResult(
            "fairness.equal_opportunity_difference",
            "group",
            Status.ALERT if biased else Status.OK,
            "TPR gap 0.31 (group=b lowest)" if biased else "TPR gap 0.01",
            value=0.31 if biased else 0.01,
            lower=0.2 if biased else -0.05,
            upper=0.4,
        ),
        CheckResult("fairness.selection_rate", "group=b", Status.OK, "selection rate", value=0.3),
        CheckResult(
            "attribution.drift",
            "x2",
            Status.ALERT if biased else Status.OK,
            "mean |attribution| 0.8 -> 2.4",
            value=1.6 if biased else 0.01,
        ),
        CheckResult("segments.weak", "region = east", Status.WARN, "error 0.3 vs 0.1", value=0.3),
        CheckResult("segments.weak", "region = north", Status.OK, "not weak", value=0.1),
    ]
    if i == 0:
        out.append(
            CheckResult(
                "skew.training_serving",
                "weight_kg",
                Status.ALERT,
                "suspected training-serving skew: values multiplied by 1000",
                value=1000.0,
                details={"kind": "scale"},
            )
        )
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MonitorStore]:
    found = MonitorStore(root=tmp_path)
    yield found
    found.close()


def _section(html: str, family: str) -> str:
    match = re.search(rf'<div class="strips" data-family="{family}">(.*?)</svg>', html, re.S)
    assert match is not None, f"no {family} section"
    return match.group(1)


def test_health_families_get_their_own_sections(store: MonitorStore) -> None:
    for i in range(4):
        _window(store, i, _health(i))
    view = monitor_view(store, "loan")
    families = [s["family"] for s in view["streams"][0]["strips"]]
    assert families == sorted(
        families, key=["drift", "fairness", "skew", "attribution", "segments"].index
    )
    html = render_monitoring(view)
    fairness = _section(html, "fairness")
    assert "Fairness by sensitive group" in fairness
    assert fairness.count('data-status="alert"') == 2  # the gap in the two biased windows
    assert "group=b" in fairness
    skew = _section(html, "skew")
    assert skew.count('data-status="alert"') == 1
    assert "weight_kg" in skew
    assert _section(html, "attribution").count('data-status="alert"') == 2
    segments = _section(html, "segments")
    assert "region = east" in segments
    assert "region = north" not in segments  # never weak: not drawn
    assert "1 of 2 slice(s) shown" in segments
    # drift stays in its own section, without the health families
    drift = _section(html, "drift")
    assert "drift.ks" in drift
    assert "fairness" not in drift
    # the findings list each alert's reason
    assert "values multiplied by 1000" in html
    assert "TPR gap 0.31 (group=b lowest)" in html


def test_no_health_sections_without_health_results(store: MonitorStore) -> None:
    for i in range(2):
        _window(store, i, [CheckResult("drift.ks", "x1", Status.OK, "no drift", value=0.01)])
    html = render_monitoring(monitor_view(store, "loan"))
    assert 'data-family="drift"' in html
    for family in ("fairness", "skew", "attribution", "segments"):
        assert f'data-family="{family}"' not in html
