"""Test doubles for actor tests: a publisher that records (or refuses) what it is given,
and a clock the test moves by hand."""

from __future__ import annotations

import datetime as dt
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


class ManualClock:
    """UTC now, standing still until the test advances it."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, *, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
