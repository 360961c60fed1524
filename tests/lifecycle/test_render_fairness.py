"""The gate HTML shows the fairness trade-off rows as a table."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from watchkeeper.checks import CheckResult, Status
from watchkeeper.lifecycle import mitigate, tradeoff_table
from watchkeeper.lifecycle._report import GateReport
from watchkeeper.report._gate_html import render_gate_report


def _report(results: tuple[CheckResult, ...]) -> GateReport:
    return GateReport(
        candidate="loan:2", champion=None, task="binary", metrics=("accuracy",),
        n_train=1000, n_holdout=1000, results=results,
    )  # fmt: skip


def _section(html: str) -> str:
    found = re.search(r"<h2>Fairness trade-off</h2>.*?</table>", html, re.S)
    assert found is not None, "no fairness trade-off section"
    return found.group(0)


def test_tradeoff_rows_render_as_a_table_with_intervals() -> None:
    rng = np.random.default_rng(0)
    group = rng.choice(["a", "b"], 1000)
    X = pd.DataFrame({"x": rng.normal(size=1000), "in_a": (group == "a").astype(float)})
    y = (X["x"] + X["in_a"] + rng.normal(size=1000) > 0.5).astype(int)
    model = LogisticRegression().fit(X, y)
    fair = mitigate(model, X, y, {"group": group})
    rows = tradeoff_table({"as is": model, "threshold_optimizer": fair}, X, y, {"group": group})
    failed = CheckResult(
        "fairness.tradeoff", "exponentiated_gradient", Status.ERROR, "mitigation failed: boom"
    )
    html = render_gate_report(_report((*rows, failed)))
    section = _section(html)
    body = section.split("</thead>")[-1]
    assert body.count("<tr>") == 3  # two models by one attribute, and the failed mitigation
    for r in rows:
        gap = r.details["gaps"]["group"]["demographic_parity_difference"]
        assert r.subject in section
        assert f"{gap['value']:.4g}" in section
        assert f"{gap['lower']:.4g} to {gap['upper']:.4g}" in section
        assert f"{r.lower:.4g} to {r.upper:.4g}" in section  # accuracy interval
    for header in ("accuracy", "demographic parity difference", "equalized odds difference"):
        assert header in section
    assert "mitigation failed: boom" in section


def test_no_tradeoff_section_without_mitigation_rows() -> None:
    plain = CheckResult("gate.cv", "accuracy", Status.OK, "ok")
    assert "Fairness trade-off" not in render_gate_report(_report((plain,)))
