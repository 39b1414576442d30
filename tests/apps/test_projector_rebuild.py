"""Rebuilding read models from actor histories against a real Redis, beside live projection."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from actors.toolkit.client import ActorClient, ActorResult, RuntimeUnavailableError
from actors.toolkit.envelope import EventEnvelope, utcnow
from apps.projector.generations import Generations, RebuildError
from apps.projector.rebuild import Rebuilder, scan_actors
from apps.projector.store import ProjectionStore
from readmodels.keys import Layout
from readmodels.queries import ReadModels
from tests.apps.histories import T0, funded, order_events, restocked, shipped

APP = "actor-host"


class FakeHistories(ActorClient):
    """Answers History from in-memory logs, paging like the actor (`after`, `limit`)."""

    def __init__(self, logs: dict[tuple[str, str], list[EventEnvelope]]) -> None:
        self.logs = logs
        self.calls = 0
        self.before_call: Callable[[], Awaitable[None]] | None = None
        self.failing = False

    async def invoke(self, actor_type, actor_id, method, payload=None, *, headers=None):
        assert method == "History"
        self.calls += 1
        if self.before_call is not None:
            hook, self.before_call = self.before_call, None
            await hook()
        if self.failing:
            raise RuntimeUnavailableError("sidecar unreachable")
        log = self.logs[(actor_type, actor_id)]
        after, limit = payload["after"], payload["limit"]
        page = log[after : after + limit]
        last = after + len(page)
        events = [e.model_dump(mode="json") for e in page]
        next_after = last if last < len(log) else None
        return ActorResult(result={"events": events, "next_after": next_after})


def world() -> dict[tuple[str, str], list[EventEnvelope]]:
    """A few actors' complete logs."""
    logs: dict[tuple[str, str], list[EventEnvelope]] = {
        ("OrderActor", f"ord-{n}"): shipped(f"ord-{n}", f"cust-{n % 2}") for n in range(3)
    }
    logs[("OrderActor", "ord-c")] = order_events("ord-c", "cust-0", lines=(("sku-b", 2, 10),))
    logs[("InventoryActor", "sku-a")] = restocked("sku-a", 50, reserve=3)
    logs[("InventoryActor", "sku-b")] = restocked("sku-b", 2, reserve=2)  # none available
    logs[("WalletActor", "cust-0")] = funded("cust-0", 9_000, hold=500)
    logs[("WalletActor", "cust-1")] = funded("cust-1", 100)
    long_log = restocked("sku-long", 1)  # more than one History page
    logs[("InventoryActor", "sku-long")] = long_log
    for n in range(2, 231):
        extra = long_log[0].model_copy(update={"aggregate_version": n, "event_id": f"long-{n}"})
        long_log.append(extra)
    return logs


async def store_actors(redis: aioredis.Redis, logs: dict[tuple[str, str], list[Any]]) -> None:
    """The actor state store's snapshot keys, as daprd writes them (hash field `data`)."""
    for actor_type, actor_id in logs:
        key = f"{APP}||{actor_type}||{actor_id}||aggregate"
        await redis.hset(key, mapping={"data": json.dumps({"version": 1}), "version": "1"})


async def project_live(store: ProjectionStore, logs: dict[Any, list[EventEnvelope]]) -> None:
    deliveries = [e for log in logs.values() for e in log]
    deliveries += random.Random(3).sample(deliveries, 20)
    random.Random(4).shuffle(deliveries)
    for envelope in deliveries:
        await store.project_live(envelope, applied_at=utcnow())


async def dump(redis: aioredis.Redis, generation: str) -> dict[str, Any]:
    """Every key of a generation but its meta, by suffix, with its content."""
    prefix = f"rm:{generation}:"
    found: dict[str, Any] = {}
    async for key in redis.scan_iter(match=f"{prefix}*"):
        suffix = key.removeprefix(prefix)
        if suffix == "meta":
            continue
        kind = await redis.type(key)
        if kind == "hash":
            found[suffix] = await redis.hgetall(key)
        else:
            found[suffix] = await redis.zrange(key, 0, -1, withscores=True)
    return found


def rebuilder(redis: aioredis.Redis, histories: ActorClient, lines: list[str]) -> Rebuilder:
    return Rebuilder(redis, histories, concurrency=4, out=lines.append, retry_delay_s=0.01)


async def test_a_rebuild_from_the_histories_equals_the_live_built_read_models(redis):
    logs = world()
    await store_actors(redis, logs)
    await project_live(ProjectionStore(redis), logs)
    lines: list[str] = []

    report = await rebuilder(redis, FakeHistories(logs), lines).run(keep_old=True)

    live, rebuilt = await dump(redis, "g0"), await dump(redis, report.generation)
    assert rebuilt == live
    assert len(live) > 15
    assert report.actors == {"orders": 4, "inventory": 3, "wallets": 2}
    assert report.events == sum(len(log) for log in logs.values())
    assert any("orders 4/4  inventory 3/3  wallets 2/2" in line for line in lines)


async def test_queries_follow_the_switch_and_the_old_generation_is_dropped(redis):
    logs = world()
    await store_actors(redis, logs)
    await project_live(ProjectionStore(redis), logs)
    await redis.hset("rm:g123:stock:left-over", mapping={"on_hand": "1"})  # a dead rebuild's

    report = await rebuilder(redis, FakeHistories(logs), []).run()

    assert await Generations(redis).current() == (report.generation, None)
    assert [key async for key in redis.scan_iter(match="rm:g0:*")] == []
    assert await redis.exists("rm:g123:stock:left-over") == 0
    assert report.dropped_keys > 15
    found = await ReadModels(redis).wallet("cust-0")
    assert found.row is not None
    assert (found.row.balance, found.row.held) == (9_000, 500)
    assert found.freshness.last_event_at is not None  # the meta came along


async def test_an_event_applied_live_during_the_rebuild_lands_in_the_new_generation(redis):
    logs = world()
    await store_actors(redis, logs)
    store = ProjectionStore(redis)
    await project_live(store, logs)
    late = order_events("ord-new", "cust-9", start=T0)  # placed after its history was read
    logs[("OrderActor", "ord-new")] = []
    await store_actors(redis, {("OrderActor", "ord-new"): []})
    histories = FakeHistories(logs)

    async def while_rebuilding() -> None:
        for envelope in late:
            await store.project_live(envelope, applied_at=utcnow())

    histories.before_call = while_rebuilding
    report = await rebuilder(redis, histories, []).run(keep_old=True)

    rebuilt = await dump(redis, report.generation)
    assert rebuilt["order:ord-new"]["status"] == "reserving"
    assert rebuilt == await dump(redis, "g0")


async def test_a_second_rebuild_is_refused_while_one_runs_unless_forced(redis):
    generations = Generations(redis)
    await generations.begin("g1")

    with pytest.raises(RebuildError, match="g1 is running"):
        await generations.begin("g2")
    await generations.begin("g3", force=True)
    assert await generations.current() == ("g0", "g3")


async def test_the_switch_is_refused_once_the_rebuild_marker_is_gone(redis):
    generations = Generations(redis)
    await generations.begin("g1", ttl_s=30)
    assert await generations.keep_alive("g1", ttl_s=30)
    await redis.delete(Layout().rebuilding_key)  # it expired: live events stopped coming

    assert not await generations.keep_alive("g1")
    with pytest.raises(RebuildError, match="expired or was taken over"):
        await generations.switch("g1")
    assert await generations.current() == ("g0", None)


async def test_a_failed_rebuild_leaves_the_active_generation_as_it_was(redis):
    logs = world()
    await store_actors(redis, logs)
    await project_live(ProjectionStore(redis), logs)
    before = await dump(redis, "g0")
    histories = FakeHistories(logs)
    histories.failing = True

    with pytest.raises(RuntimeUnavailableError):
        await rebuilder(redis, histories, []).run()

    assert await Generations(redis).current() == ("g0", None)
    assert await dump(redis, "g0") == before
    assert {k async for k in redis.scan_iter(match="rm:g*")} == {
        k async for k in redis.scan_iter(match="rm:g0:*")
    }


async def test_actors_are_enumerated_from_the_actor_state_store_keys(redis):
    await store_actors(redis, {("OrderActor", "ord-1"): [], ("OrderActor", "ord-2"): []})
    await redis.hset(f"{APP}||OrderActor||ord-1||event-1", mapping={"data": "{}"})
    await redis.hset(f"{APP}||WalletActor||cust-1||aggregate", mapping={"data": "{}"})

    assert await scan_actors(redis, app_id=APP, actor_type="OrderActor") == ["ord-1", "ord-2"]
