"""Helpers for integration tests: actor calls through the real sidecar, polling."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from chaos.streams import consumed, stream_events
from cluster.processes import wait_until

__all__ = [
    "call",
    "consumed",
    "deposit",
    "envelope",
    "fund_and_stock",
    "ok",
    "place",
    "publish",
    "restock",
    "ship_an_order",
    "stream_events",
    "touch",
    "wait_until",
]


def call(
    client: httpx.Client, actor_type: str, actor_id: str, method: str, body: Any = None
) -> Any:
    """POST /v1.0/actors/<type>/<id>/method/<name>; returns the decoded JSON envelope."""
    resp = client.post(f"/v1.0/actors/{actor_type}/{actor_id}/method/{method}", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def touch(client: httpx.Client, actor_id: str, **fields: Any) -> dict[str, Any]:
    """BeaconActor.Touch with a fresh request id, so a retried delivery counts once."""
    body = {"request_id": uuid.uuid4().hex, **fields}
    envelope = call(client, "BeaconActor", actor_id, "Touch", body)
    assert envelope["ok"], envelope
    result: dict[str, Any] = envelope["result"]
    return result


def envelope(event_type: str, payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """An event envelope as another service would publish it."""
    return {
        "event_id": uuid.uuid4().hex,
        "type": event_type,
        "schema_version": 1,
        "aggregate_type": "ExternalService",
        "aggregate_id": "ext-1",
        "aggregate_version": 1,
        "occurred_at": "2026-11-22T10:00:00+00:00",
        "payload": payload,
        **fields,
    }


def publish(client: httpx.Client, topic: str, data: Any, *, event_id: str, event_type: str) -> None:
    """Publish `data` as a CloudEvent through a sidecar, with our own CloudEvent id."""
    resp = client.post(
        f"/v1.0/publish/pubsub/{topic}",
        json=data,
        params={"metadata.cloudevent.id": event_id, "metadata.cloudevent.type": event_type},
    )
    assert resp.status_code == 204, resp.text


def ok(envelope_body: dict[str, Any]) -> dict[str, Any]:
    """The result of an `ok` actor envelope (fails the test on an error envelope)."""
    assert envelope_body["ok"] is True, envelope_body
    result: dict[str, Any] = envelope_body["result"]
    return result


# --- the write side, straight through the actors -------------------------------------------


def deposit(client: httpx.Client, customer: str, amount: int) -> None:
    ok(call(client, "WalletActor", customer, "Deposit", {"amount": amount}))


def restock(client: httpx.Client, sku: str, quantity: int) -> None:
    ok(call(client, "InventoryActor", sku, "Restock", {"quantity": quantity}))


def place(client: httpx.Client, customer: str, lines: list[tuple[str, int, int]]) -> str:
    order_id = f"ord-{uuid.uuid4().hex[:16]}"
    body = {
        "customer_id": customer,
        "lines": [{"sku": s, "quantity": q, "unit_price": p} for s, q, p in lines],
        "message_id": f"place-{order_id}",
    }
    ok(call(client, "OrderActor", order_id, "Place", body))
    return order_id


# --- the whole saga, through the gateway's public API ---------------------------------------


def fund_and_stock(
    api: httpx.Client, *, customer: str, amount: int, sku: str, quantity: int
) -> None:
    """Deposit `amount` for the customer and restock `quantity` of the SKU, through the gateway."""
    assert api.post(f"/wallets/{customer}/deposit", json={"amount": amount}).status_code == 200
    assert api.post(f"/inventory/{sku}/restock", json={"quantity": quantity}).status_code == 200


def ship_an_order(api: httpx.Client, uid: str) -> str:
    """Fund a customer, stock a SKU and place one order through the gateway; waits until it
    has shipped and returns its id."""
    customer, sku = f"cust-{uid}", f"sku-{uid}"
    fund_and_stock(api, customer=customer, amount=5_000, sku=sku, quantity=5)
    placed = api.post(
        "/orders",
        json={"customer_id": customer, "lines": [{"sku": sku, "quantity": 1, "unit_price": 250}]},
        headers={"Idempotency-Key": f"ship-{uid}"},
    )
    assert placed.status_code == 202, placed.text
    location = placed.headers["location"]
    final = api.get(location, params={"wait": 30}).json()
    assert final["status"] == "shipped", final
    return str(location.rsplit("/", 1)[1])
