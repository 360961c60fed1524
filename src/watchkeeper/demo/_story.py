"""Demo steps 2-4: serve, replay in time order with late labels, monitor window by window,
alert, retrain from the log, gate, shadow the challenger, promote through the gateway.

Every number printed here is read back from what the run produced: the gateway's answers,
the prediction log (features, predictions and the labels joined by id), the monitor's
stored window results and alert events, and the registry.

The policy the demo follows is written once, here: retrain at the end of a month when the
champion's realised-performance alert is firing and it has served at least
``RETRAIN_AFTER_MONTHS`` months, on the reference quarter plus every logged month but the
last, which is held out for the gate; shadow the challenger for ``SHADOW_DAYS`` days;
promote it through the gateway when the gate blessed it against the champion and it made
the smaller errors in shadow. Then the same policy watches the new champion.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchkeeper.demo._drift import MONTH_NAMES
from watchkeeper.demo._model import MODEL_NAME, retrain_challenger
from watchkeeper.demo._serve import DemoGateway, ReplayStats, running_gateway

__all__ = ["LABEL_LAG_DAYS", "MonthServed", "monitoring_report", "serve_story"]

LABEL_LAG_DAYS = 3
SHADOW_DAYS = 14
RETRAIN_AFTER_MONTHS = 2
WINDOW = "7d"  # weekly monitoring windows (aligned to UTC)


@dataclass(frozen=True)
class MonthServed:
    """One served month as the log and the monitor show it."""

    label: str
    rows: int
    versions: dict[int, int]
    p50_ms: float
    p99_ms: float
    labelled: int
    mae: float
    estimated_mae: float
    drifted_columns: list[str]
    alerts: list[str]


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
    import pandas as pd

    from watchkeeper.logstore import SQLiteLogSink
    from watchkeeper.monitor import AlertEvaluator, Monitor, MonitorConfig, MonitorStore

    root = out / ".watchkeeper"
    _alerts_to_file(out / "alerts.log")
    if not gate_passed:
        v1 = registry.get_version(MODEL_NAME, "latest").version
        reason = "demo: served although its gate failed, to show monitoring"
        registry.set_alias(MODEL_NAME, "champion", v1, actor="demo", reason=reason)
    sink = SQLiteLogSink(root / "predictions.db")
    store = MonitorStore(root=root)
    alerts = AlertEvaluator(root=root)  # the default rules shipped with watchkeeper
    # Two weeks of a version's labelled rows fit its label-free estimator (DLE).
    monitor = Monitor(MonitorConfig(every=WINDOW, baseline_rows=2 * 7 * 24))
    firing: dict[tuple[str, str, str, str], Any] = {}
    served: list[MonthServed] = []
    later = data[data["month"] > 3]
    reference = data[data["month"].isin((1, 2, 3))]
    with running_gateway(
        root, out, model=MODEL_NAME, features=features, label_lag_days=LABEL_LAG_DAYS
    ) as gw:
        say(
            f"gateway: {gw.url} (watchkeeper serve; bearer tokens for predict and admin; "
            f"log {root / 'predictions.db'}); monitor: {WINDOW} windows, default alert rules"
        )
        shadow_from: int | None = None  # month whose first days the challenger shadows
        decision: _Decision | None = None
        for month in range(4, 13):
            frame = later[later["month"] == month]
            stats = ReplayStats()
            if shadow_from == month and decision is not None:
                cut = frame["timestamp"].min() + pd.Timedelta(days=SHADOW_DAYS)
                gw.replay(frame[frame["timestamp"] < cut], target="bikers", stats=stats)
                _await_shadow_copies(sink, _month_start(month), _seconds(cut))
                _decide_promotion(gw, sink, month, _seconds(cut), decision, say)
                frame = frame[frame["timestamp"] >= cut]
                shadow_from, decision = None, None
            gw.replay(frame, target="bikers", stats=stats)
            cycle = monitor_month(monitor, sink, registry, store, alerts, month)
            fired = _track(firing, cycle)
            row = _month_row(sink, store, month, stats, fired)
            served.append(row)
            _say_month(row, fired, say)

            champion = registry.get_version(MODEL_NAME, "champion").version
            months_served = sum(1 for r in served if champion in r.versions)
            performance_alert = any(
                rule == "performance" and version == str(champion) and arm == "champion"
                for rule, version, arm, _ in firing
            )
            retrain = performance_alert and months_served >= RETRAIN_AFTER_MONTHS
            if shadow_from is None and month < 12 and retrain:
                decision = _retrain(
                    gw, sink, registry, reference, features, out, month, months_served, say
                )
                shadow_from = month + 1
        totals = sink.feedback_stats(MODEL_NAME)
        count = sink.count(MODEL_NAME)
    sink.close()
    _say_causes(store, say)
    _write_summary(out, served)
    live = sum(r.rows for r in served)
    n_fired = sum(1 for e in alerts.events(MODEL_NAME) if e.kind == "firing")
    say(
        f"\nprediction log: {live:,} live predictions and {count - live:,} shadow ones; "
        f"{totals.n_labelled:,} live predictions labelled ({totals.n_labelled / max(live, 1):.1%}; "
        f"the last {LABEL_LAG_DAYS} days' labels had not arrived when the replay ended); "
        f"{totals.n_unknown} labels for unknown ids" + f"; {n_fired} alert firings stored"
    )
    alerts.close()
    store.close()
    return served


def monitoring_report(out: Path, say: Any) -> Path:
    """``watchkeeper report`` over the served period, run as a user would run it."""
    import subprocess
    import sys

    html = out / "monitoring-report.html"
    argv = [
        sys.executable, "-m", "watchkeeper.cli", "report", MODEL_NAME,
        "--window", "2011-04-01/2012-01-01", "--html", str(html),
        "--json", str(out / "monitoring-report.json"), "--root", str(out / ".watchkeeper"),
    ]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"watchkeeper report failed: {run.stderr[-2000:]}")
    period = "--window 2011-04-01/2012-01-01"
    say(f"monitoring report (watchkeeper report {MODEL_NAME} {period}): {html}")
    return html


def _say_causes(store: Any, say: Any) -> None:
    """Features ranked as likely causes of the windows whose performance dropped, from the
    monitor's stored history of the answering arms."""
    from watchkeeper.explain import rank_degradation_causes

    windows: dict[str, list[Any]] = {}
    for row in store.results(MODEL_NAME, arm="champion"):
        label = f"v{row.version} {row.window_start:%Y-%m-%d}"
        windows.setdefault(label, []).append(row.to_result())
    causes = [c for c in rank_degradation_causes(windows) if c.score > 0][:3]
    if causes:
        degraded = len(causes[0].degraded_windows)
        say(
            f"\nlikely causes of the {degraded} weekly windows judged worse than the reference "
            "(drift that coincides with the drops, ranked): "
            + "; ".join(f"{c.feature} (drifted in {c.coincidence:.0%} of them)" for c in causes)
        )


def _alerts_to_file(path: Path) -> None:
    """The default rules deliver to the ``watchkeeper.alerts`` log; the demo prints alerts
    itself, so that log goes to a file."""
    import logging

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("watchkeeper.alerts")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def monitor_month(
    monitor: Any, sink: Any, registry: Any, store: Any, alerts: Any, month: int
) -> Any:
    """One monitoring cycle at the end of ``month``: every window complete by then, with
    the labels that have arrived (windows whose labels came late are recomputed)."""
    from watchkeeper.monitor import run_cycle

    return run_cycle(
        monitor, sink, registry, store, alerts, model=MODEL_NAME, now=_month_start(month + 1)
    )


@dataclass(frozen=True)
class _Decision:
    gate_passed: bool
    blessed: bool
    version: int


def _retrain(
    gw: DemoGateway,
    sink: Any,
    registry: Any,
    reference: Any,
    features: list[str],
    out: Path,
    month: int,
    months_served: int,
    say: Any,
) -> _Decision:
    import pandas as pd

    first = 4  # every month served so far
    logged_months = (
        MONTH_NAMES[first - 1]
        if first == month - 1
        else f"{MONTH_NAMES[first - 1]}–{MONTH_NAMES[month - 2]}"
    )
    say(
        "\n[bold]Retrain from the log, gate, shadow, promote through the gateway[/]\n"
        f"v{registry.get_version(MODEL_NAME, 'champion').version}'s realised-performance alert "
        f"is firing, {months_served} months into its service: "
        f"retraining on January–March plus {logged_months} "
        f"as logged (features and late labels), holding out {MONTH_NAMES[month - 1]}"
    )
    logged = _labelled(sink, _month_start(first), _month_start(month), features)
    holdout = _labelled(sink, _month_start(month), _month_start(month + 1), features)
    train = pd.concat([reference[["timestamp", *features, "bikers"]], logged], ignore_index=True)
    trained_on = f"Jan-Mar data + {logged_months} log"
    report, version = retrain_challenger(
        registry, train, holdout, features, out, say, trained_on=trained_on
    )
    say(
        f"registered v{version.version} as challenger ({len(train):,} training rows, "
        f"{len(logged):,} of them from the log; holdout {len(holdout):,} labelled rows)"
    )
    route = gw.set_route(
        {
            "mode": "shadow",
            "alias": "champion",
            "shadow": "challenger",
            "actor": "demo",
            "reason": "shadow the retrained model before promoting it",
        }
    )
    say(f"route -> {route['description']} for the first {SHADOW_DAYS} days of next month\n")
    return _Decision(report.passed, bool(report.blessed), version.version)


def _decide_promotion(
    gw: DemoGateway, sink: Any, month: int, cut: float, decision: _Decision, say: Any
) -> None:
    paired = _paired_errors(sink, _month_start(month), cut)
    if paired is None:
        better = False
        say("shadow: no labelled pairs yet")
    else:
        n, champion_mae, challenger_mae = paired
        better = challenger_mae < champion_mae
        say(
            f"shadow, {MONTH_NAMES[month - 1]} 1–{SHADOW_DAYS}: {n:,} labelled predictions made "
            f"by both (labels {LABEL_LAG_DAYS} days late); MAE champion {champion_mae:.1f} vs "
            f"challenger {challenger_mae:.1f} bikers/hour"
        )
    if decision.gate_passed and decision.blessed and better:
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
            "(no restart; the route is back to a single arm)\n"
        )
    else:
        gw.set_route(
            {
                "mode": "single",
                "alias": "champion",
                "actor": "demo",
                "reason": "challenger not promoted (gate or shadow against it)",
            }
        )
        gate_ok = decision.gate_passed and decision.blessed
        why = "not better in shadow" if gate_ok else "the gate did not bless it"
        say(f"challenger not promoted ({why}): champion unchanged\n")


def _track(firing: dict[tuple[str, str, str, str], Any], cycle: Any) -> list[Any]:
    """Update the set of firing alerts from a cycle's events; return the new firings.

    An alert is one rule on one version, arm and subject (as the alert store keys it): the
    challenger arm's resolution never clears the champion arm's firing of the same version.
    """
    fired = []
    for event in getattr(cycle.alerts, "events", ()) or ():
        key = (event.rule, str(event.version), event.arm, event.subject)
        if event.kind == "firing":
            firing[key] = event
            fired.append(event)
        elif event.kind == "resolved":
            firing.pop(key, None)
    return fired


def _month_row(
    sink: Any, store: Any, month: int, stats: ReplayStats, fired: Sequence[Any]
) -> MonthServed:
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
    # The monitor's windows that ended in this month.
    results = [
        r
        for r in store.results(MODEL_NAME, since=_dt(start), until=_dt(end))
        if start < r.window_end.timestamp() <= end and r.arm == "champion"
    ]
    estimates = [r.value for r in results if r.check == "estimated.mae" and r.value is not None]
    drifted = sorted(
        {r.subject for r in results if r.check.startswith("drift.") and r.status.value == "alert"}
        - {"prediction", "dataset"}
    )
    return MonthServed(
        label=f"2011-{month:02d}",
        rows=len(live),
        versions={int(v): int(n) for v, n in versions.items()},
        p50_ms=stats.percentile(50),
        p99_ms=stats.percentile(99),
        labelled=len(labelled),
        mae=mae,
        estimated_mae=sum(estimates) / len(estimates) if estimates else math.nan,
        drifted_columns=drifted,
        alerts=sorted({e.rule for e in fired}),
    )


def _say_month(row: MonthServed, fired: Sequence[Any], say: Any) -> None:
    month = MONTH_NAMES[int(row.label[-2:]) - 1]
    mae = "—" if math.isnan(row.mae) else f"{row.mae:.1f}"
    est = "—" if math.isnan(row.estimated_mae) else f"{row.estimated_mae:.1f}"
    say(
        f"[bold]{month} ({row.label})[/] served by {', '.join(f'v{v}' for v in row.versions)}: "
        f"{row.rows:,} rows, p50/p99 {row.p50_ms:.0f}/{row.p99_ms:.0f} ms per day's request, "
        f"{row.labelled:,} labelled by month end; MAE {mae} realised, {est} estimated without "
        f"labels; drifted: {', '.join(row.drifted_columns) or 'none'}"
    )
    by_rule: dict[str, list[Any]] = {}
    for event in fired:
        by_rule.setdefault(event.rule, []).append(event)
    for rule, events in sorted(by_rule.items()):
        first = events[0]
        more = f" (+{len(events) - 1} more)" if len(events) > 1 else ""
        say(
            f"  [red]ALERT[/] {first.severity} {rule} v{first.version}, {first.subject}: "
            f"{first.reason}{more}",
            markup=True,
        )


def _write_summary(out: Path, served: list[MonthServed]) -> None:
    summary = [
        {
            "month": r.label,
            "rows": r.rows,
            "versions": {str(v): n for v, n in r.versions.items()},
            "labelled": r.labelled,
            "mae": None if math.isnan(r.mae) else r.mae,
            "estimated_mae": None if math.isnan(r.estimated_mae) else r.estimated_mae,
            "drifted_columns": r.drifted_columns,
            "alerts": r.alerts,
        }
        for r in served
    ]
    (out / "serving-summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


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
    shadow = frame[frame["shadow"]].set_index("id")  # the copies share the answers' ids
    both = live.join(shadow[["prediction"]], rsuffix="_shadow", how="inner")
    if both.empty:
        return None
    y = both["label"].astype(float)
    champion = (y - both["prediction"].astype(float)).abs().mean()
    challenger = (y - both["prediction_shadow"].astype(float)).abs().mean()
    return len(both), float(champion), float(challenger)


def _await_shadow_copies(sink: Any, start: float, end: float, timeout: float = 300.0) -> None:
    """Wait until every live prediction of ``[start, end)`` has its shadow copy in the log.

    The gateway answers before the challenger's copy is logged (off the response path), so
    without this the monitor and the shadow comparison would see however many copies a
    busy machine had written by then: the decisions would depend on machine load.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        window = sink.read_window(MODEL_NAME, start=_dt(start), end=_dt(end), include_shadow=True)
        shadow = window.column("shadow").to_pylist()
        n_shadow = sum(1 for s in shadow if s)
        if n_shadow >= len(shadow) - n_shadow:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"only {n_shadow} of {len(shadow) - n_shadow} shadow copies were logged within "
                f"{timeout:g} s; see gateway.log"
            )
        time.sleep(0.05)


def _month_start(month: int) -> float:
    year = 2011 + (month - 1) // 12
    return datetime(year, (month - 1) % 12 + 1, 1, tzinfo=UTC).timestamp()


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _seconds(ts: Any) -> float:
    return float(ts.tz_localize("UTC").timestamp())
