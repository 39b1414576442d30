"""The in-memory sidecar (actors.toolkit.testing): what it serves, records and injects."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actors.inventory.model import ReservationNotFoundError
from actors.toolkit.client import ActorClient, RuntimeUnavailableError
from actors.toolkit.errors import DomainError
from actors.toolkit.publisher import PublishError, SidecarPublisher
from actors.toolkit.sidecar import SidecarHTTP, SidecarUnavailableError
from actors.toolkit.testing import InMemorySidecar
from tests.actors.doubles import ManualClock

LINE = {"sku": "tea", "quantity": 2, "unit_price": 150}


async def place(actors: ActorClient, order_id: str = "ord-1", **extra: Any) -> None:
    payload = {"customer_id": "cust-1", "lines": [LINE], **extra}
    await actors.invoke("OrderActor", order_id, "Place", payload)


async def place_a_payable_order(actors: ActorClient) -> None:
    """Stock the SKU and fund the customer, then place ord-1: the saga can confirm it."""
    await actors.invoke("InventoryActor", "tea", "Restock", {"quantity": 5})
    await actors.invoke("WalletActor", "cust-1", "Deposit", {"amount": 1_000})
    await place(actors)


async def test_an_actor_call_runs_the_real_actor_and_answers_its_envelope(
    sidecar: InMemorySidecar,
) -> None:
    status, body = await sidecar.request(
        "POST", "/v1.0/actors/InventoryActor/tea/method/Restock", content=b'{"quantity": 5}'
    )

    assert status == 200
    answer = json.loads(body)
    assert answer["ok"] is True
    assert answer["result"] == {"sku": "tea", "on_hand": 5, "reserved": 0, "available": 5}
    assert answer["aggregate_version"] == 1
    assert [e["type"] for e in answer["events"]] == ["inventory.stock_restocked"]
    assert "event-1" in sidecar.stores.keys("InventoryActor", "tea")


async def test_one_activation_per_actor_keeps_its_state_between_calls(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    await actors.invoke("WalletActor", "cust-1", "Deposit", {"amount": 300})
    await actors.invoke("WalletActor", "cust-1", "Deposit", {"amount": 200})

    result = await actors.invoke("WalletActor", "cust-1", "Get")

    assert (result.result["balance"], result.aggregate_version) == (500, 2)
    assert list(sidecar.activations) == [("WalletActor", "cust-1")]


async def test_a_refusal_is_a_200_with_the_actors_error_envelope(actors: ActorClient) -> None:
    with pytest.raises(DomainError) as refused:
        await actors.invoke("InventoryActor", "tea", "Commit", {"order_id": "ord-1"})
    assert refused.value.code == ReservationNotFoundError.code


@pytest.mark.parametrize(
    "path",
    [
        "/v1.0/actors/InventoryActor/tea/method/Teleport",
        "/v1.0/actors/CartActor/c-1/method/Get",
    ],
    ids=["unknown-method", "unknown-type"],
)
async def test_an_unknown_method_or_actor_type_is_a_daprd_error(
    sidecar: InMemorySidecar, path: str
) -> None:
    status, body = await sidecar.request("POST", path, content=b"{}")

    assert status == 500
    assert json.loads(body)["errorCode"] == "ERR_ACTOR_INVOKE_METHOD"


async def test_an_unknown_path_is_a_404(sidecar: InMemorySidecar) -> None:
    status, _ = await sidecar.request("GET", "/v1.0/state/statestore/k")

    assert status == 404


async def test_calls_are_recorded_with_their_payloads(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    await actors.invoke("InventoryActor", "tea", "Restock", {"quantity": 1, "message_id": "m-1"})
    await actors.invoke("InventoryActor", "tea", "Get")

    (restock,) = sidecar.calls("Restock")
    assert (restock.actor_type, restock.actor_id) == ("InventoryActor", "tea")
    assert restock.payload == {"quantity": 1, "message_id": "m-1"}
    assert [call.method for call in sidecar.calls()] == ["Restock", "Get"]


# --- publishing ---------------------------------------------------------------------------------


async def test_a_publish_is_recorded_as_the_cloudevent_daprd_would_deliver(
    sidecar: InMemorySidecar,
) -> None:
    publisher = SidecarPublisher(sidecar, pubsub="pubsub")

    await publisher.publish_document("restocks", '{"a": 1}', event_id="e-1", event_type="t.x")

    (published,) = sidecar.published
    assert (published.topic, published.data) == ("restocks", {"a": 1})
    assert (published.event_id, published.event_type) == ("e-1", "t.x")
    assert published.cloud_event()["id"] == "e-1"
    assert published.cloud_event()["data"] == {"a": 1}


async def test_a_publish_to_another_pubsub_component_is_refused(sidecar: InMemorySidecar) -> None:
    with pytest.raises(PublishError, match="404"):
        await SidecarPublisher(sidecar, pubsub="kafka").publish_document(
            "restocks", "{}", event_id="e-1", event_type="t.x"
        )


async def test_the_actors_own_publishes_land_in_the_same_record(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    result = await actors.invoke("InventoryActor", "tea", "Restock", {"quantity": 5})

    (event,) = sidecar.events("inventory")
    assert event["event_id"] == result.events[0]["event_id"]
    assert event["payload"]["quantity"] == 5


# --- the saga in memory ---------------------------------------------------------------------------


async def test_settle_runs_the_saga_through_the_event_router(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    await place_a_payable_order(actors)

    assert await sidecar.settle() > 0

    order = await actors.invoke("OrderActor", "ord-1", "Get")
    assert order.result["status"] == "confirmed"
    to_order = [c.method for c in sidecar.calls() if c.actor_type == "OrderActor"]
    assert to_order == ["Place", "OnStockOutcomes", "OnPaymentAuthorized", "Get"]  # one stock turn
    wallet = await actors.invoke("WalletActor", "cust-1", "Get")
    assert wallet.result["held"] == 300
    assert sidecar.refused == []
    assert await sidecar.settle() == 0  # nothing left


async def test_settle_runs_the_compensation_when_the_payment_is_declined(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    await actors.invoke("InventoryActor", "tea", "Restock", {"quantity": 5})
    await place(actors)  # the wallet is empty

    await sidecar.settle()

    order = await actors.invoke("OrderActor", "ord-1", "Get")
    assert order.result["status"] == "cancelled"
    assert (await actors.invoke("InventoryActor", "tea", "Get")).result["reserved"] == 0


async def test_settle_records_an_event_that_can_never_apply_as_refused(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    publisher = SidecarPublisher(sidecar, pubsub="pubsub")
    await publisher.publish_document("orders", '{"no": "envelope"}', event_id="e-9", event_type="x")

    await sidecar.settle()

    (refused,) = sidecar.refused
    assert (refused.topic, refused.code, refused.event_id) == (
        "orders",
        "event.invalid_envelope",
        "e-9",
    )


async def test_settle_redelivers_after_an_unavailable_actor(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    await place_a_payable_order(actors)
    sidecar.fail(times=1, path="/v1.0/actors/InventoryActor/")

    await sidecar.settle()

    assert (await actors.invoke("InventoryActor", "tea", "Get")).result["reserved"] == 2
    assert len(sidecar.calls("Reserve")) == 2


async def test_settle_needs_a_router() -> None:
    with pytest.raises(RuntimeError, match="router"):
        await InMemorySidecar().settle()


# --- reminders ----------------------------------------------------------------------------------


async def test_a_deadline_sweep_cancels_the_orders_past_their_deadline() -> None:
    clock = ManualClock()
    sidecar = InMemorySidecar(clock=clock)
    actors = ActorClient(sidecar)
    await place(actors)
    assert await sidecar.sweep_deadlines() == 0  # nothing due yet

    clock.advance(seconds=31)  # past the reserving timeout
    assert await sidecar.sweep_deadlines() == 1

    order = await actors.invoke("OrderActor", "ord-1", "Get")
    assert order.result["status"] == "cancelled"
    assert await sidecar.sweep_deadlines() == 0  # a terminal order left the index
    assert sidecar.reminders() == {}  # no reminder on an order's path


# --- injected faults ----------------------------------------------------------------------------


async def test_injected_failures_answer_500_for_the_next_calls_then_recover(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    sidecar.fail(times=2)

    for _ in range(2):
        with pytest.raises(RuntimeUnavailableError) as caught:
            await actors.invoke("InventoryActor", "tea", "Get")
        assert caught.value.status == 500
    assert (await actors.invoke("InventoryActor", "tea", "Get")).result["on_hand"] == 0


async def test_an_unreachable_sidecar_raises_until_it_recovers(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    sidecar.fail(times=None, error=SidecarUnavailableError("connection refused"))

    for _ in range(3):
        with pytest.raises(RuntimeUnavailableError, match="unreachable"):
            await actors.invoke("InventoryActor", "tea", "Get")
    sidecar.recover()
    await actors.invoke("InventoryActor", "tea", "Get")


async def test_a_failing_publish_keeps_the_actors_events_in_its_outbox() -> None:
    sidecar = InMemorySidecar(publish_in_append=False)  # the actors publish through it
    actors = ActorClient(sidecar)
    sidecar.fail(times=1, path="/v1.0/publish/")

    result = await actors.invoke("InventoryActor", "tea", "Restock", {"quantity": 5})

    assert result.aggregate_version == 1  # committed all the same
    assert sidecar.published == []
    assert [key[2] for key in sidecar.reminders()] == ["outbox-retry"]
    await sidecar.fire_reminders("outbox-retry")
    assert [e["type"] for e in sidecar.events("inventory")] == ["inventory.stock_restocked"]


async def test_commits_publish_in_their_append_by_default_as_the_actor_host_does(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    sidecar.fail(times=1, path="/v1.0/publish/")  # never reached: no publish call is made

    await actors.invoke("InventoryActor", "tea", "Restock", {"quantity": 5})

    assert [r.path for r in sidecar.requests if "/publish/" in r.path] == []
    [event] = sidecar.published
    assert (event.topic, event.event_type) == ("inventory", "inventory.stock_restocked")
    assert event.event_id == event.data["event_id"]
    [entry] = sidecar.stores.streams["inventory"]
    assert json.loads(entry)["data"] == event.data
    assert sidecar.reminders() == {}


async def test_a_canned_answer_and_a_hook_before_the_next_call(
    actors: ActorClient, sidecar: InMemorySidecar
) -> None:
    seen: list[str] = []

    async def hook() -> None:
        seen.append("before")

    sidecar.before_next(hook)
    sidecar.answer(200, b'{"ok": true, "result": {"canned": 1}}')

    assert (await actors.invoke("WalletActor", "c", "Get")).result == {"canned": 1}
    assert seen == ["before"]
    assert (await actors.invoke("WalletActor", "c", "Get")).result["balance"] == 0


# --- over TCP -----------------------------------------------------------------------------------


async def test_served_over_tcp_it_answers_the_real_sidecar_client(sidecar: InMemorySidecar) -> None:
    async with sidecar.serve() as port, SidecarHTTP(port) as http:
        result = await ActorClient(http).invoke("InventoryActor", "tea", "Restock", {"quantity": 3})
        assert sidecar.open_connections == 1

    assert result.result["on_hand"] == 3
    assert sidecar.requests[0].peer.startswith("127.0.0.1:")
