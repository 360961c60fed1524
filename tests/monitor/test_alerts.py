"""Alert rules and their evaluation: for N windows, cooldown, dedup, resolution, storage.

Evaluation runs on SQLite and on PostgreSQL (a throwaway server, see ``tests/_postgres.py``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.checks import CheckResult, Status
from watchkeeper.exceptions import InputError
from watchkeeper.monitor import (
    AlertConfig,
    AlertEvaluator,
    AlertRule,
    Condition,
    MonitorStore,
    WebhookChannel,
    WindowCheck,
)
from watchkeeper.monitor._channels import DeliveryError

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def row(
    window_end: datetime,
    status: str,
    *,
    check: str = "drift.ks",
    subject: str = "age",
    value: float | None = 0.3,
    model: str = "churn",
    version: int = 1,
    arm: str = "champion",
    lower: float | None = None,
    upper: float | None = None,
) -> WindowCheck:
    """A one-hour window's result as the monitor history stores it."""
    return WindowCheck(
        model, version, arm, window_end - timedelta(hours=1), window_end, "time", 100, 0,
        check, subject, Status(status), "KS distance 0.3 above the 0.1 floor",
        value=value, lower=lower, upper=upper, threshold=0.1,
    )  # fmt: skip


def hour(h: int) -> datetime:
    return T0 + timedelta(hours=h)


def series(statuses: str, **kw: Any) -> list[WindowCheck]:
    """One result per hour: ``"ooaa"`` is ok, ok, alert, alert (``w`` warn, ``i``
    insufficient data, ``e`` error)."""
    names = {"o": "ok", "a": "alert", "w": "warn", "i": "insufficient_data", "e": "error"}
    return [row(hour(h), names[c], **kw) for h, c in enumerate(statuses)]


def config(**rule: Any) -> AlertConfig:
    spec = {"name": "drift", "check": "drift.*", "when": "status >= alert", **rule}
    return AlertConfig.from_dict({"rules": [spec]})


# ---------------------------------------------------------------------------------------------
# databases
# ---------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    return str(request.getfixturevalue("monitor_postgres").create_schema())


def kinds(outcome: Any) -> list[tuple[str, int]]:
    return [(e.kind, e.window_end.hour) for e in outcome.events]


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------


def test_fires_after_for_windows_once_and_resolves(db_url: str) -> None:
    with AlertEvaluator(config(**{"for": 2}), db_url) as alerts:
        out = alerts.evaluate(series("oaoaaaaoo"))
        assert kinds(out) == [("firing", 4), ("resolved", 7)]
        firing, resolved = out.events
        assert firing.windows == 2
        assert firing.started_at == resolved.started_at == hour(4)
        assert resolved.status == "ok"
        assert firing.id is not None
        assert resolved.id is not None
        assert firing.key == resolved.key
        assert alerts.firing() == []
        assert [e.kind for e in alerts.events("churn")] == ["firing", "resolved"]
        # Every event went to its channel (the default "log") and that was recorded.
        assert [d.ok for _, d in out.deliveries] == [True, True]
        assert alerts.deliveries(firing.id) == [
            {"channel": "log", "state": "delivered", "attempts": 1, "error": None}
        ]


def test_state_carries_across_calls_and_reruns_do_not_double_count(db_url: str) -> None:
    rows = series("oaaaao")
    with AlertEvaluator(config(**{"for": 3}), db_url) as alerts:
        assert kinds(alerts.evaluate(rows[:3])) == []
        assert kinds(alerts.evaluate(rows[:4])) == [("firing", 3)]
        # The same windows again (an interrupted monitor run resumed): nothing new.
        again = alerts.evaluate(rows[:5])
        assert kinds(again) == []
        assert again.windows == 1
        assert [e.rule for e in alerts.firing("churn")] == ["drift"]
    # A new evaluator on the same database continues where the last one stopped.
    with AlertEvaluator(config(**{"for": 3}), db_url) as alerts:
        assert kinds(alerts.evaluate(rows)) == [("resolved", 5)]
        assert len(alerts.events()) == 2


def test_concurrent_evaluators_fire_once(db_url: str) -> None:
    rows = series("aaaa")
    with AlertEvaluator(config(), db_url):
        pass  # tables created before the race
    fired: list[int] = []

    def evaluate() -> None:
        with AlertEvaluator(config(), db_url) as alerts:
            fired.append(len(alerts.evaluate(rows).events))

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(fired) == [0, 0, 0, 1]


def test_dedup_per_rule_model_version_arm_subject(tmp_path: Path) -> None:
    rows = [
        *series("aa", subject="age"),
        *series("aa", subject="income"),
        *series("aa", subject="age", check="drift.psi"),  # same key as drift.ks on age
        *series("aa", subject="age", arm="challenger", version=2),
        *series("aa", subject="age", model="fraud"),
    ]
    with AlertEvaluator(config(), f"sqlite:///{tmp_path / 'm.db'}") as alerts:
        out = alerts.evaluate(rows)
        keys = {(e.model, e.version, e.arm, e.subject) for e in out.events}
        assert keys == {
            ("churn", "1", "champion", "age"),
            ("churn", "1", "champion", "income"),
            ("churn", "2", "challenger", "age"),
            ("fraud", "1", "champion", "age"),
        }
        assert all(e.kind == "firing" and e.window_end == hour(0) for e in out.events)
        assert len(alerts.firing("churn")) == 3


def test_cooldown_suppresses_refiring_until_it_has_passed(tmp_path: Path) -> None:
    with AlertEvaluator(config(cooldown="3h"), f"sqlite:///{tmp_path / 'm.db'}") as alerts:
        # fires at 0, resolves at 1, true again at 2 (within 3 h of the firing: held back),
        # still true at 3 (3 h after: fires), resolves at 4.
        out = alerts.evaluate(series("aoaaoa"))
        assert kinds(out) == [("firing", 0), ("resolved", 1), ("firing", 3), ("resolved", 4)]
        # The second firing counts both windows it waited through.
        assert out.events[2].windows == 2


def test_unknown_windows_neither_extend_nor_break_a_streak(tmp_path: Path) -> None:
    with AlertEvaluator(config(**{"for": 2}), f"sqlite:///{tmp_path / 'm.db'}") as alerts:
        out = alerts.evaluate(series("aiaiiooa"))
        # alert, (unknown), alert -> fires at 2; unknown windows do not resolve it; ok does.
        assert kinds(out) == [("firing", 2), ("resolved", 5)]


def test_error_status_counts_for_status_conditions(tmp_path: Path) -> None:
    with AlertEvaluator(config(), f"sqlite:///{tmp_path / 'm.db'}") as alerts:
        assert kinds(alerts.evaluate(series("oe"))) == [("firing", 1)]


def test_metric_comparator_on_value_and_bounds(tmp_path: Path) -> None:
    rules = AlertConfig.from_dict(
        {
            "rules": [
                {"name": "auc", "check": "performance.roc_auc", "when": "value < 0.8"},
                {"name": "auc-sure", "check": "performance.roc_auc", "when": "upper < 0.8"},
            ]
        }
    )
    rows = [
        row(hour(0), "ok", check="performance.roc_auc", subject="model", value=0.9, upper=0.95),
        row(hour(1), "warn", check="performance.roc_auc", subject="model", value=0.7, upper=0.85),
        row(hour(2), "alert", check="performance.roc_auc", subject="model", value=0.6, upper=0.7),
        # Too few labels: the number is not a verdict, so the window cannot be judged.
        row(hour(3), "insufficient_data", check="performance.roc_auc", subject="model", value=1.0),
        row(hour(4), "ok", check="performance.roc_auc", subject="model", value=None),
    ]
    with AlertEvaluator(rules, f"sqlite:///{tmp_path / 'm.db'}") as alerts:
        out = alerts.evaluate(rows)
        assert [(e.rule, e.kind, e.window_end.hour) for e in out.events] == [
            ("auc", "firing", 1),
            ("auc-sure", "firing", 2),
        ]
        assert out.events[0].value == 0.7
        assert out.events[0].condition == "value < 0.8"


def test_late_labels_judge_a_window_that_could_not_be_judged(tmp_path: Path) -> None:
    rules = config(check="performance.*", when="status >= alert")
    with AlertEvaluator(rules, f"sqlite:///{tmp_path / 'm.db'}") as alerts:
        first = [row(hour(0), "insufficient_data", check="performance.accuracy")]
        assert kinds(alerts.evaluate(first)) == []
        # Labels arrived: the monitor recomputed the same window.
        later = [row(hour(0), "alert", check="performance.accuracy")]
        assert kinds(alerts.evaluate(later)) == [("firing", 0)]
        # A window already judged is not judged again.
        assert kinds(alerts.evaluate([row(hour(0), "ok", check="performance.accuracy")])) == []


def test_evaluates_the_monitor_history_in_the_same_database(db_url: str) -> None:
    with MonitorStore(db_url) as store:
        run = store.start_run()
        for h, status in enumerate("aaao"):
            found = [
                CheckResult("drift.ks", "age", Status.ALERT if status == "a" else Status.OK, "-"),
                CheckResult("performance.accuracy", "model", Status.OK, "-", value=0.9),
            ]
            store.write_window(
                "churn", 1, "champion", hour(h), hour(h + 1), "time", 100, 50, found, run_id=run
            )
        with AlertEvaluator(AlertConfig.default(), db_url) as alerts:
            out = alerts.evaluate_store(store)
            assert [(e.rule, e.kind, e.window_end) for e in out.events] == [
                ("drift", "firing", hour(2)),
                ("drift", "resolved", hour(4)),
            ]
            assert alerts.evaluate_store(store, model="churn").events == ()


def test_unreachable_channel_is_recorded_and_does_not_stop_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WK_TEST_HOOK", "http://127.0.0.1:9/hook")  # discard port: refused
    rules = AlertConfig.from_dict(
        {
            "channels": {"hook": {"type": "webhook", "url_env": "WK_TEST_HOOK", "timeout": 2}},
            "rules": [
                {"name": "drift", "check": "drift.*", "when": "status >= alert",
                 "channels": ["hook", "log"]},
            ],
        }
    )  # fmt: skip
    waits: list[float] = []
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with AlertEvaluator(rules, url, attempts=3, backoff=0.5, sleep=waits.append) as alerts:
        out = alerts.evaluate(series("ao"))
        assert kinds(out) == [("firing", 0), ("resolved", 1)]
        assert waits == [0.5, 1.0, 0.5, 1.0]
        failed = [d for _, d in out.failed]
        assert [(d.channel, d.attempts) for d in failed] == [("hook", 3), ("hook", 3)]
        assert "127.0.0.1" in str(failed[0].error)
        assert "/hook" not in str(failed[0].error)
        firing_id = out.events[0].id
        assert firing_id is not None
        assert [d["state"] for d in alerts.deliveries(firing_id)] == ["failed", "delivered"]
        # Redelivery tries the failed ones again (still unreachable: attempts add up).
        again = alerts.redeliver()
        assert len(again) == 2
        assert alerts.deliveries(firing_id)[0]["attempts"] == 6


def test_a_broken_channel_raising_anything_is_contained(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Broken:
        def send(self, event: Any) -> None:
            raise RuntimeError("secret-token-in-message")

        def to_dict(self) -> dict[str, Any]:
            return {"type": "broken"}

    rules = AlertConfig(
        rules=(AlertRule.from_dict({"name": "d", "check": "drift.*", "when": "status >= alert",
                                    "channels": ["broken"]}),),
        channels={"broken": Broken()},
    )  # fmt: skip
    with AlertEvaluator(rules, f"sqlite:///{tmp_path / 'm.db'}") as alerts:
        out = alerts.evaluate(series("a"))
        (_, delivery), = out.deliveries  # fmt: skip
        assert not delivery.ok
        assert "secret" not in str(delivery.error)
        assert "RuntimeError" in str(delivery.error)


def test_results_matching_no_rule_touch_nothing(tmp_path: Path) -> None:
    with AlertEvaluator(config(), f"sqlite:///{tmp_path / 'm.db'}") as alerts:
        out = alerts.evaluate(series("aa", check="quality.missing_share"))
        assert out.events == ()
        assert out.windows == 0


def test_default_root_is_the_monitor_database(project_dir: Path) -> None:
    with AlertEvaluator() as alerts:
        alerts.evaluate(series("aa"))
    assert (project_dir / ".watchkeeper" / "monitor.db").is_file()


# ---------------------------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------------------------


def test_default_rules_cover_the_issue_list() -> None:
    rules = {r.name: r for r in AlertConfig.default().rules}
    assert rules["drift"].matches("drift.ks", "age", "m")
    assert rules["quality"].matches("quality.missing_share", "age", "m")
    assert rules["estimated-performance"].matches("estimated.roc_auc", "model", "m")
    assert rules["performance"].matches("performance.accuracy", "model", "m")
    assert rules["latency-p99"].matches("serving.latency_p99", "model", "m")
    assert rules["error-rate"].matches("serving.error_rate", "model", "m")
    assert rules["performance"].severity == "critical"


def test_rules_file_round_trips_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "alerts.toml"
    toml.write_text(
        """
[channels.oncall]
type = "slack"
url_env = "WK_SLACK_URL"

[channels.mail]
type = "email"
host = "127.0.0.1"
port = 2525
sender = "wk@example.com"
to = ["a@example.com", "b@example.com"]

[[rules]]
name = "auc"
check = "performance.roc_auc"
when = "lower < 0.75"
for = 3
cooldown = "2h"
severity = "critical"
labels = { team = "risk" }
channels = ["oncall", "mail"]
"""
    )
    loaded = AlertConfig.from_file(toml)
    rule = loaded.rule("auc")
    assert rule.when == Condition("lower", "<", 0.75)
    assert rule.cooldown == timedelta(hours=2)
    assert dict(rule.labels) == {"team": "risk"}
    assert sorted(loaded.channels) == ["log", "mail", "oncall"]
    as_json = tmp_path / "alerts.json"
    as_json.write_text(json.dumps(loaded.to_dict()))
    assert AlertConfig.from_file(as_json) == loaded
    # Secrets are never part of the configuration.
    assert "url_env" in json.dumps(loaded.to_dict())


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"check": "drift.*", "when": "status >= alert"}, "rule None: missing required key 'name'"),
        ({"name": "x", "when": "status >= alert"}, "rule 'x': missing required key 'check'"),
        ({"name": "x", "check": "d", "when": "status >= bad"}, "rule 'x' when: unknown status"),
        ({"name": "x", "check": "d", "when": "colour < 1"}, "rule 'x' when: unknown field"),
        ({"name": "x", "check": "d", "when": "value < high"}, "rule 'x' when: threshold of value"),
        ({"name": "x", "check": "d", "when": "value ~ 1"}, "rule 'x' when: expected"),
        ({"name": "x", "check": "d", "when": "value < 1", "for": 1.5}, "rule 'x' for:"),
        ({"name": "x", "check": "d", "when": "value < 1", "cooldown": "soon"}, "rule 'x' cooldown"),
        ({"name": "x", "check": "d", "when": "value < 1", "severity": "p1"}, "rule 'x' severity"),
        ({"name": "x", "check": "d", "when": "value < 1", "labels": {"a-b": "1"}}, "'x' labels"),
        ({"name": "x", "check": "d", "when": "value < 1", "colour": 1}, "rule 'x': unknown key"),
        ({"name": "x", "check": "d", "when": "value < 1", "channels": ["pager"]}, "channel"),
        ({"name": "1x", "check": "d", "when": "value < 1"}, "rule name '1x' must start"),
    ],
)  # fmt: skip
def test_invalid_rules_name_the_rule_and_field(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as err:
        AlertConfig.from_dict({"rules": [rule]})
    assert message in str(err.value)


def test_invalid_files_and_channels_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        AlertConfig.from_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rules]\n")
    with pytest.raises(InputError, match="is not valid"):
        AlertConfig.from_file(bad)
    with pytest.raises(InputError, match="defined twice"):
        AlertConfig.from_dict({"rules": [{"name": "a", "check": "d", "when": "value < 1"}] * 2})
    with pytest.raises(InputError, match="unknown alert setting 'rule'"):
        AlertConfig.from_dict({"rule": []})
    with pytest.raises(InputError, match="must name an environment variable"):
        AlertConfig.from_dict({"channels": {"h": {"type": "webhook", "url_env": "https://x"}}})
    with pytest.raises(InputError, match="type = one of"):
        AlertConfig.from_dict({"channels": {"h": {"type": "pager"}}})
    with pytest.raises(InputError, match="both username_env and password_env"):
        AlertConfig.from_dict(
            {
                "channels": {
                    "m": {"type": "email", "host": "h", "sender": "a@b", "to": ["c@d"],
                          "username_env": "U"}
                }
            }
        )  # fmt: skip


def test_missing_secret_is_a_permanent_failure_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WK_TEST_UNSET", raising=False)
    event = AlertEvaluator.__mro__  # any object: the secret is read before the event is used
    with pytest.raises(DeliveryError) as err:
        WebhookChannel(url_env="WK_TEST_UNSET").send(event)  # type: ignore[arg-type]
    assert "WK_TEST_UNSET is not set" in str(err.value)
    assert not err.value.retryable


def test_alerts_of_a_stream_that_stopped_are_resolved() -> None:
    # v1 alerts, then v2 replaces it: v1 gets no more windows. Once v2 has gone on for
    # longer than stale_after, v1's alert is resolved (saying why) instead of firing forever.
    from watchkeeper.monitor import AlertConfig, AlertEvaluator

    @dataclass
    class R:
        window_end: datetime
        status: str
        version: str
        model: str = "churn"
        arm: str = "champion"
        check: str = "drift.ks"
        subject: str = "age"
        value: float = 0.3
        lower: None = None
        upper: None = None
        threshold: float = 0.1
        reason: str = "-"

        @property
        def window_start(self) -> datetime:
            return self.window_end - timedelta(days=1)

    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    rules = AlertConfig.from_dict(
        {"rules": [{"name": "drift", "check": "drift.*", "when": "status >= alert", "for": 1}]}
    )
    days = [t0 + timedelta(days=d) for d in range(20)]
    with AlertEvaluator(rules, "sqlite://", stale_after=timedelta(days=7)) as alerts:
        fired = alerts.evaluate([R(days[0], "alert", "1")])
        assert [e.kind for e in fired.events] == ["firing"]
        early = alerts.evaluate([R(days[d], "ok", "2") for d in range(1, 5)])
        assert early.events == ()  # v2 has not gone on for 7 days yet
        later = alerts.evaluate([R(days[d], "ok", "2") for d in range(5, 12)])
        (resolved,) = later.events
        assert (resolved.kind, resolved.version, resolved.rule) == ("resolved", "1", "drift")
        assert "stream stopped" in resolved.reason
        again = alerts.evaluate([R(days[12], "ok", "2")])
        assert again.events == ()  # resolved once
    with AlertEvaluator(rules, "sqlite://", stale_after=None) as alerts:
        alerts.evaluate([R(days[0], "alert", "1")])
        kept = alerts.evaluate([R(days[d], "ok", "2") for d in range(1, 20)])
        assert kept.events == ()
