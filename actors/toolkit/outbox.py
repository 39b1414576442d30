"""The transactional outbox of one activation: saved events not yet confirmed published.

Events are saved with the snapshot (actors.toolkit.eventlog) and published after the
commit. `published` is the watermark: every version up to it is confirmed published. It
is stored in the snapshot of the NEXT append (never written on its own, so nothing
writes state outside a turn); a reactivation re-sends what lies above the stored
watermark, with the same event ids (deterministic per aggregate and version), and
consumers dedupe. The happy path registers no reminder.

A failed publish (daprd has already retried it in-process, `publishRetry`) keeps the
events and arms the `outbox-retry` reminder, due after a jittered ~1 s and then every
~2-3 s, jittered per actor so that actors whose publishes failed together (a sidecar or
Redis restart) do not all retry in the same instant. If the reminder cannot be registered
(the scheduler or the sidecar is down too), an in-process retry task takes over: it
re-publishes with exponential backoff and full jitter, trying to arm the reminder again
on each round, until the events are out or the task's budget is spent (then the next
command or activation of the actor sends them). Publishing outside a turn is safe: the
outbox only ever holds events that were committed, each keeps its event id, and a
confirmation only trims the versions it covered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.metrics import OutboxMetrics
from actors.toolkit.publisher import Publisher, PublishError
from actors.toolkit.tracing import current_traceparent, span

OUTBOX_REMINDER: Final = "outbox-retry"
OUTBOX_RETRY_DUE: Final = dt.timedelta(seconds=1)  # the first retry, ±50 % jitter
OUTBOX_RETRY_PERIOD: Final = dt.timedelta(seconds=2)  # then every 2-3 s (+0-50 % jitter)
RETRY_TASK_BASE_S: Final = 0.5  # in-process retries when no reminder could be armed:
RETRY_TASK_CAP_S: Final = 5.0  # full jitter over min(cap, base * 2**n)
RETRY_TASK_BUDGET_S: Final = 120.0  # then the next command or activation sends them
RETRY_TASK_MAX_ATTEMPTS: Final = 60
log = logging.getLogger("orderflow.actors")
# One generator for every outbox's jitter: a Random is 2.5 KB of state seeded from
# os.urandom, and an actor host holds an outbox per active actor (thousands of orders)
_JITTER: Final = random.Random()


class Reminders:
    """The two reminder calls the outbox needs, bound to one actor."""

    def __init__(
        self,
        register: Callable[[str, bytes, dt.timedelta, dt.timedelta], Awaitable[None]],
        unregister: Callable[[str], Awaitable[None]],
    ) -> None:
        self.register = register
        self.unregister = unregister


def retry_schedule(rng: random.Random) -> tuple[dt.timedelta, dt.timedelta]:
    """(due, period) of the retry reminder: jittered so a crowd of actors spreads out."""
    due = OUTBOX_RETRY_DUE * rng.uniform(0.5, 1.5)
    period = OUTBOX_RETRY_PERIOD * rng.uniform(1.0, 1.5)
    return due, period


def backoff_delays(rng: random.Random) -> list[float]:
    """Sleeps of the in-process retry task: full jitter, exponential, within the budget."""
    delays: list[float] = []
    attempt = 0
    while sum(delays) < RETRY_TASK_BUDGET_S and attempt < RETRY_TASK_MAX_ATTEMPTS:
        delays.append(rng.uniform(0, min(RETRY_TASK_CAP_S, RETRY_TASK_BASE_S * 2**attempt)))
        attempt += 1
    return delays


class Outbox:
    def __init__(
        self,
        *,
        publisher: Publisher,
        topic: str,
        reminders: Reminders,
        name: str,
        rng: random.Random | None = None,
        metrics: OutboxMetrics | None = None,
    ) -> None:
        self._publisher = publisher
        self._topic = topic
        self._reminders = reminders
        self._name = name
        self._rng = rng or _JITTER
        self._metrics = metrics
        self._pending: tuple[EventEnvelope, ...] = ()
        self.published = 0  # every version up to this one is confirmed published
        self.retry_armed = False
        self.retry_task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> tuple[EventEnvelope, ...]:
        return self._pending

    @pending.setter
    def pending(self, envelopes: tuple[EventEnvelope, ...]) -> None:
        if self._metrics is not None:  # the backlog gauge follows every change
            self._metrics.backlog.inc(len(envelopes) - len(self._pending))
        self._pending = envelopes

    def load(self, pending: Sequence[EventEnvelope], published: int) -> None:
        self.pending, self.published = tuple(pending), published

    def add(self, envelopes: Sequence[EventEnvelope]) -> None:
        self.pending += tuple(envelopes)

    async def flush(self) -> None:
        """Publish what is pending; on failure keep it and arm the retry."""
        if not self.pending:
            await self._disarm()
            return
        if await self._publish():
            await self._disarm()
            return
        await self._arm()

    async def _publish(self) -> bool:
        """Publish a copy of what is pending; on success trim exactly what it covered."""
        batch = self.pending
        if not batch:
            return True
        try:
            with span(f"publish {self._topic}", events=len(batch)):
                await self._publisher.publish(self._topic, batch, traceparent=current_traceparent())
        except PublishError as exc:
            if self._metrics is not None:
                self._metrics.publish_failures.inc()
            log.warning("%s: publish failed, kept in outbox: %s", self._name, exc)
            return False
        last = batch[-1].aggregate_version
        self.published = max(self.published, last)
        self.pending = tuple(e for e in self.pending if e.aggregate_version > last)
        return True

    async def _disarm(self) -> None:
        if self.retry_armed:
            await self._reminders.unregister(OUTBOX_REMINDER)
            self.retry_armed = False

    async def _arm(self) -> None:
        if self.retry_armed or await self._try_arm():
            return
        log.warning("%s: outbox retry reminder not armed, retrying in-process", self._name)
        if self.retry_task is None or self.retry_task.done():
            self.retry_task = asyncio.get_running_loop().create_task(self._retry_in_process())

    async def _try_arm(self) -> bool:
        due, period = retry_schedule(self._rng)
        try:
            await self._reminders.register(OUTBOX_REMINDER, b"", due, period)
        except Exception as exc:  # the scheduler or the sidecar is down as well
            log.info("%s: outbox retry reminder not registered: %s", self._name, exc)
            return False
        self.retry_armed = True
        return True

    async def _retry_in_process(self) -> None:
        for delay in backoff_delays(self._rng):
            await asyncio.sleep(delay)
            if not self.pending or await self._publish():
                return  # sent; a reminder armed meanwhile unregisters itself when it fires
            if not self.retry_armed:
                await self._try_arm()
        log.warning("%s: outbox still unpublished after the retry budget", self._name)
