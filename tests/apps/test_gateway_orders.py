"""Orders through the gateway: place by Idempotency-Key, read, long-poll, cancel, history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import httpx
import pytest

from actors.order.model import MAX_QUANTITY, MAX_UNIT_PRICE
from actors.toolkit.client import ActorClient
from actors.toolkit.commands import MESSAGE_ID_PATTERN
from apps.gateway.deps import message_id_for
from apps.gateway.routes.orders import order_id_for, place_message_id
from apps.gateway.schemas import OrderLine

ORDER = {
    "customer_id": "cust-1",
    "lines": [
        {"sku": "tea-green", "quantity": 2, "unit_price": 450},
        {"sku": "mug-white", "quantity": 1, "unit_price": 1200},
    ],
}


async def place(
    client: httpx.AsyncClient, key: str = "key-1", body: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post("/orders", json=body or ORDER, headers={"Idempotency-Key": key})


async def placed(client: httpx.AsyncClient, key: str = "key-1") -> str:
    resp = await place(client, key)
    assert resp.status_code == 202, resp.text
    order_id: str = resp.json()["order_id"]
    return order_id


async def reserve(actors: ActorClient, order_id: str) -> None:
    """Both lines reserved, as the router delivers inventory.stock_reserved to the order."""
    for sku in ("tea-green", "mug-white"):
        await actors.invoke("OrderActor", order_id, "OnStockReserved", {"sku": sku})


async def ship(actors: ActorClient, order_id: str) -> None:
    """Move a placed order through the saga to SHIPPED, as the other actors' events would."""
    await reserve(actors, order_id)
    await actors.invoke("OrderActor", order_id, "OnPaymentAuthorized")
    await actors.invoke("OrderActor", order_id, "OnShipmentDispatched", {"shipment_id": "shp-1"})


async def later(delay: float, step: Awaitable[None]) -> None:
    await asyncio.sleep(delay)
    await step


async def version(actors: ActorClient, order_id: str) -> int:
    """How many events the order actor has recorded."""
    return (await actors.invoke("OrderActor", order_id, "Get")).aggregate_version


# --- place -----------------------------------------------------------------------------------


async def test_placing_an_order_answers_202_with_its_location_and_view(client, sidecar):
    resp = await place(client)

    order_id = order_id_for("cust-1", "key-1")
    assert resp.status_code == 202
    assert resp.headers["Location"] == f"/orders/{order_id}"
    assert resp.json() == {
        "order_id": order_id,
        "status": "reserving",
        "customer_id": "cust-1",
        "lines": ORDER["lines"],
        "total": 2 * 450 + 1200,
        "reserved_skus": [],
        "cancel_reason": None,
    }
    assert sidecar.calls("Place")[0].payload["message_id"].startswith(f"place-{order_id}-")


def test_the_order_id_is_ord_and_24_hex_digits_of_customer_and_key():
    order_id = order_id_for("cust-1", "key-1")

    assert order_id.startswith("ord-")
    assert len(order_id) == 28
    int(order_id[4:], 16)
    assert order_id_for("cust-2", "key-1") != order_id


async def test_the_same_key_and_body_answer_the_same_order_and_place_it_once(client, actors):
    first = await place(client)
    second = await place(client)

    assert second.status_code == 202
    assert second.headers["Location"] == first.headers["Location"]
    assert second.json() == first.json()
    order_id = first.json()["order_id"]
    assert await version(actors, order_id) == 1


async def test_the_same_key_with_lines_in_another_order_is_the_same_order(client):
    first = await place(client)
    reordered = {**ORDER, "lines": list(reversed(ORDER["lines"]))}

    second = await place(client, body=reordered)

    assert second.status_code == 202
    assert second.json()["order_id"] == first.json()["order_id"]


def test_the_place_message_id_changes_with_the_lines_but_not_their_order():
    lines = [
        OrderLine(sku="a", quantity=1, unit_price=2),
        OrderLine(sku="b", quantity=3, unit_price=4),
    ]
    changed = [lines[0], OrderLine(sku="b", quantity=4, unit_price=4)]

    same = place_message_id("ord-1", lines)

    assert same == place_message_id("ord-1", list(reversed(lines)))
    assert same != place_message_id("ord-1", changed)
    assert same != place_message_id("ord-2", lines)
    assert len(same) <= 128


def test_every_message_id_the_gateway_mints_passes_the_actors_message_id_rule():
    longest_key = "k" * 128
    order_id = order_id_for("c" * 64, longest_key)
    lines = [OrderLine(sku="s" * 64, quantity=MAX_QUANTITY, unit_price=MAX_UNIT_PRICE)]

    for minted in (place_message_id(order_id, lines), message_id_for(longest_key)):
        assert MESSAGE_ID_PATTERN.fullmatch(minted), minted
    assert MESSAGE_ID_PATTERN.fullmatch(message_id_for(None))


async def test_the_same_key_with_another_body_is_a_409_problem(client, actors):
    await place(client)
    changed = {**ORDER, "lines": [{"sku": "tea-green", "quantity": 3, "unit_price": 450}]}

    resp = await place(client, body=changed)

    assert resp.status_code == 409
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["code"] == "order.conflict"
    assert problem["type"] == "https://orderflow.dev/problems/order.conflict"
    assert problem["instance"] == "/orders"
    assert problem["status"] == 409
    assert await version(actors, order_id_for("cust-1", "key-1")) == 1


async def test_two_customers_with_the_same_key_get_two_orders(client):
    first = await place(client)
    other = await place(client, body={**ORDER, "customer_id": "cust-2"})

    assert other.status_code == 202
    assert other.json()["order_id"] != first.json()["order_id"]


async def test_placing_without_an_idempotency_key_is_a_400_problem(client, sidecar):
    resp = await client.post("/orders", json=ORDER)

    assert resp.status_code == 400
    assert resp.json()["code"] == "request.idempotency_key"
    assert sidecar.calls() == []


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "semi;colon", "ключ"])
async def test_a_malformed_idempotency_key_is_a_400_problem(client, sidecar, key):
    headers = {"Idempotency-Key": key.encode()}

    resp = await client.post("/orders", json=ORDER, headers=headers)

    assert resp.status_code == 400
    assert resp.json()["code"] == "request.idempotency_key"
    assert sidecar.calls() == []


async def test_a_key_of_128_allowed_characters_is_accepted(client):
    resp = await place(client, key="aZ0._:-" + "k" * 121)

    assert resp.status_code == 202


# --- read and long-poll ----------------------------------------------------------------------


async def test_reading_an_order_answers_its_view(client):
    order_id = await placed(client)

    resp = await client.get(f"/orders/{order_id}")

    assert resp.status_code == 200
    assert resp.json()["status"] == "reserving"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/orders/ord-0000"), ("POST", "/orders/ord-404/cancel")],
    ids=["read", "cancel"],
)
async def test_reading_or_cancelling_an_order_never_placed_is_a_404_problem(client, method, path):
    resp = await client.request(method, path)

    assert resp.status_code == 404
    assert resp.json()["code"] == "order.not_found"
    assert resp.json()["instance"] == path


async def test_long_poll_answers_as_soon_as_the_order_turns_terminal(client, actors):
    order_id = await placed(client)
    shipping = asyncio.create_task(later(0.2, ship(actors, order_id)))

    started = time.monotonic()
    resp = await client.get(f"/orders/{order_id}", params={"wait": 10})

    assert resp.status_code == 200
    assert resp.json()["status"] == "shipped"
    assert time.monotonic() - started < 1.5
    await shipping


async def test_long_poll_answers_the_latest_view_when_the_time_is_up(client, actors):
    order_id = await placed(client)
    moving = asyncio.create_task(later(0.1, reserve(actors, order_id)))  # not to the end

    started = time.monotonic()
    resp = await client.get(f"/orders/{order_id}", params={"wait": 0.4})

    elapsed = time.monotonic() - started
    assert resp.status_code == 200
    assert resp.json()["status"] == "authorizing"
    assert resp.json()["reserved_skus"] == ["mug-white", "tea-green"]
    assert 0.4 <= elapsed < 1.5
    await moving


async def test_long_poll_on_a_terminal_order_answers_at_once(client, actors, sidecar):
    order_id = await placed(client)
    await ship(actors, order_id)

    started = time.monotonic()
    resp = await client.get(f"/orders/{order_id}", params={"wait": 30})

    assert resp.json()["status"] == "shipped"
    assert time.monotonic() - started < 0.5
    assert len(sidecar.calls("Get")) == 1


@pytest.mark.parametrize("wait", ["0", "-1", "30.5", "soon", "nan"])
async def test_a_wait_outside_0_to_30_seconds_is_a_422_problem(client, wait):
    resp = await client.get("/orders/ord-1", params={"wait": wait})

    assert resp.status_code == 422
    assert resp.json()["errors"][0]["location"] == "query"
    assert resp.json()["errors"][0]["field"] == "wait"


# --- cancel ----------------------------------------------------------------------------------


async def test_cancelling_without_a_body_uses_the_default_reason(client, sidecar):
    order_id = await placed(client)

    resp = await client.post(f"/orders/{order_id}/cancel")

    assert resp.status_code == 200
    assert resp.json()["status"] == "cancelled"
    assert resp.json()["cancel_reason"] == "cancelled by customer"
    message_id = sidecar.calls("Cancel")[0].payload["message_id"]
    assert len(message_id) == 32
    int(message_id, 16)


async def test_cancelling_with_a_reason_and_key_records_both(client, sidecar):
    order_id = await placed(client)

    resp = await client.post(
        f"/orders/{order_id}/cancel",
        json={"reason": "wrong size"},
        headers={"Idempotency-Key": "cancel-1"},
    )

    assert resp.status_code == 200
    assert resp.json()["cancel_reason"] == "wrong size"
    assert sidecar.calls("Cancel")[0].payload["message_id"] == "cancel-1"


async def test_cancelling_twice_with_one_key_answers_the_first_result(client, actors):
    order_id = await placed(client)
    headers = {"Idempotency-Key": "cancel-1"}

    first = await client.post(f"/orders/{order_id}/cancel", json={"reason": "a"}, headers=headers)
    again = await client.post(f"/orders/{order_id}/cancel", json={"reason": "a"}, headers=headers)

    assert again.json() == first.json()
    assert await version(actors, order_id) == 2


async def test_cancelling_a_shipped_order_is_a_409_problem(client, actors):
    order_id = await placed(client)
    await ship(actors, order_id)

    resp = await client.post(f"/orders/{order_id}/cancel")

    assert resp.status_code == 409
    assert resp.json()["code"] == "order.already_shipped"


@pytest.mark.parametrize("reason", ["", "r" * 201, 7, None])
async def test_a_cancel_reason_must_be_1_to_200_characters(client, sidecar, reason):
    resp = await client.post("/orders/ord-1/cancel", json={"reason": reason})

    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "reason"
    assert sidecar.calls() == []


# --- history ---------------------------------------------------------------------------------


async def test_order_history_pages_with_a_link_to_the_next_page(client):
    order_id = await placed(client)
    await client.post(f"/orders/{order_id}/cancel")

    first = await client.get(f"/orders/{order_id}/history", params={"limit": 1})

    assert first.status_code == 200
    assert [e["type"] for e in first.json()["events"]] == ["order.placed"]
    assert first.json()["next_after"] == 1
    next_url = f"/orders/{order_id}/history?after=1&limit=1"
    assert first.headers["Link"] == f'<{next_url}>; rel="next"'
    assert first.links["next"]["url"] == next_url

    second = await client.get(next_url)

    assert [e["type"] for e in second.json()["events"]] == ["order.cancelled"]
    assert second.json()["events"][0]["aggregate_version"] == 2
    assert second.json()["next_after"] is None
    assert "Link" not in second.headers


async def test_order_history_defaults_to_the_first_50_events(client, sidecar):
    order_id = await placed(client)

    resp = await client.get(f"/orders/{order_id}/history")

    assert len(resp.json()["events"]) == 1
    assert sidecar.calls("History")[0].payload == {"after": 0, "limit": 50}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"after": -1}, "after")],
)
async def test_history_paging_out_of_range_is_a_422_problem(client, params, field):
    resp = await client.get("/orders/ord-1/history", params=params)

    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == field
