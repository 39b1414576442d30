"""The shipping partner's feed: the `orders` stream, read by the app itself.

With ORDERFLOW_SHIPPING_FEED=streams (the default) no daprd delivers the orders: the app
reads the `orders` stream (actors.toolkit.concurrentfeed, ConcurrentStreamFeed) in the
consumer group daprd used (the app id, `shipping`: the component sets no consumerID, so a
switch takes over its position and its pending entries), one consumer per replica (its
process name), and decides each entry on its own:

    a CloudEvent of any type but order.confirmed     acknowledged at once (what daprd's
                                                     routing rule did)
    not JSON, or no valid envelope                   dropped and acknowledged, counted
                                                     and logged as POST /events/orders
    order.confirmed: `on_order`, as POST /events/orders, so `ship`: decide, wait the
    partner's delay, publish the answer through daprd's publish API
        SUCCESS (published, or the outcome is silent)  acknowledged
        RETRY (the sidecar did not confirm the publish) tried again in place (backoff
                                                     up to 2 s, as daprd's delivery
                                                     retries) for 30 s, then left pending
An entry's work runs in the trace context of its CloudEvent's `traceparent` (daprd's
header on the HTTP path), so an order stays one trace.

A read that found entries is followed by the next only after 100 ms (`LINGER_MS`), so that
an order's entries are read together. Up to 1024 entries are decided at once. A confirmed
order holds its slot while it waits out the partner's delay (50 ms by default, up to 60 s
per order: apps.shipping.partner), so the limit bounds the orders shipped at 1024 / delay
per second (Little's law): ~20 000 at 50 ms, and still 30 (the measured saga load) at a 34
s delay. A waiting slot costs a sleeping task and the entry it holds (a ~1 KB CloudEvent),
so the bound is on memory, not CPU. (daprd's 32 delivery workers, `concurrency` in
components/pubsub.yaml, allowed 640/s at 50 ms and 32/s at 1 s.) Pending entries are
claimed after 15 s idle, every 2 s, as by the router's feed (components/pubsub.yaml's
processingTimeout); a delay longer than that lets another replica claim the entry too: a
repeat, which yields the same answer ids.
ORDERFLOW_SHIPPING_FEED=dapr keeps daprd's subscription (apps.shipping.events).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis

from actors.catalog import ORDERS
from actors.toolkit import codec, tracing
from actors.toolkit.concurrentfeed import ConcurrentStreamFeed
from actors.toolkit.envelope import InvalidDeliveryError
from actors.toolkit.metrics import ShippingMetrics
from actors.toolkit.publisher import SidecarPublisher
from actors.toolkit.streamfeed import DATA_FIELD, Entry, FeedSettings
from actors.toolkit.subscriber import RETRY
from apps.shipping.events import confirmed_order_in, dropped, on_order
from apps.shipping.partner import ORDER_CONFIRMED, Partner

MAX_IN_FLIGHT: Final = 1024  # see the module docstring
# after a read that found entries, the next waits this long, so reads gather entries: each
# read is a Redis round trip and two wake-ups (the timer, the answer), and a wake-up after
# some milliseconds asleep is dear here (README, "Performance", item 3). Of an order's
# ~6 entries on `orders` only order.confirmed is shipped, and they come in ~4 bursts
# within ~80 ms: at 20 ms (sessions 9-17) shipping woke ~9-11 times per order at 5-10
# orders/s. It delays the partner's answer, never the order's confirmation, and the
# partner itself waits 50 ms by default.
LINGER_MS: Final = 100


def shipping_feed_settings(*, group: str, consumer: str) -> FeedSettings:
    """1024 in flight, 100 ms linger after a read, claims after 15 s idle every 2 s, RETRY
    tried in place for 30 s (backoff 0.25 s doubling to 2 s)."""
    return FeedSettings(
        group=group,
        consumer=consumer,
        linger_ms=LINGER_MS,
        claim_idle_ms=15_000,
        claim_every_s=2.0,
        max_in_flight=MAX_IN_FLIGHT,
        retry_for_s=30.0,
        retry_backoff_s=0.25,
        retry_backoff_max_s=2.0,
    )


@dataclass
class ShipEntries:
    """Decides one entry of the orders stream (ConcurrentStreamFeed's `decide_one`):
    True acknowledges it, False leaves it pending (RETRY)."""

    partner: Partner
    publisher: SidecarPublisher
    metrics: ShippingMetrics

    async def __call__(self, entry: Entry) -> bool:
        raw = entry[2].get(DATA_FIELD, b"")
        try:
            event: Any = codec.loads(raw)
        except ValueError as exc:
            not_json = InvalidDeliveryError(f"not JSON: {exc}")
            return self._answered(dropped(self.partner, not_json), outcome="dropped")
        if isinstance(event, dict) and event.get("type") != ORDER_CONFIRMED:
            self.metrics.feed_entry("skipped")
            return True
        try:
            envelope = confirmed_order_in(event)
        except InvalidDeliveryError as exc:
            return self._answered(dropped(self.partner, exc), outcome="dropped")
        traceparent = event.get("traceparent") if isinstance(event, dict) else None
        with tracing.incoming(traceparent if isinstance(traceparent, str) else ""):
            answer = await on_order(envelope, partner=self.partner, publisher=self.publisher)
        # its data may be no order.confirmed after all: on_order ignored it
        shipped = envelope.type == ORDER_CONFIRMED
        return self._answered(answer, outcome="shipped" if shipped else "skipped")

    def _answered(self, answer: dict[str, str], *, outcome: str) -> bool:
        """Count the entry's outcome (retry, whatever `outcome` says, when the answer is
        RETRY); whether to acknowledge it (all but a RETRY)."""
        if answer["status"] == RETRY["status"]:
            self.metrics.feed_entry("retry")
            return False
        self.metrics.feed_entry(outcome)
        return True


def shipping_feed(
    redis: Redis, decide: ShipEntries, *, settings: FeedSettings
) -> ConcurrentStreamFeed:
    """The feed of the orders stream; the in-flight gauge follows it."""
    feed = ConcurrentStreamFeed(redis, streams=(ORDERS,), decide_one=decide, settings=settings)
    decide.metrics.watch_feed(lambda: feed.stats.in_flight)
    return feed
