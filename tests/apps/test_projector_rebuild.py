"""Rebuilding read models from actor histories against a real Redis, beside live projection."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import redis.asyncio as aioredis

from actors.toolkit.client import ActorClient, RuntimeUnavailableError
from actors.toolkit.envelope import EventEnvelope, utcnow
from actors.toolkit.sidecar import SidecarUnavailableError
from actors.toolkit.testing import InMemorySidecar
from apps.projector.generations import Generations, RebuildError
from apps.projector.rebuild import Rebuilder, scan_actors
from apps.projector.store import ProjectionStore
from readmodels.keys import Layout
from readmodels.queries import ReadModels
from tests.apps.histories import T0, order_events

APP = "actor-host"


Logs = dict[tuple[str, str], list[EventEnvelope]]


async def world(sidecar: InMemorySidecar) -> Logs:
    """A few real actors, sent commands; their complete logs, as they published them."""
    actors = ActorClient(sidecar)

    async def send(actor_type: str, actor_id: str, method: str, **payload: Any) -> None:
        await actors.invoke(actor_type, actor_id, method, payload)

    for n in range(3):  # shipped
        line = {"sku": "sku-a", "quantity": 1, "unit_price": 500}
        await send("OrderActor", f"ord-{n}", "Place", customer_id=f"cust-{n % 2}", lines=[line])
        await send("OrderActor", f"ord-{n}", "OnStockReserved", sku="sku-a")
        await send("OrderActor", f"ord-{n}", "OnPaymentAuthorized")
        await send("OrderActor", f"ord-{n}", "OnShipmentDispatched", shipment_id="shp-1")
    line = {"sku": "sku-b", "quantity": 2, "unit_price": 10}
    await send("OrderActor", "ord-c", "Place", customer_id="cust-0", lines=[line])
    await send("InventoryActor", "sku-a", "Restock", quantity=50)
    await send("InventoryActor", "sku-a", "Reserve", order_id="ord-x", quantity=3)
    await send("InventoryActor", "sku-b", "Restock", quantity=2)
    await send("InventoryActor", "sku-b", "Reserve", order_id="ord-x", quantity=2)  # none left
    await send("WalletActor", "cust-0", "Deposit", amount=9_000)
    await send("WalletActor", "cust-0", "Authorize", order_id="ord-x", amount=500)
    await send("WalletActor", "cust-1", "Deposit", amount=100)
    for _ in range(230):  # more than one History page
        await send("InventoryActor", "sku-long", "Restock", quantity=1)
    logs: Logs = {}
    for data in sidecar.events():
        envelope = EventEnvelope.model_validate(data)
        logs.setdefault((envelope.aggregate_type, envelope.aggregate_id), []).append(envelope)
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
    sidecar = InMemorySidecar()
    logs = await world(sidecar)
    await store_actors(redis, logs)
    await project_live(ProjectionStore(redis), logs)
    lines: list[str] = []

    report = await rebuilder(redis, ActorClient(sidecar), lines).run(keep_old=True)

    live, rebuilt = await dump(redis, "g0"), await dump(redis, report.generation)
    assert rebuilt == live
    assert len(live) > 15
    assert report.actors == {"orders": 4, "inventory": 3, "wallets": 2}
    assert report.events == sum(len(log) for log in logs.values())
    assert any("orders 4/4  inventory 3/3  wallets 2/2" in line for line in lines)


async def test_queries_follow_the_switch_and_the_old_generation_is_dropped(redis):
    sidecar = InMemorySidecar()
    logs = await world(sidecar)
    await store_actors(redis, logs)
    await project_live(ProjectionStore(redis), logs)
    await redis.hset("rm:g123:stock:left-over", mapping={"on_hand": "1"})  # a dead rebuild's

    report = await rebuilder(redis, ActorClient(sidecar), []).run()

    assert await Generations(redis).current() == (report.generation, None)
    assert [key async for key in redis.scan_iter(match="rm:g0:*")] == []
    assert await redis.exists("rm:g123:stock:left-over") == 0
    assert report.dropped_keys > 15
    found = await ReadModels(redis).wallet("cust-0")
    assert found.row is not None
    assert (found.row.balance, found.row.held) == (9_000, 500)
    assert found.freshness.last_event_at is not None  # the meta came along


async def test_an_event_applied_live_during_the_rebuild_lands_in_the_new_generation(redis):
    sidecar = InMemorySidecar()
    logs = await world(sidecar)
    await store_actors(redis, logs)
    store = ProjectionStore(redis)
    await project_live(store, logs)
    late = order_events("ord-new", "cust-9", start=T0)  # placed after its history was read
    await store_actors(redis, {("OrderActor", "ord-new"): []})  # its actor has no events yet

    async def while_rebuilding() -> None:
        for envelope in late:
            await store.project_live(envelope, applied_at=utcnow())

    sidecar.before_next(while_rebuilding, path="/v1.0/actors/")
    report = await rebuilder(redis, ActorClient(sidecar), []).run(keep_old=True)

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
    sidecar = InMemorySidecar()
    logs = await world(sidecar)
    await store_actors(redis, logs)
    await project_live(ProjectionStore(redis), logs)
    before = await dump(redis, "g0")
    sidecar.fail(times=None, error=SidecarUnavailableError("connection refused"))

    with pytest.raises(RuntimeUnavailableError):
        await rebuilder(redis, ActorClient(sidecar), []).run()

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
