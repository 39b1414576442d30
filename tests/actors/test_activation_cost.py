"""Activation reads the snapshot, never the event log: its cost does not grow with history.

Checked as a mechanism, not a time: a store that records every key an activation reads
shows a 1000-event actor and a 1-event actor reading the same number of keys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from actors.inventory.actor import InventoryActor
from actors.toolkit.actor import ActorDeps
from actors.toolkit.store import (
    SNAPSHOT_KEY,
    Append,
    InMemoryStore,
    InMemoryStores,
    memory_key,
)
from actors.toolkit.testing import activate
from tests.actors.doubles import RecordingPublisher


class ReadRecordingStores:
    """The in-memory stores, recording the keys each actor reads (one list per call)."""

    def __init__(self, stores: InMemoryStores) -> None:
        self._stores = stores
        self.reads: dict[str, list[list[str]]] = {}

    def __call__(self, actor_type: str, actor_id: str, _: Any = None) -> ReadRecordingStore:
        return ReadRecordingStore(
            self._stores(actor_type, actor_id), self.reads.setdefault(actor_id, [])
        )


class ReadRecordingStore:
    def __init__(self, store: InMemoryStore, reads: list[list[str]]) -> None:
        self._store = store
        self._reads = reads

    async def read(self, key: str) -> bytes | None:
        self._reads.append([key])
        return await self._store.read(key)

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self._reads.append(list(keys))
        return await self._store.read_many(keys)

    async def read_memory(self, key: str) -> list[str]:
        self._reads.append([key])
        return await self._store.read_memory(key)

    async def append(self, append: Append) -> bytes | None:
        return await self._store.append(append)


def activation(sku: str, stores: Any, publisher: RecordingPublisher) -> InventoryActor:
    return activate(InventoryActor, sku, ActorDeps(publisher=publisher, store=stores))


async def test_activating_an_actor_with_1000_events_reads_as_many_keys_as_one_with_1(
    publisher: RecordingPublisher,
) -> None:
    stores = InMemoryStores()
    writer = activation("long", stores, publisher)
    for _ in range(1000):
        assert json.loads(await writer.invoke("Restock", b'{"quantity": 1}'))["ok"]
    assert json.loads(
        await activation("short", stores, publisher).invoke("Restock", b'{"quantity": 1}')
    )["ok"]

    recording = ReadRecordingStores(stores)
    views = {
        sku: json.loads(await activation(sku, recording, publisher).get())
        for sku in ("long", "short")
    }

    assert views["long"]["aggregate_version"] == 1000
    assert views["long"]["result"]["on_hand"] == 1000
    long_reads, short_reads = recording.reads["long"], recording.reads["short"]
    assert [len(keys) for keys in long_reads] == [len(keys) for keys in short_reads]
    # the snapshot, the settled orders' list, then at most the events not yet marked
    # published (the last command's)
    assert long_reads[0] == short_reads[0] == [SNAPSHOT_KEY]
    assert long_reads[1] == short_reads[1] == [memory_key("committed_orders")]
    assert sum(len(keys) for keys in long_reads) <= 3
