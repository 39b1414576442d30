"""Helpers for integration tests: actor calls through the real sidecar, polling."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from cluster.processes import wait_until

__all__ = ["call", "touch", "wait_until"]


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
