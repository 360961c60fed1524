"""The demo's monitoring outcome (windows, per-window verdicts, alert events) as plain data.

``tests/fixtures/demo_monitoring.json`` holds this outcome captured on the code before the
monitor moved onto window profiles; ``tests/test_demo.py`` checks that the demo still gives
it. Capture again (only when a change of verdicts is intended, and say why in the commit)::

    python -m tests._demo_monitoring OUT/.watchkeeper > tests/fixtures/demo_monitoring.json
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).parent / "fixtures" / "demo_monitoring.json"


def outcome(root: Path) -> dict[str, Any]:
    """Windows, verdicts and alert events of a demo's ``.watchkeeper`` folder."""
    db = sqlite3.connect(root / "monitor.db")
    windows = [
        list(r)
        for r in db.execute(
            "SELECT version, arm, window_start, window_end, n_rows, n_labels, status"
            " FROM wk_monitor_windows ORDER BY window_end, version, arm"
        )
    ]
    verdicts = [
        list(r)
        for r in db.execute(
            'SELECT version, arm, window_start, "check", subject, status FROM wk_monitor_results'
            ' ORDER BY window_end, version, arm, "check", subject'
        )
    ]
    events = [
        list(r)
        for r in db.execute(
            'SELECT kind, rule, severity, version, arm, subject, "check", window_start'
            " FROM wk_alert_events ORDER BY id"
        )
    ]
    db.close()
    return {"windows": windows, "verdicts": verdicts, "alert_events": events}


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed: windows, verdicts of checks that existed before, alert events.

    Checks added since the capture (new families) are not differences; a verdict of an old
    check that disappeared or changed is.
    """
    out: list[str] = []
    if before["windows"] != after["windows"]:
        out.append(f"windows differ: {_diff(before['windows'], after['windows'])}")
    old_checks = {tuple(v[:5]): v[5] for v in before["verdicts"]}
    new_checks = {tuple(v[:5]): v[5] for v in after["verdicts"]}
    for key, status in old_checks.items():
        if new_checks.get(key) != status:
            out.append(f"verdict {key}: {status} -> {new_checks.get(key)}")
    if before["alert_events"] != after["alert_events"]:
        out.append(f"alert events differ: {_diff(before['alert_events'], after['alert_events'])}")
    return out


def _diff(a: list[Any], b: list[Any]) -> str:
    sa, sb = {json.dumps(x) for x in a}, {json.dumps(x) for x in b}
    return f"only before {sorted(sa - sb)[:5]}, only after {sorted(sb - sa)[:5]}"


def dumps(found: dict[str, Any]) -> str:
    """JSON with one window, verdict or event per line (readable diffs)."""
    parts = [
        f'  "{key}": [\n' + ",\n".join(f"    {json.dumps(row)}" for row in rows) + "\n  ]"
        for key, rows in found.items()
    ]
    return "{\n" + ",\n".join(parts) + "\n}\n"


if __name__ == "__main__":
    sys.stdout.write(dumps(outcome(Path(sys.argv[1]))))
