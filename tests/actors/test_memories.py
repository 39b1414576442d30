"""Bounded memories (`State.memories`) kept beside the snapshot, on the real actor code.

An inventory remembers the orders it settled (`committed_orders`) and a wallet the ones
it captured. Each memory is a list of its own that a commit only appends to: the snapshot
no longer rewrites it on every call. These tests run InventoryActor over the in-memory
store (the Redis store runs the same contract: tests/integration/test_redis_store.py).
"""

from __future__ import annotations

import json
from typing import Any

from actors.inventory.actor import InventoryActor
from actors.inventory.model import SETTLED_MEMORY
from actors.toolkit.actor import ActorDeps
from actors.toolkit.store import SNAPSHOT_KEY, InMemoryStores, memory_key
from actors.toolkit.testing import activate
from actors.wallet.model import WalletState
from tests.actors.doubles import RecordingPublisher

SKU = "SKU-1"
SETTLED = memory_key("committed_orders")


def activation(stores: InMemoryStores, publisher: RecordingPublisher) -> InventoryActor:
    return activate(InventoryActor, SKU, ActorDeps(publisher=publisher, store=stores))


async def call(actor: InventoryActor, method: str, payload: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(await actor.invoke(method, json.dumps(payload).encode()))
    return answer


async def replays_to_its_snapshot(actor: InventoryActor) -> bool:
    """Replay: the whole history folded again equals the state the activation loaded."""
    matches: bool = json.loads(await actor.replay())["result"]["matches_snapshot"]
    return matches


async def settle(actor: InventoryActor, *orders: str) -> None:
    for order in orders:
        assert (await call(actor, "Reserve", {"order_id": order, "quantity": 1}))["ok"]
        assert (await call(actor, "Commit", {"order_id": order}))["ok"]


async def stocked(
    stores: InMemoryStores, publisher: RecordingPublisher, quantity: int = 10
) -> InventoryActor:
    """An activation of the SKU, restocked."""
    actor = activation(stores, publisher)
    assert (await call(actor, "Restock", {"quantity": quantity}))["ok"]
    return actor


def snapshot_state(stores: InMemoryStores) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(stores.keys("InventoryActor", SKU)[SNAPSHOT_KEY])["state"]
    return state


async def test_settled_orders_live_in_their_list_not_in_the_snapshot(
    publisher: RecordingPublisher,
) -> None:
    stores = InMemoryStores()
    actor = await stocked(stores, publisher)
    await settle(actor, "o-1", "o-2")

    assert "committed_orders" not in snapshot_state(stores)
    assert await stores("InventoryActor", SKU).read_memory(SETTLED) == ["o-1", "o-2"]
    assert WalletState.memories == {"captured_orders": SETTLED_MEMORY}


async def test_a_new_activation_still_knows_the_orders_settled_before_it(
    publisher: RecordingPublisher,
) -> None:
    stores = InMemoryStores()
    first = await stocked(stores, publisher)
    await settle(first, "o-1")

    second = activation(stores, publisher)  # another host, after a rebalance
    late_reserve = await call(second, "Reserve", {"order_id": "o-1", "quantity": 1})
    repeated_commit = await call(second, "Commit", {"order_id": "o-1"})

    assert late_reserve["events"] == []  # holds nothing again
    assert repeated_commit["events"] == []
    assert late_reserve["result"]["reserved"] == 0
    assert await replays_to_its_snapshot(second)


async def test_the_list_keeps_only_the_newest_settled_orders(
    publisher: RecordingPublisher,
) -> None:
    stores = InMemoryStores()
    actor = await stocked(stores, publisher, SETTLED_MEMORY + 5)
    orders = [f"o-{n}" for n in range(SETTLED_MEMORY + 3)]
    await settle(actor, *orders)

    assert await stores("InventoryActor", SKU).read_memory(SETTLED) == orders[-SETTLED_MEMORY:]
    assert await replays_to_its_snapshot(activation(stores, publisher))


async def test_a_snapshot_written_before_the_lists_is_read_and_moved_out_at_the_next_commit(
    publisher: RecordingPublisher,
) -> None:
    """An older host kept the memory inside the snapshot. A new activation takes those
    ids (after any its list already holds: an older host that took the actor over
    during a rolling upgrade did not see the list), and its next commit writes the list
    whole and a snapshot without the field."""
    stores = InMemoryStores()
    actor = await stocked(stores, publisher)
    await settle(actor, "o-1", "o-2")
    keys = stores._actors[("InventoryActor", SKU)]  # rewriting history
    document = json.loads(keys.values[SNAPSHOT_KEY])
    document["state"]["committed_orders"] = ["o-2", "o-3"]  # as an older host wrote it
    keys.values[SNAPSHOT_KEY] = json.dumps(document).encode()

    reloaded = activation(stores, publisher)
    assert (await call(reloaded, "Commit", {"order_id": "o-3"}))["events"] == []  # known
    assert (await call(reloaded, "Commit", {"order_id": "o-1"}))["events"] == []
    assert (await call(reloaded, "Restock", {"quantity": 1}))["ok"]  # the next commit

    assert "committed_orders" not in snapshot_state(stores)
    assert await stores("InventoryActor", SKU).read_memory(SETTLED) == ["o-1", "o-2", "o-3"]
    assert await replays_to_its_snapshot(activation(stores, publisher)) is False  # o-3: edited
