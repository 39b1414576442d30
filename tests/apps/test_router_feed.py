"""The router's stream feed against a real Redis: the concurrent feed's mechanics (slots,
acknowledgements, RETRY, claims) with a decider of the test's own, then the router's
decider over the real actors (in-memory sidecar): what it skips, routes and traces."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from actors import catalog
from actors.reactions import SPECS, build_router
from actors.toolkit.client import ActorClient
from actors.toolkit.concurrentfeed import ConcurrentStreamFeed
from actors.toolkit.metrics import RouterMetrics
from actors.toolkit.publisher import SidecarPublisher
from actors.toolkit.streamfeed import Entry, FeedSettings, feed_mode, running
from actors.toolkit.testing import InMemorySidecar
from apps.actor_host.feed import RouteEntries, router_feed, router_feed_settings
from apps.actor_host.main import Settings, create_app
from apps.actor_host.subscriptions import DeadLetters, Delivering
from tests.apps.conftest import eventually

GROUP = "actor-host"
FAST = FeedSettings(
    group=GROUP,
    consumer="actor-host-1",
    block_ms=50,
    claim_idle_ms=100,
    claim_every_s=0.1,
    retry_after_s=0.05,
    max_in_flight=4,
    ack_linger_ms=0,  # acknowledged with every read: claims after 100 ms idle work
)
SAMPLES = Path(__file__).parents[1] / "contracts" / "samples"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def pending_ids(raw: aioredis.Redis, stream: str) -> list[bytes]:
    rows = await raw.xpending_range(stream, GROUP, min="-", max="+", count=1000)
    return [row["message_id"] for row in rows if isinstance(row["message_id"], bytes)]


async def _grouped(raw: aioredis.Redis, stream: str) -> bool:
    return bool(await raw.exists(stream)) and bool(await raw.xinfo_groups(stream))


class Gate:
    """Decides entries by their data: those in `held` wait for `release(data)`; those in
    `refuse` answer "not now". Counts how many it decides at once."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.held: dict[bytes, asyncio.Event] = {}
        self.refuse: set[bytes] = set()
        self.now = 0
        self.most = 0

    def hold(self, *data: bytes) -> None:
        for d in data:
            self.held[d] = asyncio.Event()

    def release(self, *data: bytes) -> None:
        for d in data:
            self.held[d].set()

    async def __call__(self, entry: Entry) -> bool:
        data = entry[2][b"data"]
        self.seen.append(data)
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            if data in self.held:
                await self.held[data].wait()
            return data not in self.refuse
        finally:
            self.now -= 1


@contextlib.asynccontextmanager
async def feeding(
    raw: aioredis.Redis, *, hold: bytes | None = None, refuse: bytes | None = None
) -> AsyncIterator[tuple[Gate, ConcurrentStreamFeed]]:
    """A running feed of stream "s" deciding through a Gate that holds `hold` and refuses
    `refuse`, once its group exists."""
    gate = Gate()
    if hold is not None:
        gate.hold(hold)
    if refuse is not None:
        gate.refuse.add(refuse)
    feed = ConcurrentStreamFeed(raw, streams=("s",), decide_one=gate, settings=FAST)
    async with running(feed):
        await eventually(lambda: _grouped(raw, "s"), what="the group")
        yield gate, feed


async def test_a_slow_entry_holds_only_its_own_slot_and_the_others_are_acknowledged(raw):
    async with feeding(raw, hold=b"slow") as (gate, feed):
        slow = await raw.xadd("s", {"data": b"slow"})
        for n in range(6):
            await raw.xadd("s", {"data": f"e{n}".encode()})

        async def only_the_slow_one_pending() -> bool:
            return await pending_ids(raw, "s") == [slow]

        await eventually(only_the_slow_one_pending, what="every fast entry acknowledged")
        assert feed.stats.in_flight == 1
        gate.release(b"slow")

        async def none_pending() -> bool:
            return await pending_ids(raw, "s") == []

        await eventually(none_pending, what="the slow entry acknowledged")

    assert sorted(gate.seen) == [b"e0", b"e1", b"e2", b"e3", b"e4", b"e5", b"slow"]
    assert feed.stats.acked == 7


async def test_no_more_entries_than_max_in_flight_are_decided_at_once(raw):
    gate = Gate()
    data = [f"e{n}".encode() for n in range(10)]
    gate.hold(*data)
    feed = ConcurrentStreamFeed(raw, streams=("a", "b"), decide_one=gate, settings=FAST)
    await feed.ensure_groups()
    for d in data:
        await raw.xadd("a" if d < b"e5" else "b", {"data": d})

    async with running(feed):

        async def slots_full() -> bool:
            return gate.now == FAST.max_in_flight

        await eventually(slots_full, what="every slot busy")
        for _ in range(5):  # a few more turns of the loop (claims, waits): still 4
            await asyncio.sleep(FAST.claim_every_s)
        assert (gate.now, feed.stats.in_flight) == (4, 4)
        gate.release(*data)

        async def all_acknowledged() -> bool:
            return await pending_ids(raw, "a") == [] and await pending_ids(raw, "b") == []

        await eventually(all_acknowledged, what="every entry acknowledged")

    assert gate.most == FAST.max_in_flight
    assert sorted(gate.seen) == data


async def test_an_entry_answered_not_now_stays_pending_and_is_claimed_until_it_is_taken(raw):
    async with feeding(raw, refuse=b"later") as (gate, feed):
        await raw.xadd("s", {"data": b"now"})
        later = await raw.xadd("s", {"data": b"later"})

        async def claimed_again() -> bool:
            return gate.seen.count(b"later") >= 3

        await eventually(claimed_again, what="the refused entry claimed again")
        assert await pending_ids(raw, "s") == [later]
        gate.refuse.clear()

        async def taken() -> bool:
            return await pending_ids(raw, "s") == []

        await eventually(taken, what="the entry taken")

    assert gate.seen.count(b"now") == 1
    assert feed.stats.claimed >= 2
    assert feed.stats.left_pending >= 2


async def test_not_now_is_tried_again_in_place_before_the_entry_is_left_pending(raw):
    gate = Gate()
    gate.refuse.add(b"flaky")
    settings = FeedSettings(
        group=GROUP,
        consumer="actor-host-1",
        block_ms=50,
        claim_idle_ms=60_000,  # no claim in this test: only the retries in place
        retry_for_s=60.0,
        retry_backoff_s=0.01,
        retry_backoff_max_s=0.02,
    )
    feed = ConcurrentStreamFeed(raw, streams=("s",), decide_one=gate, settings=settings)

    async with running(feed):
        await eventually(lambda: _grouped(raw, "s"), what="the group")
        await raw.xadd("s", {"data": b"flaky"})

        async def retried() -> bool:
            return gate.seen.count(b"flaky") >= 3

        await eventually(retried, what="three attempts")
        gate.refuse.clear()

        async def taken() -> bool:
            return await pending_ids(raw, "s") == []

        await eventually(taken, what="the entry acknowledged")

    assert feed.stats.claimed == 0
    assert feed.stats.left_pending == 0
    assert feed.stats.retried >= 2


async def test_entries_another_consumer_abandoned_are_claimed_and_acknowledged(raw):
    await raw.xgroup_create("s", GROUP, id="0", mkstream=True)
    await raw.xadd("s", {"data": b"stranded"})
    # daprd's subscription read it (daprd's consumer name is the app id), then went away
    await raw.xreadgroup(GROUP, "actor-host", {"s": ">"}, count=10)
    gate = Gate()
    feed = ConcurrentStreamFeed(raw, streams=("s",), decide_one=gate, settings=FAST)

    async with running(feed):

        async def taken() -> bool:
            return gate.seen == [b"stranded"] and await pending_ids(raw, "s") == []

        await eventually(taken, what="the stranded entry claimed and acknowledged")

    assert feed.stats.claimed == 1


async def test_an_entry_decided_while_a_claim_is_on_its_way_is_not_decided_again(raw):
    gate = Gate()
    gate.hold(b"slow")
    feed = ConcurrentStreamFeed(raw, streams=("s",), decide_one=gate, settings=FAST)
    claim_page = feed._claim_page

    async def decision_ends_meanwhile(*args: Any) -> Any:
        """The decision ends after the claim flushed the acknowledgements, before Redis
        answers the claim (which then returns the entry: idle, not acknowledged)."""
        if b"slow" in gate.seen and not gate.held[b"slow"].is_set():
            gate.release(b"slow")

            async def ended() -> bool:
                return feed.stats.in_flight == 0

            await eventually(ended, what="the decision's end")
        return await claim_page(*args)

    feed._claim_page = decision_ends_meanwhile  # type: ignore[method-assign,assignment]
    async with running(feed):
        await eventually(lambda: _grouped(raw, "s"), what="the group")
        await raw.xadd("s", {"data": b"slow"})

        async def acknowledged() -> bool:
            return gate.held[b"slow"].is_set() and await pending_ids(raw, "s") == []

        await eventually(acknowledged, what="the entry decided and acknowledged")
        await asyncio.sleep(3 * FAST.claim_every_s)  # more claims: none takes it again

    assert gate.seen == [b"slow"]
    assert feed.stats.claimed == 0


async def test_stop_ends_it_even_without_a_cancellation_while_a_slot_is_busy(raw):
    gate = Gate()
    gate.hold(b"slow")
    settings = dataclasses.replace(FAST, max_in_flight=1)
    feed = ConcurrentStreamFeed(raw, streams=("s",), decide_one=gate, settings=settings)
    task = asyncio.create_task(feed.run())
    await eventually(lambda: _grouped(raw, "s"), what="the group")
    slow = await raw.xadd("s", {"data": b"slow"})

    async def waiting_for_a_slot() -> bool:
        return feed.stats.in_flight == 1

    await eventually(waiting_for_a_slot, what="the one slot taken")
    feed.stop()

    async def ended() -> bool:
        return task.done()

    await eventually(ended, what="the feed to end")
    assert await pending_ids(raw, "s") == [slow]  # its decision was cancelled: pending


async def test_cancelled_it_leaves_what_it_was_deciding_pending_for_its_next_start(raw):
    async with feeding(raw, hold=b"slow") as (gate, _feed):
        slow = await raw.xadd("s", {"data": b"slow"})
        await raw.xadd("s", {"data": b"quick"})

        async def both_seen() -> bool:
            return sorted(gate.seen) == [b"quick", b"slow"]

        await eventually(both_seen, what="both entries being decided")

    assert await pending_ids(raw, "s") == [slow]  # "quick" acknowledged at shutdown
    restarted = Gate()
    again = ConcurrentStreamFeed(raw, streams=("s",), decide_one=restarted, settings=FAST)
    await again.drain_own_pending()

    async def decided() -> bool:
        return restarted.seen == [b"slow"] and again.stats.in_flight == 0

    await eventually(decided, what="the pending entry decided after the restart")
    await again.flush_acks()
    assert await pending_ids(raw, "s") == []


async def test_with_a_linger_the_entries_added_meanwhile_come_in_one_read(raw):
    lingering = dataclasses.replace(FAST, linger_ms=300)
    gate = Gate()
    feed = ConcurrentStreamFeed(raw, streams=("s",), decide_one=gate, settings=lingering)
    async with running(feed):
        await eventually(lambda: _grouped(raw, "s"), what="the group")
        await raw.xadd("s", {"data": b"first"})

        async def first_seen() -> bool:
            return gate.seen == [b"first"]

        await eventually(first_seen, what="the first entry decided")
        for n in range(3):  # one by one: without the linger, a blocked read takes the first
            await raw.xadd("s", {"data": f"e{n}".encode()})

        async def all_acknowledged() -> bool:
            return len(gate.seen) == 4 and await pending_ids(raw, "s") == []

        await eventually(all_acknowledged, what="every entry decided and acknowledged")
    assert feed.stats.reads == 2


async def test_at_a_stop_what_it_held_undecided_is_handed_back_to_the_other_consumers(raw):
    # claims only after a minute idle: without the hand-back, the other replica would not
    # take the held entries before that
    slow_claims = dataclasses.replace(FAST, claim_idle_ms=60_000, max_in_flight=1)
    for stream in ("s", "t"):
        await raw.xgroup_create(stream, GROUP, id="0", mkstream=True)
    slow = await raw.xadd("s", {"data": b"slow"})
    waiting = await raw.xadd("t", {"data": b"waiting"})  # read with it, no slot left
    gate = Gate()
    gate.hold(b"slow")
    stopping = ConcurrentStreamFeed(raw, streams=("s", "t"), decide_one=gate, settings=slow_claims)
    async with running(stopping):

        async def held() -> bool:
            return gate.seen == [b"slow"] and stopping.holds("t", waiting)

        await eventually(held, what="one entry being decided, one waiting for the slot")

    assert stopping.stats.handed_back == 2
    for stream, entry_id in (("s", slow), ("t", waiting)):
        [row] = await raw.xpending_range(stream, GROUP, min="-", max="+", count=10)
        assert (row["message_id"], row["times_delivered"]) == (entry_id, 1)
        assert row["time_since_delivered"] >= 60_000

    other = Gate()
    replica = dataclasses.replace(slow_claims, consumer="actor-host-2", max_in_flight=4)
    taking = ConcurrentStreamFeed(raw, streams=("s", "t"), decide_one=other, settings=replica)
    async with running(taking):

        async def taken() -> bool:
            return sorted(other.seen) == [b"slow", b"waiting"] and (
                await pending_ids(raw, "s") == await pending_ids(raw, "t") == []
            )

        await eventually(taken, what="the other replica to take both at its next claim")
    assert taking.stats.claimed == 2


# --- the router's decider, over the real actors -------------------------------------------


def _cloud_event(sample: str, **override: Any) -> bytes:
    data = json.loads((SAMPLES / sample).read_text())
    event = {
        "id": data["event_id"],
        "type": data["type"],
        "traceparent": TRACEPARENT,
        "data": data,
        **override,
    }
    return json.dumps(event).encode()


async def _route_placed(raw: aioredis.Redis, feed: ConcurrentStreamFeed, *, what: str) -> None:
    """Once the groups exist, add the sample order.placed and wait until it was decided
    and acknowledged."""
    await eventually(lambda: _grouped(raw, catalog.ORDERS), what="the groups")
    await raw.xadd(catalog.ORDERS, {"data": _cloud_event("order.placed.v1.json")})

    async def routed() -> bool:
        return await pending_ids(raw, catalog.ORDERS) == [] and feed.stats.acked == 1

    await eventually(routed, what=what)


@contextlib.asynccontextmanager
async def routing(
    raw: aioredis.Redis, sidecar: InMemorySidecar
) -> AsyncIterator[tuple[ConcurrentStreamFeed, RouterMetrics]]:
    router, metrics = build_router(), RouterMetrics()
    publisher = SidecarPublisher(sidecar, pubsub=catalog.PUBSUB)
    delivering = Delivering(ActorClient(sidecar), DeadLetters(publisher, metrics=metrics))
    decide = RouteEntries.for_router(
        router, delivering, own_topics=frozenset(s.topic for s in SPECS), metrics=metrics
    )
    settings = router_feed_settings(group=GROUP, consumer="actor-host-1")
    fast = dataclasses.replace(settings, block_ms=50, claim_every_s=0.1)
    feed = router_feed(raw, decide, settings=fast)
    async with running(feed):
        yield feed, metrics


def _count(metrics: RouterMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "orderflow_router_feed_entries_total", {"outcome": outcome}
    )
    return value or 0.0


async def test_an_event_a_reaction_wants_becomes_its_actor_calls_in_its_trace(raw):
    sidecar = InMemorySidecar()
    async with routing(raw, sidecar) as (feed, metrics):
        await _route_placed(raw, feed, what="order.placed routed and acknowledged")

    reserves = [r for r in sidecar.requests if r.path.endswith("/method/Reserve")]
    assert sorted(r.path.split("/")[4] for r in reserves) == ["mug-12m", "tea-green-100g"]
    assert {r.headers.get("traceparent") for r in reserves} == {TRACEPARENT}
    assert _count(metrics, "routed") == 1


async def test_a_type_no_reaction_wants_on_our_own_topics_is_acknowledged_unrouted(raw):
    sidecar = InMemorySidecar()
    confirmed = _cloud_event("order.placed.v1.json", type="order.confirmed")
    unknown = _cloud_event("order.placed.v1.json", type="order.from_the_future")
    async with routing(raw, sidecar) as (feed, metrics):
        await eventually(lambda: _grouped(raw, catalog.ORDERS), what="the groups")
        await raw.xadd(catalog.ORDERS, {"data": confirmed})
        await raw.xadd(catalog.ORDERS, {"data": unknown})

        async def acknowledged() -> bool:
            return await pending_ids(raw, catalog.ORDERS) == [] and feed.stats.acked == 2

        await eventually(acknowledged, what="both entries acknowledged")

    assert sidecar.requests == []  # no actor call, no dead letter: what daprd's rule did
    assert _count(metrics, "skipped") == 2


async def test_on_another_services_topic_an_unknown_type_is_a_dead_letter(raw):
    sidecar = InMemorySidecar()
    odd = _cloud_event("order.placed.v1.json", type="shipment.teleported")
    async with routing(raw, sidecar) as (feed, _):
        await eventually(lambda: _grouped(raw, catalog.SHIPMENTS), what="the groups")
        await raw.xadd(catalog.SHIPMENTS, {"data": odd})
        await raw.xadd(catalog.SHIPMENTS, {"data": b"{not json"})

        async def recorded() -> bool:
            return len(sidecar.events(catalog.DEAD_LETTERS)) == 2 and feed.stats.acked == 2

        await eventually(recorded, what="two dead letters, both entries acknowledged")

    codes = sorted(letter["code"] for letter in sidecar.events(catalog.DEAD_LETTERS))
    assert codes == ["event.not_json", "event.unknown_type"]
    assert await pending_ids(raw, catalog.SHIPMENTS) == []


async def test_an_actor_call_that_fails_transiently_is_retried_until_it_lands(raw):
    sidecar = InMemorySidecar()
    sidecar.fail(times=2, path="/v1.0/actors/InventoryActor/")
    async with routing(raw, sidecar) as (feed, metrics):
        await _route_placed(raw, feed, what="order.placed routed after the failures")

    assert _count(metrics, "retry") >= 1
    assert _count(metrics, "routed") == 1
    assert {c.actor_id for c in sidecar.calls("Reserve")} == {"mug-12m", "tea-green-100g"}


async def test_a_retried_order_placed_sends_the_same_outcomes_call_the_order_applies_once(raw):
    sidecar = InMemorySidecar()
    data = json.loads((SAMPLES / "order.placed.v1.json").read_text())
    order_id, actors = data["aggregate_id"], ActorClient(sidecar)
    place = {key: data["payload"][key] for key in ("customer_id", "lines")}
    await actors.invoke(catalog.ORDER_ACTOR, order_id, "Place", place)
    for sku in ("tea-green-100g", "mug-12m"):
        await actors.invoke(catalog.INVENTORY_ACTOR, sku, "Restock", {"quantity": 5})
    customer = data["payload"]["customer_id"]
    await actors.invoke(catalog.WALLET_ACTOR, customer, "Deposit", {"amount": 5_000})
    sidecar.fail(times=2, path=f"/v1.0/actors/OrderActor/{order_id}/method/OnStockOutcomes")
    async with routing(raw, sidecar) as (feed, _):
        await _route_placed(raw, feed, what="order.placed routed after the failed outcomes calls")

    calls = sidecar.calls("OnStockOutcomes")
    assert len(calls) == 3
    assert all(call.payload == calls[0].payload for call in calls)
    assert len(sidecar.calls("Reserve")) == 6  # re-sent, answered from the inboxes
    # then the Authorize and the order's OnPaymentAuthorized, once
    order = await actors.invoke(catalog.ORDER_ACTOR, order_id, "Get")
    assert (order.result["status"], order.aggregate_version) == ("confirmed", 5)
    stock = await actors.invoke(catalog.INVENTORY_ACTOR, "mug-12m", "Get")
    assert stock.result["reserved"] == 1  # held once
    wallet = await actors.invoke(catalog.WALLET_ACTOR, customer, "Get")
    assert wallet.result["held"] == data["payload"]["total"]
    assert len(sidecar.calls("Authorize")) == len(sidecar.calls("OnPaymentAuthorized")) == 1


def test_the_feed_mode_is_streams_or_dapr() -> None:
    assert feed_mode("ORDERFLOW_ROUTER_FEED", " Dapr ") == "dapr"
    with pytest.raises(ValueError, match="ORDERFLOW_ROUTER_FEED must be one of streams, dapr"):
        feed_mode("ORDERFLOW_ROUTER_FEED", "kafka")


async def _subscribe(feed: str) -> list[dict[str, Any]]:
    app = create_app(Settings(router_feed=feed))
    transport = httpx.ASGITransport(app=app)  # no lifespan: no sidecar needed for this
    async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
        body: list[dict[str, Any]] = (await client.get("/dapr/subscribe")).json()
    return body


async def test_with_the_streams_feed_the_actor_host_asks_daprd_for_no_subscription() -> None:
    assert await _subscribe("streams") == []
    assert [s["topic"] for s in await _subscribe("dapr")] == build_router().topics
