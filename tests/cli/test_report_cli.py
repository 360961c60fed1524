"""``watchkeeper report``: one window or a period of a model, from the prediction log and the
monitor history, written as HTML and JSON with the numbers of that window or period."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from watchkeeper.checks import CheckResult, Status

MODEL = "rides"
T0 = datetime(2024, 5, 1, tzinfo=UTC)
ROWS_PER_WINDOW = 120
#: (drift status of x, MAE, its interval, MAE status) of the three hourly windows.
WINDOWS = [
    ("ok", 0.50, (0.41, 0.59), "ok"),
    ("ok", 0.52, (0.43, 0.61), "ok"),
    ("alert", 1.40, (1.21, 1.63), "alert"),
]


def _results(drift: str, mae: float, bounds: tuple[float, float], status: str) -> list[Any]:
    return [
        CheckResult("drift.ks", "x", Status(drift), f"x is {drift}", value=0.3, threshold=0.1),
        CheckResult("quality.missing_share", "x", Status.OK, "none missing", value=0.0),
        CheckResult("performance.mae", "model", Status(status), f"MAE {mae}", value=mae,
                    lower=bounds[0], upper=bounds[1], threshold=0.8),
        CheckResult("serving.latency_p99", "model", Status.OK, "fast", value=0.003),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry (one regressor with its reference), a log of three hourly windows (the
    third shifted; the first two half labelled), their monitor history and alerts."""
    from sklearn.linear_model import LinearRegression

    from watchkeeper.logstore import FeedbackRecord, PredictionRecord, SQLiteLogSink
    from watchkeeper.monitor import AlertEvaluator, MonitorStore
    from watchkeeper.registry import Registry

    root = tmp_path_factory.mktemp("report") / ".watchkeeper"
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=600), "c": rng.choice(["a", "b"], 600)})
    with Registry(root=root) as registry:
        model = LinearRegression().fit(ref[["x"]], 2 * ref["x"])
        registry.register(MODEL, model, reference=ref, actor="tests")
        registry.set_alias(MODEL, "champion", 1, actor="tests")
    sink = SQLiteLogSink(root / "predictions.db")
    labelled = []
    for w in range(3):
        shift = 2.0 if w == 2 else 0.0
        start = (T0 + timedelta(hours=w)).timestamp()
        records = [
            PredictionRecord(f"w{w}-{i}", start + 25 * i, MODEL, 1, "champion",
                             {"x": float(rng.normal() + shift), "c": str(rng.choice(["a", "b"]))},
                             0.0, latency_ms=2.0)
            for i in range(ROWS_PER_WINDOW)
        ]  # fmt: skip
        sink.write_predictions(records)
        if w < 2:
            labelled += [FeedbackRecord(r.id, start + 7200, label=1.0) for r in records[::2]]
    sink.write_feedback(labelled)
    sink.close()
    with MonitorStore(root=root) as store:
        for w, (drift, mae, bounds, status) in enumerate(WINDOWS):
            start = T0 + timedelta(hours=w)
            store.write_window(MODEL, 1, "champion", start, start + timedelta(hours=1), "time",
                               ROWS_PER_WINDOW, ROWS_PER_WINDOW // 2 if w < 2 else 0,
                               _results(drift, mae, bounds, status), run_id="tests")  # fmt: skip
        with AlertEvaluator(root=root) as alerts:
            alerts.evaluate(store.results(MODEL))
    return root


def report(project: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the command in process: (exit code, stdout + stderr)."""
    from watchkeeper.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", MODEL, "--root", str(project), *args])
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out + out.err


def _period(first: int, last: int) -> str:
    start = T0 + timedelta(hours=first)
    end = T0 + timedelta(hours=last + 1)
    return f"{start.isoformat()}/{end.isoformat()}"


def test_period_report_has_the_windows_numbers(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html, doc = tmp_path / "period.html", tmp_path / "period.json"
    code, out = report(project, capsys, "--window", _period(0, 2), "--html", str(html),
                       "--json", str(doc))  # fmt: skip
    assert code == 0, out
    data = json.loads(doc.read_text())
    assert data["format"] == "watchkeeper.monitor-report/1"
    assert data["n_rows"] == 3 * ROWS_PER_WINDOW
    assert data["n_labels"] == ROWS_PER_WINDOW  # half of the first two windows
    assert data["label_coverage"] == pytest.approx(1 / 3)
    assert data["versions"] == {"1": 3 * ROWS_PER_WINDOW}
    assert data["drift"]["dataset"]["drifted"] is True  # the third hour moved x
    assert {c["name"] for c in data["drift"]["columns"]} == {"x", "c"}
    (stream,) = data["monitoring"]["streams"]
    assert [w["n_rows"] for w in stream["windows"]] == [ROWS_PER_WINDOW] * 3
    mae = next(s for s in stream["series"] if s["check"] == "performance.mae")
    assert mae["values"] == [w[1] for w in WINDOWS]
    assert mae["lower"] == [w[2][0] for w in WINDOWS]
    assert mae["upper"] == [w[2][1] for w in WINDOWS]
    drift = next(s for s in stream["strips"] if s["check"] == "drift.ks")
    assert drift["statuses"] == [w[0] for w in WINDOWS]
    assert [a["rule"] for a in data["alerts"]["firing"]] == ["performance"]

    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "rides — monitoring report" in page
    assert 'id="drift"' in page  # the foundation's drift report, embedded
    assert 'id="col-x"' in page
    assert "performance.mae" in page
    assert "1.21 to 1.63" in page  # the third window's interval, in the latest-window table
    assert "Firing (1)" in page
    cells = page.split('data-check="drift.ks" data-subject="x" data-status="')[1:]
    assert [c.split('"', 1)[0] for c in cells] == [w[0] for w in WINDOWS]
    assert "360 predictions" in out


def test_last_window_and_first_window_only(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    last_json = tmp_path / "last.json"
    code, out = report(project, capsys, "--last", "1", "--html", str(tmp_path / "last.html"),
                       "--json", str(last_json), "--quiet")  # fmt: skip
    assert code == 0, out
    assert out == ""
    last = json.loads(last_json.read_text())
    assert last["period"] == {
        "start": (T0 + timedelta(hours=2)).isoformat(),
        "end": (T0 + timedelta(hours=3)).isoformat(),
    }
    assert last["n_rows"] == ROWS_PER_WINDOW
    assert last["n_labels"] == 0
    (stream,) = last["monitoring"]["streams"]
    assert [s["values"] for s in stream["series"] if s["check"] == "performance.mae"] == [[1.4]]

    first_json = tmp_path / "first.json"
    code, out = report(project, capsys, "--window", _period(0, 0), "--html",
                       str(tmp_path / "first.html"), "--json", str(first_json), "-q")  # fmt: skip
    assert code == 0, out
    first = json.loads(first_json.read_text())
    assert first["n_rows"] == ROWS_PER_WINDOW
    assert first["n_labels"] == ROWS_PER_WINDOW // 2
    assert first["drift"]["dataset"]["drifted"] is False
    (stream,) = first["monitoring"]["streams"]
    assert [w["status"] for w in stream["windows"]] == ["ok"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window", "2024-05-01/2024-05-02", "--last", "2"], "exactly one of"),
        ([], "exactly one of"),
        (["--window", "yesterday/today"], "not an ISO 8601 time"),
        (["--window", "2024-05-02/2024-05-01"], "ends before it starts"),
    ],
)
def test_usage_errors_exit_2(
    project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code, out = report(project, capsys, *args, "--html", str(tmp_path / "x.html"))
    assert code == 2
    assert message in out
    assert not (tmp_path / "x.html").exists()


def test_unknown_model_exits_2_as_a_subprocess(project: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli", "report", "nope", "--root", str(project),
         "--window", _period(0, 2), "--html", str(tmp_path / "x.html")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "nope" in run.stderr
    assert "Traceback" not in run.stderr
