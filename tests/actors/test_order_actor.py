"""OrderActor on the SDK's mock actors: not-found, the deadline reminder, the saga's facts."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from actors.order.actor import DEADLINE_REMINDER, Deadlines, OrderActor
from actors.toolkit.actor import ActorDeps
from actors.toolkit.sidecar import SidecarUnavailableError
from actors.toolkit.store import InMemoryStores, StateManagerStore
from actors.toolkit.testing import activate
from tests.actors.doubles import ManualClock, RecordingPublisher

DEADLINES = Deadlines(shipping=dt.timedelta(seconds=8))
RESERVED_A = b'{"sku": "A", "message_id": "e1/OnStockReserved"}'
PLACE = b'{"customer_id": "c-1", "lines": [{"sku": "A", "quantity": 2, "unit_price": 150}]}'


def make(publisher: RecordingPublisher, clock: ManualClock | None = None) -> OrderActor:
    deps = ActorDeps(
        publisher=publisher,
        store=StateManagerStore.factory,
        clock=clock or ManualClock(),
    )
    return activate(OrderActor, "ord-1", deps, deadlines=DEADLINES)


def body(raw: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(raw)
    return decoded


def reminders(actor: OrderActor) -> dict[str, Any]:
    return actor._state_manager._mock_reminders  # type: ignore[attr-defined,no-any-return]


async def tick(actor: OrderActor) -> None:
    """The deadline reminder fires."""
    await actor.receive_reminder(DEADLINE_REMINDER, b"", dt.timedelta(0), dt.timedelta(0))


async def placed_then_ticked(publisher: RecordingPublisher, *, after_seconds: int) -> OrderActor:
    """Place ord-1, let `after_seconds` pass, then fire the deadline reminder."""
    clock = ManualClock()
    actor = make(publisher, clock)
    await actor.invoke("Place", PLACE)
    clock.advance(seconds=after_seconds)
    await tick(actor)
    return actor


async def confirmed(publisher: RecordingPublisher) -> OrderActor:
    """ord-1 placed, its one line reserved and its payment authorized."""
    actor = make(publisher)
    await actor.invoke("Place", PLACE)
    await actor.invoke("OnStockReserved", RESERVED_A)
    await actor.invoke("OnPaymentAuthorized", b'{"message_id": "e2/OnPaymentAuthorized"}')
    return actor


async def test_an_order_never_placed_is_not_found(publisher: RecordingPublisher) -> None:
    out = body(await make(publisher).get())
    assert out["ok"] is False
    assert out["error"]["code"] == "order.not_found"


async def test_placing_registers_one_deadline_reminder_ticking_at_half_the_shortest_timeout(
    publisher: RecordingPublisher,
) -> None:
    actor = make(publisher)
    out = body(await actor.invoke("Place", PLACE))
    assert out["result"]["status"] == "reserving"
    assert out["result"]["total"] == 300
    reminder = reminders(actor)[DEADLINE_REMINDER]
    assert reminder.due_time == dt.timedelta(seconds=8)
    assert reminder.period == dt.timedelta(seconds=4)
    assert [env.type for _, env in publisher.sent] == ["order.placed"]


async def test_a_tick_within_the_step_timeout_changes_nothing(
    publisher: RecordingPublisher,
) -> None:
    actor = await placed_then_ticked(publisher, after_seconds=20)  # reserving allows 30 s
    assert body(await actor.get())["result"]["status"] == "reserving"
    assert DEADLINE_REMINDER in reminders(actor)


async def test_a_tick_after_the_step_timeout_cancels_and_unregisters(
    publisher: RecordingPublisher,
) -> None:
    actor = await placed_then_ticked(publisher, after_seconds=31)
    view = body(await actor.get())["result"]
    assert view["status"] == "cancelled"
    assert view["cancel_reason"] == "deadline passed while reserving"
    assert DEADLINE_REMINDER not in reminders(actor)
    cancelled = publisher.sent[-1][1]
    assert cancelled.type == "order.cancelled"
    assert cancelled.payload["release_skus"] == ["A"]


async def test_a_tick_on_a_finished_order_only_unregisters(publisher: RecordingPublisher) -> None:
    actor = make(publisher)
    await actor.invoke("Place", PLACE)
    await actor.invoke("Cancel", b'{"reason": "no longer needed"}')
    sent = len(publisher.sent)
    await tick(actor)
    assert reminders(actor) == {}
    assert len(publisher.sent) == sent


async def test_facts_walk_the_saga_to_confirmed_and_a_customer_cancel_is_then_refused(
    publisher: RecordingPublisher,
) -> None:
    actor = await confirmed(publisher)
    assert body(await actor.get())["result"]["status"] == "confirmed"
    refused = body(await actor.invoke("Cancel", b"{}"))
    assert refused["error"]["code"] == "order.with_shipping"
    types = [env.type for _, env in publisher.sent]
    assert types == [
        "order.placed",
        "order.line_reserved",
        "order.payment_requested",
        "order.confirmed",
    ]


async def test_a_stale_activation_rechecks_the_store_before_refusing_a_fact(
    publisher: RecordingPublisher,
) -> None:
    """Seen in the chaos suite: a host got an order back while it still cached it as never
    placed; refusing the fact there would dead-letter a good event."""
    stores = InMemoryStores()

    def activation() -> OrderActor:
        deps = ActorDeps(publisher=publisher, store=stores)
        return activate(OrderActor, "ord-1", deps, deadlines=DEADLINES)

    stale, owner = activation(), activation()
    assert body(await stale.get())["error"]["code"] == "order.not_found"  # caches "new"
    await owner.invoke("Place", PLACE)
    out = body(await stale.invoke("OnStockReserved", RESERVED_A))
    assert out["ok"] is True
    assert out["aggregate_version"] == 3  # on top of the stored order: reserved, then payment
    assert body(await stale.get())["result"]["status"] == "authorizing"


async def test_a_refusal_on_the_stored_state_stays_a_refusal(publisher: RecordingPublisher) -> None:
    actor = make(publisher)
    out = body(
        await actor.invoke("OnStockReserved", b'{"sku": "A", "message_id": "e1/OnStockReserved"}')
    )
    assert out["error"]["code"] == "order.not_found"


async def test_the_commit_that_ends_an_order_drops_its_deadline_reminder_at_once(
    publisher: RecordingPublisher,
) -> None:
    actor = await confirmed(publisher)
    assert DEADLINE_REMINDER in reminders(actor)  # confirmed: still waiting on the partner

    shipped = body(
        await actor.invoke(
            "OnShipmentDispatched", b'{"shipment_id": "shp-1", "message_id": "e3/ship"}'
        )
    )

    assert shipped["result"]["status"] == "shipped"
    assert reminders(actor) == {}


async def test_a_cancel_drops_the_reminder_and_a_failed_unregister_leaves_it_to_the_tick(
    publisher: RecordingPublisher,
) -> None:
    actor = make(publisher)
    await actor.invoke("Place", PLACE)

    async def unreachable(name: str) -> None:
        raise SidecarUnavailableError(f"DELETE reminder {name}: refused")

    real_unregister = actor.unregister_reminder
    actor.unregister_reminder = unreachable  # type: ignore[method-assign]
    out = body(await actor.invoke("Cancel", b'{"reason": "no longer needed"}'))
    assert out["result"]["status"] == "cancelled"  # the cancel itself stands
    assert DEADLINE_REMINDER in reminders(actor)

    actor.unregister_reminder = real_unregister  # type: ignore[method-assign]
    await tick(actor)
    assert reminders(actor) == {}
