"""Envelopes: the event envelope on the bus, the result envelope across the actor hop.

Event envelope (the `data` of a CloudEvent published through Dapr pub/sub):
    event_id        uuid5 of (aggregate_type, aggregate_id, aggregate_version): one event
                    per version (the store's fence), so a re-send is always the same id
    type            "<context>.<event>"
    schema_version  int, upcast on read (actors.toolkit.upcasting)
    aggregate_type, aggregate_id, aggregate_version (per-actor sequence, from 1)
    occurred_at     UTC, ISO 8601
    correlation_id  the business flow (e.g. the order id), carried from the command
    causation_id    the message id of the command or event that caused this one
    traceparent     W3C trace context when Dapr supplied one
    payload         the event's business fields
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from typing import Any, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from actors.toolkit import codec
from actors.toolkit.domain import Event
from actors.toolkit.errors import DomainError, PermanentError

EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://orderflow/events")
# uuid5 = SHA-1 of the namespace's bytes and the name: the namespace's part hashed once
_EVENT_ID_HASH: Final = hashlib.sha1(EVENT_ID_NAMESPACE.bytes, usedforsecurity=False)


def event_id_for(aggregate_type: str, aggregate_id: str, aggregate_version: int) -> str:
    """The id of an aggregate's event at a version: the same on every (re-)send.

    `uuid.uuid5(EVENT_ID_NAMESPACE, "<type>/<id>/<version>").hex`, computed without the
    UUID object (uuid5 was 4 % of a Deposit's CPU in the actor host, bench/turn.py)."""
    digest = _EVENT_ID_HASH.copy()
    digest.update(f"{aggregate_type}/{aggregate_id}/{aggregate_version}".encode())
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EventEnvelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # tolerant reader

    event_id: str = Field(min_length=1, max_length=64)
    type: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    schema_version: int = Field(ge=1)
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    correlation_id: str = ""
    causation_id: str = ""
    traceparent: str = ""
    payload: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        aggregate_type: str,
        aggregate_id: str,
        aggregate_version: int,
        correlation_id: str = "",
        causation_id: str = "",
        traceparent: str = "",
        occurred_at: dt.datetime | None = None,
    ) -> EventEnvelope:
        return cls(
            event_id=event_id_for(aggregate_type, aggregate_id, aggregate_version),
            type=event.type,
            schema_version=event.schema_version,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=aggregate_version,
            occurred_at=occurred_at or utcnow(),
            correlation_id=correlation_id,
            causation_id=causation_id,
            traceparent=traceparent,
            payload=event.model_dump(mode="json"),
        )


def failed(error: DomainError) -> bytes:
    """A domain-error result envelope: the call itself succeeds (no Dapr retry)."""
    return json.dumps({"ok": False, "error": error.to_dict()}, separators=(",", ":")).encode()


class InvalidDeliveryError(PermanentError):
    """A pub/sub delivery that does not carry an event envelope."""


def envelope_of(body: bytes) -> EventEnvelope:
    """The event envelope in a delivered CloudEvent's `data`; raises InvalidDeliveryError."""
    try:
        cloud_event = codec.loads(body)
    except ValueError as exc:
        raise InvalidDeliveryError(f"not JSON: {exc}") from exc
    return envelope_in(cloud_event)


def envelope_in(cloud_event: Any) -> EventEnvelope:
    """The event envelope in a parsed CloudEvent's `data`; raises InvalidDeliveryError."""
    data = cloud_event.get("data") if isinstance(cloud_event, dict) else None
    if isinstance(data, str):  # a publisher that sent the envelope as a JSON string
        try:
            data = codec.loads(data)
        except ValueError as exc:
            raise InvalidDeliveryError(f"data is a string but not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidDeliveryError("the CloudEvent's data is not a JSON object")
    try:
        return EventEnvelope.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors(include_url=False))
        raise InvalidDeliveryError(f"not an event envelope: invalid {fields}") from exc
