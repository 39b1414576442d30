"""A commit publishes its events inside its append (actors.toolkit.streams): published iff
committed, no publish call, and an outbox left from before still goes out first, in order.

The real actor over the in-memory store, which records the stream entries its appends
write; the production store's script is checked on a real Redis in
tests/integration/test_redis_store.py.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from actors.inventory.actor import InventoryActor
from actors.toolkit.actor import ActorDeps
from actors.toolkit.store import ConcurrencyError, InMemoryStores, Snapshot
from actors.toolkit.streams import StreamPublishing
from actors.toolkit.testing import activate
from tests.actors.doubles import RecordingPublisher

STREAMS = StreamPublishing("pubsub", source="actor-host")


def restock(quantity: int, message_id: str = "") -> bytes:
    body: dict[str, Any] = {"quantity": quantity}
    if message_id:
        body["message_id"] = message_id
    return json.dumps(body).encode()


def entries(stores: InMemoryStores, topic: str = "inventory") -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in stores.streams.get(topic, [])]


async def snapshot_of(stores: InMemoryStores, sku: str) -> Snapshot:
    raw = await stores("InventoryActor", sku).read("aggregate")
    assert raw is not None
    return Snapshot.model_validate_json(raw)


async def test_a_commit_writes_its_cloud_events_to_the_topic_and_calls_no_publisher() -> None:
    stores, publisher = InMemoryStores(), RecordingPublisher()
    deps = ActorDeps(publisher=publisher, store=stores, streams=STREAMS)
    actor = activate(InventoryActor, "tea", deps)

    body = json.loads(await actor.invoke("Restock", restock(5)))

    assert publisher.sent == []
    [event] = entries(stores)
    assert event["id"] == body["events"][0]["event_id"] == event["data"]["event_id"]
    assert event["type"] == event["data"]["type"] == "inventory.stock_restocked"
    assert (event["source"], event["topic"], event["pubsubname"]) == (
        "actor-host",
        "inventory",
        "pubsub",
    )
    assert (event["specversion"], event["datacontenttype"]) == ("1.0", "application/json")
    assert event["data"]["aggregate_version"] == 1
    occurred = dt.datetime.fromisoformat(event["data"]["occurred_at"])
    assert dt.datetime.fromisoformat(event["time"]) == occurred  # when it happened
    assert (await snapshot_of(stores, "tea")).published == 1  # the watermark moved with it


async def test_a_duplicate_and_a_refusal_publish_nothing() -> None:
    stores = InMemoryStores()
    deps = ActorDeps(publisher=RecordingPublisher(), store=stores, streams=STREAMS)
    actor = activate(InventoryActor, "tea", deps)
    await actor.invoke("Restock", restock(5, "m-1"))

    again = json.loads(await actor.invoke("Restock", restock(5, "m-1")))
    refused = json.loads(await actor.invoke("Commit", b'{"order_id": "ord-none"}'))

    assert again["duplicate"] is True
    assert refused["ok"] is False
    assert [e["data"]["aggregate_version"] for e in entries(stores)] == [1]


async def test_a_fenced_out_activation_publishes_nothing() -> None:
    stores = InMemoryStores()
    stale = activate(
        InventoryActor, "tea", ActorDeps(RecordingPublisher(), stores, streams=STREAMS)
    )
    current = activate(
        InventoryActor, "tea", ActorDeps(RecordingPublisher(), stores, streams=STREAMS)
    )
    await stale.get()
    await current.invoke("Restock", restock(3))

    with pytest.raises(ConcurrencyError):
        await stale.invoke("Restock", restock(4))

    assert [e["data"]["payload"]["quantity"] for e in entries(stores)] == [3]


async def test_events_left_in_an_outbox_go_out_first_and_in_order() -> None:
    """Events a sidecar-publishing host committed but could not publish (its watermark
    below its version) are re-sent through the publisher on activation; until they are
    out, new commits queue behind them instead of overtaking them on the stream."""
    stores, down = InMemoryStores(), RecordingPublisher()
    down.down = True
    before = activate(InventoryActor, "tea", ActorDeps(publisher=down, store=stores))
    await before.invoke("Restock", restock(1))
    assert (await snapshot_of(stores, "tea")).published == 0  # committed, not published

    publisher = RecordingPublisher()
    publisher.down = True
    deps = ActorDeps(publisher=publisher, store=stores, streams=STREAMS)
    after = activate(InventoryActor, "tea", deps)
    await after.invoke("Restock", restock(2))  # the outbox still holds version 1
    assert entries(stores) == []
    assert publisher.sent == []

    publisher.down = False
    await after.invoke("Restock", restock(3))  # behind 1 and 2: all three go out now
    await after.invoke("Restock", restock(4))  # nothing waits: in the append

    assert [env.aggregate_version for _, env in publisher.sent] == [1, 2, 3]
    assert [e["data"]["aggregate_version"] for e in entries(stores)] == [4]
    assert (await snapshot_of(stores, "tea")).published == 4
