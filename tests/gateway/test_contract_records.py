"""Single records at the gateway: the per-record rules of the schema's contract give a 422
that names the field and the broken rule; set-level rules and tolerant rules do not apply to
one record, and a record that keeps the contract is served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from watchkeeper.data import ColumnSpec, Contract, Schema
from watchkeeper.registry import Registry

from ._apps import gateway, read_log

pytestmark = pytest.mark.anyio

RULES = [
    {"kind": "not_null", "column": "x"},
    {"kind": "range", "column": "x", "min": -10, "max": 10},
    {"kind": "allowed_values", "column": "plan", "values": ["basic", "pro"]},
    {"kind": "regex", "column": "code", "pattern": "^[A-Z]{2}[0-9]{3}$"},
    {"kind": "relation", "left": "end", "op": ">=", "right": "start"},
    {"kind": "unique", "column": "code"},
    {"kind": "monotone", "column": "start"},
    {"kind": "row_count", "min": 1000},
    {"kind": "range", "column": "start", "max": 0, "mostly": 0.5},
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    n = 50
    X = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "start": np.arange(n, dtype=float),
            "end": np.arange(n, dtype=float) + 1,
            "plan": rng.choice(["basic", "pro"], n),
            "code": [f"AB{i:03d}" for i in range(n)],
        }
    )
    # The model takes x, start and end; plan and code are logged with the record.
    schema = Schema(
        (
            ColumnSpec("x", "numeric"),
            ColumnSpec("start", "numeric"),
            ColumnSpec("end", "numeric"),
            ColumnSpec("plan", "categorical", "ignored"),
            ColumnSpec("code", "categorical", "ignored"),
        ),
        Contract.from_dict({"rules": RULES}),
    )
    model = LinearRegression().fit(X[["x", "start", "end"]].to_numpy(), rng.normal(size=n))
    with Registry(root=tmp_path / "root") as registry:
        registry.register("rides", model, reference=X, schema=schema, actor="tests")
        registry.set_alias("rides", "champion", 1, actor="tests")
    return tmp_path / "root"


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"x": 0.5, "start": 3.0, "end": 4.0, "plan": "pro", "code": "CD123"}
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"x": None}, "x", "not_null(x)"),
        ({"x": 11.0}, "x", "range(x)"),
        ({"plan": "team"}, "plan", "allowed_values(plan)"),
        ({"code": "cd-1"}, "code", "regex(code)"),
        ({"end": 2.0}, "end", "relation(end >= start)"),
    ],
)
async def test_a_record_breaking_a_rule_gets_a_422_naming_field_and_rule(
    root: Path, changes: dict[str, Any], field: str, rule: str
) -> None:
    async with gateway(root, missing_fields="null") as client:
        resp = await client.post("/v1/models/rides/predict", json=_record(**changes))
    assert resp.status_code == 422, resp.text
    (problem,) = resp.json()["detail"]
    assert problem["field"] == field
    assert problem["problem"].startswith(f"breaks contract rule {rule}: ")
    assert read_log(root, "rides") == []


async def test_records_keeping_the_contract_are_served_and_set_rules_do_not_apply(
    root: Path,
) -> None:
    # Two records with the same code, out of start order, in a batch of two (row_count says
    # 1000), and a start above the tolerant range: none of these is judged per record.
    batch = [_record(code="XY001", start=5.0, end=6.0), _record(code="XY001", start=1.0)]
    async with gateway(root, missing_fields="null") as client:
        resp = await client.post("/v1/models/rides/predict", json=batch)
        bad = await client.post(
            "/v1/models/rides/predict", json=[_record(), _record(x=99.0), _record(plan="x")]
        )
    assert resp.status_code == 200, resp.text
    assert len(read_log(root, "rides")) == 2
    assert bad.status_code == 422
    fields = [p["field"] for p in bad.json()["detail"]]
    assert fields == ["[1].x", "[2].plan"]
