"""The event router served as Dapr subscriptions: deliver, dead-letter, or ask for RETRY.

(POST /events/<topic> is served by actors.toolkit.fastpath, ahead of FastAPI's routing.
With ORDERFLOW_ROUTER_FEED=streams, the default, the actor host reads the topics' streams
itself (apps.actor_host.feed) and hands each event to `route_event`, as below.)

/dapr/subscribe        one programmatic subscription per routed topic (none with the
                       streams feed)
POST /events/<topic>   per event: plan -> invoke each delivery through the sidecar ->
    every call ok                         SUCCESS; for a chained reaction (order.placed:
                                          the Reserves) first the calls built from their
                                          answers (OnStockOutcomes), decided the same way,
                                          and so on (Authorize, OnPaymentAuthorized)
    it can never apply: DeadLetterError   record a dead letter (topic "deadletter",
    from the plan, a DomainError or a     with the code and reason), then SUCCESS
    PermanentError from a call            (RETRY if the dead letter cannot be recorded)
    a TransientError (sidecar or actor    RETRY (Dapr redelivers; inboxes dedupe);
    host down), or anything unforeseen    an unforeseen error is logged at ERROR
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter
from starlette.types import Scope

from actors import catalog
from actors.catalog import DEAD_LETTER_TYPE, PUBSUB
from actors.toolkit import logs
from actors.toolkit.client import ActorClient, ActorResult
from actors.toolkit.errors import DomainError, TransientError
from actors.toolkit.fastpath import Answer, FastRoute, json_answer
from actors.toolkit.metrics import RouterMetrics
from actors.toolkit.publisher import PublishError, SidecarPublisher
from actors.toolkit.router import Call, DeadLetterError, EventRouter, Plan
from actors.toolkit.subscriber import RETRY, SUCCESS, each_entry, gives_up, is_bulk, only_types
from actors.toolkit.tracing import span

log = logging.getLogger("orderflow.router")


class DeadLetters:
    """Records events that can never apply, with the reason, on the dead-letter topic."""

    def __init__(
        self, publisher: SidecarPublisher, *, metrics: RouterMetrics | None = None
    ) -> None:
        self._publisher = publisher
        self._metrics = metrics or RouterMetrics()

    async def record(
        self, *, topic: str, code: str, reason: str, event: Any, delivery: Call | None = None
    ) -> None:
        data = event.get("data") if isinstance(event, dict) else event
        source_id = str(event.get("id", "")) if isinstance(event, dict) else ""
        # the original CloudEvent type too: a redrive republishes the event as it came
        source_type = str(event.get("type", "")) if isinstance(event, dict) else ""
        target = f"{delivery.actor_type}/{delivery.actor_id}/{delivery.method}" if delivery else ""
        letter = {
            "code": code,
            "reason": reason,
            "topic": topic,
            "target": target or None,
            "cloudevent_id": source_id,
            "cloudevent_type": source_type,
            "event": data,
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        log.warning("dead letter from %s (%s): %s", topic, code, reason)
        await self._publisher.publish_document(
            catalog.DEAD_LETTERS,
            json.dumps(letter),
            event_id=f"dl-{source_id or 'unknown'}-{target or 'event'}"[:200],
            event_type=DEAD_LETTER_TYPE,
        )
        self._metrics.dead_letter(code)  # recorded: a publish that failed counts on retry


@dataclass(frozen=True)
class Delivering:
    """What a delivery needs at run time; the lifespan builds it (app.state.delivering)."""

    actors: ActorClient
    dead_letters: DeadLetters


STARTING: Final = Answer(503, b'{"detail":"the actor host is starting: no sidecar client yet"}')


def subscription_routes(
    router: EventRouter, *, own_topics: Iterable[str], through_daprd: bool = True
) -> APIRouter:
    """GET /dapr/subscribe, declared when the app is created.

    On our own aggregates' topics (`own_topics`) daprd delivers only the event types a
    reaction wants (a routing rule on the CloudEvent type) and acknowledges the rest
    itself: about half of those events lead to no call. On other services' topics every
    event comes here, so one of a type we do not know is dead-lettered with its reason.
    Without `through_daprd` (ORDERFLOW_ROUTER_FEED=streams: the actor host reads the
    streams itself, apps.actor_host.feed) the router asks daprd for no subscription."""
    api = APIRouter(tags=["events"])
    own = frozenset(own_topics)

    @api.get("/dapr/subscribe")
    async def subscribe() -> list[dict[str, Any]]:
        if not through_daprd:
            return []
        return [_subscription(router, topic, own=topic in own) for topic in router.topics]

    return api


def delivery_routes(router: EventRouter) -> list[FastRoute]:
    """POST /events/<topic>, served by actors.toolkit.fastpath (the hot path: one request
    per delivered event); the sidecar clients come from the lifespan (app.state)."""

    async def deliver(params: dict[str, str], raw: bytes, scope: Scope) -> Answer:
        delivering: Delivering | None = getattr(scope["app"].state, "delivering", None)
        if delivering is None:
            return STARTING
        reply = await _delivery(router, delivering, params["topic"], raw)
        return json_answer(200, reply)

    return [FastRoute("POST", re.compile(r"/events/(?P<topic>[^/]+)"), deliver)]


async def _delivery(
    router: EventRouter, delivering: Delivering, topic: str, raw: bytes
) -> dict[str, Any]:
    try:
        event: Any = json.loads(raw)
    except ValueError:
        return await not_json(delivering, topic, raw)
    route = functools.partial(route_event, router, delivering, topic)
    return await each_entry(event, route) if is_bulk(event) else await route(event)


async def route_event(
    router: EventRouter, delivering: Delivering, topic: str, event: Any
) -> dict[str, str]:
    """One parsed CloudEvent from `topic`, as POST /events/<topic> routes it (the stream
    feed, apps.actor_host.feed, calls it too): SUCCESS or RETRY."""
    return await _route(router, delivering.actors, delivering.dead_letters, topic, event)


async def not_json(delivering: Delivering, topic: str, raw: bytes) -> dict[str, str]:
    """A delivery that is no JSON: recorded as a dead letter, then SUCCESS (RETRY if the
    dead letter cannot be recorded)."""
    event = raw.decode("utf-8", "replace")[:4096]
    letter = DeadLetterError("event.not_json", "not JSON")
    return await _dead(delivering.dead_letters, topic, letter, event)


def _subscription(router: EventRouter, topic: str, *, own: bool) -> dict[str, Any]:
    path = f"/events/{topic}"
    if not own:
        return {"pubsubname": PUBSUB, "topic": topic, "route": path}
    rule = {"match": only_types(router.reacted_types(topic)), "path": path}
    return {"pubsubname": PUBSUB, "topic": topic, "routes": {"rules": [rule]}}


async def _route(
    router: EventRouter, actors: ActorClient, dead_letters: DeadLetters, topic: str, event: Any
) -> dict[str, str]:
    """One CloudEvent: deliver it to every actor its route names."""
    try:
        plan = router.plan(topic, event)
    except DeadLetterError as letter:
        return await _dead(dead_letters, topic, letter, event)
    if not plan.calls:
        return SUCCESS  # a known type nobody reacts to: no span, no log scope
    envelope = plan.envelope
    with (
        logs.scope(correlation_id=envelope.correlation_id or envelope.aggregate_id),
        span(f"route {envelope.type}", event__id=envelope.event_id, calls=len(plan.calls)),
    ):
        return await _deliver(actors, dead_letters, topic, event, plan)


async def _deliver(
    actors: ActorClient, dead_letters: DeadLetters, topic: str, event: Any, plan: Plan
) -> dict[str, str]:
    """Every call of one planned event, concurrently; RETRY if any failed transiently.

    A chained plan goes on once no call is to be tried again: the calls the answers of
    those answered ok make (`plan.follow_up`) are delivered the same way, step by step,
    also when some were refused for good (dead letters), so no fact an actor recorded
    goes unsaid. After a RETRY nothing follows yet: the event comes again, its calls are
    answered from the inboxes as the first time, and the same calls follow."""
    outcomes = await asyncio.gather(
        *(_invoke(actors, d) for d in plan.calls), return_exceptions=True
    )
    status = SUCCESS
    for delivery, outcome in zip(plan.calls, outcomes, strict=True):
        if isinstance(outcome, BaseException) and gives_up(outcome):
            refused = _letter(outcome)
            if await _dead(dead_letters, topic, refused, event, delivery) is RETRY:
                status = RETRY
        elif isinstance(outcome, BaseException):
            level = logging.INFO if isinstance(outcome, TransientError) else logging.ERROR
            log.log(level, "RETRY %s/%s: %r", topic, plan.envelope.event_id, outcome)
            status = RETRY
    if plan.then is None or status is RETRY:
        return status
    answers = [o.events if isinstance(o, ActorResult) else None for o in outcomes]
    try:
        follow = plan.follow_up(answers)
    except DeadLetterError as letter:
        return await _dead(dead_letters, topic, letter, event)
    if not follow.calls:
        return status
    return await _deliver(actors, dead_letters, topic, event, follow)


def _letter(error: BaseException) -> DeadLetterError:
    if isinstance(error, DeadLetterError):
        return error
    if isinstance(error, DomainError):
        return DeadLetterError(error.code, error.detail)
    return DeadLetterError("event.permanent_failure", str(error))


async def _invoke(actors: ActorClient, delivery: Call) -> ActorResult:
    return await actors.invoke(
        delivery.actor_type, delivery.actor_id, delivery.method, delivery.payload
    )


async def _dead(
    dead_letters: DeadLetters,
    topic: str,
    letter: DeadLetterError,
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
