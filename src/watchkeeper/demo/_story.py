"""Demo steps 2-4: serve, replay in time order with late labels, monitor window by window,
alert; the loop (``watchkeeper.loop``) retrains, gates, shadows and promotes by itself.

Every number printed here is read back from what the run produced: the gateway's answers,
the prediction log (features, predictions and the labels joined by id), the monitor's
stored window results and alert events, the registry and the loop's recorded steps.

The story only replays data and supplies the policy files: ``loop.toml`` says when to
retrain (the champion's realised-performance alert, after 45 days in service), how
(January–March plus everything logged, the last 30 days held out for the gate) and how a
challenger earns its promotion (a shadow decided by an always-valid confidence sequence on
the paired absolute errors, 14 days at most). The runner is stepped at the end of every
replayed day while a rollout runs, and at every month's end. In December an operator puts
a deliberately bad challenger into a canary (``canary.toml``); the loop rolls it back.
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
from watchkeeper.demo._model import MODEL_NAME, register_bad_challenger
from watchkeeper.demo._serve import DemoGateway, ReplayStats, running_gateway

__all__ = ["LABEL_LAG_DAYS", "MonthServed", "monitoring_report", "serve_story"]

LABEL_LAG_DAYS = 3
WINDOW = "7d"  # weekly monitoring windows (aligned to UTC)
DAY = 86_400.0
POLICY = Path(__file__).with_name("loop.toml")
CANARY_POLICY = Path(__file__).with_name("canary.toml")


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
    from watchkeeper.logstore import SQLiteLogSink
    from watchkeeper.loop import LoopConfig, LoopRunner
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
    reference = data[data["month"].isin((1, 2, 3))][["timestamp", *features, "bikers"]]
    policy = LoopConfig.from_toml(POLICY)
    runner = LoopRunner(
        policy, registry=registry, sink=sink, alerts=alerts, reference=reference,
        reports=out / "loop", say=lambda m: say(f"  loop {m}", markup=False),
    )  # fmt: skip
    say(
        f"loop policy {POLICY.name}: retrain on the champion's performance alert after "
        f"{policy.triggers.min_days_in_service:g} days in service; gate on the last "
        f"{policy.training.holdout_days:g} days; shadow at most {policy.rollout.budget_days:g} "
        f"days, decided by a confidence sequence (alpha {policy.rollout.alpha:g}, guardrails "
        f"{policy.guardrails.alpha:g})"
    )
    with running_gateway(
        root, out, model=MODEL_NAME, features=features, label_lag_days=LABEL_LAG_DAYS
    ) as gw:
        say(
            f"gateway: {gw.url} (watchkeeper serve; bearer tokens for predict and admin; "
            f"log {root / 'predictions.db'}); monitor: {WINDOW} windows, default alert rules"
        )
        canary: dict[str, Any] = {}
        for month in range(4, 13):
            frame = later[later["month"] == month]
            stats = ReplayStats()
            if month == 12 and runner.store.active(MODEL_NAME) is None:
                canary = _bad_canary(gw, registry, sink, alerts, reference, features, frame,
                                     stats, out, say)  # fmt: skip
            else:
                _replay_month(gw, runner, frame, stats)
            cycle = monitor_month(monitor, sink, registry, store, alerts, month)
            fired = _track(firing, cycle)
            row = _month_row(sink, store, month, stats, fired)
            served.append(row)
            _say_month(row, fired, say)
            if month < 11:  # December is the operator's canary month
                _step(gw, runner, _month_start(month + 1))
        totals = sink.feedback_stats(MODEL_NAME)
        count = sink.count(MODEL_NAME)
    _say_loop(runner, alerts, canary, out, say)
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


def _step(gw: DemoGateway, runner: Any, now: float, **kwargs: Any) -> list[Any]:
    """Step the loop at event time ``now`` with every label due by then delivered; when it
    changed a route or an alias, make the gateway apply it before the next request."""
    gw.flush_labels(now, ReplayStats())
    made = runner.step(now, **kwargs)
    if made:
        gw.reload()
    return list(made)


def _replay_month(gw: DemoGateway, runner: Any, frame: Any, stats: ReplayStats) -> None:
    """Replay a month: day by day while a rollout runs (the loop looks at every day's
    end), the rest in one go."""
    from watchkeeper.gateway import RouteStore

    days = frame["timestamp"].dt.floor("D")
    for day, rows in frame.groupby(days, sort=True):
        if runner.store.active(MODEL_NAME) is None:
            gw.replay(frame[days >= day], target="bikers", stats=stats)
            return
        gw.replay(rows, target="bikers", stats=stats)
        route = RouteStore(runner.registry).get(MODEL_NAME)
        if route is not None and route.mode == "shadow":
            _await_shadow_copies(runner.sink, _seconds(day), _seconds(day) + DAY)
        _step(gw, runner, _seconds(day) + DAY)


def _bad_canary(
    gw: DemoGateway,
    registry: Any,
    sink: Any,
    alerts: Any,
    reference: Any,
    features: list[str],
    frame: Any,
    stats: ReplayStats,
    out: Path,
    say: Any,
) -> dict[str, Any]:
    """December: an operator puts a deliberately bad challenger into a canary; requests go
    one by one, sticky per request id, and the loop decides after every day."""
    from watchkeeper.loop import LoopConfig, LoopRunner

    policy = LoopConfig.from_toml(CANARY_POLICY)
    steps = " -> ".join(f"{s:g}%" for s in policy.rollout.steps)
    bad = register_bad_challenger(registry, reference, features)
    say(
        "\n[bold]A deliberately bad challenger in a canary[/]\n"
        f"v{bad.version}: the same model trained on bikers per 10 minutes (a unit bug); "
        f"canary {steps} ({CANARY_POLICY.name}), label-free guardrails from the first request"
    )
    runner = LoopRunner(
        policy, registry=registry, sink=sink, alerts=alerts,
        say=lambda m: say(f"  loop {m}", markup=False),
    )  # fmt: skip
    start = _seconds(frame["timestamp"].min().floor("D"))
    _step(gw, runner, start, manual="demo: try a deliberately bad challenger", version=bad.version)
    days = frame["timestamp"].dt.floor("D")
    rollout = runner.store.active(MODEL_NAME)
    for day, rows in frame.groupby(days, sort=True):
        if runner.store.active(MODEL_NAME) is None:
            gw.replay(frame[days >= day], target="bikers", stats=stats)
            break
        gw.replay(rows, target="bikers", stats=stats, per_row=True)
        _step(gw, runner, _seconds(day) + DAY)
    window = sink.read_window(MODEL_NAME, start=_dt(start), end=_dt(start + 31 * DAY))
    answered = window.to_pandas()
    served_bad = int((answered["version"] == bad.version).sum())
    return {
        "version": bad.version,
        "rollout": None if rollout is None else rollout.id,
        "served": served_bad,
    }


def _say_loop(runner: Any, alerts: Any, canary: dict[str, Any], out: Path, say: Any) -> None:
    """What the loop did, from its recorded steps, and the two end-to-end figures."""
    steps = runner.store.steps(model=MODEL_NAME)
    say("\n[bold]The loop's decisions[/] (watchkeeper loop status --steps)")
    for s in steps:
        say(f"  {_iso(s.at)} {s.ref}: {s.summary}", markup=False)
    figures: dict[str, Any] = {}
    first_alert = next(
        (e for e in alerts.events(MODEL_NAME, rule="performance") if e.kind == "firing"), None
    )
    promote = next((s for s in steps if s.step == "promote"), None)
    if first_alert is not None and promote is not None:
        days = (promote.at - first_alert.window_end.timestamp()) / DAY
        figures["first_alert_to_promoted_fix_days"] = round(days, 1)
        say(
            f"first performance alert (window ending {first_alert.window_end:%Y-%m-%d}) to the "
            f"promoted fix ({_iso(promote.at)}): {days:.1f} days of data"
        )
    if canary:
        end = next(
            (s for s in steps if s.rollout_id == canary["rollout"] and not s.step.startswith(
                ("trigger", "gate", "canary-")
            )),
            None,
        )  # fmt: skip
        figures["bad_challenger_requests_served"] = canary["served"]
        figures["bad_challenger_outcome"] = None if end is None else end.step
        say(
            f"the deliberately bad challenger v{canary['version']} answered {canary['served']} "
            f"requests before its automatic {end.step if end else 'end'}"
        )
    (out / "loop-summary.json").write_text(
        json.dumps({"steps": [s.to_dict() for s in steps], "figures": figures}, indent=2),
        encoding="utf-8",
    )


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


def _await_shadow_copies(sink: Any, start: float, end: float, timeout: float = 300.0) -> None:
    """Wait until every live prediction of ``[start, end)`` has its shadow copy in the log.

    The gateway answers before the challenger's copy is logged (off the response path), so
    without this the monitor and the loop's guardrails would see however many copies a busy
    machine had written by then: the decisions would depend on machine load.
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


def _month_start(month: int) -> float:
    year = 2011 + (month - 1) // 12
    return datetime(year, (month - 1) % 12 + 1, 1, tzinfo=UTC).timestamp()


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _seconds(ts: Any) -> float:
    return float(ts.tz_localize("UTC").timestamp())


def _iso(seconds: float) -> str:
    return _dt(seconds).strftime("%Y-%m-%d")
