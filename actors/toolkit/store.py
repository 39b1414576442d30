"""Where an event-sourced actor keeps itself: one snapshot key plus one key per event.

    "aggregate"     {"version", "published", "state", "updated_at"}  the snapshot
    "event-<n>"     the EventEnvelope of version n (n = 1..version), never rewritten
    "inbox-<hash>"  the result answered to one message id, with a TTL (actors.toolkit.inbox)

`published` is the outbox watermark: events with a version above it were saved but not
yet confirmed published. Snapshot and new events go to the sidecar in ONE actor state
transaction, so they are saved together or not at all.

SidecarStore talks to the actor state API directly (one GET at activation, one PUT per
command): the SDK's state manager would first GET every new key to tell insert from
update. StateManagerStore goes through the SDK's state manager; it serves the SDK's mock
actors in tests.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, NamedTuple, Protocol

from dapr.actor.runtime.state_manager import ActorStateManager
from dapr.clients.base import DaprActorClientBase
from pydantic import BaseModel, ConfigDict, Field

SNAPSHOT_KEY = "aggregate"


def event_key(version: int) -> str:
    return f"event-{version}"


class Snapshot(BaseModel):
    """The stored snapshot document (state is the aggregate's own JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=0, ge=0)
    published: int = Field(default=0, ge=0)
    state: dict[str, Any] = Field(default_factory=dict)
    updated_at: dt.datetime | None = None  # when the last event was recorded (UTC)


class Item(NamedTuple):
    key: str
    value: bytes  # a JSON document
    ttl: dt.timedelta | None = None


class ActorStore(Protocol):
    async def read(self, key: str) -> bytes | None: ...

    async def write(self, items: list[Item]) -> None:
        """Upsert every item in one transaction."""


class SidecarStore:
    """The actor state API of the sidecar, through the process's pooled client."""

    def __init__(self, client: DaprActorClientBase, actor_type: str, actor_id: str) -> None:
        self._client = client
        self._type = actor_type
        self._id = actor_id

    async def read(self, key: str) -> bytes | None:
        raw = await self._client.get_state(self._type, self._id, key)
        return raw or None  # the sidecar answers 204 with no body for a missing key

    async def write(self, items: list[Item]) -> None:
        ops = b",".join(_upsert(item) for item in items)
        await self._client.save_state_transactionally(self._type, self._id, b"[" + ops + b"]")


class StateManagerStore:
    """The SDK's state manager (and so the SDK's MockStateManager in actor tests)."""

    def __init__(self, manager: ActorStateManager[bytes]) -> None:
        self._manager = manager

    async def read(self, key: str) -> bytes | None:
        found, value = await self._manager.try_get_state(key)
        return value if found else None

    async def write(self, items: list[Item]) -> None:
        for item in items:
            ttl = int(item.ttl.total_seconds()) if item.ttl else None
            await self._manager.set_state_ttl(item.key, item.value, ttl)
        await self._manager.save_state()


def _upsert(item: Item) -> bytes:
    request = b'{"key":%s,"value":%s' % (json.dumps(item.key).encode(), item.value)
    if item.ttl is not None:
        request += b',"metadata":{"ttlInSeconds":"%d"}' % int(item.ttl.total_seconds())
    return b'{"operation":"upsert","request":' + request + b"}}"
