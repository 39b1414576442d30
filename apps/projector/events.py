"""The subscriptions: every event on orders, inventory and wallet goes to the read models.

POST /events/<topic> (served by actors.toolkit.fastpath, ahead of FastAPI's routing): Dapr
bulk-subscribes (up to BULK_MAX events a delivery, waiting at most BULK_AWAIT_MS for a
batch to fill), so one HTTP delivery carries many CloudEvents and the
reply gives a status per entry; a single CloudEvent (bulk off, or a test) is served too.
Every entry is decided on its own, and the events to project are projected together
(ProjectionStore.project_batch: two Redis round trips for the whole delivery).
Each CloudEvent's data is an event envelope, read through the one EventReader the rebuild
uses too (apps.projector.reader: upcast to the newest schema version):
    projected (or a duplicate, which changes nothing)                  SUCCESS
    an event that feeds no read model                                  SUCCESS, ignored
    not an envelope, or a payload a projection cannot read (an old     SUCCESS after
        schema version without an upcaster included)                   recording it
                                                                       (<base>rejected, the
                                                                       last 1000, the log)
    a schema version newer than this projector knows                   RETRY (until an
                                                                       upgraded one reads it)
    Redis unavailable, or anything unforeseen                          RETRY
The error tree decides (actors.toolkit.errors): what `gives_up` on (a PermanentError such
as InvalidDeliveryError or InvalidEventError) is recorded; everything else is RETRY.

Why a redelivery topic: with Redis Streams, daprd acknowledges a message once its inbound
retry policy is spent (about 7 s with components/resiliency.yaml), so a projector down
for longer would lose events. Each subscription therefore names REDELIVERY as its dead
letter topic: a message daprd could not deliver is published there instead, the projector
subscribes to it too, and its own dead letter topic is itself, so the message circles
until the projector takes it. That is also why nothing here answers DROP (a dropped
message goes to the dead letter topic: it would circle forever).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any, Final

from fastapi import APIRouter, Request
from redis.exceptions import RedisError
from starlette.types import Scope

from actors.catalog import PROJECTOR_REDELIVERY, PUBSUB
from actors.toolkit import codec
from actors.toolkit.envelope import EventEnvelope, envelope_in, utcnow
from actors.toolkit.fastpath import Answer, FastRoute, json_answer
from actors.toolkit.streamfeed import FEED_DAPR, Entry, cloud_event_of
from actors.toolkit.subscriber import RETRY, SUCCESS, bulk_options, gives_up, is_bulk
from apps.projector.projections import TOPICS, projects
from apps.projector.reader import EventReader
from apps.projector.stats import ProjectorStats
from apps.projector.store import ProjectionStore

REDELIVERY: Final = PROJECTOR_REDELIVERY
TOPIC_OF: Final = {aggregate_type: topic for topic, aggregate_type in TOPICS.items()}
BULK_MAX: Final = 100  # events per delivery (bounded by the pubsub component's concurrency)
# The most a lone event waits for company: adds to projection lag. daprd's bulk
# subscriber wakes every BULK_AWAIT_MS on each of the 4 topics, busy or not: an idle
# projector daprd used 43 ms of CPU a second at 5 ms, 15 at 20 ms (bench cluster, 20 s).
BULK_AWAIT_MS: Final = 20
log = logging.getLogger("orderflow.projector")

router = APIRouter(tags=["events"])


# what the stream feed reads: the topics, and what daprd left on the redelivery loop
FEED_STREAMS: Final = (*TOPICS, REDELIVERY)


@router.get("/dapr/subscribe", include_in_schema=False)
async def subscriptions(request: Request) -> list[dict[str, Any]]:
    """Dapr's programmatic subscriptions: one route per topic, undeliverable -> REDELIVERY.
    None when the projector reads the streams itself (its feed)."""
    if getattr(request.app.state, "feed_mode", FEED_DAPR) != FEED_DAPR:
        return []
    return [
        {
            "pubsubname": PUBSUB,
            "topic": topic,
            "routes": {"default": f"/events/{topic}"},
            "deadLetterTopic": REDELIVERY,
            "bulkSubscribe": bulk_options(max_messages=BULK_MAX, await_ms=BULK_AWAIT_MS),
        }
        for topic in (*TOPICS, REDELIVERY)
    ]


def delivery_routes() -> list[FastRoute]:
    """POST /events/<topic>, served by actors.toolkit.fastpath ahead of FastAPI's routing
    (one request per bulk delivery); the store, reader and stats come from the lifespan.
    On REDELIVERY, events daprd could not deliver earlier: each projected as if from its
    own topic (its aggregate type's)."""

    async def deliver(params: dict[str, str], body: bytes, scope: Scope) -> Answer:
        state = scope["app"].state
        topic = params["topic"]
        reply = await _deliver(
            None if topic == REDELIVERY else topic,
            body,
            store=state.store,
            reader=state.reader,
            stats=state.stats,
        )
        return json_answer(200, reply)

    return [FastRoute("POST", re.compile(r"/events/(?P<topic>[^/]+)"), deliver)]


async def _deliver(
    topic: str | None,
    body: bytes,
    *,
    store: ProjectionStore,
    reader: EventReader,
    stats: ProjectorStats,
) -> dict[str, Any]:
    """A bulk delivery (a status per entry) or a single CloudEvent (one status)."""
    try:
        parsed = codec.loads(body)
    except ValueError as exc:
        return await reject(topic, body, f"not JSON: {exc}", store=store, stats=stats)
    if not is_bulk(parsed):
        return await _handle(topic, parsed, store=store, reader=reader, stats=stats)
    reply = await _deliver_bulk(topic, parsed, store=store, reader=reader, stats=stats)
    stats.record_batch(len(reply["statuses"]))
    return reply


async def _deliver_bulk(
    topic: str | None,
    delivery: dict[str, Any],
    *,
    store: ProjectionStore,
    reader: EventReader,
    stats: ProjectorStats,
) -> dict[str, Any]:
    """Each entry answered as `_handle` would answer it alone; the events to project go to
    the store in one batch. The reply daprd expects, a status for every entry id."""
    # the entries actors.toolkit.subscriber.each_entry answers
    entries = [e for e in delivery.get("entries") or () if isinstance(e, dict) and e.get("entryId")]
    answers = await project_entries(
        [(topic, entry.get("event")) for entry in entries], store=store, reader=reader, stats=stats
    )
    return {
        "statuses": [
            {"entryId": entry["entryId"], "status": answer["status"]}
            for entry, answer in zip(entries, answers, strict=True)
        ]
    }


async def project_entries(
    entries: Sequence[tuple[str | None, Any]],
    *,
    store: ProjectionStore,
    reader: EventReader,
    stats: ProjectorStats,
) -> list[dict[str, str]]:
    """Decide many delivered CloudEvents, each (its topic, or None for REDELIVERY; the
    CloudEvent), as each would be decided alone, projecting them together in one batch
    (ProjectionStore.project_batch). One answer per entry, in order: SUCCESS or RETRY.
    Used by daprd's bulk deliveries and by the stream feed (actors.toolkit.streamfeed)."""
    answers: dict[int, dict[str, str]] = {}
    batch: list[tuple[int, EventEnvelope]] = []
    for n, (topic, event) in enumerate(entries):
        try:
            envelope = _projectable(topic, event, reader=reader, stats=stats)
        except Exception as exc:  # the error tree decides (_failed)
            answers[n] = await _failed(topic, event, error=exc, store=store, stats=stats)
            continue
        if envelope is None:
            answers[n] = SUCCESS
        else:
            batch.append((n, envelope))
    if batch:
        envelopes = [envelope for _, envelope in batch]
        results = await store.project_batch(envelopes, applied_at=utcnow())
        now = utcnow()
        for (n, envelope), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                topic, event = entries[n]
                answers[n] = await _failed(topic, event, error=result, store=store, stats=stats)
            else:
                stats.record(result, occurred_at=envelope.occurred_at, now=now)
                answers[n] = SUCCESS
    return [answers[n] for n in range(len(entries))]


async def decide_stream_entries(
    entries: Sequence[Entry],
    *,
    store: ProjectionStore,
    reader: EventReader,
    stats: ProjectorStats,
) -> list[bool]:
    """The stream feed's batch (actors.toolkit.streamfeed): each entry's CloudEvent decided as in
    a bulk delivery, its topic the stream's (None on REDELIVERY). True: acknowledge it
    (projected, ignored, or recorded as one that can never apply); False: leave it pending."""
    answers: dict[int, dict[str, str]] = {}
    readable: list[tuple[int, tuple[str | None, Any]]] = []
    for n, (stream, _, fields) in enumerate(entries):
        topic = None if stream == REDELIVERY else stream
        try:
            readable.append((n, (topic, cloud_event_of(fields))))
        except ValueError as exc:
            body = json.dumps(
                {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}
            ).encode()
            answers[n] = await reject(
                topic, body, f"not a CloudEvent entry: {exc}", store=store, stats=stats
            )
    decided = await project_entries(
        [item for _, item in readable], store=store, reader=reader, stats=stats
    )
    for (n, _), answer in zip(readable, decided, strict=True):
        answers[n] = answer
    stats.record_batch(len(entries))
    return [answers[n]["status"] == SUCCESS["status"] for n in range(len(entries))]


async def _handle(
    topic: str | None,
    cloud_event: Any,
    *,
    store: ProjectionStore,
    reader: EventReader,
    stats: ProjectorStats,
) -> dict[str, str]:
    """One CloudEvent delivered alone."""
    try:
        envelope = _projectable(topic, cloud_event, reader=reader, stats=stats)
        if envelope is None:
            return SUCCESS
        projection = await store.project_live(envelope, applied_at=utcnow())
    except Exception as exc:
        return await _failed(topic, cloud_event, error=exc, store=store, stats=stats)
    stats.record(projection, occurred_at=envelope.occurred_at, now=utcnow())
    return SUCCESS


def _projectable(
    topic: str | None, cloud_event: Any, *, reader: EventReader, stats: ProjectorStats
) -> EventEnvelope | None:
    """The envelope to project, read at its newest schema version; None (counted as
    ignored) for an event that feeds no read model. Raises what keeps it from projection."""
    envelope = envelope_in(cloud_event)
    if not projects(topic or TOPIC_OF.get(envelope.aggregate_type, ""), envelope):
        stats.ignored += 1
        return None
    return reader.read(envelope)


async def _failed(
    topic: str | None,
    cloud_event: Any,
    *,
    error: BaseException,
    store: ProjectionStore,
    stats: ProjectorStats,
) -> dict[str, str]:
    """What a delivery that failed with `error` gets: the error tree decides
    (actors.toolkit.errors)."""
    if gives_up(error):  # InvalidDeliveryError, InvalidEventError: it can never apply
        body = json.dumps(cloud_event).encode()
        return await reject(topic, body, str(error), store=store, stats=stats)
    stats.retried += 1  # NewerSchemaError, Redis down, anything unforeseen
    level = logging.INFO if isinstance(error, RedisError) else logging.WARNING
    log.log(level, "RETRY a delivery on %s: %r", topic or REDELIVERY, error)
    return RETRY


async def reject(
    topic: str | None, body: bytes, reason: str, *, store: ProjectionStore, stats: ProjectorStats
) -> dict[str, str]:
    """Record a delivery that can never apply, then acknowledge it (RETRY if unrecorded)."""
    log.warning("rejected a delivery on %s: %s", topic or REDELIVERY, reason)
    try:
        await store.record_rejected(topic=topic or REDELIVERY, reason=reason, body=body)
    except RedisError:
        stats.retried += 1
        return RETRY
    stats.dropped += 1
    return SUCCESS
