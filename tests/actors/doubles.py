"""Test doubles for actor tests: a publisher that records (or refuses) what it is given."""

from __future__ import annotations

from collections.abc import Sequence

from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.publisher import PublishError


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, EventEnvelope]] = []
        self.down = False

    async def publish(
        self, topic: str, envelopes: Sequence[EventEnvelope], *, traceparent: str = ""
    ) -> None:
        if self.down:
            raise PublishError("broker down (test double)")
        self.sent += [(topic, env) for env in envelopes]

    @property
    def event_ids(self) -> list[str]:
        return [env.event_id for _, env in self.sent]
