"""Gate and drift reports logged to a local file-based MLflow store and read back."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from watchkeeper.checks import CheckResult, Status
from watchkeeper.cli import main
from watchkeeper.exceptions import InputError, MissingExtraError
from watchkeeper.integrations import log_drift_report, log_gate_report
from watchkeeper.lifecycle import GateConfig, GateReport, validate
from watchkeeper.report import Report, compare

FAST: dict[str, Any] = {
    "generalisation": {"folds": 3, "learning_curve": False},
    "calibration": {"n_resamples": 50},
    "comparison": {"n_resamples": 200},
    "robustness": {"large_batch_rows": 500, "n_rows": 30},
    "serving": {"batch_sizes": [1, 20], "repeats": 3, "warmup": 0},
}
CHECK_FIELDS = ("value", "lower", "upper", "threshold", "p_value")
DRIFT_FIELDS = ("effect_size", "p_value", "adjusted_p_value", "drifted")
# What MLflow itself accepts in a metric name (mlflow.utils.validation), plus its length limit.
MLFLOW_NAME = re.compile(r"^[/\w.\- :]{1,250}$")


def number(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # MLflow 3 keeps the file store (the serverless one) behind this switch.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    return (tmp_path / "mlruns").as_uri()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    X, y = make_classification(400, 4, random_state=0)
    return pd.DataFrame(X, columns=list("abcd")).assign(y=y)


@pytest.fixture(scope="module")
def gate(frame: pd.DataFrame) -> GateReport:
    X, y = frame[list("abcd")].iloc[:300], frame["y"].iloc[:300]
    with threadpool_limits(limits=1):
        return validate(
            LogisticRegression().fit(X, y),
            frame,
            target="y",
            champion=LogisticRegression(C=0.01).fit(X, y),
            config=GateConfig.from_dict(FAST),
            name="candidate v2",
            champion_name="champion v1",
        )


@pytest.fixture(scope="module")
def drift() -> Report:
    rng = np.random.default_rng(3)
    n = 600
    ref = pd.DataFrame(
        {"a": rng.normal(size=n), "b b/c:d": rng.normal(size=n), "k": rng.choice(list("xyz"), n)}
    )
    cur = pd.DataFrame(
        {"a": rng.normal(1, size=n), "b b/c:d": rng.normal(size=n), "k": rng.choice(list("xyz"), n)}
    )
    cur.loc[:80, "b b/c:d"] = np.nan
    return compare(ref, cur, random_state=0)


def read_json(client: MlflowClient, run_id: str, path: str, tmp: Path) -> Any:
    return json.loads(Path(client.download_artifacts(run_id, path, str(tmp))).read_text())


def expected_gate_metrics(report: GateReport, prefix: str = "gate") -> dict[str, float]:
    out: dict[str, float] = {
        f"{prefix}.passed": float(report.passed),
        f"{prefix}.n_failures": float(len(report.failures)),
        f"{prefix}.n_errors": float(len(report.errors)),
    }
    if report.blessed is not None:
        out[f"{prefix}.blessed"] = float(report.blessed)
    for r in report.results:
        for f in CHECK_FIELDS:
            value = number(getattr(r, f))
            if value is not None:
                out[f"{prefix}.{r.check.removeprefix('gate.')}.{r.subject}.{f}"] = value
    return out


# -- gate reports -----------------------------------------------------------------------------


def test_gate_report_is_logged_to_a_new_run(gate: GateReport, uri: str, tmp_path: Path) -> None:
    assert gate.blessed is not None
    assert any(r.lower is not None for r in gate.results)  # bounds are exercised
    run_id = log_gate_report(gate, experiment="gates", tracking_uri=uri)
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "gates"
    assert run.info.status == "FINISHED"
    # Every metric the report holds, with its exact number, and nothing else.
    assert run.data.metrics == expected_gate_metrics(gate)
    assert run.data.params == {
        "gate.candidate": "candidate v2",
        "gate.champion": "champion v1",
        "gate.task": gate.task,
        "gate.n_train": str(gate.n_train),
        "gate.n_holdout": str(gate.n_holdout),
    }
    status = "passed" if gate.passed else "failed"
    assert run.data.tags["watchkeeper.gate.status"] == status
    assert run.data.tags["watchkeeper.version"] == gate.version
    assert {a.path for a in client.list_artifacts(run_id, "gate")} == {
        "gate/report.json",
        "gate/report.html",
    }
    assert read_json(client, run_id, "gate/report.json", tmp_path) == gate.to_dict()
    html = Path(client.download_artifacts(run_id, "gate/report.html", str(tmp_path)))
    assert html.read_text(encoding="utf-8") == gate.to_html()


def test_gate_report_appends_to_an_existing_run(gate: GateReport, uri: str) -> None:
    client = MlflowClient(uri)
    training = client.create_run(client.create_experiment("train")).info.run_id
    client.log_param(training, "C", "1.0")
    client.log_metric(training, "train_loss", 0.25)
    assert log_gate_report(gate, run_id=training, tracking_uri=uri) == training
    run = client.get_run(training)
    assert run.info.status == "RUNNING"  # a run we did not start is not ended
    assert run.data.params["C"] == "1.0"
    assert run.data.metrics["train_loss"] == 0.25
    assert run.data.metrics["gate.passed"] == float(gate.passed)
    # The same report again is allowed (same params) and adds a point to each series.
    log_gate_report(gate, run_id=training, tracking_uri=uri)
    history = client.get_metric_history(training, "gate.n_failures")
    assert [m.value for m in history] == [float(len(gate.failures))] * 2


def test_changed_params_are_refused_before_anything_is_written(gate: GateReport, uri: str) -> None:
    run_id = log_gate_report(gate, tracking_uri=uri)
    other = dataclasses.replace(gate, candidate="candidate v3", results=gate.results[:1])
    with pytest.raises(InputError, match=r"gate\.candidate='candidate v2'.*prefix='gate_2'"):
        log_gate_report(other, run_id=run_id, tracking_uri=uri)
    client = MlflowClient(uri)
    assert len(client.get_metric_history(run_id, "gate.passed")) == 1
    # Under another prefix both reports live side by side.
    log_gate_report(other, run_id=run_id, tracking_uri=uri, prefix="gate_2")
    run = client.get_run(run_id)
    assert run.data.params["gate_2.candidate"] == "candidate v3"
    assert run.data.params["gate.candidate"] == "candidate v2"
    assert run.data.metrics == expected_gate_metrics(gate) | expected_gate_metrics(other, "gate_2")


def test_names_are_sanitised_kept_apart_and_bounded(uri: str) -> None:
    long = "s" * 300
    results = (
        *(CheckResult(check="gate.custom", subject=s, status=Status.OK, reason="r", value=v)
          for s, v in [("a:b", 1.0), ("a/b", 2.0), ("a_b", 3.0), (long, 4.0)]),
        CheckResult(check="gate.custom", subject="nan", status=Status.OK, reason="r",
                    value=float("nan"), threshold=float("inf"), lower=0.5),
        CheckResult(check="fairness.parity", subject="sex", status=Status.ERROR, reason="boom"),
    )  # fmt: skip
    report = GateReport(candidate="m", champion=None, task="binary", metrics=("accuracy",),
                        n_train=10, n_holdout=5, results=results)  # fmt: skip
    run = MlflowClient(uri).get_run(log_gate_report(report, tracking_uri=uri))
    metrics = run.data.metrics
    assert all(MLFLOW_NAME.match(k) and ":" not in k and "/" not in k for k in metrics)
    custom = {k: v for k, v in metrics.items() if k.startswith("gate.custom.")}
    # Four distinct subjects, four distinct names, each holding its own value.
    assert sorted(v for k, v in custom.items() if k.endswith(".value")) == [1.0, 2.0, 3.0, 4.0]
    assert custom["gate.custom.a_b.value"] == 1.0  # first come keeps the plain name
    assert custom["gate.custom.nan.lower"] == 0.5
    assert "gate.custom.nan.value" not in custom
    assert "gate.custom.nan.threshold" not in custom
    assert "gate.blessed" not in metrics  # no champion, no blessing
    assert (metrics["gate.n_failures"], metrics["gate.n_errors"]) == (1.0, 1.0)
    assert run.data.tags["watchkeeper.gate.status"] == "error"
    assert "gate.champion" not in run.data.params


# -- drift reports ----------------------------------------------------------------------------


def test_drift_report_is_logged_with_its_numbers(drift: Report, uri: str, tmp_path: Path) -> None:
    assert drift.drifted
    assert drift.quality_findings
    assert drift.multivariate
    run_id = log_drift_report(drift, experiment="monitoring", tracking_uri=uri)
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    m = run.data.metrics
    d = drift.dataset
    assert m["drift.dataset_drifted"] == 1.0
    assert m["drift.n_drifted"] == d.n_drifted == len(drift.drifted_columns)
    assert m["drift.n_tested"] == d.n_tested
    assert m["drift.share_drifted"] == d.share_drifted
    assert m["drift.multivariate_drifted"] == float(d.multivariate_drifted)
    assert m["drift.quality_findings"] == len(drift.quality_findings)
    stems = {"a": "drift.a", "k": "drift.k", "b b/c:d": "drift.b b_c_d"}
    for c in drift.columns:
        for f in DRIFT_FIELDS:
            value = number(getattr(c, f))
            if value is None:
                assert f"{stems[c.name]}.{f}" not in m
            else:
                assert m[f"{stems[c.name]}.{f}"] == value
    for mv in drift.multivariate:
        assert m[f"drift.multivariate.{mv.method}.drifted"] == float(mv.drifted)
    assert run.data.tags["watchkeeper.drift.status"] == "drift"
    assert read_json(client, run_id, "drift/report.json", tmp_path) == json.loads(drift.to_json())


def test_windows_form_a_series_in_one_run(drift: Report, uri: str) -> None:
    calm = dataclasses.replace(
        drift, dataset=dataclasses.replace(drift.dataset, drifted=False, n_drifted=0)
    )
    run_id = log_drift_report(calm, tracking_uri=uri, step=0)
    for step, report in ((1, drift), (2, calm)):
        assert log_drift_report(report, run_id=run_id, tracking_uri=uri, step=step) == run_id
    client = MlflowClient(uri)
    history = client.get_metric_history(run_id, "drift.n_drifted")
    assert sorted((h.step, h.value) for h in history) == [
        (0, 0.0),
        (1, float(drift.dataset.n_drifted)),
        (2, 0.0),
    ]
    folders = {a.path for a in client.list_artifacts(run_id, "drift")}
    assert folders == {"drift/step_0", "drift/step_1", "drift/step_2"}


def test_merged_names_stay_with_their_column_across_windows(drift: Report, uri: str) -> None:
    # "x:1" and "x/1" both sanitise to "x_1"; the report orders columns by severity, which
    # changes from window to window, and must not swap their metric names.
    column = drift.columns[0]
    pair = (
        dataclasses.replace(column, name="x:1", effect_size=0.1),
        dataclasses.replace(column, name="x/1", effect_size=0.2),
    )
    run_id = log_drift_report(dataclasses.replace(drift, columns=pair), tracking_uri=uri, step=0)
    log_drift_report(
        dataclasses.replace(drift, columns=pair[::-1]), run_id=run_id, tracking_uri=uri, step=1
    )
    client = MlflowClient(uri)
    series = {
        key: [h.value for h in sorted(client.get_metric_history(run_id, key), key=lambda h: h.step)]
        for key in ("drift.x_1.effect_size", "drift.x_1_2.effect_size")
    }
    assert sorted(series.values()) == [[0.1, 0.1], [0.2, 0.2]]


def test_more_metrics_than_one_batch_are_all_logged(
    drift: Report, uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    column = drift.columns[0]
    wide = dataclasses.replace(
        drift,
        columns=tuple(
            dataclasses.replace(column, name=f"c{i:03d}", effect_size=i / 1000) for i in range(300)
        ),
    )
    # The file store takes any batch; a tracking server refuses more than 1000 metrics.
    sizes: list[int] = []
    real = MlflowClient.log_batch

    def log_batch(self: MlflowClient, run_id: str, metrics: Any = (), **kw: Any) -> Any:
        sizes.append(len(metrics))
        return real(self, run_id, metrics=metrics, **kw)

    monkeypatch.setattr(MlflowClient, "log_batch", log_batch)
    run = MlflowClient(uri).get_run(log_drift_report(wide, tracking_uri=uri))
    assert max(sizes) <= 1000
    effects = {k: v for k, v in run.data.metrics.items() if k.endswith(".effect_size")}
    effects.pop(f"drift.multivariate.{drift.multivariate[0].method}.effect_size", None)
    assert effects == {f"drift.c{i:03d}.effect_size": i / 1000 for i in range(300)}


def test_active_run_and_environment_choose_where_to_log(
    drift: Report, uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as active:
            assert log_drift_report(drift) == active.info.run_id
        monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
        run_id = log_drift_report(drift)
    finally:
        mlflow.set_tracking_uri(None)
    client = MlflowClient(uri)
    experiment = client.get_experiment(client.get_run(run_id).info.experiment_id)
    assert experiment.name == "from-env"


def test_default_experiment_in_a_fresh_folder(drift: Report, uri: str) -> None:
    Path(uri.removeprefix("file://")).mkdir()  # an existing folder gets no experiment 0
    client = MlflowClient(uri)
    run_id = log_drift_report(drift, tracking_uri=uri)
    assert client.get_experiment(client.get_run(run_id).info.experiment_id).name == "Default"


# -- errors -----------------------------------------------------------------------------------


def test_unusable_runs_and_experiments_say_what_to_do(drift: Report, uri: str) -> None:
    client = MlflowClient(uri)
    with pytest.raises(InputError, match=r"find run '0123abc'.*not found.*--mlflow-tracking-uri"):
        log_drift_report(drift, run_id="0123abc", tracking_uri=uri)
    run_id = log_drift_report(drift, experiment="one", tracking_uri=uri)
    with pytest.raises(InputError, match="belongs to experiment 'one', not 'two'"):
        log_drift_report(drift, run_id=run_id, experiment="two", tracking_uri=uri)
    client.delete_run(run_id)
    with pytest.raises(InputError, match="is deleted; restore it"):
        log_drift_report(drift, run_id=run_id, tracking_uri=uri)
    client.delete_experiment(client.get_experiment_by_name("one").experiment_id)
    with pytest.raises(InputError, match=r"experiment 'one'.*is deleted"):
        log_drift_report(drift, experiment="one", tracking_uri=uri)


def test_bad_arguments_are_refused_before_mlflow_is_touched(
    drift: Report, gate: GateReport, uri: str
) -> None:
    with pytest.raises(InputError, match="log gate reports with log_gate_report"):
        log_drift_report(gate, tracking_uri=uri)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="log drift reports with log_drift_report"):
        log_gate_report(drift, tracking_uri=uri)  # type: ignore[arg-type]
    for prefix in ("", "../x", "a/b", ".hidden", "a b"):
        with pytest.raises(InputError, match="prefix"):
            log_drift_report(drift, tracking_uri=uri, prefix=prefix)
    for step in (-1, 1.5, True, "3"):
        with pytest.raises(InputError, match="step must be a non-negative integer"):
            log_drift_report(drift, tracking_uri=uri, step=step)  # type: ignore[arg-type]
    assert not Path(uri.removeprefix("file://")).exists()


def test_file_store_switch_off_is_explained(
    drift: Report, uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    with pytest.raises(InputError, match="MLFLOW_ALLOW_FILE_STORE=true"):
        log_drift_report(drift, tracking_uri=uri)


def test_missing_mlflow_names_the_extra(drift: Report, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError, match=r"watchkeeper\[mlflow\]"):
        log_drift_report(drift)


# -- command line -----------------------------------------------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "MLFLOW_ALLOW_FILE_STORE": "true"}
    return subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )  # fmt: skip


def run_id_in(stdout: str) -> str:
    found = re.search(r"MLflow run: (\w+)", stdout)
    assert found, stdout
    return found.group(1)


@pytest.fixture
def cli_files(frame: pd.DataFrame, tmp_path: Path) -> Path:
    frame.to_csv(tmp_path / "train.csv", index=False)
    model = LogisticRegression().fit(frame[list("abcd")], frame["y"])
    import skops.io as sio

    sio.dump(model, tmp_path / "model.skops")
    lines = [f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
             for section, values in FAST.items()]  # fmt: skip
    (tmp_path / "gate.toml").write_text("\n".join(lines), encoding="utf-8")
    frame[list("abcd")].to_csv(tmp_path / "ref.csv", index=False)
    frame[list("abcd")].assign(a=frame["a"] + 2).to_csv(tmp_path / "cur.csv", index=False)
    return tmp_path


def test_validate_and_compare_log_to_mlflow_from_the_command_line(
    cli_files: Path, uri: str
) -> None:
    d = cli_files
    done = cli("validate", "model.skops", "train.csv", "--target", "y", "--config", "gate.toml",
               "--json", "gate.json", "--mlflow-experiment", "ci", "--mlflow-tracking-uri", uri,
               cwd=d)  # fmt: skip
    written = json.loads((d / "gate.json").read_text())
    assert done.returncode == written["exit_code"], done.stderr
    run_id = run_id_in(done.stdout)
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "ci"
    assert run.data.metrics["gate.passed"] == float(written["passed"])
    assert run.data.params["gate.candidate"] == written["candidate"] == "model.skops"
    for r in written["results"]:
        if r["value"] is not None:
            check = r["check"].removeprefix("gate.")
            assert run.data.metrics[f"gate.{check}.{r['subject']}.value"] == r["value"]

    # compare appends its drift metrics to the same run.
    done = cli("compare", "ref.csv", "cur.csv", "--json", "drift.json", "--mlflow-run", run_id,
               "--mlflow-tracking-uri", uri, cwd=d)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert run_id_in(done.stdout) == run_id
    drift = json.loads((d / "drift.json").read_text())
    metrics = client.get_run(run_id).data.metrics
    assert metrics["gate.passed"] == float(written["passed"])
    assert metrics["drift.dataset_drifted"] == 1.0 == float(drift["dataset"]["drifted"])
    for c in drift["columns"]:
        assert metrics[f"drift.{c['name']}.effect_size"] == c["effect_size"]


def test_command_line_mlflow_errors_exit_2_with_a_message(
    cli_files: Path, uri: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(cli_files)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "ref.csv", "cur.csv", "-q", "--mlflow-run", "nope",
              "--mlflow-tracking-uri", uri])  # fmt: skip
    assert exit_info.value.code == 2
    assert "error: cannot find run 'nope'" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_leaked_active_run() -> Iterator[None]:
    yield
    assert mlflow.active_run() is None
