"""Publishing event envelopes as CloudEvents through the sidecar's pub/sub API.

The CloudEvent keeps the envelope's event id (`metadata.cloudevent.id`) and type, so a
re-sent event is recognisably the same event. One pooled HTTP client per process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.errors import TransientError
from actors.toolkit.sidecar import SidecarTransport, SidecarUnavailableError


class PublishError(TransientError):
    """The sidecar did not confirm a publish; the event stays in the outbox."""


class Publisher(Protocol):
    async def publish(
        self, topic: str, envelopes: Sequence[EventEnvelope], *, traceparent: str = ""
    ) -> None:
        """Publish every envelope (any order); raise PublishError unless all succeeded."""


class SidecarPublisher:
    def __init__(self, http: SidecarTransport, *, pubsub: str) -> None:
        self._http = http
        self._pubsub = pubsub

    async def publish(
        self, topic: str, envelopes: Sequence[EventEnvelope], *, traceparent: str = ""
    ) -> None:
        headers = {"content-type": "application/json"}
        if traceparent:
            headers["traceparent"] = traceparent
        results = await asyncio.gather(
            *(self._one(topic, env, headers) for env in envelopes), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise PublishError(f"{len(failures)} of {len(envelopes)} not published: {failures[0]}")

    async def _one(self, topic: str, envelope: EventEnvelope, headers: dict[str, str]) -> None:
        await self.publish_document(
            topic,
            envelope.model_dump_json(),
            event_id=envelope.event_id,
            event_type=envelope.type,
            headers=headers,
        )

    async def publish_document(
        self,
        topic: str,
        document: str,
        *,
        event_id: str,
        event_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Publish one JSON document as a CloudEvent with the given id and type."""
        params = {"metadata.cloudevent.id": event_id, "metadata.cloudevent.type": event_type}
        try:
            status, body = await self._http.request(
                "POST",
                f"/v1.0/publish/{self._pubsub}/{topic}",
                content=document,
                params=params,
                headers=headers or {"content-type": "application/json"},
            )
        except SidecarUnavailableError as exc:
            raise PublishError(f"sidecar unreachable: {exc}") from exc
        if status >= 300:
            raise PublishError(f"publish to {topic} -> {status}: {body[:200]!r}")
