"""The orders subscription: answer each confirmed order on the shipments topic.

POST /events/orders, a CloudEvent whose data is an event envelope:
    not an envelope (or a confirmed order with a malformed id)  DROP, logged
    any type but order.confirmed                                SUCCESS, ignored
    order.confirmed, outcome silent                             SUCCESS, no answer
    order.confirmed, dispatch or fail                           wait the delay, publish
        shipment.dispatched / shipment.failed; SUCCESS, or RETRY when the publish failed
We do not own the orders topic's dead letters, hence DROP rather than a dead letter.
With ORDERFLOW_SHIPPING_FEED=streams, the default, daprd delivers nothing here: the app
reads the orders stream itself (apps.shipping.feed) and answers each entry with the same
functions (`dropped`, `on_order`), so GET /dapr/subscribe asks for no subscription.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Final

from fastapi import APIRouter, Request

from actors.catalog import ORDERS as ORDERS_TOPIC
from actors.catalog import PUBSUB, SHIPMENTS
from actors.toolkit import logs
from actors.toolkit.envelope import (
    EventEnvelope,
    InvalidDeliveryError,
    envelope_in,
    envelope_of,
    utcnow,
)
from actors.toolkit.ids import ORDER_ID_PATTERN
from actors.toolkit.publisher import PublishError, SidecarPublisher
from actors.toolkit.streamfeed import FEED_DAPR
from actors.toolkit.subscriber import DROP, RETRY, SUCCESS, only_types
from actors.toolkit.tracing import current_traceparent, span
from apps.shipping.deps import FeedModeDep, PartnerDep, PublisherDep
from apps.shipping.partner import ORDER_CONFIRMED, Outcome, Partner, answer

ORDERS_ROUTE: Final = "/events/orders"
log = logging.getLogger("orderflow.shipping")

router = APIRouter(tags=["events"])


def confirmed_order_of(body: bytes) -> EventEnvelope:
    """The delivered envelope, refusing an order.confirmed for a malformed order id."""
    return _checked(envelope_of(body))


def confirmed_order_in(cloud_event: Any) -> EventEnvelope:
    """`confirmed_order_of` for a CloudEvent already parsed (the stream feed's)."""
    return _checked(envelope_in(cloud_event))


def _checked(envelope: EventEnvelope) -> EventEnvelope:
    if envelope.type == ORDER_CONFIRMED and not re.fullmatch(
        ORDER_ID_PATTERN, envelope.aggregate_id
    ):
        raise InvalidDeliveryError(
            f"order.confirmed for a malformed order id {envelope.aggregate_id[:80]!r}"
        )
    return envelope


@router.get("/dapr/subscribe", include_in_schema=False)
async def subscriptions(feed_mode: FeedModeDep) -> list[dict[str, Any]]:
    """Dapr's programmatic subscription: only order.confirmed comes here (a routing rule on
    the CloudEvent type); daprd acknowledges every other event on `orders` itself. None
    with the streams feed (the app reads the stream itself: apps.shipping.feed)."""
    if feed_mode != FEED_DAPR:
        return []
    rule = {"match": only_types([ORDER_CONFIRMED]), "path": ORDERS_ROUTE}
    return [{"pubsubname": PUBSUB, "topic": ORDERS_TOPIC, "routes": {"rules": [rule]}}]


@router.post(ORDERS_ROUTE)
async def on_order_event(
    request: Request, partner: PartnerDep, publisher: PublisherDep
) -> dict[str, str]:
    try:
        envelope = confirmed_order_of(await request.body())
    except InvalidDeliveryError as exc:
        return dropped(partner, exc)
    return await on_order(envelope, partner=partner, publisher=publisher)


def dropped(partner: Partner, error: InvalidDeliveryError) -> dict[str, str]:
    """An event that is no valid envelope: counted, logged, DROP."""
    partner.stats.dropped += 1
    log.warning("dropped an event from topic %s: %s", ORDERS_TOPIC, error)
    return DROP


async def on_order(
    envelope: EventEnvelope, *, partner: Partner, publisher: SidecarPublisher
) -> dict[str, str]:
    """One valid envelope from the orders topic: a confirmed order is shipped, in its log
    scope and span; any other type is ignored (SUCCESS)."""
    if envelope.type != ORDER_CONFIRMED:
        partner.stats.ignored += 1
        return SUCCESS
    order_id = envelope.aggregate_id
    with (
        logs.scope(order_id=order_id, correlation_id=envelope.correlation_id or order_id),
        span("shipping.ship", order__id=order_id),
    ):
        # our span's, else the delivery's (the middleware's header, or the feed's
        # CloudEvent), else the event's
        traceparent = current_traceparent() or envelope.traceparent
        return await ship(envelope, partner=partner, publisher=publisher, traceparent=traceparent)


async def ship(
    confirmed: EventEnvelope, *, partner: Partner, publisher: SidecarPublisher, traceparent: str
) -> dict[str, str]:
    """Decide, wait, publish the answer; the delivery is acked only after the publish."""
    decision = partner.decide(confirmed)
    if decision.outcome is Outcome.SILENT:
        partner.record(decision.outcome)
        log.info("order left unanswered (outcome silent)")
        return SUCCESS
    await asyncio.sleep(decision.delay_ms / 1000)
    event = answer(confirmed, decision, occurred_at=utcnow(), traceparent=traceparent)
    if not await publish(publisher, event, traceparent=traceparent):
        partner.stats.retried += 1
        return RETRY
    partner.record(decision.outcome)
    log.info("answered with %s %s", event.type, decision.reason or event.payload.get("shipment_id"))
    return SUCCESS


async def publish(publisher: SidecarPublisher, event: EventEnvelope, *, traceparent: str) -> bool:
    """Publish on the shipments topic as a CloudEvent with the envelope's id and type."""
    try:
        await publisher.publish(SHIPMENTS, [event], traceparent=traceparent)
    except PublishError as exc:
        log.warning("publish of %s failed, asking for redelivery: %s", event.event_id, exc)
        return False
    return True
