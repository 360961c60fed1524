"""Contract rules in the monitor's window checks: decided on each window's profile against the
reference schema's contract; violations planted in window 3 alert there only, with examples,
and the default alert rules fire on them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

from watchkeeper.checks import Status
from watchkeeper.data import Contract, Schema
from watchkeeper.logstore import GroupCommitWriter, PredictionRecord, SQLiteLogSink
from watchkeeper.monitor import AlertConfig, Monitor, MonitorConfig, MonitorStore
from watchkeeper.registry import Registry

T0 = 1_700_006_400.0  # 2023-11-15 00:00:00 UTC, on the hour
HOUR = 3600.0
N = 200


def _rows(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x1": rng.normal(0.0, 1.0, n),
            "x2": rng.normal(5.0, 1.0, n),
            "c": rng.choice(["a", "b"], n),
        }
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(3)
    reference = _rows(rng, 2000)
    contract = Contract.from_dict(
        {
            "rules": [
                {"kind": "range", "column": "x1", "min": -8, "max": 8},
                {"kind": "allowed_values", "column": "c", "values": ["a", "b"]},
                {"kind": "relation", "left": "x2", "op": ">", "right": "x1"},
                {"kind": "not_null", "column": "x2", "severity": "warn"},
            ]
        }
    )
    schema = Schema.infer(reference).with_contract(contract)
    registry = Registry(root=tmp_path)
    model = DummyClassifier().fit([[0.0], [1.0]], [0, 1])
    registry.register(
        "churn", model, reference=reference, schema=schema, actor="test",
        output_kind="classification",
    )  # fmt: skip
    sink = SQLiteLogSink(tmp_path / "predictions.db", synchronous="normal")
    store = MonitorStore(root=tmp_path)
    records = []
    for w in range(3):
        frame = _rows(rng, N)
        if w == 2:
            frame.loc[7, "c"] = "zzz"
            frame.loc[11, "x1"] = 40.0  # out of range, and above x2
        for i, row in enumerate(frame.itertuples(index=False)):
            records.append(
                PredictionRecord(
                    f"w{w}-{i}", T0 + w * HOUR + i * (HOUR / N), "churn", 1, "champion",
                    {"x1": row.x1, "x2": row.x2, "c": row.c}, 0, scores={"0": 0.6, "1": 0.4},
                    latency_ms=2.0,
                )
            )  # fmt: skip
    with GroupCommitWriter(sink) as writer:
        writer.submit(records).result(timeout=60)
    yield {"registry": registry, "sink": sink, "store": store}
    sink.close()
    registry.close()
    store.close()


def test_contract_violations_alert_in_their_window_only(world: dict[str, Any]) -> None:
    Monitor(MonitorConfig(every="1h", baseline_rows=50)).run(
        world["sink"], world["registry"], world["store"], now=T0 + 4 * HOUR
    )
    results = [r for r in world["store"].results("churn") if r.check.startswith("contract.")]
    by_window: dict[Any, dict[str, Any]] = {}
    for r in results:
        by_window.setdefault(r.window_start, {})[r.check] = r
    starts = sorted(by_window)
    assert len(starts) == 3
    for start in starts[:2]:
        assert {r.status for r in by_window[start].values()} == {Status.OK}
    last = by_window[starts[2]]
    assert set(last) == {
        "contract.range",
        "contract.allowed_values",
        "contract.relation",
        "contract.not_null",
    }
    assert last["contract.range"].status is Status.ALERT
    assert last["contract.range"].details["examples"] == ["40"]
    assert last["contract.allowed_values"].status is Status.ALERT
    assert last["contract.allowed_values"].details["examples"] == ["zzz"]
    assert last["contract.relation"].status is Status.ALERT
    assert last["contract.not_null"].status is Status.OK
    rule = {r.name: r for r in AlertConfig.default().rules}["contract"]
    assert rule.matches("contract.range", "x1", "churn")


def test_the_monitoring_report_has_a_contract_section_with_the_findings(
    world: dict[str, Any],
) -> None:
    from watchkeeper.report import monitor_view, render_monitoring

    Monitor(MonitorConfig(every="1h", baseline_rows=50)).run(
        world["sink"], world["registry"], world["store"], now=T0 + 4 * HOUR
    )
    html = render_monitoring(monitor_view(world["store"], "churn"))
    start = html.index('data-family="contract"')
    section = html[start : html.index("</div>", start)]
    assert "Data contract" in section
    assert "contract.allowed_values" in section
    assert "e.g. zzz" in section
    drift = html[html.index('data-family="drift"') :]
    assert "contract.range" not in drift[: drift.index("</div>")]
