"""Every shell and Python example in README.md and docs/*.md runs, so the docs cannot drift.

Each fenced ``bash``/``python`` block is either run here — Python blocks are exec'd in order
in one namespace per file, shell blocks run with bash in a project folder that holds the
data they name — or listed in :data:`NOT_RUN` with the reason. A block that appears in the
docs without an entry, or an entry whose block is gone, fails
:func:`test_every_example_is_run_or_listed`. A page whose examples need services (a real
PostgreSQL server, kustomize) is run by its own test, named in :data:`DEDICATED`.

What the test changes in a shell block, and why: ``watchkeeper serve`` runs in the
background on a free port (``8080`` becomes that port) and is stopped at the end of the
block; ``curl -s`` becomes ``curl -sf`` so an HTTP error fails the block; a ``watchkeeper``
command may exit 0 or 1 (1 means "findings" — drift, a failed gate — which is what some
examples show) but never 2; ``monitor watch`` gets ``--iterations 1``. Alert channels of the
documented rules file point at closed local ports.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = ("bash", "sh", "shell", "console")
PYTHON = ("python", "py", "pycon")

#: Blocks not run, keyed by (file, first line), with the reason.
_MAKE = "make demo   # creates .venv if needed, then runs the main job on the bundled data"
_SERVE4 = "WATCHKEEPER_GATEWAY_MONITOR_EVERY=300 WATCHKEEPER_GATEWAY_MONITOR_WINDOW=1h \\"
NOT_RUN = {
    ("README.md", _MAKE):
        "builds a virtual environment and runs the whole demo and test suite; the demo is run "
        "end to end by tests/test_demo.py",
    ("monitoring.md", _SERVE4):
        "four gateway workers on CI's two cores; the same server with the monitor inside is "
        "started and stopped by monitoring.md's first block, and several workers by README's "
        "serve block",
    ("README.md", "import datetime as dt"):
        "the closed-loop example needs a registered model with logged traffic and labels; "
        "tests/loop/test_docs.py runs it in such a project",
    ("feature-health.md", "from watchkeeper.lifecycle import validate_feature_drop"):
        "runs the default validation gate twice (minutes on two cores); the same call with a "
        "fast gate config is tested in tests/lifecycle/test_selection.py",
}  # fmt: skip


#: Pages whose examples a test of their own runs (with the services they need).
DEDICATED = {
    "scale-out.md": "tests/test_docs_scale_out.py",
    "loop.md": "tests/loop/test_docs.py",
    "spark.md": "tests/engines/test_docs_spark.py",
}
RUN_HERE = [doc for doc in DOCS if doc.name not in DEDICATED]


@dataclass(frozen=True)
class Block:
    file: str
    lang: str
    code: str
    #: The block's first line (with " (2)", " (3)"... when blocks of a file share it).
    first: str

    @property
    def key(self) -> tuple[str, str]:
        return self.file, self.first


def blocks(path: Path) -> Iterator[Block]:
    lang, lines, inside = "", [], False
    seen: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = re.match(r"^```\s*([\w+-]*)", line)
        if fence and not inside:
            inside, lang, lines = True, fence.group(1).lower(), []
        elif line.startswith("```") and inside:
            inside = False
            if lang in SHELL + PYTHON:
                first = next(x for x in lines if x.strip()).strip()
                seen[first] = seen.get(first, 0) + 1
                if seen[first] > 1:
                    first = f"{first} ({seen[first]})"
                yield Block(path.name, lang, "\n".join(lines) + "\n", first)
        elif inside:
            lines.append(line)


def test_every_example_is_run_or_listed() -> None:
    found = [b.key for doc in DOCS for b in blocks(doc)]
    assert len(found) == len(set(found))
    assert len(found) >= 25
    stale = set(NOT_RUN) - set(found)
    assert not stale, f"NOT_RUN lists blocks the docs no longer have: {stale}"
    for page, test in DEDICATED.items():
        assert (ROOT / "docs" / page).exists()
        assert page in (ROOT / test).read_text(encoding="utf-8")


# -- the project folder the examples run in ----------------------------------------------------

FAST_GATE = """
[generalisation]
folds = 3
learning_curve = false
validation_curve = false
[calibration]
n_resamples = 50
[comparison]
n_resamples = 300
[robustness]
large_batch_rows = 1000
n_rows = 40
[serving]
batch_sizes = [1, 20]
repeats = 3
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _churn(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": rng.gamma(2.0, 20_000.0, n),
            "region": rng.choice(["north", "south", "east"], n),
            "gender": rng.choice(["f", "m"], n),
        }
    )
    young = frame["age"] < 35
    frame["churned"] = (young ^ (rng.random(n) < 0.2)).astype(int)
    return frame


def _churn_model(c: float) -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["region"]),
            (StandardScaler(), ["age", "income"]),
        ),
        LogisticRegression(C=c),
    )


def _alerts_toml() -> str:
    text = (ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
    toml = re.search(r"```toml\n(.*?)```", text, re.S)
    assert toml is not None
    # The documented rules file, its mail server pointed at a closed local port.
    return (
        toml.group(1)
        .replace('host = "smtp.example.com"', 'host = "127.0.0.1"')
        .replace("port = 587", "port = 9")
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from watchkeeper.data import Schema
    from watchkeeper.datasets import BIKESHARE_FEATURES, load_bikeshare
    from watchkeeper.demo._model import make_model, reference_schema
    from watchkeeper.logstore import FeedbackRecord, PredictionRecord, SQLiteLogSink
    from watchkeeper.registry import Registry

    d = tmp_path_factory.mktemp("docs")
    wk_root = d / ".watchkeeper"
    features = ["age", "income", "region"]
    train, current = _churn(1500, 0), _churn(600, 1)
    train[features].to_parquet(d / "reference.parquet", index=False)
    current[features].to_parquet(d / "current.parquet", index=False)
    pd.concat([train, current]).to_parquet(d / "data.parquet", index=False)
    (d / "gate.toml").write_text(FAST_GATE)
    (d / "alerts.toml").write_text(_alerts_toml())
    schema = Schema.infer(train).with_roles({"churned": "target", "gender": "sensitive"})
    models = [_churn_model(c).fit(train[features], train["churned"]) for c in (1.0, 0.3, 0.1)]
    bike = load_bikeshare()
    bike_features = list(BIKESHARE_FEATURES)
    quarter = bike[bike["month"] <= 3]
    july = bike[bike["month"] == 7]
    bike_model = make_model(bike_features).fit(quarter[bike_features], quarter["bikers"])
    july[bike_features].to_csv(d / "data.csv", index=False)
    with Registry(root=wk_root) as registry:
        for model in models:
            registry.register("churn", model, reference=train, schema=schema, actor="docs")
        registry.set_alias("churn", "champion", 1, actor="docs")
        registry.set_alias("churn", "champion", 2, actor="docs")
        registry.set_alias("churn", "challenger", 3, actor="docs")
        reference = quarter[[*bike_features, "bikers"]]
        registry.register("bikeshare-demand", bike_model, reference=reference,
                          schema=reference_schema(reference), actor="docs")  # fmt: skip
        registry.set_alias("bikeshare-demand", "champion", 1, actor="docs")
    # The prediction log: churn over the last three days, July 2011 of the bike model.
    now = datetime.now(UTC).timestamp()
    records, labels = [], []
    scores = models[1].predict_proba(current[features])[:, 1]
    for i, (row, score) in enumerate(zip(current.to_dict("records"), scores, strict=True)):
        ts = now - 3 * 86_400 + i * (3 * 86_400 - 600) / len(current)
        feats = {k: row[k] for k in features}
        scored = {"0": 1 - score, "1": score}
        records.append(PredictionRecord(f"c-{i}", ts, "churn", 2, "champion", feats,
                                        int(score > 0.5), scores=scored))  # fmt: skip
        labels.append(FeedbackRecord(f"c-{i}", ts + 60, label=int(row["churned"])))
    predicted = bike_model.predict(july[bike_features])
    for i, (row, pred) in enumerate(zip(july.to_dict("records"), predicted, strict=True)):
        ts = row["timestamp"].replace(tzinfo=UTC).timestamp()
        feats = {k: row[k] for k in bike_features}
        records.append(PredictionRecord(f"b-{i}", ts, "bikeshare-demand", 1, "champion", feats,
                                        float(pred)))  # fmt: skip
        labels.append(FeedbackRecord(f"b-{i}", ts + 3600, label=float(row["bikers"])))
    with SQLiteLogSink(str(wk_root / "predictions.db")) as sink:
        sink.write_predictions(records)
        sink.write_feedback(labels)
    (d / "demo-output").mkdir()
    (d / "demo-output" / ".watchkeeper").symlink_to(wk_root)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "COLUMNS": "200",
        "WK_SLACK_WEBHOOK_URL": "http://127.0.0.1:9/slack",
        "WK_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        "WK_ALERT_WEBHOOK_TOKEN": "docs-token",
        "WK_SMTP_USER": "docs",
        "WK_SMTP_PASSWORD": "docs",
    }
    env.pop("WATCHKEEPER_ROOT", None)
    # The monitor's history and a gate report, for the examples that read them.
    from typer.testing import CliRunner

    from watchkeeper.cli._app import _register_commands, app
    from watchkeeper.lifecycle import GateConfig, validate

    _register_commands()
    ran = CliRunner().invoke(app, ["monitor", "run", "--window", "1d", "--no-alerts", "--quiet",
                                   "--root", str(wk_root)])  # fmt: skip
    assert ran.exit_code in (0, 1), (ran.stdout, ran.stderr)
    off = {"enabled": False}
    quick = GateConfig.from_dict({"generalisation": off, "calibration": off, "robustness": off,
                                  "serving": off})  # fmt: skip
    validate(models[2], pd.concat([train, current]), target="churned", features=features,
             config=quick, name="churn@challenger").to_json(d / "gate.json")  # fmt: skip
    return {"dir": d, "env": env, "train": train, "current": current, "features": features,
            "bike": bike, "bike_model": bike_model, "bike_features": bike_features}  # fmt: skip


# -- running the blocks ------------------------------------------------------------------------

_PRELUDE = r"""
set -euo pipefail
SERVER=""
stop_server() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true;
  wait "$SERVER" 2>/dev/null || true; SERVER=""; fi; }
trap stop_server EXIT
watchkeeper() {
  local rc=0
  command watchkeeper "$@" || rc=$?
  if [ "$rc" -gt 1 ]; then echo "watchkeeper $* exited $rc" >&2; return "$rc"; fi
}
serve_in_background() {
  stop_server
  command watchkeeper serve "$@" --port "$PORT" > server.log 2>&1 &
  SERVER=$!
  for _ in $(seq 1 600); do
    if curl -sf "127.0.0.1:$PORT/healthz" > /dev/null; then return 0; fi
    if ! kill -0 "$SERVER" 2>/dev/null; then cat server.log >&2; return 1; fi
    sleep 0.2
  done
  echo "the server did not start" >&2; return 1
}
"""


def _shell_script(code: str) -> str:
    out = []
    for line in code.splitlines():
        if re.match(r"^\s*(\w+=\S+\s+)*watchkeeper serve\b", line):
            line = re.sub(r"\s+#.*$", "", line)
            line = line.replace("watchkeeper serve", "serve_in_background", 1)
            line = re.sub(r"--port\s+\d+", "", line)
        elif re.match(r"^\s*watchkeeper monitor watch\b", line):
            line = re.sub(r"\s+#.*$", "", line) + " --iterations 1"
        line = line.replace("8080", "$PORT").replace("curl -s ", "curl -sf ")
        out.append(line)
    return _PRELUDE + "\n".join(out) + "\n"


def _bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env={**env, "PORT": str(_free_port())},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


#: Names the Python examples use without defining them, made from the project's data.
SETUP: dict[str, str] = {
    "README.md": """
reference_df = pd.read_parquet("reference.parquet")
current_df = pd.read_parquet("current.parquet")
model, train_df = P["bike_model"], P["bike"][P["bike"]["month"] <= 3]
when = datetime.now(UTC)
""",
    "detectors.md": """
errors = np.random.default_rng(0).binomial(1, np.r_[np.full(1500, 0.1), np.full(1500, 0.4)])
""",
    "estimation.md": """
rng = np.random.default_rng(0)
def _frame(n, shift):
    age = rng.normal(45 + shift, 12, n)
    income = rng.gamma(2.0, 20_000.0, n)
    region = rng.choice(["north", "south", "east"], n)
    logit = (40 - age) / 8
    proba = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < proba).astype(int)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    truth = 3 * x1 - x2 + rng.normal(size=n)
    return pd.DataFrame({"age": age, "income": income, "region": region, "proba": proba,
                         "label": (proba > 0.5).astype(int), "y": y, "x1": x1, "x2": x2,
                         "city": rng.choice(["a", "b"], n), "y_hat": 3 * x1 - x2})
reference, window = _frame(4000, 0.0), _frame(2000, 5.0)
window = window.drop(columns="y")
""",
    "explain.md": """
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
X, y = load_diabetes(return_X_y=True, as_frame=True)
model = Ridge().fit(X, y)
X_train, X_rows = X.iloc[:300], X.iloc[300:310]
X_window, X_reference = X.iloc[300:400], X.iloc[:200]
""",
    "fairness.md": """
from sklearn.linear_model import LogisticRegression
from watchkeeper.data import Profile, Schema
from watchkeeper.datasets import load_acs_employment
df = load_acs_employment().sample(6000, random_state=0).reset_index(drop=True)
X = df[["AGEP"]].assign(SCHL=df["SCHL"].astype(float))
clf = LogisticRegression(max_iter=1000).fit(X, df["employed"])
y_true, y_pred = df["employed"], clf.predict(X)
proba = clf.predict_proba(X)[:, 1]
frame = df[["SEX", "RAC1P"]].assign(y=y_true, pred=y_pred)
schema = Schema.infer(frame).with_roles(
    {"y": "target", "pred": "prediction", "SEX": "sensitive", "RAC1P": "sensitive"})
reference = Profile.from_data(frame, schema)  # fixes the categories both windows count
window_a = Profile.from_data(frame.iloc[:3000], schema, reference=reference)
window_b = Profile.from_data(frame.iloc[3000:], schema, reference=reference)
""",
    "feature-health.md": """
from watchkeeper.data import Profile, Schema
bike, feats, model = P["bike"], P["bike_features"], P["bike_model"]
quarter, july = bike[bike["month"] <= 3], bike[bike["month"] == 7]
window = july[[*feats, "bikers"]].assign(prediction=model.predict(july[feats]))
ref = quarter[[*feats, "bikers"]].assign(prediction=model.predict(quarter[feats]))
ref_profile = Profile.from_data(ref, Schema.infer(ref).with_roles(
    {"bikers": "target", "prediction": "prediction"}))
X_holdout, y_holdout = july[feats], july["bikers"]
""",
}


def _run_python(doc: str, code: str, ns: dict[str, Any], cwd: Path) -> None:
    before = Path.cwd()
    os.chdir(cwd)
    try:
        exec(compile(code, f"<{doc}>", "exec"), ns)  # the docs' own examples
    finally:
        os.chdir(before)


def _close(ns: dict[str, Any]) -> None:
    for value in ns.values():
        if type(value).__module__.startswith("watchkeeper") and callable(
            getattr(value, "close", None)
        ):
            value.close()


@pytest.mark.slow
@pytest.mark.timeout(1500)  # README's blocks gate, serve and monitor: minutes on busy cores
@pytest.mark.parametrize("doc", RUN_HERE, ids=[p.name for p in RUN_HERE])
def test_the_examples_run(doc: Path, project: dict[str, Any]) -> None:
    d, env = project["dir"], project["env"]
    ns: dict[str, Any] = {"pd": pd, "np": np, "datetime": datetime, "UTC": UTC,
                          "timedelta": timedelta, "P": project}  # fmt: skip
    ran = 0
    saved = {k: os.environ.get(k) for k in env if k.startswith("WK_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("WK_")})
    try:
        if doc.name in SETUP:
            _run_python(doc.name, SETUP[doc.name], ns, d)
        for block in blocks(doc):
            if block.key in NOT_RUN:
                continue
            if block.lang in PYTHON:
                _run_python(doc.name, block.code, ns, d)
            else:
                _bash(_shell_script(block.code), d, env)
            ran += 1
    finally:
        _close(ns)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if any(True for _ in blocks(doc)):
        assert ran > 0
