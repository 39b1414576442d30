"""The projector app over ASGI against a real Redis: subscriptions, idempotency, stats."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from actors.inventory import model as inventory
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.redis_connection import redis_client
from apps.projector.main import Settings, create_app
from tests.apps.conftest import running
from tests.apps.histories import (
    MINUTE,
    T0,
    cloud_event,
    funded,
    restocked,
    shipped,
    stock_events,
)

ORDER, CUSTOMER = "ord-1", "cust-1"


@contextlib.asynccontextmanager
async def serve(redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(feed="dapr"), redis=redis)  # daprd delivers over HTTP
    async with running(app, base_url="http://projector") as c:
        yield c


@pytest.fixture
async def projector(redis: aioredis.Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(redis) as client:
        yield client


@pytest.fixture
async def cut_off() -> AsyncIterator[httpx.AsyncClient]:
    """The projector with its Redis unreachable."""
    unreachable = redis_client("127.0.0.1:1")
    async with serve(unreachable) as client:
        yield client
    await unreachable.aclose()


async def deliver(client: httpx.AsyncClient, topic: str, event: Any) -> str:
    body = cloud_event(event) if not isinstance(event, bytes) else None
    resp = await client.post(f"/events/{topic}", json=body, content=event if body is None else None)
    assert resp.status_code == 200
    status: str = resp.json()["status"]
    return status


async def deliver_all(client: httpx.AsyncClient, topic: str, events: list[EventEnvelope]) -> None:
    for event in events:
        assert await deliver(client, topic, event) == "SUCCESS"


async def deliver_bulk(client: httpx.AsyncClient, topic: str, events: list[Any]) -> dict[str, str]:
    """A bulk delivery as daprd sends it; returns the status the app gave each entry id."""
    entries = [
        {"entryId": f"e{n}", "event": cloud_event(e), "metadata": {}, "contentType": "x"}
        for n, e in enumerate(events)
    ]
    body = {"id": "b1", "type": "com.dapr.event.sent.bulk", "topic": topic, "entries": entries}
    resp = await client.post(f"/events/{topic}", json=body)
    assert resp.status_code == 200
    return {s["entryId"]: s["status"] for s in resp.json()["statuses"]}


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/projector/stats")).json()
    return body


async def test_it_subscribes_to_the_three_contexts_topics_and_its_redelivery_loop(projector):
    resp = await projector.get("/dapr/subscribe")

    assert [(s["pubsubname"], s["topic"]) for s in resp.json()] == [
        ("pubsub", "orders"),
        ("pubsub", "inventory"),
        ("pubsub", "wallet"),
        ("pubsub", "projector-redelivery"),
    ]
    assert resp.json()[0]["routes"] == {"default": "/events/orders"}
    assert {s["deadLetterTopic"] for s in resp.json()} == {"projector-redelivery"}
    assert all(s["bulkSubscribe"]["enabled"] for s in resp.json())


async def test_a_bulk_delivery_projects_every_entry_and_answers_a_status_for_each(projector, redis):
    events: list[Any] = [*shipped(ORDER, CUSTOMER), *shipped("ord-2", CUSTOMER)]
    broken = shipped("ord-3", CUSTOMER)[0].model_dump(mode="json")
    del broken["payload"]["lines"]
    random.Random(7).shuffle(events)  # a batch is unordered: the read model must not care

    statuses = await deliver_bulk(projector, "orders", [*events, broken])

    assert statuses == {f"e{n}": "SUCCESS" for n in range(len(events) + 1)}
    for order in (ORDER, "ord-2"):
        assert await redis.hget(f"rm:g0:order:{order}", "status") == "shipped"
    assert await redis.exists("rm:g0:order:ord-3") == 0
    assert "lacks lines" in json.loads(await redis.lindex("rm:rejected", 0))["reason"]
    body = await stats(projector)
    assert (body["events"]["applied"], body["events"]["dropped"]) == (len(events), 1)
    assert body["bulk"] == {"deliveries": 1, "mean_events": len(events) + 1.0}


async def test_an_event_back_from_the_redelivery_topic_is_projected_by_its_aggregate(
    projector, redis
):
    await deliver_all(projector, "projector-redelivery", funded(CUSTOMER, 1_000))

    assert await redis.hget(f"rm:g0:wallet:{CUSTOMER}", "balance") == "1000"


async def test_an_order_history_becomes_its_summary_and_index_entries(projector, redis):
    await deliver_all(projector, "orders", shipped(ORDER, CUSTOMER))

    row = await redis.hgetall(f"rm:g0:order:{ORDER}")
    assert (row["status"], row["customer_id"], row["total"]) == ("shipped", CUSTOMER, "500")
    assert row["aggregate_version"] == "5"
    assert await redis.zrange("rm:g0:orders:status:shipped", 0, -1) == [ORDER]
    assert await redis.zrange(f"rm:g0:orders:customer:{CUSTOMER}", 0, -1) == [ORDER]
    assert await redis.zcard("rm:g0:orders:status:reserving") == 0
    assert await redis.hgetall(f"rm:g0:counts:{MINUTE}") == {
        "placed": "1",
        "confirmed": "1",
        "shipped": "1",
    }
    assert 46 * 3600 < await redis.ttl(f"rm:g0:counts:{MINUTE}") <= 48 * 3600


async def test_second_delivery_of_the_same_event_changes_nothing(projector, redis):
    placed = shipped(ORDER, CUSTOMER)[0]
    await deliver(projector, "orders", placed)
    before = await redis.hgetall(f"rm:g0:order:{ORDER}")

    assert await deliver(projector, "orders", placed) == "SUCCESS"

    assert await redis.hgetall(f"rm:g0:order:{ORDER}") == before
    assert (await stats(projector))["events"]["duplicates"] == 1


async def test_out_of_order_deltas_add_up_and_are_counted(projector, redis):
    events = restocked("sku-a", 10, reserve=4)
    await deliver_all(projector, "inventory", [events[1], events[0], events[1]])

    row = await redis.hgetall("rm:g0:stock:sku-a")
    assert (row["on_hand"], row["reserved"], row["available"]) == ("10", "4", "6")
    assert await redis.zscore("rm:g0:stock:low", "sku-a") == 6
    counts = (await stats(projector))["events"]
    assert (counts["applied"], counts["out_of_order"], counts["duplicates"]) == (2, 1, 1)


async def test_concurrent_deliveries_for_one_aggregate_apply_each_event_once(projector, redis):
    commands = [inventory.Restock(sku="hot", quantity=n + 1) for n in range(40)]
    events = stock_events("hot", *commands)
    deliveries = events * 2
    random.Random(7).shuffle(deliveries)

    statuses = await asyncio.gather(*(deliver(projector, "inventory", e) for e in deliveries))

    assert set(statuses) == {"SUCCESS"}
    row = await redis.hgetall("rm:g0:stock:hot")
    assert (row["on_hand"], row["aggregate_version"], row["applied_above"]) == ("820", "40", "[]")


async def test_a_wallet_credit_and_hold_become_its_balances(projector, redis):
    await deliver_all(projector, "wallet", funded(CUSTOMER, 1_000, hold=300))

    row = await redis.hgetall(f"rm:g0:wallet:{CUSTOMER}")
    assert (row["balance"], row["held"], row["available"]) == ("1000", "300", "700")


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"data": {"type": "order.placed"}}', b'{"data": "[1, 2]"}'],
)
async def test_a_delivery_without_an_envelope_is_recorded_and_acknowledged(projector, redis, body):
    assert await deliver(projector, "orders", body) == "SUCCESS"

    assert (await stats(projector))["events"]["dropped"] == 1
    [entry] = await redis.lrange("rm:rejected", 0, -1)
    assert json.loads(entry)["topic"] == "orders"
    assert "envelope" in json.loads(entry)["reason"] or "JSON" in json.loads(entry)["reason"]


async def test_a_projected_event_missing_a_field_it_needs_is_recorded_not_applied(projector, redis):
    placed = shipped(ORDER, CUSTOMER)[0].model_dump(mode="json")
    del placed["payload"]["lines"]

    assert await deliver(projector, "orders", placed) == "SUCCESS"
    assert await redis.exists(f"rm:g0:order:{ORDER}") == 0
    assert "lacks lines" in json.loads(await redis.lindex("rm:rejected", 0))["reason"]


async def test_events_that_feed_no_read_model_are_acknowledged_and_ignored(projector, redis):
    placed = shipped(ORDER, CUSTOMER)[0]
    foreign = placed.model_copy(update={"type": "order.audited"})

    assert await deliver(projector, "orders", foreign) == "SUCCESS"
    assert await deliver(projector, "inventory", placed) == "SUCCESS"  # wrong topic for it
    assert (await stats(projector))["events"]["ignored"] == 2
    assert await redis.dbsize() == 0


async def test_an_unrecordable_rejection_answers_retry(cut_off):
    status = await deliver(cut_off, "orders", b"{not json")

    assert status == "RETRY"


async def test_redis_unavailable_answers_retry(cut_off):
    status = await deliver(cut_off, "orders", shipped(ORDER, CUSTOMER)[0])
    body = await stats(cut_off)
    statuses = await deliver_bulk(cut_off, "orders", shipped(ORDER, CUSTOMER)[:2])

    assert status == "RETRY"
    assert body["events"]["retried"] == 1
    assert statuses == {"e0": "RETRY", "e1": "RETRY"}
    assert body["generations"] == {"active": None, "rebuilding": None}


async def test_stats_report_throughput_and_lag_percentiles(projector):
    await deliver_all(projector, "orders", shipped(ORDER, CUSTOMER))

    body = await stats(projector)

    assert body["events"]["applied"] == 5
    assert body["throughput_per_s"] == pytest.approx(5 / 60, abs=0.01)
    lag = body["lag_ms"]
    assert lag["samples"] == 5
    assert 0 < lag["p50"] <= lag["p99"] <= lag["max"]
    assert lag["now"] >= lag["max"] - 1_000
    assert body["last_event_at"] == (T0 + dt.timedelta(milliseconds=500)).isoformat()
    assert body["generations"] == {"active": "g0", "rebuilding": None}


def test_settings_come_from_the_environment():
    env = {"ORDERFLOW_REDIS_HOST": "10.0.0.5:6379", "ORDERFLOW_READ_MODEL_PREFIX": "rm2:"}

    settings = Settings.from_env(env)

    assert (settings.redis_host, settings.prefix) == ("10.0.0.5:6379", "rm2:")
    assert Settings.from_env({}).redis_host == "127.0.0.1:6380"
