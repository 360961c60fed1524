"""The command line's error boundary and its documented forms.

Every error is one line on stderr with exit code 2 (1 means "findings"), never a traceback;
Rich never reads user strings as markup; ``--version``, ``--root`` after any subcommand,
``models rollback NAME ALIAS``, ``monitor run --window`` / ``monitor watch --interval``.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from watchkeeper import __version__
from watchkeeper.cli._app import _register_commands, app, new_app


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    _register_commands()
    return CliRunner().invoke(app, list(args), env=env)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("WATCHKEEPER_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )  # fmt: skip


def one_error_line(result: Any) -> str:
    """The single stderr line of a failed command (asserting that it is one line)."""
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert code == 2, (code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return str(lines[0])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("errors")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"[/]": rng.normal(size=300), "[bold]x": rng.normal(size=300)})
    frame.to_csv(d / "ref.csv", index=False)
    frame.assign(**{"[/]": frame["[/]"] + 2}).to_csv(d / "cur.csv", index=False)
    model = LogisticRegression().fit(frame, (frame["[/]"] > 0).astype(int))
    sio.dump(model, d / "model.skops")
    (d / "model.pkl").write_bytes(pickle.dumps(model))
    (d / "notzip.skops").write_text("this is not a zip archive")
    return {"dir": d, "ref": d / "ref.csv", "cur": d / "cur.csv", "skops": d / "model.skops",
            "pickle": d / "model.pkl", "notzip": d / "notzip.skops"}  # fmt: skip


def test_version_is_answered_although_no_command_is_given() -> None:
    result = cli("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == __version__


def test_the_issue_cases_through_the_console_script(files: dict[str, Path]) -> None:
    d = files["dir"]
    compared = run("compare", str(files["ref"]), str(files["cur"]), "--multivariate", "none",
                   cwd=d)  # fmt: skip
    assert compared.returncode == 0, compared.stderr
    assert "[/]" in compared.stdout
    assert "[bold]x" in compared.stdout
    root = str(d / "project")
    reg = run("models", "register", "m", str(files["skops"]), "--actor", "[/]",
              "--tag", "[b]=[/]", "--root", root, cwd=d)  # fmt: skip
    assert reg.returncode == 0, reg.stderr
    assert "[/]" in run("models", "show", "m", "--root", root, cwd=d).stdout
    for args in (("list",), ("list", "m"), ("show", "m"), ("history", "m")):
        shown = cli("models", *args, "--root", root)
        assert shown.exit_code == 0, (args, shown.stderr, shown.exception)
        assert "[/]" in shown.stdout or args == ("list",)
    line = one_error_line(run("models", "register", "m", str(files["notzip"]), "--root", root,
                              cwd=d))  # fmt: skip
    assert "notzip.skops" in line or "zip" in line.lower()
    wrong = run("models", "register", "m", str(files["pickle"]), "--format", "lightgbm",
                "--trusted", "--root", root, cwd=d)  # fmt: skip
    assert wrong.returncode == 2, wrong.stderr
    assert "Traceback" not in wrong.stderr
    # LightGBM's native library may print its own "[LightGBM] [Fatal]" line first; ours is
    # the last line, and the only one from watchkeeper.
    ours = [x for x in wrong.stderr.strip().splitlines() if not x.startswith("[LightGBM]")]
    assert len(ours) == 1, wrong.stderr
    assert ours[0].startswith("error: ")
    version = run("--version", cwd=d)
    assert version.returncode == 0
    assert version.stdout.strip() == __version__


def test_usage_errors_are_one_line_with_where_to_look() -> None:
    line = one_error_line(cli("compare"))
    assert "watchkeeper compare --help" in line
    line = one_error_line(cli("models", "list", "--no-such-option"))
    assert "--no-such-option" in line
    one_error_line(cli("compare", "a.csv", "b.csv", "--seed", "many"))


def test_unexpected_errors_are_one_line_with_a_hint_and_debug_shows_the_traceback(
    tmp_path: Path,
) -> None:
    boom = new_app(name="boom")

    @boom.command("fail")
    def fail() -> None:
        raise KeyError("internal")

    @boom.command("other")
    def other() -> None:
        pass

    result = CliRunner().invoke(boom, ["fail"])
    line = one_error_line(result)
    assert "KeyError" in line
    assert "WATCHKEEPER_DEBUG=1" in line
    debug = CliRunner().invoke(boom, ["fail"], env={"WATCHKEEPER_DEBUG": "1"})
    assert debug.exit_code == 2
    assert "Traceback" in debug.stderr
    assert "KeyError" in debug.stderr
    # The root application's --debug flag does the same for any command.
    missing = tmp_path / "nothing.csv"
    plain = cli("compare", str(missing), str(missing))
    assert "does not exist" in one_error_line(plain)


def test_oserrors_and_watchkeeper_errors_are_one_line(files: dict[str, Path]) -> None:
    # An output file in a folder that does not exist: OSError inside the command.
    out = files["dir"] / "no" / "such" / "folder" / "r.json"
    line = one_error_line(cli("compare", str(files["ref"]), str(files["cur"]),
                              "--multivariate", "none", "--json", str(out)))  # fmt: skip
    assert "r.json" in line
    line = one_error_line(cli("models", "register", "bad/name", str(files["skops"]),
                              "--root", str(files["dir"] / "p2")))  # fmt: skip
    assert "invalid model name" in line


def test_route_events_say_what_the_route_became(tmp_path: Path, files: dict[str, Path]) -> None:
    from watchkeeper.gateway import Route, RouteStore
    from watchkeeper.registry import Registry

    root = str(tmp_path / "p")
    with Registry(root=root) as registry:
        for _ in range(2):
            registry.register("m", files["skops"], actor="a")
        registry.set_alias("m", "champion", 1, actor="a")
        registry.set_alias("m", "challenger", 2, actor="a")
        RouteStore(registry).set("m", Route.canary(10), actor="ops", reason="try v2")
    result = cli("models", "history", "m", "--root", root)
    assert result.exit_code == 0, result.stderr
    route_line = result.stdout.strip().splitlines()[-1]
    assert "None" not in route_line
    assert "route: canary: champion 90%, challenger 10%" in route_line
    assert "try v2" in route_line


def test_rollback_takes_the_alias_as_documented_and_root_goes_anywhere(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    root = str(tmp_path / "p")
    for _ in range(2):
        assert cli("models", "register", "churn", str(files["skops"]), "--root", root,
                   "--json").exit_code == 0  # fmt: skip
    # --root before the subcommand (the group's) and after it (the subcommand's) both work.
    assert cli("models", "--root", root, "alias", "churn", "champion", "1").exit_code == 0
    assert cli("models", "alias", "churn", "champion", "2", "--root", root).exit_code == 0
    rolled = cli("models", "rollback", "churn", "champion", "--root", root, "--json")
    assert rolled.exit_code == 0, rolled.stderr
    event = json.loads(rolled.stdout)
    assert (event["kind"], event["alias"], event["to_version"]) == ("rollback", "champion", 1)
    cli("models", "alias", "churn", "challenger", "2", "--root", root)
    cli("models", "alias", "churn", "challenger", "1", "--root", root)
    by_option = cli("models", "rollback", "churn", "--alias", "challenger", "--root", root,
                    "--json")  # fmt: skip
    assert json.loads(by_option.stdout)["to_version"] == 2
    one_error_line(cli("models", "rollback", "churn", "champion", "--alias", "challenger",
                       "--root", root))  # fmt: skip
    card = cli("models", "card", "churn@champion", "--root", root)
    assert card.exit_code == 0, card.stderr
    assert "churn" in card.stdout
    # The subcommand's --root wins over the group's.
    elsewhere = cli("models", "--root", str(tmp_path / "empty"), "list", "--root", root, "--json")
    assert [m["name"] for m in json.loads(elsewhere.stdout)] == ["churn"]


def test_monitor_window_and_interval_have_distinct_names(tmp_path: Path) -> None:
    root = str(tmp_path / "none")
    # --window for run and --interval for watch are accepted (and reach the log check).
    assert "no prediction log" in one_error_line(cli("monitor", "run", "--window", "1d",
                                                     "--root", root))  # fmt: skip
    assert "no prediction log" in one_error_line(
        cli("monitor", "watch", "--interval", "5m", "--window", "1h", "--iterations", "1",
            "--root", root)
    )  # fmt: skip
    # The old spelling still works, with a warning on stderr.
    old = cli("monitor", "run", "--every", "1d", "--root", root)
    assert old.exit_code == 2
    assert "--every is deprecated" in old.stderr
    assert "use --window" in old.stderr
    old = cli("monitor", "watch", "--every", "5m", "--iterations", "1", "--root", root)
    assert "use --interval" in old.stderr
    clash = cli("monitor", "run", "--every", "1d", "--window", "1h", "--root", root)
    assert "disagree" in clash.stderr
    assert cli("monitor", "watch", "--interval", "soon", "--root", root).exit_code == 2
