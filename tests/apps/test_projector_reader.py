"""One reader for live projection and rebuild: an old schema version is upcast alike by both.

The upcaster is real but test-only: it is registered on an isolated `Upcasters` given to
an `EventReader` built here, never on an actor class's registry, so nothing leaks into
other tests. The scenario: `inventory.stock_restocked` is at schema v2 in this test, and
v1 named the restocked amount `count` (v2: `quantity`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
import pytest
import redis.asyncio as aioredis

from actors.inventory import model as inventory
from actors.inventory.actor import InventoryActor
from actors.toolkit.client import ActorClient, ActorResult
from actors.toolkit.domain import Event
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.upcasting import Payload, Upcasters
from apps.projector.main import Settings, create_app
from apps.projector.reader import EventReader, MissingUpcasterError, NewerSchemaError, Schema
from apps.projector.rebuild import Rebuilder
from readmodels.queries import ReadModels
from readmodels.rows import StockRow
from tests.apps.conftest import running
from tests.apps.histories import cloud_event, funded, restocked, shipped

SKU = "sku-up"


class StockRestockedV2(inventory.StockRestocked):
    """The newest schema of inventory.stock_restocked, in this test only."""

    schema_version: ClassVar[int] = 2


def reader_with_upcaster() -> EventReader:
    upcasters = Upcasters()

    @upcasters.register("inventory.stock_restocked", 1)
    def count_becomes_quantity(payload: Payload) -> Payload:
        fields = dict(payload)
        fields["quantity"] = fields.pop("count")
        return fields

    events: dict[str, type[Event]] = {
        **InventoryActor.events,
        StockRestockedV2.type: StockRestockedV2,
    }
    return EventReader({"InventoryActor": Schema(events, upcasters)})


def old_history() -> list[EventEnvelope]:
    """Restock 40 (written as v1, `count`), reserve 3 (v1, its newest): two events."""
    current = restocked(SKU, 40, reserve=3)
    old_payload = {"sku": SKU, "count": 40}
    return [current[0].model_copy(update={"payload": old_payload}), current[1]]


@contextlib.asynccontextmanager
async def projector(
    redis: aioredis.Redis, reader: EventReader | None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(), redis=redis, reader=reader)
    async with running(app, base_url="http://projector") as c:
        yield c


async def deliver(client: httpx.AsyncClient, envelope: EventEnvelope) -> str:
    resp = await client.post("/events/inventory", json=cloud_event(envelope))
    assert resp.status_code == 200
    status: str = resp.json()["status"]
    return status


class OneHistory(ActorClient):
    """Answers History with one actor's log (one page), as an actor host would."""

    def __init__(self, log: list[EventEnvelope]) -> None:
        self.log = log

    async def invoke(self, actor_type, actor_id, method, payload=None, **options: Any):
        assert (actor_type, actor_id, method) == ("InventoryActor", SKU, "History")
        events = [e.model_dump(mode="json") for e in self.log[payload["after"] :]]
        return ActorResult(result={"events": events, "next_after": None})


async def stock_row(redis: aioredis.Redis) -> StockRow | None:
    return (await ReadModels(redis).stock(SKU)).row


async def test_live_projection_and_rebuild_upcast_an_old_event_to_the_same_read_model(
    redis: aioredis.Redis,
) -> None:
    reader = reader_with_upcaster()
    async with projector(redis, reader) as client:
        assert [await deliver(client, e) for e in old_history()] == ["SUCCESS", "SUCCESS"]
    live = await stock_row(redis)

    await redis.flushall()
    snapshot_key = f"actor-host||InventoryActor||{SKU}||aggregate"
    await redis.hset(snapshot_key, mapping={"data": json.dumps({"version": 2}), "version": "2"})
    rebuilder = Rebuilder(redis, OneHistory(old_history()), reader=reader, out=lambda _: None)
    await rebuilder.run()
    rebuilt = await stock_row(redis)

    assert live is not None
    assert (live.on_hand, live.reserved, live.aggregate_version) == (40, 3, 2)
    assert rebuilt == live


async def test_without_the_upcaster_the_old_event_is_rejected_not_misread(
    redis: aioredis.Redis,
) -> None:
    async with projector(redis, None) as client:
        statuses = [await deliver(client, e) for e in old_history()]

    assert statuses == ["SUCCESS", "SUCCESS"]  # the first one recorded as rejected
    rejected = [json.loads(r) for r in await redis.lrange("rm:rejected", 0, -1)]
    assert [r["reason"] for r in rejected] == ["inventory.stock_restocked: payload lacks quantity"]
    row = await stock_row(redis)
    assert row is not None
    assert (row.on_hand, row.reserved, row.aggregate_version) == (0, 3, 0)


async def test_a_schema_version_newer_than_the_projector_knows_is_retried(
    redis: aioredis.Redis,
) -> None:
    newer = restocked(SKU, 5)[0].model_copy(update={"schema_version": 9})
    async with projector(redis, None) as client:
        assert await deliver(client, newer) == "RETRY"

    assert await stock_row(redis) is None
    assert await redis.llen("rm:rejected") == 0


def test_the_reader_refuses_what_it_cannot_bring_to_the_newest_version() -> None:
    reader = reader_with_upcaster()
    restock = restocked(SKU, 5)[0]

    with pytest.raises(NewerSchemaError, match="v3 is newer than this code"):
        reader.read(restock.model_copy(update={"schema_version": 3}))
    no_chain = EventReader(
        {"InventoryActor": Schema({StockRestockedV2.type: StockRestockedV2}, Upcasters())}
    )
    with pytest.raises(MissingUpcasterError, match="no upcaster from v1"):
        no_chain.read(restock)


def test_the_actors_reader_knows_every_projected_event_and_leaves_current_ones_alone() -> None:
    reader = EventReader.for_actors()
    current = [*restocked(SKU, 5, reserve=1), *shipped("ord-1", "cust-1"), *funded("cust-1", 9)]

    assert [reader.newest_version(e) for e in current] == [e.schema_version for e in current]
    assert all(reader.read(e) is e for e in current)
    unknown = current[0].model_copy(update={"type": "inventory.something_else"})
    assert reader.read(unknown) is unknown
