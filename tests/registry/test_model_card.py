"""Model cards of registered versions: built from the registry, the profile and the gate report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from watchkeeper.cli._models import app
from watchkeeper.data import Schema
from watchkeeper.exceptions import InputError
from watchkeeper.lifecycle import GateConfig, validate
from watchkeeper.lifecycle._model_card import model_card
from watchkeeper.registry import Registry

OFF = {"enabled": False}


def _data(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["f", "m"], n)
    race = rng.choice(["1", "2", "9"], n, p=[0.8, 0.185, 0.015])
    x = rng.normal(size=n)
    proxy = (sex == "m") + rng.normal(0, 0.3, n)
    y = (x + (sex == "m") + rng.normal(size=n) > 0.5).astype(int)
    return pd.DataFrame({"x": x, "proxy": proxy, "sex": sex, "race": race, "y": y})


@pytest.fixture
def registered(tmp_path: Path) -> dict[str, Any]:
    df = _data()
    features = ["x", "proxy"]
    cfg = GateConfig.from_dict({
        "generalisation": OFF, "calibration": OFF, "robustness": OFF, "serving": OFF,
        "extra_checks": {"fairness": {"attributes": ["sex", "race"]}},
    })  # fmt: skip
    report = validate(LogisticRegression(), df, target="y", features=features, config=cfg)
    report_path = tmp_path / "gate.json"
    report.to_json(report_path)
    model = LogisticRegression().fit(df[features], df["y"])
    reference = df.assign(prediction=model.predict(df[features]))
    schema = Schema.infer(reference).with_roles(
        {"sex": "sensitive", "race": "sensitive", "y": "target", "prediction": "prediction"}
    )
    with Registry(root=tmp_path / "reg") as reg:
        reg.register("credit", LogisticRegression().fit(df[features], df["y"]), actor="ana")
        v2 = reg.register(
            "credit", model, reference=reference, schema=schema,
            metrics={"accuracy": 0.75}, description="Pre-screens credit applications.",
            tags={"gate_report": str(report_path), "limitations": "Trained on synthetic data.",
                  "out_of_scope": "Final credit decisions."},
            actor="ana",
        )  # fmt: skip
        reg.set_alias("credit", "champion", v2.version, actor="bob", reason="passed the gate")
    return {"root": tmp_path / "reg", "report": report, "report_path": report_path}


def _section(card: Any, title: str) -> Any:
    return next(s for s in card.sections if s.title == title)


def test_the_card_holds_use_data_metrics_by_group_fairness_limits_and_lineage(
    registered: dict[str, Any],
) -> None:
    with Registry(root=registered["root"]) as reg:
        card = model_card(reg, "credit", "champion")
    assert (card.name, card.version) == ("credit", 2)
    assert _section(card, "Intended use").text == ("Pre-screens credit applications.",)
    data = _section(card, "Data")
    groups = {(row[0], row[1]): row[2] for row in data.tables[1][1]}
    assert groups[("sex", "f")] == f"{(_data()['sex'] == 'f').sum():,}"
    metrics = _section(card, "Metrics")
    by_group = next(t for t in metrics.tables if t[0][0] == "group")
    assert "selection rate" in by_group[0]
    assert any(row[0] == "race=9" and "too few" in row for row in by_group[1])
    fairness = _section(card, "Fairness")
    rows = {(r[0], r[1]): r for r in fairness.tables[0][1]}
    assert rows[("demographic_parity_difference", "sex")][2] == "alert"
    limits = _section(card, "Known limits").bullets
    assert "Trained on synthetic data." in limits
    assert any(b.startswith("Gate failure: fairness.demographic_parity_difference") for b in limits)
    assert any("race=9" in b for b in limits)
    lineage = _section(card, "Lineage")
    assert "Parent version: 1." in lineage.text
    assert any(str(registered["report_path"]) in t for t in lineage.text)
    assert [row[2] for row in lineage.tables[0][1]] == [
        "registered version 1",
        "registered version 2",
        "alias champion: - -> 2",
    ]
    markdown, html = card.to_markdown(), card.to_html()
    assert markdown.startswith("# Model card: credit version 2")
    assert "| demographic_parity_difference | sex | alert |" in markdown
    assert "<h2>Fairness</h2>" in html
    assert "<script" not in html


def test_without_a_gate_report_the_card_says_so_and_uses_the_profile_counts(
    registered: dict[str, Any],
) -> None:
    registered["report_path"].unlink()
    with Registry(root=registered["root"]) as reg:
        card = model_card(reg, "credit", 2)
        first = model_card(reg, "credit", 1)
    assert "From the per-group counts of the reference profile." in _section(card, "Fairness").text
    assert any("No gate report" in b for b in _section(card, "Known limits").bullets)
    assert "No reference profile was stored with this version." in _section(first, "Data").text
    assert "No fairness results" in _section(first, "Fairness").text[0]
    assert "Parent version: none." in _section(first, "Lineage").text


def test_a_gate_report_object_or_a_bad_file(registered: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    with Registry(root=registered["root"]) as reg:
        card = model_card(reg, "credit", 2, gate_report=registered["report"])
        assert card.facts["gate_passed"] is False
        with pytest.raises(InputError, match="not a watchkeeper gate report"):
            model_card(reg, "credit", 2, gate_report=bad)


def test_cli_writes_markdown_and_html(registered: dict[str, Any], tmp_path: Path) -> None:
    runner = CliRunner()
    md, html = tmp_path / "card.md", tmp_path / "card.html"
    base = ["--root", str(registered["root"])]
    result = runner.invoke(app, [*base, "card", "credit@2", "--md", str(md), "--html", str(html)])
    assert result.exit_code == 0, result.output
    assert md.read_text(encoding="utf-8").startswith("# Model card: credit version 2")
    assert "<h2>Lineage</h2>" in html.read_text(encoding="utf-8")
    result = runner.invoke(app, [*base, "card", "credit", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == 2
    result = runner.invoke(app, [*base, "card", "nosuch@1"])
    assert result.exit_code == 2
    assert "error:" in result.stderr


def test_markdown_keeps_no_raw_html_from_user_text(tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    with Registry(root=tmp_path / "reg") as reg:
        reg.register(
            "m",
            LogisticRegression().fit(X, [0, 0, 1, 1]),
            description=f"{hostile}\n# not a heading\n[click](javascript:alert(3))",
            tags={"intended_use": hostile, "out_of_scope": "<iframe src=//evil>"},
            metrics={f"<b onmouseover=alert(4)>auc{hostile}": 0.9},
            actor="ana",
        )
        card = model_card(reg, "m", 1)
    markdown = card.to_markdown()
    for raw in ("<script", "<img", "<iframe", "<b "):
        assert raw not in markdown
    # Rendered by a CommonMark renderer that lets raw HTML through: still no tag, no link.
    rendered = MarkdownIt("commonmark").render(markdown)
    for raw in ("<script", "<img", "<iframe", "<b ", "<a ", 'javascript:alert(3)"'):
        assert raw not in rendered, raw
    assert "<h1>not a heading" not in rendered
    # The text itself is still there, as text.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "auc" in rendered
    html = card.to_html()
    assert "<script>alert" not in html
    assert "<img" not in html
