"""Routing through HTTP: sticky splits, canaries, shadow copies that are logged and never
returned, admin changes (audited), and changes under load that fail no request."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from watchkeeper.gateway import create_app
from watchkeeper.registry import Registry

from ._apps import CHURN_INPUTS, churn_record, fresh_root, gateway, read_log, serve, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_root(tmp_path, tmp_path_factory.getbasetemp())


def _within(observed: int, n: int, p: float, z: float = 5.0) -> bool:
    return abs(observed - n * p) <= z * math.sqrt(n * p * (1 - p))


async def test_split_is_sticky_per_user_and_follows_weights(root: Path) -> None:
    async with gateway(root) as client:
        resp = await client.put(
            "/v1/admin/models/churn/route",
            json={"mode": "split", "weights": {"champion": 3, "challenger": 1}, "reason": "A/B"},
        )
        assert resp.status_code == 200, resp.text
        arms: dict[str, set[str]] = {}
        for user in range(150):
            for _ in range(2):
                body = (
                    await client.post(
                        "/v1/models/churn/predict",
                        json=churn_record(user),
                        headers={"X-User-Id": f"user-{user}"},
                    )
                ).json()
                arms.setdefault(f"user-{user}", set()).add(body["arm"])
    assert all(len(seen) == 1 for seen in arms.values())  # one user, one arm
    on_challenger = sum(seen == {"challenger"} for seen in arms.values())
    assert _within(on_challenger, 150, 0.25)


async def test_answers_come_from_the_arm_they_name(root: Path) -> None:
    records = [churn_record(i) for i in range(30)]
    frame = pd.DataFrame(records)[list(CHURN_INPUTS)]
    with Registry(root=root) as registry:
        expected = {
            v: registry.load_model("churn", v).predict_proba(frame)[:, 1].tolist() for v in (1, 2)
        }
    async with gateway(root) as client:
        await client.put("/v1/admin/models/churn/route", json={"mode": "canary", "percent": 50})
        seen = set()
        for i in range(12):
            body = (
                await client.post(
                    "/v1/models/churn/predict", json=records, headers={"X-User-Id": f"u{i}"}
                )
            ).json()
            seen.add(body["version"])
            got = [s["yes"] for s in body["scores"]]
            assert got == pytest.approx(expected[body["version"]], abs=1e-12)
    assert seen == {1, 2}


async def test_shadow_copies_are_logged_never_returned(root: Path) -> None:
    records = [churn_record(i) for i in range(5)]
    app = create_app(settings_for(root))
    async with serve(app) as client:
        await client.put("/v1/admin/models/churn/route", json={"mode": "shadow", "fraction": 1.0})
        answers = [
            (await client.post("/v1/models/churn/predict", json=records)).json() for _ in range(3)
        ]
        ctx = app.state.ctx
        for _ in range(200):  # shadow work runs after the responses; wait for it (bounded)
            if not ctx.shadow_tasks:
                break
            await asyncio.sleep(0.01)
        metrics = (await client.get("/metrics")).text
    assert {(a["arm"], a["version"]) for a in answers} == {("champion", 1)}
    primary = read_log(root, "churn")
    everything = read_log(root, "churn", include_shadow=True)
    shadows = [r for r in everything if r["shadow"]]
    assert len(primary) == 15
    assert len(shadows) == 15
    # Same ids as the answers (the log is keyed by id and arm): labels reach both.
    assert {r["id"] for r in shadows} == {i for a in answers for i in a["ids"]}
    assert {(r["arm"], r["version"], r["status"]) for r in shadows} == {("challenger", 2, "ok")}
    frame = pd.DataFrame(records)[list(CHURN_INPUTS)]
    with Registry(root=root) as registry:
        challenger = registry.load_model("churn", 2).predict(frame).tolist()
    by_id = {r["id"]: r for r in shadows}
    for answer in answers:
        got = [by_id[i]["prediction"] for i in answer["ids"]]
        assert got == challenger
    assert (
        'watchkeeper_predictions_total{arm="challenger",model="churn",shadow="true",version="2"}'
        " 15.0" in metrics
    )


async def test_shadow_is_bounded_and_skips_are_counted(root: Path) -> None:
    app = create_app(settings_for(root, max_shadow_tasks=1))
    async with serve(app) as client:
        await client.put("/v1/admin/models/churn/route", json={"mode": "shadow"})
        slow = app.state.ctx.state.current.models["churn"].versions["challenger"]
        original = slow.infer

        def sleepy(X: Any, scores: bool = True) -> Any:
            time.sleep(0.3)
            return original(X, scores)

        slow.infer = sleepy
        for i in range(4):
            resp = await client.post("/v1/models/churn/predict", json=churn_record(i))
            assert resp.status_code == 200
        metrics = (await client.get("/metrics")).text
    assert 'watchkeeper_shadow_skipped_total{model="churn"} 3.0' in metrics


async def test_a_failing_shadow_is_logged_as_an_error(root: Path) -> None:
    app = create_app(settings_for(root))
    async with serve(app) as client:
        await client.put("/v1/admin/models/churn/route", json={"mode": "shadow"})
        shadow = app.state.ctx.state.current.models["churn"].versions["challenger"]

        def broken(X: Any, scores: bool = True) -> Any:
            raise RuntimeError("challenger crashed")

        shadow.infer = broken
        resp = await client.post(
            "/v1/models/churn/predict", json=churn_record(), headers={"X-Request-Id": "r1"}
        )
    assert resp.status_code == 200
    (row,) = [r for r in read_log(root, "churn", include_shadow=True) if r["shadow"]]
    assert (row["id"], row["arm"], row["status"]) == ("r1", "challenger", "error")


async def test_promote_and_rollback_are_audited(root: Path) -> None:
    async with gateway(root) as client:
        await client.put("/v1/admin/models/churn/route", json={"mode": "canary", "percent": 10})
        promoted = await client.post(
            "/v1/admin/models/churn/promote", json={"actor": "ana", "reason": "v2 wins"}
        )
        after_promotion = (
            await client.post("/v1/models/churn/predict", json=churn_record())
        ).json()
        route = (await client.get("/v1/models/churn")).json()["route"]
        rolled = await client.post("/v1/admin/models/churn/rollback", json={"actor": "bob"})
        after_rollback = (await client.post("/v1/models/churn/predict", json=churn_record())).json()
        again = await client.post("/v1/admin/models/churn/rollback")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["version"] == 2
    assert [e["kind"] for e in promoted.json()["events"]] == ["alias", "route"]
    assert (after_promotion["version"], after_promotion["arm"]) == (2, "champion")
    assert route["mode"] == "single"
    assert rolled.json()["event"]["to_version"] == 1
    assert after_rollback["version"] == 1
    assert again.status_code == 409
    with Registry(root=root) as registry:
        trail = [(e.kind, e.actor) for e in registry.history("churn")][-4:]
    assert trail == [
        ("route", "gateway-admin"),
        ("alias", "ana"),
        ("route", "ana"),
        ("rollback", "bob"),
    ]


async def test_admin_errors(root: Path) -> None:
    async with gateway(root) as client:
        unset = await client.put(
            "/v1/admin/models/churn/route",
            json={"mode": "canary", "percent": 5, "challenger": "nobody"},
        )
        invalid = await client.put(
            "/v1/admin/models/churn/route", json={"mode": "canary", "percent": 500}
        )
        unknown = await client.put("/v1/admin/models/ghost/route", json={"mode": "single"})
        bad_name = await client.put("/v1/admin/models/a b/route", json={"mode": "single"})
        not_object = await client.put("/v1/admin/models/churn/route", json=[1])
        bad_target = await client.post("/v1/admin/models/churn/promote", json={"to": "ghost"})
    assert unset.status_code == 409  # valid request, but the registry has no such alias
    assert "alias 'nobody'" in unset.json()["detail"][0]["problem"]
    assert invalid.status_code == 422
    assert "[0, 100]" in invalid.json()["detail"][0]["problem"]
    assert unknown.status_code == 404
    assert bad_name.status_code == 422
    assert not_object.status_code == 422
    assert bad_target.status_code == 409


async def test_changes_made_elsewhere_arrive_without_a_restart(root: Path) -> None:
    """Another process (the CLI, another worker) moves an alias: this worker follows."""
    async with gateway(root, refresh_interval=0.05) as client:
        before = (await client.post("/v1/models/churn/predict", json=churn_record())).json()
        with Registry(root=root) as registry:
            registry.set_alias("churn", "champion", 2, actor="cli")
        deadline = time.monotonic() + 5.0
        version = before["version"]
        while version == 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            version = (await client.post("/v1/models/churn/predict", json=churn_record())).json()[
                "version"
            ]
    assert before["version"] == 1
    assert version == 2


async def test_two_workers_on_one_registry_converge(root: Path) -> None:
    first = create_app(settings_for(root, refresh_interval=0.05))
    second = create_app(settings_for(root, refresh_interval=0.05))
    async with serve(first) as a, serve(second) as b:
        await a.put("/v1/admin/models/churn/route", json={"mode": "canary", "percent": 100})
        deadline = time.monotonic() + 5.0
        arm = None
        while arm != "challenger" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            arm = (await b.post("/v1/models/churn/predict", json=churn_record())).json()["arm"]
    assert arm == "challenger"


async def test_route_flips_under_load_fail_no_request(root: Path) -> None:
    statuses: list[int] = []
    versions: set[int] = set()
    async with gateway(root, refresh_interval=0.01) as client:

        async def hammer(worker: int) -> None:
            for i in range(25):
                resp = await client.post(
                    "/v1/models/churn/predict",
                    json=[churn_record(i), churn_record(i + 1)],
                    headers={"X-User-Id": f"w{worker}-{i}"},
                )
                statuses.append(resp.status_code)
                if resp.status_code == 200:
                    versions.add(resp.json()["version"])

        async def flip() -> None:
            routes = [
                {"mode": "canary", "percent": 50},
                {"mode": "shadow"},
                {"mode": "split", "weights": {"champion": 1, "challenger": 1}},
                {"mode": "single", "alias": "challenger"},
            ]
            for i in range(12):
                resp = await client.put("/v1/admin/models/churn/route", json=routes[i % 4])
                assert resp.status_code == 200
                await client.post("/v1/admin/models/churn/promote", json={"reset_route": False})
                await client.post("/v1/admin/models/churn/rollback")

        await asyncio.gather(flip(), *(hammer(w) for w in range(6)))
    assert statuses == [200] * 150
    assert versions == {1, 2}


async def test_a_label_reaches_the_answer_and_its_shadow_copy(root: Path) -> None:
    # Shadow evaluation needs labels: the challenger's copy is logged under the same id.
    app = create_app(settings_for(root))
    async with serve(app) as client:
        await client.put("/v1/admin/models/churn/route", json={"mode": "shadow", "fraction": 1.0})
        answer = (
            await client.post(
                "/v1/models/churn/predict", json=churn_record(1), headers={"X-Request-Id": "q1"}
            )
        ).json()
        ctx = app.state.ctx
        for _ in range(200):
            if not ctx.shadow_tasks:
                break
            await asyncio.sleep(0.01)
        fed = await client.post("/v1/models/churn/feedback", json={"id": "q1", "label": "yes"})
    assert answer["ids"] == ["q1"]
    assert fed.json()["matched"] == 1
    rows = read_log(root, "churn", include_shadow=True)
    assert {(r["id"], r["arm"], r["shadow"], r["label"]) for r in rows} == {
        ("q1", "champion", False, "yes"),
        ("q1", "challenger", True, "yes"),
    }
