"""Hostile names and values on the command line: exit codes in {0, 1, 2}, never a traceback.

Property-based (hypothesis, bounded examples) and in process through typer's runner: column
names, model names, aliases, actors, tags, metrics, paths, numbers and times built from
markup brackets, emoji codes, backslashes, quotes, control characters and any Unicode. A
failure is one line on stderr; a success prints the user's strings as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from watchkeeper.cli._app import _register_commands, app

_FRAGMENTS = [
    "[/]", "[bold]", "[/bold]", "[red]x[/]", "[link=file:///etc/passwd]", ":smile:", "\\",
    "\\[", "%s", "{0}", "{}", "'", '"', "`", "$(id)", "../", "..", "/", "@", "=", ",", ";",
    "-", "--help", "\t", "\n", "\r", "\x1b[31m", "\x00", "\u202e", "\ufeff", "é", "中文", "🙂",
    "NaN", "inf", "-1", "0", "1e309", " ",
]  # fmt: skip

# Any Unicode but lone surrogates (no operating system passes those in argv).
_CHARS = st.characters(blacklist_categories=("Cs",))
hostile = st.lists(
    st.one_of(st.sampled_from(_FRAGMENTS), st.text(_CHARS, min_size=1, max_size=4)),
    min_size=1,
    max_size=4,
).map("".join)
# Column names must survive a CSV header: no line breaks, NUL or lone quotes there.
column_name = hostile.map(lambda s: "".join(c for c in s if c not in '\n\r\x00"') or "[/]").filter(
    lambda s: s.strip() != ""
)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def invoke(*args: str) -> Any:
    _register_commands()
    result = CliRunner().invoke(app, list(args))
    output = result.stdout + result.stderr
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, output, result.exception)
    assert "Traceback" not in output, (args, output)
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), (args, repr(result.exception))
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        error_lines = [line for line in lines if line.startswith("error: ")]
        assert len(error_lines) == 1, (args, result.stderr)
        assert lines[-1] == error_lines[0], (args, result.stderr)
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    model = LogisticRegression().fit(frame, (frame["a"] > 0).astype(int))
    sio.dump(model, d / "model.skops")
    root = d / "root"
    invoke("models", "register", "m", str(d / "model.skops"), "--root", str(root))
    return {"dir": d, "model": d / "model.skops", "root": root}


@SETTINGS
@given(names=st.lists(column_name, min_size=1, max_size=3, unique=True))
def test_compare_and_schema_with_hostile_column_names(
    project: dict[str, Path], names: list[str]
) -> None:
    d = project["dir"]
    rng = np.random.default_rng(len(names))
    ref = pd.DataFrame({n: rng.normal(size=40) for n in names})
    ref.to_csv(d / "ref.csv", index=False)
    (ref + 1.0).to_csv(d / "cur.csv", index=False)
    result = invoke("compare", str(d / "ref.csv"), str(d / "cur.csv"), "--multivariate", "none",
                    "--fail-on", "drift")  # fmt: skip
    if result.exit_code != 2:
        shown = result.stdout
        for name in names:
            # Rich may wrap a long cell; the name's first characters are printed as they are.
            assert name.strip()[:3] in shown or not name.isprintable(), (name, shown)
    invoke("schema", str(d / "ref.csv"), "--out", str(d / "schema.json"))


@SETTINGS
@given(actor=hostile, tag_key=hostile, tag_value=hostile, description=hostile)
def test_register_list_show_history_with_hostile_actors_and_tags(
    project: dict[str, Path], actor: str, tag_key: str, tag_value: str, description: str
) -> None:
    root = str(project["root"])
    invoke("models", "register", "m", str(project["model"]), "--root", root, "--actor", actor,
           "--tag", f"{tag_key}={tag_value}", "--description", description)  # fmt: skip
    for args in (("list",), ("list", "m"), ("show", "m"), ("history", "m"), ("card", "m")):
        invoke("models", *args, "--root", root)


@SETTINGS
@given(name=hostile, alias=hostile, ref=hostile, reason=hostile)
def test_registry_commands_with_hostile_names(
    project: dict[str, Path], name: str, alias: str, ref: str, reason: str
) -> None:
    root = str(project["root"])
    invoke("models", "register", name, str(project["model"]), "--root", root)
    invoke("models", "show", name, ref, "--root", root)
    invoke("models", "alias", "m", alias, "1", "--root", root, "--reason", reason)
    invoke("models", "alias", "m", "champion", "--at", ref, "--root", root)
    invoke("models", "rollback", name, alias, "--root", root)
    invoke("models", "history", name, "--alias", alias, "--root", root)
    invoke("models", "card", f"{name}@{ref}", "--root", root)


@SETTINGS
@given(value=hostile, number=st.one_of(hostile, st.integers().map(str)))
def test_hostile_paths_numbers_and_times(project: dict[str, Path], value: str, number: str) -> None:
    d, root = project["dir"], str(project["root"])
    invoke("compare", value, value, "--seed", number)
    invoke("profile", str(project["model"]), "--out", value, "--sample-size", number)
    invoke("compare", str(project["model"]), value, "--method", value, "--rule", value)
    invoke("models", "register", "m", value, "--root", root, "--metric", f"k={number}",
           "--format", value)  # fmt: skip
    invoke("monitor", "run", "--since", value, "--window", number, "--root", root)
    invoke("report", "m", "--window", value, "--html", str(d / "r.html"), "--root", root)
    invoke("report", "m", "--last", number, "--html", str(d / "r.html"), "--root", root)
    invoke("alerts", "list", "--root", value, "--limit", number)
    invoke("predict", f"m@{value}", value, "--out", str(d / "p.csv"), "--root", root,
           "--batch-size", number)  # fmt: skip
    invoke("explain", f"m@{value}", value, "--rows", number, "--root", root)
    invoke("validate", value, value, "--target", value, "--root", root, "--seed", number)
