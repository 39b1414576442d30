"""Reading Dapr's Redis Streams topics directly: every CloudEvent, and consumer-group progress."""

from __future__ import annotations

import json
from typing import Any

import redis


def stream_events(client: redis.Redis, topic: str) -> list[dict[str, Any]]:
    """Every CloudEvent Dapr has written to `topic` (a Redis stream named after it)."""
    entries: list[tuple[str, dict[str, str]]] = client.xrange(topic)  # type: ignore[assignment]
    return [json.loads(fields["data"]) for _, fields in entries]


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
