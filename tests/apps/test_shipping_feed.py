"""The shipping partner's feed of the orders stream against a real Redis: what it ships,
skips, drops, retries and claims, and when it acknowledges. Entries are written as the
actor hosts' append writes them (actors.toolkit.streams); the answers are published
through the in-memory sidecar's publish API (actors.toolkit.testing), as the router's
feed tests call actors through it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from actors import catalog
from actors.order import saga
from actors.toolkit.concurrentfeed import ConcurrentStreamFeed
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.metrics import ShippingMetrics
from actors.toolkit.publisher import SidecarPublisher
from actors.toolkit.streamfeed import FeedSettings, running
from actors.toolkit.streams import cloud_event
from actors.toolkit.testing import InMemorySidecar
from apps.shipping.feed import MAX_IN_FLIGHT, ShipEntries, shipping_feed, shipping_feed_settings
from apps.shipping.main import Settings, create_app
from apps.shipping.partner import Partner, PartnerSettings, answer_event_id_for
from tests import metrics_text
from tests.apps.conftest import eventually
from tests.apps.conftest import running as app_running
from tests.apps.histories import order_events

GROUP = "shipping"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SETTINGS = Settings(partner=PartnerSettings(delay_ms=0, failure_rate=0.0), seed="tests")
# the app's feed settings, with short waits
FAST = dataclasses.replace(
    shipping_feed_settings(group=GROUP, consumer="shipping-1"),
    block_ms=50,
    claim_idle_ms=100,
    claim_every_s=0.1,
    retry_after_s=0.05,
    retry_backoff_s=0.01,
    retry_backoff_max_s=0.02,
    ack_linger_ms=0,  # acknowledged with every read: claims after 100 ms idle work
)


def confirmed_history(order_id: str) -> list[EventEnvelope]:
    """placed, line_reserved, payment_requested, confirmed: what the orders stream holds."""
    reserved = saga.StockReservedForOrder(sku="sku-a")
    return order_events(order_id, "cust-1", reserved, saga.PaymentAuthorizedForOrder())


def entry_of(envelope: EventEnvelope | dict[str, Any], *, type_: str | None = None) -> bytes:
    """The CloudEvent the actor hosts' append writes for `envelope` (`type_` overrides the
    CloudEvent's type; a dict is written as it is, even when it is no envelope)."""
    document = json.dumps(envelope).encode() if isinstance(envelope, dict) else None
    model = envelope if isinstance(envelope, EventEnvelope) else confirmed_history("ord-x")[-1]
    entry = cloud_event(
        model,
        document or model.model_dump_json().encode(),
        topic=catalog.ORDERS,
        pubsub=catalog.PUBSUB,
        source="actor-host",
        traceparent=TRACEPARENT,
    )
    if type_ is None:
        return entry
    return json.dumps({**json.loads(entry), "type": type_}).encode()


async def publish(raw: aioredis.Redis, envelopes: Sequence[EventEnvelope]) -> list[bytes]:
    """The entries' ids."""
    ids = [await raw.xadd(catalog.ORDERS, {"data": entry_of(e)}) for e in envelopes]
    return [entry_id for entry_id in ids if isinstance(entry_id, bytes)]


async def pending_ids(raw: aioredis.Redis) -> list[bytes]:
    rows = await raw.xpending_range(catalog.ORDERS, GROUP, min="-", max="+", count=1000)
    return [row["message_id"] for row in rows if isinstance(row["message_id"], bytes)]


async def grouped(raw: aioredis.Redis) -> bool:
    return bool(await raw.exists(catalog.ORDERS)) and bool(await raw.xinfo_groups(catalog.ORDERS))


def outcome(metrics: ShippingMetrics, name: str) -> float:
    scraped = metrics_text.scrape(metrics.registry)
    return metrics_text.value(scraped, "orderflow_shipping_feed_entries_total", outcome=name)


@dataclasses.dataclass
class Shipping:
    feed: ConcurrentStreamFeed
    partner: Partner
    metrics: ShippingMetrics


@contextlib.asynccontextmanager
async def shipping(
    raw: aioredis.Redis,
    sidecar: InMemorySidecar,
    *,
    settings: FeedSettings = FAST,
    delay_ms: int = 0,
) -> AsyncIterator[Shipping]:
    """The app's feed and decider, running on the test's Redis, answering through
    `sidecar`, once its group exists."""
    partner = Partner(PartnerSettings(delay_ms=delay_ms, failure_rate=0.0), salt="tests")
    metrics = ShippingMetrics()
    decide = ShipEntries(partner, SidecarPublisher(sidecar, pubsub=catalog.PUBSUB), metrics)
    feed = shipping_feed(raw, decide, settings=settings)
    async with running(feed):
        await eventually(lambda: grouped(raw), what="the group")
        yield Shipping(feed, partner, metrics)


@contextlib.asynccontextmanager
async def shipping_app(
    raw: aioredis.Redis, sidecar: InMemorySidecar, settings: Settings = SETTINGS
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, sidecar=sidecar, feed_redis=raw)
    async with app_running(app, base_url="http://shipping") as client:
        yield client


async def partner_stats(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/partner/stats")).json()
    return body


# --- the app with its feed ----------------------------------------------------------------


async def test_a_confirmed_order_written_before_the_start_is_shipped_and_acknowledged(raw):
    history = confirmed_history("ord-1")
    await publish(raw, history)
    sidecar = InMemorySidecar()

    async with shipping_app(raw, sidecar) as client:

        async def acknowledged() -> bool:
            return bool((await partner_stats(client))["feed"]["acked"] == len(history))

        await eventually(acknowledged, what="every entry acknowledged")
        stats = await partner_stats(client)
        scraped = metrics_text.parse((await client.get("/metrics")).text)

    (answer,) = sidecar.events(catalog.SHIPMENTS)
    assert answer["type"] == "shipment.dispatched"
    assert answer["event_id"] == answer_event_id_for("ord-1-4")
    assert await pending_ids(raw) == []
    assert (stats["dispatched"], stats["ignored"], stats["dropped"]) == (1, 0, 0)
    assert {k: stats["feed"][k] for k in ("mode", "group", "consumer", "errors")} == {
        "mode": "streams",
        "group": "shipping",
        "consumer": "shipping",
        "errors": 0,
    }
    entries = "orderflow_shipping_feed_entries_total"
    assert metrics_text.value(scraped, entries, outcome="shipped") == 1
    assert metrics_text.value(scraped, entries, outcome="skipped") == 3


async def test_a_confirmed_order_added_while_it_runs_is_shipped_in_its_trace(raw):
    sidecar = InMemorySidecar()
    async with shipping(raw, sidecar) as running_feed:
        await publish(raw, confirmed_history("ord-2")[-1:])

        async def acknowledged() -> bool:
            return await pending_ids(raw) == [] and running_feed.feed.stats.acked == 1

        await eventually(acknowledged, what="the confirmed order shipped and acknowledged")

    (request,) = sidecar.requests
    assert request.path == "/v1.0/publish/pubsub/shipments"
    assert request.headers["traceparent"] == TRACEPARENT
    assert json.loads(request.content)["traceparent"] == TRACEPARENT
    assert running_feed.partner.stats.dispatched == 1
    assert outcome(running_feed.metrics, "shipped") == 1


async def test_other_order_events_are_acknowledged_without_shipping(raw):
    sidecar = InMemorySidecar()
    others = confirmed_history("ord-3")[:-1]
    async with shipping(raw, sidecar) as running_feed:
        await publish(raw, others)
        # an order.confirmed envelope under another CloudEvent type: daprd's rule skipped it
        await raw.xadd(
            catalog.ORDERS, {"data": entry_of(confirmed_history("ord-4")[-1], type_="x")}
        )

        async def acknowledged() -> bool:
            return await pending_ids(raw) == [] and running_feed.feed.stats.acked == 4

        await eventually(acknowledged, what="every entry acknowledged")

    assert sidecar.requests == []
    assert outcome(running_feed.metrics, "skipped") == 4
    assert running_feed.partner.stats.as_dict() == dict.fromkeys(
        ("dispatched", "failed", "silent", "ignored", "dropped", "retried"), 0
    )


async def test_an_entry_that_is_no_valid_envelope_is_dropped_with_a_warning_and_acknowledged(
    raw, caplog: pytest.LogCaptureFixture
):
    sidecar = InMemorySidecar()
    bad_id = confirmed_history("ord-5")[-1].model_copy(update={"aggregate_id": "bad id!"})
    invalid: list[dict[bytes, bytes]] = [
        {b"data": b"{not json"},
        {b"other": b"no data field"},
        {b"data": entry_of({"event_id": "evt-1"})},  # type order.confirmed, no envelope
        {b"data": entry_of(bad_id)},
    ]
    with caplog.at_level(logging.WARNING, logger="orderflow.shipping"):
        async with shipping(raw, sidecar) as running_feed:
            for fields in invalid:
                await raw.xadd(catalog.ORDERS, fields)

            async def acknowledged() -> bool:
                return await pending_ids(raw) == [] and running_feed.feed.stats.acked == 4

            await eventually(acknowledged, what="every entry dropped and acknowledged")

    assert sidecar.requests == []
    assert running_feed.partner.stats.dropped == 4
    assert outcome(running_feed.metrics, "dropped") == 4
    assert caplog.text.count("dropped an event from topic orders") == 4


async def test_a_publish_the_sidecar_does_not_confirm_is_tried_again_in_place(raw):
    sidecar = InMemorySidecar()
    sidecar.fail(times=2, status=503, path="/v1.0/publish/")
    in_place = dataclasses.replace(FAST, claim_idle_ms=60_000, retry_for_s=60.0)
    async with shipping(raw, sidecar, settings=in_place) as running_feed:
        await publish(raw, confirmed_history("ord-6")[-1:])

        async def shipped() -> bool:
            return await pending_ids(raw) == [] and running_feed.feed.stats.acked == 1

        await eventually(shipped, what="the answer published after two failures")

    assert len(sidecar.events(catalog.SHIPMENTS)) == 1
    assert (running_feed.partner.stats.retried, running_feed.partner.stats.dispatched) == (2, 1)
    assert outcome(running_feed.metrics, "retry") == 2
    assert (running_feed.feed.stats.left_pending, running_feed.feed.stats.claimed) == (0, 0)


async def test_a_publish_that_keeps_failing_leaves_the_entry_pending_until_it_is_claimed(raw):
    sidecar = InMemorySidecar()
    sidecar.fail(times=None, status=503, path="/v1.0/publish/")
    async with shipping(raw, sidecar, settings=dataclasses.replace(FAST, retry_for_s=0.0)) as s:
        (entry,) = await publish(raw, confirmed_history("ord-7")[-1:])

        async def given_up_twice() -> bool:
            return s.feed.stats.left_pending >= 2 and s.feed.stats.claimed >= 1

        await eventually(given_up_twice, what="the entry left pending and claimed again")
        assert await pending_ids(raw) == [entry]
        assert s.feed.stats.acked == 0
        sidecar.recover()

        async def shipped() -> bool:
            return await pending_ids(raw) == [] and s.feed.stats.acked == 1

        await eventually(shipped, what="the answer published once the sidecar recovered")

    assert [e["type"] for e in sidecar.events(catalog.SHIPMENTS)] == ["shipment.dispatched"]
    assert s.partner.stats.retried >= 2


async def test_an_entry_is_acknowledged_only_after_its_answer_is_published(raw):
    sidecar = InMemorySidecar()
    publishing, release = asyncio.Event(), asyncio.Event()

    async def hold_the_publish() -> None:
        publishing.set()
        await release.wait()

    sidecar.before_next(hold_the_publish, path="/v1.0/publish/")
    async with shipping(raw, sidecar) as running_feed:
        (entry,) = await publish(raw, confirmed_history("ord-8")[-1:])
        await asyncio.wait_for(publishing.wait(), 10)
        for _ in range(5):  # a few more turns of the feed (reads, claims): still pending
            await asyncio.sleep(FAST.claim_every_s)
        assert await pending_ids(raw) == [entry]
        assert (running_feed.feed.stats.acked, running_feed.feed.stats.claimed) == (0, 0)
        release.set()

        async def acknowledged() -> bool:
            return await pending_ids(raw) == []

        await eventually(acknowledged, what="the entry acknowledged after the publish")

    assert len(sidecar.events(catalog.SHIPMENTS)) == 1


async def test_entries_a_killed_consumer_left_pending_are_claimed_and_shipped(raw):
    await raw.xgroup_create(catalog.ORDERS, GROUP, id="0", mkstream=True)
    await publish(raw, confirmed_history("ord-9")[-1:])
    # another replica (or daprd's subscription, consumer "shipping") read it, then died
    await raw.xreadgroup(GROUP, "shipping-2", {catalog.ORDERS: ">"}, count=10)
    sidecar = InMemorySidecar()

    async with shipping(raw, sidecar) as running_feed:

        async def shipped() -> bool:
            return await pending_ids(raw) == [] and running_feed.feed.stats.acked == 1

        await eventually(shipped, what="the stranded entry claimed, shipped, acknowledged")

    assert running_feed.feed.stats.claimed == 1
    assert len(sidecar.events(catalog.SHIPMENTS)) == 1


async def test_at_start_it_first_ships_what_it_read_and_never_acknowledged(raw):
    await raw.xgroup_create(catalog.ORDERS, GROUP, id="0", mkstream=True)
    await publish(raw, confirmed_history("ord-10")[-1:])
    await raw.xreadgroup(GROUP, FAST.consumer, {catalog.ORDERS: ">"}, count=10)
    sidecar = InMemorySidecar()
    no_claims = dataclasses.replace(FAST, claim_idle_ms=60_000)

    async with shipping(raw, sidecar, settings=no_claims) as running_feed:

        async def shipped() -> bool:
            return await pending_ids(raw) == [] and running_feed.feed.stats.acked == 1

        await eventually(shipped, what="its own pending entry shipped")

    assert running_feed.feed.stats.claimed == 0


async def test_orders_wait_out_the_partners_delay_together_not_one_after_another(raw):
    sidecar = InMemorySidecar()
    orders = [confirmed_history(f"ord-d{n}")[-1] for n in range(40)]
    async with shipping(raw, sidecar, delay_ms=2_000) as running_feed:
        await publish(raw, orders)

        async def all_waiting() -> bool:
            return running_feed.feed.stats.in_flight == len(orders)

        await eventually(all_waiting, what="every order waiting out its delay at once")
        scraped = metrics_text.scrape(running_feed.metrics.registry)

        async def all_shipped() -> bool:
            return len(sidecar.events(catalog.SHIPMENTS)) == len(orders)

        await eventually(all_shipped, what="every order shipped")

    assert metrics_text.value(scraped, "orderflow_shipping_feed_in_flight") == len(orders)
    assert FAST.max_in_flight == MAX_IN_FLIGHT > len(orders)


async def test_stopped_while_an_order_waits_out_its_delay_it_leaves_the_entry_pending(raw):
    sidecar = InMemorySidecar()
    slow = dataclasses.replace(SETTINGS, partner=PartnerSettings(delay_ms=60_000, failure_rate=0))
    async with shipping_app(raw, sidecar, slow) as client:
        await eventually(lambda: grouped(raw), what="the group")
        (entry,) = await publish(raw, confirmed_history("ord-11")[-1:])

        async def waiting() -> bool:
            return bool((await partner_stats(client))["feed"]["in_flight"] == 1)

        await eventually(waiting, what="the order waiting out the partner's delay")

    assert sidecar.requests == []
    assert await pending_ids(raw) == [entry]  # shipped at the next start, or claimed


async def test_with_the_dapr_feed_the_app_reads_no_stream(raw):
    sidecar = InMemorySidecar()
    await publish(raw, confirmed_history("ord-12")[-1:])
    async with shipping_app(raw, sidecar, dataclasses.replace(SETTINGS, feed="dapr")) as client:
        stats = await partner_stats(client)
        await asyncio.sleep(0.2)  # the feed would have read it by now, if there were one

    assert stats["feed"] == {"mode": "dapr"}
    assert await raw.xinfo_groups(catalog.ORDERS) == []
    assert sidecar.requests == []
