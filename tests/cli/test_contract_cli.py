"""``watchkeeper schema --contract / --contract-from`` and ``watchkeeper contract``, in
process through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from typer.testing import CliRunner

from watchkeeper.cli._app import _register_commands, app
from watchkeeper.data import Schema
from watchkeeper.datasets import load_bikeshare


def invoke(*args: str) -> Any:
    _register_commands()
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_proposed_contract_is_written_checks_clean_and_catches_a_planted_break(
    tmp_path: Path,
) -> None:
    df = load_bikeshare().head(2000)
    df.to_csv(tmp_path / "ref.csv", index=False)
    out = invoke("schema", str(tmp_path / "ref.csv"), "-o", str(tmp_path / "s.json"), "--contract")
    assert out.exit_code == 0, out.stdout + out.stderr
    schema = Schema.load(tmp_path / "s.json")
    assert schema.contract is not None
    assert "contract of" in out.stdout
    as_of = str(df["timestamp"].max())
    clean = invoke("contract", str(tmp_path / "ref.csv"), "--schema", str(tmp_path / "s.json"),
                   "--as-of", as_of)  # fmt: skip
    assert clean.exit_code == 0, clean.stdout
    assert f"0 of {len(schema.contract)} contract rules broken" in clean.stdout
    df.loc[3, "weathersit"] = "hail"
    df.to_csv(tmp_path / "cur.csv", index=False)
    broken = invoke("contract", str(tmp_path / "cur.csv"), "--schema", str(tmp_path / "s.json"),
                    "--as-of", as_of)  # fmt: skip
    assert broken.exit_code == 1
    assert "contract.allowed_values" in broken.stdout
    assert "hail" in broken.stdout
    assert f"1 of {len(schema.contract)} contract rules broken" in broken.stdout


def test_contract_from_imports_and_lists_what_did_not_map(tmp_path: Path) -> None:
    pd.DataFrame({"age": [30, 40], "plan": ["free", "pro"]}).to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "schema.pbtxt").write_text(
        'feature { name: "age" int_domain { min: 0 max: 120 } }\n'
        'feature { name: "gone" presence { min_fraction: 1 } }\n'
        "default_environment: 'SERVING'\n"
    )
    suite = {"expectations": [
        {"expectation_type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "plan", "value_set": ["free", "pro"]}},
        {"expectation_type": "expect_column_median_to_be_between", "kwargs": {"column": "age"}},
    ]}  # fmt: skip
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    out = invoke("schema", str(tmp_path / "d.csv"), "-o", str(tmp_path / "s.json"),
                 "--contract-from", str(tmp_path / "schema.pbtxt"),
                 "--contract-from", str(tmp_path / "suite.json"))  # fmt: skip
    assert out.exit_code == 0, out.stdout + out.stderr
    contract = Schema.load(tmp_path / "s.json").contract
    assert contract is not None
    assert [r.name for r in contract.rules] == ["range(age)", "allowed_values(plan)"]
    assert "not imported: schema.pbtxt: not_null(gone) (column not in the data)" in out.stdout
    assert "not imported: schema.pbtxt: default_environment" in out.stdout
    assert "suite.json: expect_column_median_to_be_between(column=age)" in out.stdout


def test_contract_command_without_a_contract_is_a_usage_error(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "d.csv", index=False)
    assert invoke("schema", str(tmp_path / "d.csv"), "-o", str(tmp_path / "s.json")).exit_code == 0
    out = invoke("contract", str(tmp_path / "d.csv"), "--schema", str(tmp_path / "s.json"))
    assert out.exit_code == 2
    assert "has no contract" in out.stderr
