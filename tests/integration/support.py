"""Helpers for integration tests: actor calls through the real sidecar, polling."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import redis

from cluster.processes import wait_until

__all__ = [
    "call",
    "consumed",
    "deposit",
    "envelope",
    "ok",
    "place",
    "publish",
    "restock",
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


def stream_events(client: redis.Redis, topic: str) -> list[dict[str, Any]]:
    """Every CloudEvent Dapr has written to `topic` (a Redis stream named after it)."""
    entries: list[tuple[str, dict[str, str]]] = client.xrange(topic)  # type: ignore[assignment]
    return [json.loads(fields["data"]) for _, fields in entries]


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


def _stream_id(entry_id: str) -> tuple[int, int]:
    millis, seq = entry_id.split("-")
    return int(millis), int(seq)


def consumed(client: redis.Redis, topic: str, *, group: str = "actor-host") -> bool:
    """Whether `group` has been handed, and has acknowledged, every entry now on `topic`."""
    newest: list[tuple[str, Any]] = client.xrevrange(topic, count=1)  # type: ignore[assignment]
    if not newest:
        return True
    groups: list[dict[str, Any]] = client.xinfo_groups(topic)
    info = next((g for g in groups if g["name"] == group), None)
    if info is None:
        return False
    delivered = _stream_id(str(info["last-delivered-id"])) >= _stream_id(newest[0][0])
    return delivered and int(info["pending"]) == 0
