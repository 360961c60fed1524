"""``watchkeeper monitor run`` / ``watch`` over real files: exit codes, JSON, gauges file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

T0 = 1_714_521_600.0  # 2024-05-01 00:00 UTC
HOUR = 3600.0
N = 200


def _project(root: Path, shift_last: bool) -> Path:
    from sklearn.linear_model import LinearRegression

    from watchkeeper.logstore import FeedbackRecord, PredictionRecord, SQLiteLogSink
    from watchkeeper.registry import Registry

    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"x": rng.normal(size=800)})
    model = LinearRegression().fit(ref, 2 * ref["x"])
    with Registry(root=root) as registry:
        registry.register("rides", model, reference=ref, actor="tests")
    records, labels = [], []
    for w in range(3):
        x = rng.normal(3.0 if shift_last and w == 2 else 0.0, 1.0, N)
        for i, v in enumerate(x):
            ts = T0 + w * HOUR + i * HOUR / N
            records.append(
                PredictionRecord(f"{w}-{i}", ts, "rides", 1, "champion", {"x": float(v)}, 2 * v)
            )
            labels.append(FeedbackRecord(f"{w}-{i}", ts + 60, label=2 * v + rng.normal()))
    with SQLiteLogSink(root / "predictions.db") as sink:
        sink.write_predictions(records)
        sink.write_feedback(labels)
    return root


@pytest.fixture
def drifted(tmp_path: Path) -> Path:
    return _project(tmp_path / "drifted", shift_last=True)


@pytest.fixture
def steady(tmp_path: Path) -> Path:
    return _project(tmp_path / "steady", shift_last=False)


def monitor(*args: str) -> Any:
    from watchkeeper.cli._app import _register_commands, app

    _register_commands()
    return CliRunner().invoke(app, ["monitor", *args], catch_exceptions=False)


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_run_exits_1_on_alerts_then_0_when_nothing_is_new(drifted: Path) -> None:
    first = monitor("run", "--root", str(drifted), "--json")
    assert first.exit_code == 1, first.output
    [payload] = _json_lines(first.stdout)
    assert payload["worst_status"] == "alert"
    assert [w["n_rows"] for w in payload["windows"]] == [N, N, N]
    last = payload["windows"][-1]
    drift = {r["subject"]: r["status"] for r in last["results"] if r["check"] == "drift.ks"}
    assert drift["x"] == "alert"
    assert payload["feedback"]["rides"]["n_unknown"] == 0
    assert payload["alerts"] is not None
    again = monitor("run", "--root", str(drifted), "--json")
    assert again.exit_code == 0, again.output
    [payload] = _json_lines(again.stdout)
    assert payload["windows"] == []
    assert payload["skipped"] == 3
    assert payload["alerts"]["events"] == []


def test_steady_log_exits_0_with_a_readable_summary(steady: Path) -> None:
    result = monitor("run", "--root", str(steady), "--every", "1h")
    assert result.exit_code == 0, result.output
    assert "3 windows evaluated, 0 unchanged" in result.stdout
    assert "rides v1 (champion) 2024-05-01 00:00..2024-05-01 01:00" in result.stdout


def test_prom_file_holds_the_gauges(drifted: Path, tmp_path: Path) -> None:
    out = tmp_path / "textfile" / "watchkeeper.prom"
    result = monitor("run", "--root", str(drifted), "--quiet", "--prom-file", str(out))
    assert result.exit_code == 1
    assert result.stdout == ""
    samples = {
        (s.name, s.labels.get("check"), s.labels.get("subject")): s.value
        for f in text_string_to_metric_families(out.read_text())
        for s in f.samples
    }
    assert samples[("watchkeeper_monitor_status", "drift.ks", "x")] == 3.0
    assert samples[("watchkeeper_monitor_label_coverage_ratio", None, None)] == 1.0
    assert not list(out.parent.glob("*.tmp"))


def test_count_windows_and_since(steady: Path) -> None:
    result = monitor(
        "run", "--root", str(steady), "--every", "300", "--since", "2024-05-01T00:00", "--json"
    )
    assert result.exit_code == 0, result.output
    [payload] = _json_lines(result.stdout)
    assert [w["window_kind"] for w in payload["windows"]] == ["count", "count"]


def test_watch_runs_bounded_iterations(drifted: Path) -> None:
    result = monitor(
        "watch", "--root", str(drifted), "--every", "0s", "--iterations", "2", "--json"
    )
    assert result.exit_code == 1, result.output
    first, second = _json_lines(result.stdout)
    assert len(first["windows"]) == 3
    assert second["windows"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--every", "fortnightly"], "is not a window size"),
        (["run", "--since", "last tuesday"], "neither an ISO 8601 time"),
        (["run", "--model", "../etc"], "name"),
        (["run", "--rules", "missing.toml"], "missing.toml"),
        (["watch", "--every", "soon"], "--every"),
    ],
)
def test_usage_errors_exit_2(steady: Path, args: list[str], message: str) -> None:
    result = monitor(*args, "--root", str(steady))
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_missing_log_exits_2(tmp_path: Path) -> None:
    result = monitor("run", "--root", str(tmp_path / "nothing"))
    assert result.exit_code == 2
    assert "no prediction log" in result.output
