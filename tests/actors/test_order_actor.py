"""OrderActor over the in-memory store: not-found, the deadline, the saga's facts."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from actors.order.actor import DEADLINE_REMINDER, Deadlines, OrderActor
from actors.order.deadlines import index_key, shard_of
from actors.toolkit.actor import ActorDeps
from actors.toolkit.store import InMemoryStores
from actors.toolkit.testing import activate
from tests.actors.doubles import ManualClock, RecordingPublisher

DEADLINES = Deadlines(shipping=dt.timedelta(seconds=8))
RESERVED_A = b'{"sku": "A", "message_id": "e1/OnStockReserved"}'
PLACE = b'{"customer_id": "c-1", "lines": [{"sku": "A", "quantity": 2, "unit_price": 150}]}'
START = ManualClock().now


class Order:
    """ord-1 over its own in-memory store, with the store's due index at hand."""

    def __init__(self, publisher: RecordingPublisher, clock: ManualClock | None = None) -> None:
        self.stores = InMemoryStores()
        self.clock = clock or ManualClock()
        deps = ActorDeps(publisher=publisher, store=self.stores, clock=self.clock)
        self.actor = activate(OrderActor, "ord-1", deps, deadlines=DEADLINES)

    def deadline(self) -> dt.datetime | None:
        """When the order's entry in the due index is due (None: no entry)."""
        at = self.stores.indexes.get(index_key(shard_of("ord-1")), {}).get("ord-1")
        return None if at is None else dt.datetime.fromtimestamp(at / 1000, dt.UTC)


def make(publisher: RecordingPublisher, clock: ManualClock | None = None) -> OrderActor:
    return Order(publisher, clock).actor


def body(raw: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(raw)
    return decoded


def reminders(actor: OrderActor) -> dict[str, Any]:
    return actor._state_manager._mock_reminders  # type: ignore[attr-defined,no-any-return]


async def placed_then_checked(publisher: RecordingPublisher, *, after_seconds: int) -> Order:
    """Place ord-1, let `after_seconds` pass, then the sweeper's CheckDeadline."""
    order = Order(publisher)
    await order.actor.invoke("Place", PLACE)
    order.clock.advance(seconds=after_seconds)
    await order.actor.check_deadline()
    return order


async def confirmed(publisher: RecordingPublisher) -> Order:
    """ord-1 placed, its one line reserved and its payment authorized."""
    order = Order(publisher)
    await order.actor.invoke("Place", PLACE)
    await order.actor.invoke("OnStockReserved", RESERVED_A)
    await order.actor.invoke("OnPaymentAuthorized", b'{"message_id": "e2/OnPaymentAuthorized"}')
    return order


async def test_an_order_never_placed_is_not_found(publisher: RecordingPublisher) -> None:
    out = body(await make(publisher).get())
    assert out["ok"] is False
    assert out["error"]["code"] == "order.not_found"


async def test_placing_writes_its_deadline_with_the_order_and_registers_no_reminder(
    publisher: RecordingPublisher,
) -> None:
    order = Order(publisher)
    out = body(await order.actor.invoke("Place", PLACE))
    assert out["result"]["status"] == "reserving"
    assert out["result"]["total"] == 300
    assert order.deadline() == START + dt.timedelta(seconds=30)  # reserving allows 30 s
    assert reminders(order.actor) == {}
    assert [env.type for _, env in publisher.sent] == ["order.placed"]


async def test_each_step_moves_the_deadline_to_its_own_timeout(
    publisher: RecordingPublisher,
) -> None:
    order = Order(publisher)
    await order.actor.invoke("Place", PLACE)
    order.clock.advance(seconds=5)
    await order.actor.invoke("OnStockReserved", RESERVED_A)  # now authorizing: 30 s more
    assert order.deadline() == START + dt.timedelta(seconds=35)
    order.clock.advance(seconds=1)
    await order.actor.invoke("OnPaymentAuthorized", b'{"message_id": "e2/OnPaymentAuthorized"}')
    assert order.deadline() == START + dt.timedelta(seconds=6 + 8)  # the partner: 8 s


async def test_a_check_within_the_step_timeout_changes_nothing(
    publisher: RecordingPublisher,
) -> None:
    order = await placed_then_checked(publisher, after_seconds=20)  # reserving allows 30 s
    assert body(await order.actor.get())["result"]["status"] == "reserving"
    assert order.deadline() == START + dt.timedelta(seconds=30)


async def test_a_check_after_the_step_timeout_cancels_and_removes_the_deadline(
    publisher: RecordingPublisher,
) -> None:
    order = await placed_then_checked(publisher, after_seconds=31)
    view = body(await order.actor.get())["result"]
    assert view["status"] == "cancelled"
    assert view["cancel_reason"] == "deadline passed while reserving"
    assert order.deadline() is None
    cancelled = publisher.sent[-1][1]
    assert cancelled.type == "order.cancelled"
    assert cancelled.payload["release_skus"] == ["A"]


async def test_a_check_answers_what_it_did(publisher: RecordingPublisher) -> None:
    order = Order(publisher)
    await order.actor.invoke("Place", PLACE)
    waiting = body(await order.actor.check_deadline())["result"]
    order.clock.advance(seconds=31)
    cancelled = body(await order.actor.check_deadline())["result"]
    ended = body(await order.actor.check_deadline())["result"]
    assert waiting == {"status": "reserving", "action": "waiting"}
    assert cancelled == {"status": "cancelled", "action": "cancelled"}
    assert ended == {"status": "cancelled", "action": "ended"}


async def test_a_check_of_a_finished_order_left_in_the_index_only_removes_it(
    publisher: RecordingPublisher,
) -> None:
    order = Order(publisher)
    await order.actor.invoke("Place", PLACE)
    await order.actor.invoke("Cancel", b'{"reason": "no longer needed"}')
    order.stores.indexes[index_key(shard_of("ord-1"))]["ord-1"] = 1  # e.g. written by hand
    sent = len(publisher.sent)
    await order.actor.check_deadline()
    assert order.deadline() is None
    assert len(publisher.sent) == sent


async def test_a_legacy_deadline_reminder_still_cancels_and_unregisters_itself(
    publisher: RecordingPublisher,
) -> None:
    """Orders placed before the due index carry a `deadline` reminder."""
    order = Order(publisher)
    await order.actor.invoke("Place", PLACE)
    await order.actor.register_reminder(
        DEADLINE_REMINDER, b"", dt.timedelta(seconds=30), dt.timedelta(seconds=15)
    )
    order.clock.advance(seconds=31)
    await order.actor.receive_reminder(DEADLINE_REMINDER, b"", dt.timedelta(0), dt.timedelta(0))
    assert body(await order.actor.get())["result"]["status"] == "cancelled"
    assert reminders(order.actor) == {}


async def test_facts_walk_the_saga_to_confirmed_and_a_customer_cancel_is_then_refused(
    publisher: RecordingPublisher,
) -> None:
    actor = (await confirmed(publisher)).actor
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


async def test_the_commit_that_ends_an_order_removes_its_deadline(
    publisher: RecordingPublisher,
) -> None:
    order = await confirmed(publisher)
    assert order.deadline() is not None  # confirmed: still waiting on the partner

    shipped = body(
        await order.actor.invoke(
            "OnShipmentDispatched", b'{"shipment_id": "shp-1", "message_id": "e3/ship"}'
        )
    )

    assert shipped["result"]["status"] == "shipped"
    assert order.deadline() is None
