"""The inbox is checked by the append itself: a command reads nothing before it.

A duplicate is still answered with its original result, including one whose decision on
the later state would be a refusal (the refusal path looks the message id up first).
"""

from __future__ import annotations

import json

from actors.inventory.actor import InventoryActor
from actors.inventory.model import MAX_ON_HAND, InventoryState
from actors.toolkit.actor import ActorDeps
from actors.toolkit.store import Append, InMemoryStores, Snapshot
from actors.toolkit.testing import activate
from tests.actors.doubles import RecordingPublisher
from tests.actors.test_activation_cost import ReadRecordingStores


def restock(quantity: int, message_id: str) -> bytes:
    return json.dumps({"quantity": quantity, "message_id": message_id}).encode()


async def test_a_command_with_a_message_id_reads_no_key_before_its_append(
    publisher: RecordingPublisher,
) -> None:
    recording = ReadRecordingStores(InMemoryStores())
    actor = activate(InventoryActor, "sku-1", ActorDeps(publisher=publisher, store=recording))
    await actor.get()  # activation: the snapshot
    recording.reads["sku-1"].clear()

    for n in range(3):
        assert json.loads(await actor.invoke("Restock", restock(1, f"m-{n}")))["ok"] is True

    assert recording.reads["sku-1"] == []
    assert json.loads(await actor.get())["result"]["on_hand"] == 3


async def test_a_duplicate_the_later_state_would_refuse_gets_its_original_answer(
    publisher: RecordingPublisher,
) -> None:
    stores = InMemoryStores()
    nearly_full = InventoryState(on_hand=MAX_ON_HAND - 5)
    seeded = Snapshot(version=1, published=1, state=nearly_full.model_dump(mode="json"))
    await stores("InventoryActor", "sku-2").append(
        Append(expected_version=0, snapshot=seeded.model_dump_json().encode())
    )
    actor = activate(InventoryActor, "sku-2", ActorDeps(publisher=publisher, store=stores))
    first = json.loads(await actor.invoke("Restock", restock(5, "m-full")))
    assert first["ok"] is True

    # decided again on the full shelf, it would exceed MAX_ON_HAND: a refusal
    refused = json.loads(await actor.invoke("Restock", restock(5, "m-other")))
    assert refused["ok"] is False
    again = json.loads(await actor.invoke("Restock", restock(5, "m-full")))

    assert again["ok"] is True
    assert again["duplicate"] is True
    assert again["aggregate_version"] == first["aggregate_version"] == 2
    assert len(publisher.sent) == 1


async def test_a_duplicate_reaching_a_fresh_activation_writes_nothing(
    publisher: RecordingPublisher,
) -> None:
    stores = InMemoryStores()
    deps = ActorDeps(publisher=publisher, store=stores)
    first = activate(InventoryActor, "sku-3", deps)
    assert json.loads(await first.invoke("Restock", restock(2, "m-once")))["ok"] is True
    keys_before = stores.keys("InventoryActor", "sku-3")

    later = activate(InventoryActor, "sku-3", deps)  # another activation, same store
    again = json.loads(await later.invoke("Restock", restock(2, "m-once")))

    assert again["duplicate"] is True
    assert stores.keys("InventoryActor", "sku-3") == keys_before
    assert json.loads(await later.get())["result"]["on_hand"] == 2
    assert len(publisher.sent) == 1
