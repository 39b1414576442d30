"""The transactional outbox of one activation: saved events not yet confirmed published.

Events are saved with the snapshot (actors.toolkit.eventlog) and published after the
commit. `published` is the watermark: every version up to it is confirmed published. It
is stored in the snapshot of the NEXT append (never written on its own, so nothing
writes state outside a turn); a reactivation re-sends what lies above the stored
watermark, with the same event ids (deterministic per aggregate and version), and
consumers dedupe. A failed publish arms a retry reminder; the happy path never does.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.publisher import Publisher, PublishError
from actors.toolkit.tracing import current_traceparent

OUTBOX_REMINDER: Final = "outbox-retry"
OUTBOX_RETRY_DUE: Final = dt.timedelta(seconds=1)
OUTBOX_RETRY_PERIOD: Final = dt.timedelta(seconds=5)
log = logging.getLogger("orderflow.actors")


class Reminders:
    """The two reminder calls the outbox needs, bound to one actor."""

    def __init__(
        self,
        register: Callable[[str, bytes, dt.timedelta, dt.timedelta], Awaitable[None]],
        unregister: Callable[[str], Awaitable[None]],
    ) -> None:
        self.register = register
        self.unregister = unregister


class Outbox:
    def __init__(
        self, *, publisher: Publisher, topic: str, reminders: Reminders, name: str
    ) -> None:
        self._publisher = publisher
        self._topic = topic
        self._reminders = reminders
        self._name = name
        self.pending: tuple[EventEnvelope, ...] = ()
        self.published = 0  # every version up to this one is confirmed published
        self.retry_armed = False

    def load(self, pending: Sequence[EventEnvelope], published: int) -> None:
        self.pending, self.published = tuple(pending), published

    def add(self, envelopes: Sequence[EventEnvelope]) -> None:
        self.pending += tuple(envelopes)

    async def flush(self) -> None:
        """Publish what is pending; on failure keep it and arm the retry reminder."""
        if not self.pending:
            await self._disarm()
            return
        try:
            await self._publisher.publish(
                self._topic, self.pending, traceparent=current_traceparent()
            )
        except PublishError as exc:
            log.warning("%s: publish failed, kept in outbox: %s", self._name, exc)
            await self._arm()
            return
        self.published = self.pending[-1].aggregate_version
        self.pending = ()
        await self._disarm()

    async def _disarm(self) -> None:
        if self.retry_armed:
            await self._reminders.unregister(OUTBOX_REMINDER)
            self.retry_armed = False

    async def _arm(self) -> None:
        if not self.retry_armed:
            await self._reminders.register(
                OUTBOX_REMINDER, b"", OUTBOX_RETRY_DUE, OUTBOX_RETRY_PERIOD
            )
            self.retry_armed = True
