"""The actors' metrics move when their events happen (the in-memory sidecar, real actors)."""

from __future__ import annotations

from typing import Any

import pytest
from dapr.actor import ActorId

from actors.inventory.actor import InventoryActor
from actors.order.metrics import reason_class
from actors.reactions import build_router
from actors.toolkit.actor import ActorDeps
from actors.toolkit.client import ActorClient
from actors.toolkit.store import ConcurrencyError, InMemoryStores
from actors.toolkit.testing import InMemorySidecar, activate
from actors.watchers import build_actor_metrics
from tests.actors.doubles import ManualClock, RecordingPublisher
from tests.metrics_text import Samples, scrape, value

LINES: list[dict[str, Any]] = [
    {"sku": "tea", "quantity": 1, "unit_price": 100},
    {"sku": "mug", "quantity": 1, "unit_price": 900},
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sidecar(clock: ManualClock) -> InMemorySidecar:
    return InMemorySidecar(router=build_router(), clock=clock)


def samples(sidecar: InMemorySidecar) -> Samples:
    return scrape(sidecar.deps.metrics.registry)


async def stocked(actors: ActorClient, *, funds: int = 10_000, stock: int = 5) -> None:
    for line in LINES:
        await actors.invoke("InventoryActor", line["sku"], "Restock", {"quantity": stock})
    await actors.invoke("WalletActor", "cust-1", "Deposit", {"amount": funds})


async def place(actors: ActorClient, order_id: str = "ord-1", **extra: Any) -> None:
    payload = {"customer_id": "cust-1", "lines": LINES, **extra}
    await actors.invoke("OrderActor", order_id, "Place", payload)


async def test_a_shipped_order_counts_placed_confirmed_shipped_and_times_each_step(
    actors: ActorClient, sidecar: InMemorySidecar, clock: ManualClock
) -> None:
    await stocked(actors)
    await place(actors)
    clock.advance(seconds=0.3)
    await sidecar.settle()  # both reservations in one order turn, then the payment
    clock.advance(seconds=2)
    await actors.invoke("OrderActor", "ord-1", "OnShipmentDispatched", {"shipment_id": "s-1"})

    found = samples(sidecar)
    for name in ("placed", "confirmed", "shipped"):
        assert value(found, f"orderflow_orders_{name}_total") == 1
    for step in ("reserving", "authorizing", "shipping"):
        count = "orderflow_saga_step_duration_seconds_count"
        assert value(found, count, step=step, outcome="done") == 1, step
    total = "orderflow_saga_step_duration_seconds_sum"
    assert value(found, total, step="reserving", outcome="done") == pytest.approx(0.3)
    assert value(found, total, step="shipping", outcome="done") == pytest.approx(2.0)


async def test_a_reactivated_order_times_its_step_from_the_loaded_snapshot(
    actors: ActorClient, sidecar: InMemorySidecar, clock: ManualClock
) -> None:
    await stocked(actors)
    await place(actors)
    await sidecar.settle()  # confirmed: waiting for the shipment
    await sidecar._managers["OrderActor"].deactivate_actor(ActorId("ord-1"))  # a new activation
    clock.advance(seconds=4)
    await actors.invoke("OrderActor", "ord-1", "OnShipmentDispatched", {"shipment_id": "s-1"})

    found = samples(sidecar)
    total = "orderflow_saga_step_duration_seconds_sum"
    assert value(found, total, step="shipping", outcome="done") == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("cancelled by customer", "customer"),
        ("changed my mind", "customer"),
        ("stock rejected for tea: insufficient_stock", "stock"),
        ("payment declined: insufficient_funds", "payment"),
        ("shipment failed: lost", "shipping"),
        ("deadline passed while reserving", "deadline"),
    ],
)
def test_cancel_reasons_map_to_a_small_fixed_set(reason: str, expected: str) -> None:
    assert reason_class(reason) == expected


async def test_cancellations_count_by_the_reason_class_the_saga_gave(
    actors: ActorClient, sidecar: InMemorySidecar, clock: ManualClock
) -> None:
    await stocked(actors, funds=1_000, stock=3)
    await place(actors, "ord-customer")
    await actors.invoke("OrderActor", "ord-customer", "Cancel", {"reason": "changed my mind"})
    await place(actors, "ord-stock", lines=[{"sku": "tea", "quantity": 9, "unit_price": 1}])
    await place(actors, "ord-paid")  # 1000: the wallet holds it
    await place(actors, "ord-payment")  # nothing left in the wallet
    await sidecar.settle()
    await actors.invoke("OrderActor", "ord-paid", "OnShipmentFailed", {"reason": "lost"})
    await place(actors, "ord-late", lines=[{"sku": "jam", "quantity": 1, "unit_price": 1}])
    clock.advance(seconds=31)  # no inventory answers for jam: past the reserving deadline
    assert await sidecar.sweep_deadlines() == 1  # ord-late: the others have ended

    found = samples(sidecar)
    cancelled = "orderflow_orders_cancelled_total"
    for reason in ("customer", "stock", "payment", "shipping", "deadline"):
        assert value(found, cancelled, reason=reason) == 1, reason
    count = "orderflow_saga_step_duration_seconds_count"
    assert (
        value(found, count, step="reserving", outcome="cancelled") == 3
    )  # customer, stock, deadline
    assert value(found, count, step="authorizing", outcome="cancelled") == 1
    assert value(found, count, step="shipping", outcome="cancelled") == 1


async def test_a_second_delivery_of_a_command_counts_one_inbox_duplicate(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    for _ in range(2):
        payload = {"quantity": 1, "message_id": "m-1"}
        await actors.invoke("InventoryActor", "tea", "Restock", payload)

    found = samples(sidecar)
    assert value(found, "orderflow_inbox_duplicates_total", actor_type="InventoryActor") == 1
    assert value(found, "orderflow_actor_commits_total", actor_type="InventoryActor") == 1


async def test_an_append_the_fence_refuses_counts_one_fence_conflict() -> None:
    stores, metrics = InMemoryStores(), build_actor_metrics()
    deps = ActorDeps(publisher=RecordingPublisher(), store=stores, metrics=metrics)
    zombie, owner = (activate(InventoryActor, "tea", deps) for _ in range(2))
    await zombie.invoke("Restock", b'{"quantity": 1}')
    await owner.invoke("Restock", b'{"quantity": 1}')
    with pytest.raises(ConcurrencyError):
        await zombie.invoke("Restock", b'{"quantity": 1}')

    found = scrape(metrics.registry)
    assert value(found, "orderflow_fence_conflicts_total", actor_type="InventoryActor") == 1
    assert metrics.totals() == {"commits": 2, "fence_conflicts": 1}


async def test_unpublished_events_are_the_outbox_backlog_until_they_go_out(
    clock: ManualClock,
) -> None:
    sidecar = InMemorySidecar(router=build_router(), clock=clock, publish_in_append=False)
    actors = ActorClient(sidecar)
    sidecar.fail(times=1, path="/v1.0/publish/")
    await actors.invoke("InventoryActor", "tea", "Restock", {"quantity": 5})

    found = samples(sidecar)
    assert value(found, "orderflow_outbox_backlog", actor_type="InventoryActor") == 1
    assert value(found, "orderflow_outbox_publish_failures_total", actor_type="InventoryActor") == 1

    await sidecar.fire_reminders("outbox-retry")
    assert value(samples(sidecar), "orderflow_outbox_backlog", actor_type="InventoryActor") == 0


async def test_no_label_carries_an_order_customer_or_sku(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    await stocked(actors)
    await place(actors, "ord-unique-1")
    await sidecar.settle()

    labels = {v for (_, pairs) in samples(sidecar) for _, v in pairs}
    assert not labels & {"ord-unique-1", "cust-1", "tea", "mug"}
