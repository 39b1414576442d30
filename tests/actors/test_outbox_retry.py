"""The outbox's retry after a failed publish: jittered reminder, in-process fallback."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest

from actors.inventory.actor import InventoryActor
from actors.toolkit import outbox
from actors.toolkit.actor import ActorDeps
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.outbox import OUTBOX_REMINDER, Outbox, Reminders
from actors.toolkit.store import StateManagerStore
from actors.toolkit.testing import activate
from tests.actors.doubles import RecordingPublisher


class LowJitter(random.Random):
    """Always the low end of a jitter range: the fastest schedule."""

    def uniform(self, a: float, b: float) -> float:
        return a


class FakeReminders:
    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.armed: dict[str, tuple[dt.timedelta, dt.timedelta]] = {}

    async def register(self, name: str, _: bytes, due: dt.timedelta, period: dt.timedelta) -> None:
        if self.down:
            raise RuntimeError("scheduler unavailable (test double)")
        self.armed[name] = (due, period)

    async def unregister(self, name: str) -> None:
        self.armed.pop(name, None)

    def bound(self) -> Reminders:
        return Reminders(self.register, self.unregister)


def envelope(version: int) -> EventEnvelope:
    return EventEnvelope.model_validate(
        {
            "event_id": f"e-{version}",
            "type": "inventory.stock_restocked",
            "schema_version": 1,
            "aggregate_type": "InventoryActor",
            "aggregate_id": "SKU-1",
            "aggregate_version": version,
            "occurred_at": "2026-01-01T00:00:00+00:00",
            "correlation_id": "c",
            "payload": {"sku": "SKU-1", "quantity": 1},
        }
    )


def make_outbox(publisher: RecordingPublisher, reminders: FakeReminders) -> Outbox:
    return Outbox(
        publisher=publisher,
        topic="inventory",
        reminders=reminders.bound(),
        name="InventoryActor/SKU-1",
        rng=LowJitter(),
    )


def test_retry_reminders_of_many_actors_are_spread_within_bounds() -> None:
    rng = random.Random(7)
    schedules = [outbox.retry_schedule(rng) for _ in range(200)]
    dues = {due for due, _ in schedules}
    assert len(dues) > 150  # not one instant for everyone
    assert all(dt.timedelta(seconds=0.5) <= due <= dt.timedelta(seconds=1.5) for due in dues)
    assert all(
        dt.timedelta(seconds=2) <= period <= dt.timedelta(seconds=3) for _, period in schedules
    )


def test_in_process_backoff_grows_is_capped_and_ends() -> None:
    delays = outbox.backoff_delays(random.Random(3))
    caps = [min(outbox.RETRY_TASK_CAP_S, outbox.RETRY_TASK_BASE_S * 2**n) for n in range(99)]
    assert all(0 <= d <= cap for d, cap in zip(delays, caps, strict=False))
    assert len(delays) <= outbox.RETRY_TASK_MAX_ATTEMPTS
    assert (
        sum(delays) >= outbox.RETRY_TASK_BUDGET_S or len(delays) == outbox.RETRY_TASK_MAX_ATTEMPTS
    )


async def test_failed_publish_arms_a_jittered_reminder_and_keeps_the_events(
    publisher: RecordingPublisher,
) -> None:
    reminders = FakeReminders()
    box = make_outbox(publisher, reminders)
    box.add([envelope(1)])
    publisher.down = True
    await box.flush()
    assert box.pending == (envelope(1),)
    assert reminders.armed == {
        OUTBOX_REMINDER: (dt.timedelta(seconds=0.5), dt.timedelta(seconds=2))
    }
    assert box.retry_task is None  # the reminder carries the retry: no task
    publisher.down = False
    await box.flush()
    assert publisher.event_ids == ["e-1"]
    assert reminders.armed == {}
    assert box.published == 1


async def stranded(
    publisher: RecordingPublisher, *envelopes: EventEnvelope
) -> tuple[Outbox, asyncio.Task[None]]:
    """An outbox whose flush found neither the broker nor the scheduler: its retry task runs."""
    box = make_outbox(publisher, FakeReminders(down=True))
    box.add(list(envelopes))
    publisher.down = True
    await box.flush()  # neither publish nor reminder: must not raise
    assert box.retry_task is not None
    return box, box.retry_task


async def test_when_no_reminder_can_be_armed_an_in_process_task_publishes(
    publisher: RecordingPublisher,
) -> None:
    box, task = await stranded(publisher, envelope(1), envelope(2))
    publisher.down = False
    await asyncio.wait_for(task, timeout=5)
    assert publisher.event_ids == ["e-1", "e-2"]
    assert box.pending == ()
    assert box.published == 2


async def test_the_retry_task_trims_only_what_it_sent_while_a_turn_adds_more(
    publisher: RecordingPublisher,
) -> None:
    box, task = await stranded(publisher, envelope(1))
    box.add([envelope(2)])  # a later turn committed another event (its publish failed too)
    publisher.down = False
    await asyncio.wait_for(task, timeout=5)
    assert box.pending == ()
    assert box.published == 2
    assert sorted(publisher.event_ids) == ["e-1", "e-2"]


async def test_a_command_succeeds_when_publish_and_scheduler_are_down_and_its_event_follows(
    publisher: RecordingPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "RETRY_TASK_BASE_S", 0.01)
    monkeypatch.setattr(outbox, "RETRY_TASK_CAP_S", 0.05)
    deps = ActorDeps(publisher=publisher, store=StateManagerStore.factory)
    actor = activate(InventoryActor, "SKU-1", deps)

    async def scheduler_down(*_: object) -> None:
        raise RuntimeError("scheduler unavailable (test double)")

    monkeypatch.setattr(actor, "register_reminder", scheduler_down)
    publisher.down = True
    out = await actor.invoke("Restock", b'{"quantity": 2}')
    assert b'"ok":true' in out
    task = actor._outbox().retry_task
    assert task is not None
    publisher.down = False
    await asyncio.wait_for(task, timeout=10)
    assert len(publisher.event_ids) == 1
