"""Loop runner processes for the kill -9 test.

Each runner serves a day of synthetic traffic (as the stored route says), steps the runner
at the day's end, and repeats; on start it resumes from what the log and the registry hold.
A kill spec makes it SIGKILL itself at a stage boundary: ``before:N`` inside the N-th
transition's transaction (nothing committed), ``after:N`` right after the N-th transition
committed, ``after:register`` right after a challenger was registered (before its gate step).

``python _kill_runner.py ROOT=KILL ...`` imports the libraries once, then forks one runner
process per argument, in order, waits for it and prints ``LINK <exit status> <steps>``: the
runners are real processes killed by a real SIGKILL, without paying the imports each time.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.loop._traffic import DAY, GATE, MODEL, T0, Traffic

from watchkeeper.logstore import SQLiteLogSink
from watchkeeper.loop import LoopConfig, LoopRunner, LoopStore
from watchkeeper.registry import Registry

DAYS = 40
POLICY = {
    "model": MODEL,
    "triggers": {"performance": False, "every_days": 10, "cooldown_days": 1000},
    "training": {"holdout_days": 2},
    "gate": {"config": GATE},
    "rollout": {
        "mode": "canary",
        "steps": [10, 50],
        "step_labels": 10,
        "t_opt": 300,
        "min_exposure": 300,
    },
}


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(kill: str) -> None:
    if kill == "none":
        return
    when, _, which = kill.partition(":")
    if which == "register":
        original_register = Registry.register

        def register(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            out = original_register(self, *args, **kwargs)
            _die()
            return out

        Registry.register = register  # type: ignore[method-assign]
        return
    target = int(which)
    count = {"n": 0}
    original = LoopStore.transition

    def transition(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        count["n"] += 1
        if when == "before" and count["n"] == target:
            inner = kwargs.get("ops")

            def ops(tx):  # type: ignore[no-untyped-def]
                if inner is not None:
                    inner(tx)
                _die()  # inside the open transaction: nothing of it may survive

            kwargs["ops"] = ops
        out = original(self, *args, **kwargs)
        if when == "after" and count["n"] == target:
            _die()
        return out

    LoopStore.transition = transition  # type: ignore[method-assign]


def run(root: Path, kill: str) -> None:
    install(kill)
    registry = Registry(root=root)
    sink = SQLiteLogSink(root / "loop-log.db")
    runner = LoopRunner(LoopConfig.from_dict(POLICY), registry=registry, sink=sink, say=print)
    traffic = Traffic(registry, sink, challenger_bias=-0.0, label_lag_days=0.5)
    for d in range(DAYS):
        start, end = T0 + d * DAY, T0 + (d + 1) * DAY
        if sink.read_window(MODEL, start=start, end=end, last=1).num_rows:
            traffic.feedback(start, end)  # the labels may not have been written
        else:
            traffic.serve(start, end)
        runner.step(end)
        if runner.store.rollouts(MODEL) and runner.store.active(MODEL) is None:
            break
    sink.close()
    registry.close()


def steps_of(root: Path) -> list[str]:
    registry = Registry(root=root)
    try:
        return [s.step for s in LoopStore(registry).steps(model=MODEL)]
    finally:
        registry.close()  # no connection may be inherited by the next fork


def main() -> None:
    import sklearn.linear_model  # noqa: F401 - everything a runner needs, imported once
    import skops.io  # noqa: F401

    import watchkeeper.gateway
    import watchkeeper.lifecycle  # noqa: F401

    for arg in sys.argv[1:]:
        root, _, kill = arg.rpartition("=")
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            try:
                run(Path(root), kill)
            except BaseException:
                import traceback

                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print("LINK " + json.dumps({"kill": kill, "code": code, "steps": steps_of(Path(root))}))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
