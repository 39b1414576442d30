"""The event router served as Dapr subscriptions: deliver, dead-letter, or ask for RETRY.

/dapr/subscribe        one programmatic subscription per routed topic
POST /events/<topic>   per event: plan -> invoke each delivery through the sidecar ->
    every call ok                         SUCCESS
    event can never apply / DomainError   record a dead letter (topic "deadletter",
                                          with the reason), then SUCCESS
    sidecar or actor host unavailable     RETRY (Dapr redelivers; inboxes dedupe)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
from typing import Any, Final

from fastapi import APIRouter, Request

from actors.catalog import PUBSUB
from actors.toolkit.client import ActorClient
from actors.toolkit.errors import DomainError
from actors.toolkit.publisher import PublishError, SidecarPublisher
from actors.toolkit.router import Call, DeadLetter, EventRouter
from actors.toolkit.subscriber import RETRY, SUCCESS, each_entry, is_bulk

DEAD_LETTER_TOPIC: Final = "deadletter"
log = logging.getLogger("orderflow.router")


class DeadLetters:
    """Records events that can never apply, with the reason, on the dead-letter topic."""

    def __init__(self, publisher: SidecarPublisher) -> None:
        self._publisher = publisher

    async def record(
        self, *, topic: str, code: str, reason: str, event: Any, delivery: Call | None = None
    ) -> None:
        data = event.get("data") if isinstance(event, dict) else event
        source_id = str(event.get("id", "")) if isinstance(event, dict) else ""
        target = f"{delivery.actor_type}/{delivery.actor_id}/{delivery.method}" if delivery else ""
        letter = {
            "code": code,
            "reason": reason,
            "topic": topic,
            "target": target or None,
            "cloudevent_id": source_id,
            "event": data,
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        log.warning("dead letter from %s (%s): %s", topic, code, reason)
        await self._publisher.publish_document(
            DEAD_LETTER_TOPIC,
            json.dumps(letter),
            event_id=f"dl-{source_id or 'unknown'}-{target or 'event'}"[:200],
            event_type="orderflow.dead_letter",
        )


def subscription_routes(
    router: EventRouter, *, actors: ActorClient, dead_letters: DeadLetters
) -> APIRouter:
    api = APIRouter(tags=["events"])

    @api.get("/dapr/subscribe")
    async def subscribe() -> list[dict[str, Any]]:
        return [
            {
                "pubsubname": PUBSUB,
                "topic": t,
                "route": f"/events/{t}",
            }
            for t in router.topics
        ]

    @api.post("/events/{topic}")
    async def deliver(topic: str, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            event: Any = json.loads(raw)
        except ValueError:
            event = raw.decode("utf-8", "replace")[:4096]
            return await _dead(dead_letters, topic, DeadLetter("event.not_json", "not JSON"), event)
        route = functools.partial(_route, router, actors, dead_letters, topic)
        return await each_entry(event, route) if is_bulk(event) else await route(event)

    return api


async def _route(
    router: EventRouter, actors: ActorClient, dead_letters: DeadLetters, topic: str, event: Any
) -> dict[str, str]:
    """One CloudEvent: deliver it to every actor its route names."""
    try:
        plan = router.plan(topic, event)
    except DeadLetter as letter:
        return await _dead(dead_letters, topic, letter, event)
    outcomes = await asyncio.gather(
        *(_invoke(actors, d) for d in plan.calls), return_exceptions=True
    )
    status = SUCCESS
    for delivery, outcome in zip(plan.calls, outcomes, strict=True):
        if isinstance(outcome, DomainError):
            refused = DeadLetter(outcome.code, outcome.detail)
            if await _dead(dead_letters, topic, refused, event, delivery) is RETRY:
                status = RETRY
        elif isinstance(outcome, BaseException):
            log.info("RETRY %s/%s: %r", topic, plan.envelope.event_id, outcome)
            status = RETRY
    return status


async def _invoke(actors: ActorClient, delivery: Call) -> None:
    await actors.invoke(delivery.actor_type, delivery.actor_id, delivery.method, delivery.payload)


async def _dead(
    dead_letters: DeadLetters,
    topic: str,
    letter: DeadLetter,
    event: Any,
    delivery: Call | None = None,
) -> dict[str, str]:
    try:
        await dead_letters.record(
            topic=topic, code=letter.code, reason=letter.reason, event=event, delivery=delivery
        )
    except PublishError:
        return RETRY  # never lose it: keep it on the broker until it can be recorded
    return SUCCESS
