"""The event router's feed: the routed topics' streams, read by the actor host itself.

With ORDERFLOW_ROUTER_FEED=streams (the default) no daprd delivers the router's events:
the actor host reads every routed topic's stream (actors.toolkit.concurrentfeed,
ConcurrentStreamFeed) in the consumer group daprd used (the app id, so a switch takes
over its position and its pending entries), one consumer per replica (its process name),
and decides each entry on its own:

    on one of our aggregates' topics, a type no reaction wants   acknowledged at once (what
                                                                 daprd's routing rule did)
    not JSON (or no data field)                                  a dead letter, acknowledged
    anything else: `route_event`, exactly as POST /events/<topic>:
        SUCCESS (done, or recorded as a dead letter)             acknowledged
        RETRY                                                    tried again in place
                                                                 (backoff up to 2 s, as
                                                                 daprd's delivery retries),
                                                                 then left pending
An entry's work runs in the trace context of its CloudEvent's `traceparent` (daprd's
header on the HTTP path), so an order stays one trace and the log lines keep its trace id.

Up to 32 entries are decided at once (the component's `concurrency`): an actor call that
waits out a rebalance holds one slot, not the others. Pending entries are claimed after
15 s idle, every 2 s (components/pubsub.yaml: a shorter idle time re-claimed busy ones).
ORDERFLOW_ROUTER_FEED=dapr keeps daprd's subscriptions (apps.actor_host.subscriptions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from actors.toolkit import codec, tracing
from actors.toolkit.concurrentfeed import ConcurrentStreamFeed
from actors.toolkit.metrics import RouterMetrics
from actors.toolkit.router import EventRouter
from actors.toolkit.streamfeed import DATA_FIELD, Entry, FeedSettings
from actors.toolkit.subscriber import SUCCESS
from apps.actor_host.subscriptions import Delivering, not_json, route_event


def router_feed_settings(*, group: str, consumer: str) -> FeedSettings:
    """The router's: 32 in flight, claims after 15 s idle every 2 s, RETRY tried in place
    for 30 s (backoff 0.25 s doubling to 2 s)."""
    return FeedSettings(
        group=group,
        consumer=consumer,
        count=32,
        linger_ms=0,
        claim_idle_ms=15_000,
        claim_every_s=2.0,
        max_in_flight=32,
        retry_for_s=30.0,
        retry_backoff_s=0.25,
        retry_backoff_max_s=2.0,
    )


@dataclass
class RouteEntries:
    """Decides one stream entry for the router (ConcurrentStreamFeed's `decide_one`)."""

    router: EventRouter
    delivering: Delivering
    # topic -> the event types a reaction wants; a topic not here comes whole (other
    # services' topics: an unknown type there is dead-lettered, as through daprd)
    wanted: Mapping[str, frozenset[str]]
    metrics: RouterMetrics

    @classmethod
    def for_router(
        cls,
        router: EventRouter,
        delivering: Delivering,
        *,
        own_topics: frozenset[str],
        metrics: RouterMetrics,
    ) -> RouteEntries:
        wanted = {t: frozenset(router.reacted_types(t)) for t in router.topics if t in own_topics}
        return cls(router, delivering, wanted, metrics)

    async def __call__(self, entry: Entry) -> bool:
        topic, _, fields = entry
        raw = fields.get(DATA_FIELD, b"")
        try:
            event: Any = codec.loads(raw)
        except ValueError:
            return self._answered(await not_json(self.delivering, topic, raw))
        wanted = self.wanted.get(topic)
        if wanted is not None and (not isinstance(event, dict) or event.get("type") not in wanted):
            self.metrics.feed_entry("skipped")
            return True
        traceparent = event.get("traceparent") if isinstance(event, dict) else None
        with tracing.incoming(traceparent if isinstance(traceparent, str) else ""):
            answer = await route_event(self.router, self.delivering, topic, event)
        return self._answered(answer)

    def _answered(self, answer: dict[str, str]) -> bool:
        ok = answer["status"] == SUCCESS["status"]
        self.metrics.feed_entry("routed" if ok else "retry")
        return ok


def router_feed(
    redis: Redis,
    decide: RouteEntries,
    *,
    settings: FeedSettings,
) -> ConcurrentStreamFeed:
    """The feed over every routed topic; the in-flight gauge follows it."""
    feed = ConcurrentStreamFeed(
        redis, streams=tuple(decide.router.topics), decide_one=decide, settings=settings
    )
    decide.metrics.watch_feed(lambda: feed.stats.in_flight)
    return feed
