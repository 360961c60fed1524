"""Demo steps 2-4: serve, replay in time order with late labels, watch each month from the
prediction log, retrain from the log, shadow the challenger, promote through the gateway.

Every number printed here is read back from what the run produced: the gateway's answers,
the prediction log (features, predictions and the labels joined by id) and the registry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchkeeper.demo._drift import MONTH_NAMES
from watchkeeper.demo._model import MODEL_NAME, retrain_challenger
from watchkeeper.demo._serve import DemoGateway, ReplayStats, running_gateway

__all__ = ["LABEL_LAG_DAYS", "MonthServed", "serve_story"]

LABEL_LAG_DAYS = 3
SHADOW_DAYS = 14  # the challenger shadows the champion for the first two weeks of July


@dataclass(frozen=True)
class MonthServed:
    """One served month as the log shows it."""

    label: str
    rows: int
    versions: dict[int, int]
    p50_ms: float
    p99_ms: float
    labelled: int
    mae: float
    drifted_columns: list[str]


def serve_story(
    data: Any,
    features: list[str],
    out: Path,
    registry: Any,
    *,
    gate_passed: bool,
    say: Any,
) -> list[MonthServed]:
    """Run steps 2-4 of the demo against a real gateway; return what each month showed."""
    from rich.table import Table

    from watchkeeper.logstore import SQLiteLogSink

    root = out / ".watchkeeper"
    if not gate_passed:
        v1 = registry.get_version(MODEL_NAME, "latest").version
        reason = "demo: served although its gate failed, to show monitoring"
        registry.set_alias(MODEL_NAME, "champion", v1, actor="demo", reason=reason)
    served: list[MonthServed] = []
    sink = SQLiteLogSink(root / "predictions.db")
    later = data[data["month"] > 3]
    with running_gateway(
        root, out, model=MODEL_NAME, features=features, label_lag_days=LABEL_LAG_DAYS
    ) as gw:
        say(
            f"gateway: {gw.url} (watchkeeper serve, bearer tokens for predict and admin; "
            f"log: {root / 'predictions.db'})"
        )
        # April-June: the champion alone.
        drift_seen: str | None = None
        for month in (4, 5, 6):
            row = _serve_month(gw, sink, later[later["month"] == month], month, registry)
            served.append(row)
            if row.drifted_columns and drift_seen is None:
                drift_seen = row.label
        _print_months(served, say, Table)

        # End of June: retrain from the log, gate against the champion on June.
        say(
            "\n[bold]3. Retrain from the log, gate, shadow, promote through the gateway[/]\n"
            + (
                f"drift first seen in {drift_seen}; "
                if drift_seen
                else "no drift seen; retraining on schedule; "
            )
            + "retraining on January–March plus April–May as logged (features and late "
            "labels), holding out June"
        )
        reference = data[data["month"].isin((1, 2, 3))]
        logged = _labelled(sink, _month_start(4), _month_start(6), features)
        june = _labelled(sink, _month_start(6), _month_start(7), features)
        import pandas as pd

        train = pd.concat(
            [reference[["timestamp", *features, "bikers"]], logged], ignore_index=True
        )
        report, v2 = retrain_challenger(
            registry,
            train,
            june,
            features,
            out,
            say,
            trained_on="Jan-Mar data + Apr-May log",
        )
        say(
            f"registered v{v2.version} as challenger ({len(train):,} training rows, "
            f"{len(logged):,} of them from the log; June holdout {len(june):,} labelled rows)"
        )

        # July 1-14: the champion answers, the challenger shadows every request.
        route = gw.set_route(
            {
                "mode": "shadow",
                "alias": "champion",
                "shadow": "challenger",
                "reason": "shadow the retrained model before promoting it",
            }
        )
        say(f"route -> {route['description']}")
        july = later[later["month"] == 7]
        cut = july["timestamp"].min() + pd.Timedelta(days=SHADOW_DAYS)
        shadow_stats = gw.replay(july[july["timestamp"] < cut], target="bikers")
        gw.flush_labels(_seconds(cut) + LABEL_LAG_DAYS * 86_400.0, shadow_stats)
        paired = _paired_errors(sink, _month_start(7), _seconds(cut))
        if paired is None:
            say("shadow: no labelled pairs yet; champion unchanged")
            better = False
        else:
            n, champion_mae, challenger_mae = paired
            better = challenger_mae < champion_mae
            say(
                f"shadow, July 1–{SHADOW_DAYS}: {n:,} labelled predictions made by both; MAE "
                f"champion {champion_mae:.1f} vs challenger {challenger_mae:.1f} bikers/hour"
            )
        if report.passed and report.blessed and better:
            promoted = gw.admin(
                "promote",
                {
                    "to": "challenger",
                    "actor": "demo",
                    "reason": "blessed by the gate and better in shadow",
                },
            )
            say(
                f"promoted through the gateway: champion -> v{promoted['version']} "
                "(no restart; the route is back to a single arm)"
            )
        else:
            gw.set_route({"mode": "single", "alias": "champion",
                          "reason": "challenger not promoted"})  # fmt: skip
            say("challenger not promoted: champion unchanged")

        # The rest of the year.
        rest = later[(later["month"] > 7) | ((later["month"] == 7) & (later["timestamp"] >= cut))]
        for month in range(7, 13):
            frame = rest[rest["month"] == month]
            extra = shadow_stats if month == 7 else None
            served.append(_serve_month(gw, sink, frame, month, registry, stats=extra))
        say("\n[bold]4. July–December, monitored from the log the same way[/]")
        _print_months(served[3:], say, Table)
        totals = sink.feedback_stats(MODEL_NAME)
        count = sink.count(MODEL_NAME)
    sink.close()
    summary = [
        {
            "month": r.label,
            "rows": r.rows,
            "versions": {str(v): n for v, n in r.versions.items()},
            "labelled": r.labelled,
            "mae": None if math.isnan(r.mae) else r.mae,
            "drifted_columns": r.drifted_columns,
        }
        for r in served
    ]
    (out / "serving-summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    live = sum(r.rows for r in served)
    say(
        f"prediction log: {live:,} live predictions and {count - live:,} shadow ones; "
        f"{totals.n_labelled:,} live predictions labelled ({totals.n_labelled / max(live, 1):.1%}; "
        f"the last {LABEL_LAG_DAYS} days' labels had not arrived when the replay ended); "
        f"{totals.n_unknown} labels for unknown ids"
    )
    return served


def _serve_month(
    gw: DemoGateway,
    sink: Any,
    frame: Any,
    month: int,
    registry: Any,
    *,
    stats: ReplayStats | None = None,
) -> MonthServed:
    """Replay one month (or its remainder) and read the month back from the log."""
    from watchkeeper.report import compare

    stats = gw.replay(frame, target="bikers", stats=stats)
    start, end = _month_start(month), _month_start(month + 1)
    window = sink.read_window(MODEL_NAME, start=_dt(start), end=_dt(end)).to_pandas()
    live = window[~window["shadow"]]
    labelled = live[live["label"].notna()]
    mae = (
        float((labelled["label"].astype(float) - labelled["prediction"].astype(float)).abs().mean())
        if len(labelled)
        else math.nan
    )
    versions = live["version"].value_counts().sort_index()
    # Drift of the month as logged, against the reference profile of the version that served
    # most of it.
    main_version = int(versions.idxmax())
    profile = registry.load_profile(MODEL_NAME, main_version)
    columns = [c for c in gw.features if c in live.columns]
    report = compare(profile, live[columns])
    return MonthServed(
        label=f"2011-{month:02d}",
        rows=len(live),
        versions={int(v): int(n) for v, n in versions.items()},
        p50_ms=stats.percentile(50),
        p99_ms=stats.percentile(99),
        labelled=len(labelled),
        mae=mae,
        drifted_columns=report.drifted_columns,
    )


def _print_months(rows: list[MonthServed], say: Any, table_cls: Any) -> None:
    table = table_cls(show_edge=False, header_style="bold")
    for h in (
        "month",
        "served by",
        "rows",
        "p50 / p99 ms",
        "labelled at month end",
        "MAE",
        "drifted columns",
    ):
        table.add_column(h)
    for r in rows:
        table.add_row(
            f"{MONTH_NAMES[int(r.label[-2:]) - 1]} ({r.label})",
            ", ".join(f"v{v}" for v in r.versions),
            f"{r.rows:,}",
            f"{r.p50_ms:.0f} / {r.p99_ms:.0f}",
            f"{r.labelled:,} ({r.labelled / max(r.rows, 1):.0%})",
            "—" if math.isnan(r.mae) else f"{r.mae:.1f}",
            "[red]" + ", ".join(r.drifted_columns) + "[/]"
            if r.drifted_columns
            else "[green]none[/]",
        )
    say(table)


def _labelled(sink: Any, start: float, end: float, features: list[str]) -> Any:
    """Logged live rows of ``[start, end)`` that have a label, as training rows."""
    window = sink.read_window(MODEL_NAME, start=_dt(start), end=_dt(end)).to_pandas()
    rows = window[(~window["shadow"]) & window["label"].notna()]
    frame = rows[features].copy()
    frame.insert(0, "timestamp", rows["ts"].dt.tz_localize(None))
    frame["bikers"] = rows["label"].astype("int64")
    return frame.reset_index(drop=True)


def _paired_errors(sink: Any, start: float, end: float) -> tuple[int, float, float] | None:
    """Mean absolute errors of the answering arm and the shadow on the same labelled requests."""
    window = sink.read_window(MODEL_NAME, start=_dt(start), end=_dt(end), include_shadow=True)
    frame = window.to_pandas()
    live = frame[~frame["shadow"] & frame["label"].notna()].set_index("id")
    shadow = frame[frame["shadow"]].copy()
    shadow["id"] = shadow["id"].str.split("#shadow:").str[0]
    shadow = shadow.set_index("id")
    both = live.join(shadow[["prediction"]], rsuffix="_shadow", how="inner")
    if both.empty:
        return None
    y = both["label"].astype(float)
    champion = (y - both["prediction"].astype(float)).abs().mean()
    challenger = (y - both["prediction_shadow"].astype(float)).abs().mean()
    return len(both), float(champion), float(challenger)


def _month_start(month: int) -> float:
    year = 2011 + (month - 1) // 12
    return datetime(year, (month - 1) % 12 + 1, 1, tzinfo=UTC).timestamp()


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _seconds(ts: Any) -> float:
    return float(ts.tz_localize("UTC").timestamp())
