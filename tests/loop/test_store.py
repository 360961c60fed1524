"""The loop's state in the registry database (SQLite and PostgreSQL): transitions are atomic
with their registry changes, done once whoever repeats them, and a whole rollout runs on
either backend."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tests.loop._traffic import DAY, GATE, MODEL, T0, Traffic, register_champion

from watchkeeper.exceptions import InputError
from watchkeeper.logstore import SQLiteLogSink
from watchkeeper.loop import LoopConfig, LoopRunner, LoopStore
from watchkeeper.registry import Registry


def test_a_failed_transition_leaves_nothing_behind(db_url: str, tmp_path: Path) -> None:
    with Registry(db_url, artifacts=tmp_path / "a") as registry:
        register_champion(registry)
        store = LoopStore(registry)
        r = store.open_rollout(MODEL, at=1.0, state={})
        with pytest.raises(InputError, match="already has an active rollout"):
            store.open_rollout(MODEL, at=2.0, state={})
        before = len(registry.history(MODEL))

        def ops(tx):  # type: ignore[no-untyped-def]
            tx.set_alias(MODEL, "challenger", 1, actor="t", reason="x")
            raise RuntimeError("crash inside the transaction")

        with pytest.raises(RuntimeError):
            store.transition(r.id, "gate", at=3.0, stage="shadow", summary="s", evidence={},
                             ops=ops)  # fmt: skip
        assert len(registry.history(MODEL)) == before
        assert store.steps(rollout_id=r.id) == []
        assert store.get(r.id).stage == "training"
        with pytest.raises(Exception, match="challenger"):
            registry.get_version(MODEL, "challenger")


def test_racing_runners_do_a_step_once(db_url: str, tmp_path: Path) -> None:
    with Registry(db_url, artifacts=tmp_path / "a") as registry:
        register_champion(registry)
        store = LoopStore(registry)
        r = store.open_rollout(MODEL, at=1.0, state={})
        results = []

        def go() -> None:
            other = Registry(db_url, artifacts=tmp_path / "a")
            try:
                results.append(
                    LoopStore(other).transition(
                        r.id,
                        "abort",
                        at=2.0,
                        stage="aborted",
                        summary="stop",
                        evidence={},
                        active=False,
                    )
                )
            finally:
                other.close()

        threads = [threading.Thread(target=go) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(x.replayed for x in results) == [False, True, True, True]
        assert len({x.id for x in results}) == 1
        assert sum(e.kind == "loop" for e in registry.history(MODEL)) == 1


def test_a_rollout_runs_on_each_backend(db_url: str, tmp_path: Path) -> None:
    with Registry(db_url, artifacts=tmp_path / "a") as registry:
        register_champion(registry)
        sink = SQLiteLogSink(tmp_path / "log.db")
        traffic = Traffic(registry, sink)
        traffic.serve(T0, T0 + 10 * DAY)
        policy = LoopConfig.from_dict(
            {"model": MODEL, "training": {"holdout_days": 2}, "gate": {"config": GATE},
             "rollout": {"t_opt": 300, "min_exposure": 300}}
        )  # fmt: skip
        runner = LoopRunner(policy, registry=registry, sink=sink)
        runner.step(T0 + 10 * DAY, manual="test")
        for d in range(10, 20):
            traffic.serve(T0 + d * DAY, T0 + (d + 1) * DAY)
            runner.step(T0 + (d + 1) * DAY)
        # a second runner (a restart) sees the same state and has nothing left to do
        again = LoopRunner(policy, registry=registry, sink=sink)
        assert again.step(T0 + 20 * DAY) == []
        steps = [s.step for s in again.store.steps(model=MODEL)]
        assert steps == ["trigger", "gate", "promote"]
        assert registry.get_version(MODEL, "champion").version == 2
        sink.close()
