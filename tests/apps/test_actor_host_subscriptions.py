"""The actor host's Dapr subscriptions: rule-filtered on our own topics, whole elsewhere;
and its delivery route, which plans each event's actor calls (order.placed: the Reserves,
then one OnStockOutcomes from their answers, then the Authorize it asks for, then the
order's call for the wallet's answer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from actors import catalog
from actors.reactions import SPECS, build_router
from actors.toolkit.client import ActorClient
from actors.toolkit.fastpath import FastRoutes
from actors.toolkit.publisher import SidecarPublisher
from actors.toolkit.testing import InMemorySidecar
from apps.actor_host.subscriptions import (
    DeadLetters,
    Delivering,
    delivery_routes,
    subscription_routes,
)


async def _subscriptions() -> dict[str, dict[str, Any]]:
    app = FastAPI()
    app.include_router(
        subscription_routes(build_router(), own_topics=[spec.topic for spec in SPECS])
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
        resp = await client.get("/dapr/subscribe")
    assert resp.status_code == 200
    return {s["topic"]: s for s in resp.json()}


async def test_on_our_own_topics_daprd_delivers_only_the_types_a_reaction_wants() -> None:
    subs = await _subscriptions()

    orders = subs[catalog.ORDERS]["routes"]["rules"]
    assert orders == [
        {
            "match": 'event.type in ["order.cancelled", "order.late_payment_voided", '
            '"order.late_reservation_released", "order.payment_requested", '
            '"order.placed", "order.shipped"]',
            "path": "/events/orders",
        }
    ]
    assert "default" not in subs[catalog.ORDERS]["routes"]  # the rest: acknowledged by daprd
    inventory = subs[catalog.INVENTORY]["routes"]["rules"][0]["match"]
    assert inventory == 'event.type in ["inventory.stock_rejected", "inventory.stock_reserved"]'
    wallet = subs[catalog.WALLET]["routes"]["rules"][0]["match"]
    assert wallet == 'event.type in ["wallet.payment_authorized", "wallet.payment_declined"]'


async def test_other_services_topics_come_whole_so_an_unknown_type_is_dead_lettered() -> None:
    subs = await _subscriptions()

    for topic in (catalog.RESTOCKS, catalog.DEPOSITS, catalog.SHIPMENTS):
        assert subs[topic] == {"pubsubname": "pubsub", "topic": topic, "route": f"/events/{topic}"}
    assert set(subs) == {
        catalog.ORDERS,
        catalog.INVENTORY,
        catalog.WALLET,
        catalog.RESTOCKS,
        catalog.DEPOSITS,
        catalog.SHIPMENTS,
    }


# --- POST /events/<topic>: served by the fast path, ahead of FastAPI's routing ------------

SAMPLES = Path(__file__).parents[1] / "contracts" / "samples"


def _delivery_app(sidecar: InMemorySidecar | None) -> FastAPI:
    app = FastAPI()
    app.add_middleware(FastRoutes, routes=delivery_routes(build_router()))
    if sidecar is not None:
        publisher = SidecarPublisher(sidecar, pubsub=catalog.PUBSUB)
        app.state.delivering = Delivering(ActorClient(sidecar), DeadLetters(publisher))
    return app


async def _post(app: FastAPI, topic: str, body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
        return await client.post(f"/events/{topic}", content=body)


def _cloud_event(sample: str) -> dict[str, Any]:
    data = json.loads((SAMPLES / sample).read_text())
    return {"id": data["event_id"], "type": data["type"], "data": data}


async def _placed(
    sidecar: InMemorySidecar, *, tea_on_hand: int = 0, mug_on_hand: int = 0, funds: int = 0
) -> dict[str, Any]:
    """The sample's order placed (and tea and mugs restocked, funds deposited), as
    order.placed is routed after; the sample's CloudEvent."""
    placed = _cloud_event("order.placed.v1.json")
    data = placed["data"]
    actors = ActorClient(sidecar)
    place = {key: data["payload"][key] for key in ("customer_id", "lines")}
    await actors.invoke(catalog.ORDER_ACTOR, data["aggregate_id"], "Place", place)
    for sku, on_hand in (("tea-green-100g", tea_on_hand), ("mug-12m", mug_on_hand)):
        if on_hand:
            await actors.invoke(catalog.INVENTORY_ACTOR, sku, "Restock", {"quantity": on_hand})
    if funds:
        customer = data["payload"]["customer_id"]
        await actors.invoke(catalog.WALLET_ACTOR, customer, "Deposit", {"amount": funds})
    return placed


async def _order(sidecar: InMemorySidecar, order_id: str) -> dict[str, Any]:
    result = await ActorClient(sidecar).invoke(catalog.ORDER_ACTOR, order_id, "Get")
    return {**result.result, "version": result.aggregate_version}


async def test_a_delivered_event_becomes_the_actor_calls_its_reaction_plans() -> None:
    sidecar = InMemorySidecar()
    placed = await _placed(sidecar)

    resp = await _post(_delivery_app(sidecar), catalog.ORDERS, json.dumps(placed).encode())

    assert resp.status_code == 200
    assert resp.json() == {"status": "SUCCESS"}
    reserved = sidecar.calls("Reserve")
    assert sorted(call.actor_id for call in reserved) == ["mug-12m", "tea-green-100g"]


async def test_order_placed_reserves_every_line_then_tells_the_order_every_outcome_at_once() -> (
    None
):
    sidecar = InMemorySidecar()
    placed = await _placed(sidecar, tea_on_hand=5)  # the mug has no stock
    order_id = placed["data"]["aggregate_id"]

    resp = await _post(_delivery_app(sidecar), catalog.ORDERS, json.dumps(placed).encode())

    assert resp.json() == {"status": "SUCCESS"}
    reserve = f"{placed['id']}/Reserve"
    assert {
        (c.payload["message_id"], c.payload["causation_id"]) for c in sidecar.calls("Reserve")
    } == {
        (reserve, reserve)  # the marker: the stock events it causes say a router chained it
    }
    [outcomes] = sidecar.calls("OnStockOutcomes")
    assert (outcomes.actor_id, outcomes.payload["message_id"]) == (
        order_id,
        f"{placed['id']}/OnStockOutcomes",
    )
    assert outcomes.payload["causation_id"] == outcomes.payload["message_id"]  # marked too
    assert outcomes.payload["outcomes"] == [  # in the order's line order
        {"sku": "tea-green-100g", "outcome": "reserved", "reason": None},
        {"sku": "mug-12m", "outcome": "rejected", "reason": "insufficient_stock"},
    ]
    order = await _order(sidecar, order_id)
    assert (order["status"], order["cancel_reason"]) == (
        "cancelled",
        "stock rejected for mug-12m: insufficient_stock",
    )
    stock = sidecar.events(catalog.INVENTORY)
    assert {e["causation_id"] for e in stock if e["type"] != "inventory.stock_restocked"} == {
        reserve
    }


def _one(events: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    [event] = [e for e in events if e["type"] == event_type]
    return event


async def test_the_payment_request_goes_to_the_wallet_and_its_answer_to_the_order_at_once() -> None:
    """The rest of the saga up to the confirmation in the same delivery: each call under
    the message id the router gives it when it routes the event off its topic."""
    sidecar = InMemorySidecar()
    placed = await _placed(sidecar, tea_on_hand=5, mug_on_hand=5, funds=5_000)
    order_id, customer = placed["data"]["aggregate_id"], placed["data"]["payload"]["customer_id"]

    resp = await _post(_delivery_app(sidecar), catalog.ORDERS, json.dumps(placed).encode())

    assert resp.json() == {"status": "SUCCESS"}
    requested = _one(sidecar.events(catalog.ORDERS), "order.payment_requested")
    assert requested["causation_id"] == f"{placed['id']}/OnStockOutcomes"
    [authorize] = sidecar.calls("Authorize")
    marked = f"{requested['event_id']}/Authorize"
    assert (authorize.actor_id, authorize.payload) == (
        customer,
        {
            "order_id": order_id,
            "amount": 2_100,
            "message_id": marked,
            "correlation_id": order_id,
            "causation_id": marked,
        },
    )
    authorized = _one(sidecar.events(catalog.WALLET), "wallet.payment_authorized")
    assert authorized["causation_id"] == marked
    [told] = sidecar.calls("OnPaymentAuthorized")
    assert (told.actor_id, told.payload["message_id"], told.payload["causation_id"]) == (
        order_id,
        f"{authorized['event_id']}/OnPaymentAuthorized",
        authorized["event_id"],  # the last step: nothing follows its events in the chain
    )
    assert (await _order(sidecar, order_id))["status"] == "confirmed"
    wallet = await ActorClient(sidecar).invoke(catalog.WALLET_ACTOR, customer, "Get")
    assert wallet.result["held"] == 2_100


async def test_a_declined_payment_reaches_the_order_with_the_wallets_reason() -> None:
    sidecar = InMemorySidecar()
    placed = await _placed(sidecar, tea_on_hand=5, mug_on_hand=5, funds=2_000)
    order_id = placed["data"]["aggregate_id"]

    resp = await _post(_delivery_app(sidecar), catalog.ORDERS, json.dumps(placed).encode())

    assert resp.json() == {"status": "SUCCESS"}
    declined = _one(sidecar.events(catalog.WALLET), "wallet.payment_declined")
    [told] = sidecar.calls("OnPaymentDeclined")
    assert told.payload["message_id"] == f"{declined['event_id']}/OnPaymentDeclined"
    assert told.payload["reason"] == declined["payload"]["reason"] == "insufficient_funds"
    order = await _order(sidecar, order_id)
    assert (order["status"], order["cancel_reason"]) == (
        "cancelled",
        "payment declined: insufficient_funds",
    )


async def test_an_authorize_failing_transiently_means_retry_and_the_redelivery_goes_on() -> None:
    sidecar = InMemorySidecar()
    placed = await _placed(sidecar, tea_on_hand=5, mug_on_hand=5, funds=5_000)
    order_id, customer = placed["data"]["aggregate_id"], placed["data"]["payload"]["customer_id"]
    app, body = _delivery_app(sidecar), json.dumps(placed).encode()
    sidecar.fail(times=1, path=f"/v1.0/actors/WalletActor/{customer}/method/Authorize")

    assert (await _post(app, catalog.ORDERS, body)).json() == {"status": "RETRY"}
    waiting = await _order(sidecar, order_id)
    assert waiting["status"] == "authorizing"
    assert (await _post(app, catalog.ORDERS, body)).json() == {"status": "SUCCESS"}

    [one, two] = sidecar.calls("OnStockOutcomes")  # the second answered from the inbox
    assert one.payload == two.payload
    assert len(sidecar.calls("Authorize")) == 2
    order = await _order(sidecar, order_id)
    assert (order["status"], order["version"]) == ("confirmed", waiting["version"] + 1)


async def test_an_authorize_refused_for_good_is_a_dead_letter_and_the_order_waits() -> None:
    sidecar = InMemorySidecar()
    placed = await _placed(sidecar, tea_on_hand=5, mug_on_hand=5, funds=5_000)
    customer = placed["data"]["payload"]["customer_id"]
    refusal = b'{"ok":false,"error":{"code":"request.invalid","detail":"no such field"}}'
    sidecar.answer(200, refusal, path=f"/v1.0/actors/WalletActor/{customer}/")

    resp = await _post(_delivery_app(sidecar), catalog.ORDERS, json.dumps(placed).encode())

    assert resp.json() == {"status": "SUCCESS"}
    [letter] = sidecar.events(catalog.DEAD_LETTERS)
    assert (letter["code"], letter["target"]) == (
        "request.invalid",
        f"WalletActor/{customer}/Authorize",
    )
    assert sidecar.calls("OnPaymentAuthorized") == sidecar.calls("OnPaymentDeclined") == []
    order = await _order(sidecar, placed["data"]["aggregate_id"])
    assert order["status"] == "authorizing"  # its deadline ends it


async def test_a_redelivered_order_placed_sends_the_same_single_outcomes_call_once_applied() -> (
    None
):
    sidecar = InMemorySidecar()
    placed = await _placed(sidecar, tea_on_hand=5)
    app, body = _delivery_app(sidecar), json.dumps(placed).encode()
    await _post(app, catalog.ORDERS, body)
    first = await _order(sidecar, placed["data"]["aggregate_id"])

    again = await _post(app, catalog.ORDERS, body)

    assert again.json() == {"status": "SUCCESS"}
    [one, two] = sidecar.calls("OnStockOutcomes")
    assert one.payload == two.payload  # from the Reserves' recorded answers
    assert len(sidecar.calls("Reserve")) == 4
    assert await _order(sidecar, placed["data"]["aggregate_id"]) == first  # its inbox took it once


async def test_a_reserve_failing_transiently_means_retry_and_no_outcomes_until_redelivered() -> (
    None
):
    sidecar = InMemorySidecar()
    placed = await _placed(sidecar, tea_on_hand=5)
    app, body = _delivery_app(sidecar), json.dumps(placed).encode()
    sidecar.fail(times=1, path="/v1.0/actors/InventoryActor/mug-12m/")

    first = await _post(app, catalog.ORDERS, body)

    assert first.json() == {"status": "RETRY"}
    assert sidecar.calls("OnStockOutcomes") == []
    again = await _post(app, catalog.ORDERS, body)
    assert again.json() == {"status": "SUCCESS"}
    [outcomes] = sidecar.calls("OnStockOutcomes")
    assert [o["outcome"] for o in outcomes.payload["outcomes"]] == ["reserved", "rejected"]


async def test_the_outcomes_call_failing_transiently_means_retry_and_the_redelivery_sends_it() -> (
    None
):
    sidecar = InMemorySidecar()
    placed = await _placed(sidecar, tea_on_hand=5)
    order_id = placed["data"]["aggregate_id"]
    app, body = _delivery_app(sidecar), json.dumps(placed).encode()
    sidecar.fail(times=1, path=f"/v1.0/actors/OrderActor/{order_id}/method/OnStockOutcomes")

    assert (await _post(app, catalog.ORDERS, body)).json() == {"status": "RETRY"}
    assert (await _order(sidecar, order_id))["status"] == "reserving"
    assert (await _post(app, catalog.ORDERS, body)).json() == {"status": "SUCCESS"}
    assert (await _order(sidecar, order_id))["status"] == "cancelled"


async def test_a_reserve_refused_for_good_is_a_dead_letter_and_the_others_outcomes_follow() -> None:
    sidecar = InMemorySidecar()
    placed = await _placed(sidecar, tea_on_hand=5)
    refusal = b'{"ok":false,"error":{"code":"request.invalid","detail":"no such field"}}'
    sidecar.answer(200, refusal, path="/v1.0/actors/InventoryActor/mug-12m/")

    resp = await _post(_delivery_app(sidecar), catalog.ORDERS, json.dumps(placed).encode())

    assert resp.json() == {"status": "SUCCESS"}
    [letter] = sidecar.events(catalog.DEAD_LETTERS)
    assert (letter["code"], letter["target"]) == (
        "request.invalid",
        "InventoryActor/mug-12m/Reserve",
    )
    # what the tea's Reserve recorded still reaches the order (were it cancelled by then,
    # it would release the tea); the mug's fact never comes: its reserving deadline ends it
    [outcomes] = sidecar.calls("OnStockOutcomes")
    assert outcomes.payload["outcomes"] == [
        {"sku": "tea-green-100g", "outcome": "reserved", "reason": None}
    ]
    order = await _order(sidecar, placed["data"]["aggregate_id"])
    assert (order["status"], order["reserved_skus"]) == ("reserving", ["tea-green-100g"])


async def test_a_bulk_delivery_is_answered_entry_by_entry() -> None:
    sidecar = InMemorySidecar()
    await _placed(sidecar)
    bulk = {
        "type": "com.dapr.event.sent.bulk",
        "entries": [
            {"entryId": "e1", "event": _cloud_event("order.placed.v1.json")},
            {"entryId": "e2", "event": {"id": "x", "type": "order.placed", "data": {"no": 1}}},
        ],
    }

    resp = await _post(_delivery_app(sidecar), catalog.ORDERS, json.dumps(bulk).encode())

    assert resp.json() == {
        "statuses": [{"entryId": "e1", "status": "SUCCESS"}, {"entryId": "e2", "status": "SUCCESS"}]
    }
    assert len(sidecar.calls("Reserve")) == 2
    assert [letter["code"] for letter in sidecar.events(catalog.DEAD_LETTERS)] == [
        "event.invalid_envelope"
    ]


async def test_a_delivery_that_is_not_json_is_dead_lettered_and_one_while_starting_is_a_503() -> (
    None
):
    sidecar = InMemorySidecar()

    resp = await _post(_delivery_app(sidecar), catalog.RESTOCKS, b"{not json")
    starting = await _post(_delivery_app(None), catalog.ORDERS, b"{}")

    assert resp.json() == {"status": "SUCCESS"}
    assert [letter["code"] for letter in sidecar.events(catalog.DEAD_LETTERS)] == ["event.not_json"]
    assert starting.status_code == 503  # daprd retries: the lifespan has not built the clients
