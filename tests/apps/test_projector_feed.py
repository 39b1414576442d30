"""The projector's stream feed against a real Redis: what it reads, acknowledges, claims.

Entries are written as the actor hosts' append writes them (actors.toolkit.streams), so
the format under test is the producer's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from actors.toolkit import streamfeed
from actors.toolkit.batchfeed import StreamFeed
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.metrics import ProjectorMetrics
from actors.toolkit.streamfeed import Entry, FeedSettings
from actors.toolkit.streams import cloud_event
from apps.projector.main import Settings, _refresh_feed_gauges, create_app, projector_feed
from tests import metrics_text
from tests.apps.conftest import eventually, running
from tests.apps.histories import funded, restocked, shipped

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
# acknowledged with every read (ack_linger_ms=0), so that claims after 100 ms idle work
FAST = FeedSettings(
    block_ms=50, claim_idle_ms=100, claim_every_s=0.1, retry_after_s=0.05, ack_linger_ms=0
)


async def publish(raw: aioredis.Redis, topic: str, envelopes: Sequence[EventEnvelope]) -> None:
    for envelope in envelopes:
        document = envelope.model_dump_json().encode()
        entry = cloud_event(
            envelope,
            document,
            topic=topic,
            pubsub="pubsub",
            source="actor-host",
            traceparent=TRACEPARENT,
        )
        await raw.xadd(topic, {"data": entry})


async def pending(raw: aioredis.Redis, stream: str, group: str = "projector") -> int:
    count: int = (await raw.xpending(stream, group))["pending"]
    return count


@contextlib.asynccontextmanager
async def projector(
    redis: aioredis.Redis, raw: aioredis.Redis, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(**settings), redis=redis, feed_redis=raw)
    async with running(app, base_url="http://projector") as client:
        yield client


async def feed_stats(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/projector/stats")).json()
    return body


async def counted(client: httpx.AsyncClient, name: str) -> int:
    """One of the projector's event counters (applied, dropped, retried...)."""
    return int((await feed_stats(client))["events"][name])


# --- the projector app with its feed ------------------------------------------------------


async def test_events_written_before_the_projector_started_are_projected_and_acknowledged(
    redis, raw
):
    await publish(raw, "orders", shipped("ord-1", "cust-1"))
    await publish(raw, "wallet", funded("cust-1", 1_000))
    await publish(raw, "inventory", restocked("sku-1", 7))

    async with projector(redis, raw) as client:

        async def all_applied() -> bool:
            return await counted(client, "applied") == 5 + 1 + 1

        await eventually(all_applied, what="every event applied")

        async def all_acknowledged() -> bool:  # with the read after the batch
            return int((await feed_stats(client))["feed"]["acked"]) == 7

        await eventually(all_acknowledged, what="every entry acknowledged")
        body = await feed_stats(client)

    assert await redis.hget("rm:g0:order:ord-1", "status") == "shipped"
    assert await redis.hget("rm:g0:wallet:cust-1", "balance") == "1000"
    assert await redis.hget("rm:g0:stock:sku-1", "on_hand") == "7"
    for topic in ("orders", "wallet", "inventory"):
        assert await pending(raw, topic) == 0
    assert body["feed"]["mode"] == "streams"
    assert body["feed"]["group"] == "projector"
    assert body["feed"]["errors"] == 0


async def test_an_event_added_while_it_runs_is_projected_at_once(redis, raw):
    async with projector(redis, raw) as client:
        await eventually(
            lambda: _has_groups(raw, ("orders", "inventory", "wallet")), what="the groups"
        )
        await publish(raw, "wallet", funded("cust-2", 300))

        async def applied() -> bool:
            balance = await redis.hget("rm:g0:wallet:cust-2", "balance")
            return bool(balance == "300")

        await eventually(applied, what="the deposit projected")
        lag = (await feed_stats(client))["lag_ms"]

    assert lag["samples"] == 1


async def test_an_entry_that_is_no_cloud_event_is_recorded_and_acknowledged(redis, raw):
    await raw.xadd("orders", {"data": b"{not json"})
    await raw.xadd("orders", {"other": b"x"})

    async with projector(redis, raw) as client:

        async def dropped() -> bool:
            return await counted(client, "dropped") == 2

        await eventually(dropped, what="both entries rejected")

    reasons = [json.loads(r)["reason"] for r in await redis.lrange("rm:rejected", 0, -1)]
    assert sorted(r.split(":")[1].strip() for r in reasons) == [
        "Expecting property name enclosed in double quotes",
        "no 'data' field (fields",
    ]
    assert await pending(raw, "orders") == 0


async def test_an_event_of_a_newer_schema_stays_pending_for_an_upgraded_projector(redis, raw):
    [newer] = funded("cust-3", 100)
    newer = newer.model_copy(update={"schema_version": 99})
    await publish(raw, "wallet", [newer])

    async with projector(redis, raw) as client:

        async def retried() -> bool:
            return await counted(client, "retried") >= 1

        await eventually(retried, what="the RETRY")
        await publish(raw, "wallet", funded("cust-5", 100))  # read after it: not held up

        async def applied() -> bool:
            return await counted(client, "applied") == 1

        await eventually(applied, what="the next event applied")

        async def only_the_newer_one_pending() -> bool:  # the next one goes with a read
            return await pending(raw, "wallet") == 1

        await eventually(only_the_newer_one_pending, what="the next event acknowledged")
        scraped = metrics_text.parse((await client.get("/metrics")).text)

    # the operator sees it: the feed holds one entry it cannot take yet
    assert metrics_text.value(scraped, "orderflow_projector_feed_pending", stream="wallet") == 1
    assert metrics_text.value(scraped, "orderflow_projector_feed_backlog", stream="wallet") == 0
    assert await pending(raw, "wallet") == 1
    assert await redis.exists("rm:g0:wallet:cust-3") == 0


async def test_the_alerts_gauge_counts_entries_read_more_than_once_not_those_in_flight(raw):
    """OrderflowProjectorEntriesHeld watches `orderflow_projector_feed_redelivered`: under
    steady load a batch is always in flight and its acknowledgement held, so the pending
    count is rarely 0 at a scrape; an entry the feed keeps retrying is read again."""
    await publish(raw, "wallet", funded("cust-6", 100) + funded("cust-7", 100))
    await raw.xgroup_create("wallet", "projector", id="0")
    [[_, entries]] = await raw.xreadgroup("projector", "projector", {"wallet": ">"})
    first_id = entries[0][0]
    await raw.xclaim("wallet", "projector", "projector", min_idle_time=0, message_ids=[first_id])
    metrics = ProjectorMetrics()

    await _refresh_feed_gauges(projector_feed(raw, None, FeedSettings()), metrics)

    def gauge(name: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"stream": "wallet"})

    assert gauge("orderflow_projector_feed_pending") == 2  # both read, neither acknowledged
    assert gauge("orderflow_projector_feed_redelivered") == 1  # one of them read twice
    assert gauge("orderflow_projector_feed_backlog") == 0
    await raw.xack("wallet", "projector", first_id)
    await _refresh_feed_gauges(projector_feed(raw, None, FeedSettings()), metrics)
    assert gauge("orderflow_projector_feed_redelivered") == 0


async def test_with_the_dapr_feed_it_subscribes_through_daprd_and_reads_no_stream(redis, raw):
    await publish(raw, "wallet", funded("cust-4", 100))

    async with projector(redis, raw, feed="dapr") as client:
        subscriptions = (await client.get("/dapr/subscribe")).json()
        body = await feed_stats(client)

    assert [s["topic"] for s in subscriptions] == [
        "orders",
        "inventory",
        "wallet",
        "projector-redelivery",
    ]
    assert body["feed"] == {"mode": "dapr"}
    assert await raw.xinfo_groups("wallet") == []


async def test_with_the_streams_feed_it_asks_daprd_for_no_subscription(redis, raw):
    async with projector(redis, raw) as client:
        assert (await client.get("/dapr/subscribe")).json() == []


def test_an_unknown_feed_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="ORDERFLOW_PROJECTOR_FEED must be one of streams, dapr"):
        Settings.from_env({"ORDERFLOW_PROJECTOR_FEED": "kafka"})


def test_the_group_is_the_app_id() -> None:
    assert Settings.from_env({"APP_ID": "read-side"}).group == "read-side"
    assert Settings.from_env({}).group == "projector"
    assert Settings.from_env({}).feed == "streams"


# --- the feed's mechanics, with a decider of the test's own ---------------------------------


class Decider:
    """Acknowledges every entry, except those whose data is in `refuse` (left pending)."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.refuse: set[bytes] = set()

    async def __call__(self, entries: Sequence[Entry]) -> list[bool]:
        self.seen += [fields[b"data"] for _, _, fields in entries]
        return [fields[b"data"] not in self.refuse for _, _, fields in entries]


async def _has_groups(raw: aioredis.Redis, streams: Sequence[str]) -> bool:
    for stream in streams:
        if not await raw.exists(stream) or not await raw.xinfo_groups(stream):
            return False
    return True


async def test_what_a_killed_consumer_read_and_never_acknowledged_is_decided_on_restart(raw):
    streams = ("a", "b")
    await raw.xgroup_create("a", "projector", id="0", mkstream=True)
    await raw.xgroup_create("b", "projector", id="0", mkstream=True)
    for n in range(5):
        await raw.xadd("a", {"data": f"a{n}".encode()})
    await raw.xadd("b", {"data": b"b0"})
    # read by the consumer before it was killed: pending, never acknowledged
    await raw.xreadgroup("projector", "projector", {"a": ">", "b": ">"}, count=10)
    decider = Decider()
    feed = StreamFeed(raw, streams=streams, decide=decider, settings=FeedSettings(count=2))

    await feed.ensure_groups()
    await feed.drain_own_pending()

    assert sorted(decider.seen) == [b"a0", b"a1", b"a2", b"a3", b"a4", b"b0"]
    assert (await pending(raw, "a"), await pending(raw, "b")) == (0, 0)


async def test_a_refused_entry_stays_pending_and_is_claimed_again_until_it_is_taken(raw):
    decider = Decider()
    decider.refuse.add(b"later")
    feed = StreamFeed(raw, streams=("s",), decide=decider, settings=FAST)

    async with streamfeed.running(feed):
        await eventually(lambda: _has_groups(raw, ("s",)), what="the group")
        await raw.xadd("s", {"data": b"now"})
        await raw.xadd("s", {"data": b"later"})

        async def claimed_twice() -> bool:
            return decider.seen.count(b"later") >= 3

        await eventually(claimed_twice, what="the refused entry claimed again")
        assert await pending(raw, "s") == 1
        decider.refuse.clear()

        async def nothing_pending() -> bool:
            return await pending(raw, "s") == 0

        await eventually(nothing_pending, what="the entry taken")

    assert decider.seen.count(b"now") == 1
    assert feed.stats.claimed >= 2


async def test_entries_another_consumer_abandoned_are_claimed(raw):
    await raw.xgroup_create("s", "projector", id="0", mkstream=True)
    await raw.xadd("s", {"data": b"stranded"})
    # a daprd subscription read it (its consumer name), then went away
    await raw.xreadgroup("projector", "daprd-gone", {"s": ">"}, count=10)
    decider = Decider()
    feed = StreamFeed(raw, streams=("s",), decide=decider, settings=FAST)

    await asyncio.sleep(FAST.claim_idle_ms / 1000 + 0.05)
    assert await feed.claim_once() == 1

    assert decider.seen == [b"stranded"]
    assert await pending(raw, "s") == 0


async def test_a_pending_entry_trimmed_away_is_acknowledged_and_counted_lost(raw):
    await raw.xgroup_create("s", "projector", id="0", mkstream=True)
    first = await raw.xadd("s", {"data": b"gone"})
    await raw.xreadgroup("projector", "projector", {"s": ">"}, count=10)
    await raw.xdel("s", first)
    decider = Decider()
    feed = StreamFeed(raw, streams=("s",), decide=decider, settings=FAST)

    await feed.drain_own_pending()

    assert decider.seen == []
    assert feed.stats.trimmed == 1
    assert await pending(raw, "s") == 0


async def test_it_recreates_its_groups_after_the_streams_were_deleted(raw):
    decider = Decider()
    feed = StreamFeed(raw, streams=("s",), decide=decider, settings=FAST)

    async with streamfeed.running(feed):
        await eventually(lambda: _has_groups(raw, ("s",)), what="the group")
        await raw.flushall()
        await eventually(lambda: _has_groups(raw, ("s",)), what="the group recreated")
        await raw.xadd("s", {"data": b"after"})

        async def seen() -> bool:
            return decider.seen == [b"after"]

        await eventually(seen, what="the entry after the flush")

    assert feed.stats.errors >= 1
    assert "NOGROUP" in (feed.stats.last_error or "")
    assert feed.stats.running is False


async def test_it_keeps_trying_while_redis_is_unreachable(raw):
    unreachable = aioredis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    feed = StreamFeed(unreachable, streams=("s",), decide=Decider(), settings=FAST)

    async with streamfeed.running(feed):

        async def failed_twice() -> bool:
            return feed.stats.errors >= 2

        await eventually(failed_twice, what="two failed attempts")
        assert feed.stats.running is True

    await unreachable.aclose()


async def test_a_batch_is_acknowledged_with_the_next_read_or_at_shutdown(raw):
    decider = Decider()
    feed = StreamFeed(raw, streams=("s",), decide=decider, settings=FAST)
    await feed.ensure_groups()
    for n in range(3):
        await raw.xadd("s", {"data": f"e{n}".encode()})

    assert await feed.read_once() == 3
    assert await pending(raw, "s") == 3  # decided, not yet acknowledged
    await raw.xadd("s", {"data": b"e3"})
    assert await feed.read_once() == 1
    assert await pending(raw, "s") == 1  # the first three went with this read
    await feed.flush_acks()  # what run() does when it is cancelled
    await feed.aclose()  # and its reads' connection

    assert await pending(raw, "s") == 0
    assert feed.stats.acked == 4
    assert decider.seen == [b"e0", b"e1", b"e2", b"e3"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


LINGERING = FeedSettings(block_ms=50, claim_idle_ms=5000, ack_linger_ms=200, count=10)


async def test_acknowledgements_wait_for_a_read_after_the_linger(raw):
    """An XACK is a write, and each round trip that writes costs Redis an fsync: decided
    entries go with the first read after the oldest has waited ack_linger_ms."""
    clock, decider = Clock(), Decider()
    feed = StreamFeed(raw, streams=("s",), decide=decider, settings=LINGERING, clock=clock)
    await feed.ensure_groups()
    await raw.xadd("s", {"data": b"e0"})
    assert await feed.read_once() == 1
    await raw.xadd("s", {"data": b"e1"})
    assert await feed.read_once() == 1  # e0 decided, its acknowledgement not due yet
    clock.now += 0.1
    await raw.xadd("s", {"data": b"e2"})
    assert await feed.read_once() == 1
    assert await pending(raw, "s") == 3
    clock.now += 0.1  # e0's acknowledgement has waited 200 ms: due
    await raw.xadd("s", {"data": b"e3"})
    assert await feed.read_once() == 1
    assert await pending(raw, "s") == 1  # e0-e2 went with that read; e3 waits
    assert feed.stats.acked == 3
    await feed.flush_acks()  # as at a stop
    await feed.aclose()
    assert await pending(raw, "s") == 0


async def test_acknowledgements_go_at_once_when_a_reads_worth_waits(raw):
    clock, decider = Clock(), Decider()
    settings = dataclasses.replace(LINGERING, count=2)
    feed = StreamFeed(raw, streams=("s",), decide=decider, settings=settings, clock=clock)
    await feed.ensure_groups()
    for n in range(2):
        await raw.xadd("s", {"data": f"e{n}".encode()})
    assert await feed.read_once() == 2
    await raw.xadd("s", {"data": b"e2"})
    assert await feed.read_once() == 1  # two waiting = count: acknowledged, no linger
    await feed.aclose()
    assert await pending(raw, "s") == 1


async def test_a_claim_acknowledges_what_waits_first_so_nothing_is_decided_twice(raw):
    clock, decider = Clock(), Decider()
    settings = dataclasses.replace(LINGERING, claim_idle_ms=300, ack_linger_ms=200)
    feed = StreamFeed(raw, streams=("s",), decide=decider, settings=settings, clock=clock)
    await feed.ensure_groups()
    await raw.xadd("s", {"data": b"held"})
    assert await feed.read_once() == 1
    await asyncio.sleep(0.35)  # idle past claim_idle_ms in Redis, not yet acknowledged
    assert await feed.claim_once() == 0
    await feed.aclose()
    assert decider.seen == [b"held"]
    assert await pending(raw, "s") == 0


@pytest.mark.parametrize(
    ("ack_linger_ms", "block_ms", "claim_idle_ms"),
    [(-1, 1000, 5000), (3001, 1000, 5000), (0, 2501, 5000)],
)
def test_held_acknowledgements_must_stay_under_the_claim_idle_time(
    ack_linger_ms: int, block_ms: int, claim_idle_ms: int
) -> None:
    with pytest.raises(ValueError, match="claim_idle_ms"):
        FeedSettings(ack_linger_ms=ack_linger_ms, block_ms=block_ms, claim_idle_ms=claim_idle_ms)


async def test_a_feed_cancelled_mid_run_acknowledges_what_it_decided(raw):
    decider = Decider()
    feed = StreamFeed(raw, streams=("s",), decide=decider, settings=FAST)

    async with streamfeed.running(feed):
        await eventually(lambda: _has_groups(raw, ("s",)), what="the group")
        await raw.xadd("s", {"data": b"last"})

        async def seen() -> bool:
            return decider.seen == [b"last"]

        await eventually(seen, what="the entry decided")

    assert await pending(raw, "s") == 0


async def test_stop_ends_the_feed_even_without_a_cancellation(raw):
    # what running() relies on when Python 3.11's wait_for loses a cancellation
    feed = StreamFeed(raw, streams=("s",), decide=Decider(), settings=FAST)
    task = asyncio.create_task(feed.run())
    await eventually(lambda: _has_groups(raw, ("s",)), what="the group")

    feed.stop()

    async def ended() -> bool:
        return task.done()

    await eventually(ended, what="the feed to end")
    assert feed.stats.running is False
