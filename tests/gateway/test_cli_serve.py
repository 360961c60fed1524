"""``watchkeeper predict`` (offline scoring, logged like the gateway) and ``watchkeeper
serve`` (argument checks in process; one real two-worker server in a subprocess)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import watchkeeper.cli._serve  # noqa: F401  (registers the commands on the app)
from watchkeeper.cli._app import app
from watchkeeper.registry import Registry

from ._apps import CHURN_INPUTS, churn_data, fresh_root, read_log

runner = CliRunner()


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    X, _ = churn_data(5, n=25)
    X.insert(0, "order", [f"o-{i}" for i in range(len(X))])
    path = tmp_path / "batch.csv"
    X.to_csv(path, index=False)
    return path


def _expected(root: Path, data_file: Path, ref: int | str) -> Any:
    frame = pd.read_csv(data_file)[list(CHURN_INPUTS)]
    with Registry(root=root) as registry:
        model = registry.load_model("churn", ref)
        return model.predict(frame), model.predict_proba(frame)


def test_predict_scores_a_file_and_logs_it(root: Path, data_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "scored.csv"
    result = runner.invoke(
        app,
        [
            "predict",
            "churn",
            str(data_file),
            "--out",
            str(out),
            "--root",
            str(root),
            "--id-column",
            "order",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["model"], summary["ref"], summary["version"], summary["rows"]) == (
        "churn",
        "champion",
        1,
        25,
    )
    scored = pd.read_csv(out)
    labels, proba = _expected(root, data_file, 1)
    assert scored["prediction"].tolist() == labels.tolist()
    assert scored["score_yes"].to_numpy() == pytest.approx(proba[:, 1], abs=1e-12)
    assert scored["id"].tolist() == [f"o-{i}" for i in range(25)]
    logged = {r["id"]: r for r in read_log(root, "churn")}
    assert set(logged) == set(scored["id"])
    assert {(r["arm"], r["version"]) for r in logged.values()} == {("champion", 1)}
    assert logged["o-3"]["prediction"] == labels[3]
    assert "region" in logged["o-3"]  # the schema's known non-input column is logged too


def test_predict_a_version_to_parquet_without_logging(
    root: Path, data_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scored.parquet"
    result = runner.invoke(
        app, ["predict", "churn@2", str(data_file), "-o", str(out), "--root", str(root), "--no-log"]
    )
    assert result.exit_code == 0, result.output
    assert "version 2" in result.stdout
    labels, _ = _expected(root, data_file, 2)
    assert pd.read_parquet(out)["prediction"].tolist() == labels.tolist()
    assert not (root / "predictions.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ghost"], "no model named 'ghost'"),
        (["churn@nobody"], "alias 'nobody' of model 'churn' is not set"),
        (["churn", "--id-column", "nope"], "--id-column 'nope' is not a column of the data"),
        (["churn", "--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_predict_errors(
    root: Path, data_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    model, *rest = args
    argv = [
        "predict",
        model,
        str(data_file),
        "--out",
        str(tmp_path / "o.csv"),
        "--root",
        str(root),
        *rest,
    ]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert message in result.output


def test_predict_refuses_data_that_misses_inputs_or_has_bad_types(
    root: Path, tmp_path: Path
) -> None:
    X, _ = churn_data(6, n=5)
    X.drop(columns=["x2"]).to_csv(tmp_path / "missing.csv", index=False)
    X.assign(x1=["a", "b", "c", "d", "e"]).to_csv(tmp_path / "typed.csv", index=False)
    (tmp_path / "o.txt").write_text("")
    wrong_suffix = runner.invoke(
        app,
        [
            "predict",
            "churn",
            str(tmp_path / "typed.csv"),
            "-o",
            str(tmp_path / "o.txt"),
            "--root",
            str(root),
        ],
    )
    assert wrong_suffix.exit_code == 2
    assert "--out must end in one of" in wrong_suffix.output
    missing = runner.invoke(
        app,
        [
            "predict",
            "churn",
            str(tmp_path / "missing.csv"),
            "-o",
            str(tmp_path / "o.csv"),
            "--root",
            str(root),
        ],
    )
    typed = runner.invoke(
        app,
        [
            "predict",
            "churn",
            str(tmp_path / "typed.csv"),
            "-o",
            str(tmp_path / "o.csv"),
            "--root",
            str(root),
        ],
    )
    assert missing.exit_code == 2
    assert "lacks the model's inputs ['x2']" in missing.output
    assert typed.exit_code == 2
    assert "x1" in typed.output


def test_serve_refuses_a_public_bind_without_tokens(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in (
        "WATCHKEEPER_PREDICT_TOKENS",
        "WATCHKEEPER_ADMIN_TOKENS",
        "WATCHKEEPER_TOKENS_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--root", str(root)])
    assert result.exit_code == 2
    assert "requires bearer tokens" in result.output
    bad = runner.invoke(app, ["serve", "--root", str(root), "--unknown-fields", "maybe"])
    assert bad.exit_code == 2
    assert "unknown_fields must be" in bad.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Connection": "close"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


@contextlib.contextmanager
def _server(
    root: Path, port: int, log: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    code = "import watchkeeper.cli._serve; from watchkeeper.cli import main; main()"
    argv = [sys.executable, "-c", code, "serve", "--root", str(root), "--port", str(port),
            "--workers", "2", "--no-access-log"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_two_workers_share_routes_metrics_and_the_log(root: Path, tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    predict, admin = "p" * 24, "a" * 24
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHKEEPER_", "PROMETHEUS_"))}
    env.update(
        {
            "WATCHKEEPER_PREDICT_TOKENS": predict,
            "WATCHKEEPER_ADMIN_TOKENS": admin,
            "OMP_NUM_THREADS": "1",
        }
    )
    log = tmp_path / "server.log"
    with _server(root, port, log, env) as proc:
        deadline = time.monotonic() + 90
        status = 0
        while status != 200 and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(OSError):
                status, _ = _call("GET", base + "/readyz")
            time.sleep(0.2)
        assert status == 200, log.read_text()
        status, body = _call(
            "PUT", base + "/v1/admin/models/churn/route", {"mode": "canary", "percent": 100}, admin
        )
        assert status == 200, body
        # Every request opens a new connection, so both workers answer some of them; all
        # must use the new route within their refresh interval.
        time.sleep(1.0)
        X, _ = churn_data(9, n=1)
        record = {k: (v.item() if hasattr(v, "item") else v) for k, v in X.iloc[0].items()}
        answers = [
            _call("POST", base + "/v1/models/churn/predict", record, predict) for _ in range(30)
        ]
        assert {(s, b["arm"]) for s, b in answers} == {(200, "challenger")}
        _, metrics = _call("GET", base + "/metrics")
    ids = {b["ids"][0] for _, b in answers}
    assert ids <= {r["id"] for r in read_log(root, "churn")}
    lines = [
        line for line in metrics.splitlines() if line.startswith("watchkeeper_requests_total{")
    ]
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if 'code="200"' in line and 'model="churn"' in line
    )
    assert counted == 30  # summed over both workers' files
    assert proc.returncode is not None


def test_predict_reports_ids_logged_with_other_features(
    root: Path, data_file: Path, tmp_path: Path
) -> None:
    args = ["predict", "churn", str(data_file), "--root", str(root), "--id-column", "order"]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a.csv")])
    assert first.exit_code == 0, first.output
    rerun = runner.invoke(app, [*args, "--out", str(tmp_path / "b.csv"), "--json"])
    assert rerun.exit_code == 0, rerun.output  # the same rows again: a retry, logged once
    assert json.loads(rerun.stdout)["conflicts"] == []
    frame = pd.read_csv(data_file)
    numeric = next(c for c in CHURN_INPUTS if pd.api.types.is_numeric_dtype(frame[c]))
    original = float(frame.loc[2, numeric])
    frame.loc[[2, 7], numeric] = frame.loc[[2, 7], numeric] + 1000
    frame.to_csv(data_file, index=False)
    changed = runner.invoke(app, [*args, "--out", str(tmp_path / "c.csv")])
    assert changed.exit_code == 2, changed.output
    lines = changed.stderr.strip().splitlines()
    assert len(lines) == 2
    assert "'o-2' is already logged for model 'churn' with other features" in lines[0]
    assert "'o-7'" in lines[1]
    assert "Traceback" not in changed.output
    assert len(pd.read_csv(tmp_path / "c.csv")) == 25  # scored all the same
    logged = {r["id"]: r for r in read_log(root, "churn")}
    assert len(logged) == 25
    assert logged["o-2"][numeric] == pytest.approx(original)  # the first record is kept
