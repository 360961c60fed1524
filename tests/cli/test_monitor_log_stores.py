"""``watchkeeper monitor run --log URL`` reads its windows from every log store: the same log
copied into PostgreSQL (a real server) and into Parquet on S3 (a real moto server) gives the
same windows, row counts and verdicts as the SQLite log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests._moto import serve_s3
from tests._postgres import serve_postgres
from tests.cli.test_monitor_cli import N, _json_lines, _project, monitor

from watchkeeper.logstore import ParquetLogSink, SQLiteLogSink, open_sink


@pytest.fixture(scope="module")
def cli_postgres() -> Iterator[Any]:
    yield from serve_postgres()


@pytest.fixture(scope="module")
def cli_s3() -> Iterator[Any]:
    yield from serve_s3()


def _copy(root: Path, target: Any) -> None:
    """Every prediction and label of the SQLite log, written into ``target``."""
    from watchkeeper.logstore import FeedbackRecord, PredictionRecord

    with SQLiteLogSink(root / "predictions.db") as sqlite:
        rows = sqlite.read_window("rides", include_shadow=True).to_pylist()
    target.write_predictions(
        [
            PredictionRecord(
                r["id"],
                r["ts"].timestamp(),
                "rides",
                r["version"],
                r["arm"],
                {"x": r["x"]},
                r["prediction"],
            )
            for r in rows
        ]
    )
    target.write_feedback(
        [FeedbackRecord(r["id"], r["label_ts"].timestamp(), label=r["label"]) for r in rows]
    )


def _verdicts(root: Path, tmp: Path, log: str) -> list[tuple[Any, ...]]:
    result = monitor("run", "--root", str(root), "--log", log, "--json", "--no-alerts",
                     "--monitor", f"sqlite:///{tmp / log.split(':')[0]}-monitor.db")  # fmt: skip
    assert result.exit_code == 1, result.output  # the last window drifted
    [payload] = _json_lines(result.stdout)
    return [
        (w["window_start"], w["n_rows"], w["status"],
         sorted((r["check"], r["subject"], r["status"]) for r in w["results"]))
        for w in payload["windows"]
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.service
def test_monitor_reads_postgresql_and_s3_parquet_logs_like_sqlite(
    tmp_path: Path, cli_postgres: Any, cli_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _project(tmp_path / "project", shift_last=True)
    want = _verdicts(root, tmp_path, str(root / "predictions.db"))
    assert [w[1] for w in want] == [N, N, N]

    pg_url = cli_postgres.create_schema()
    with open_sink(pg_url) as pg:  # type: ignore[attr-defined]
        _copy(root, pg)
    assert _verdicts(root, tmp_path, pg_url) == want

    bucket = cli_s3.create_bucket()
    with ParquetLogSink(f"s3://{bucket}/log", storage_options=cli_s3.storage_options) as pq:
        _copy(root, pq)
    for name, value in cli_s3.env.items():  # credentials and endpoint as a pod would get them
        monkeypatch.setenv(name, value)
    assert _verdicts(root, tmp_path, f"s3://{bucket}/log") == want
