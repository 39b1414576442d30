"""Our actors clear the SDK's state tracker in the event loop, not in a worker thread.

The SDK clears it at every activation and deactivation with `run_in_executor`: a thread
hand-off (and two wake-ups) per OrderActor an order activates and deactivates. Built as
the actor host builds them (`actor_factory`, the SDK's ActorManager), an actor must
activate, take a command and deactivate without the default executor.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from dapr.actor import ActorId
from dapr.actor.runtime._type_information import ActorTypeInformation
from dapr.actor.runtime.context import ActorRuntimeContext
from dapr.actor.runtime.manager import ActorManager
from dapr.actor.runtime.state_change import StateChangeKind
from dapr.actor.runtime.state_manager import ActorStateManager, StateMetadata

from actors.inventory.actor import InventoryActor
from actors.toolkit.actor import ActorDeps, actor_factory
from actors.toolkit.serializer import RawJSONSerializer
from actors.toolkit.store import InMemoryStores
from tests.actors.doubles import RecordingPublisher


class NoExecutor(Exception):
    pass


def _refuse(*_: Any) -> Any:
    raise NoExecutor("run_in_executor")


async def test_activation_a_command_and_deactivation_never_hand_off_to_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "run_in_executor", _refuse)
    deps = ActorDeps(publisher=RecordingPublisher(), store=InMemoryStores())
    manager = ActorManager(
        ActorRuntimeContext(
            ActorTypeInformation.create(InventoryActor),
            RawJSONSerializer(),
            RawJSONSerializer(raw_reads=True),
            None,  # type: ignore[arg-type]  # no actor-to-actor call here
            actor_factory(InventoryActor, deps),
        )
    )
    sku = ActorId("sku-1")

    await manager.activate_actor(sku)
    answer = await manager.dispatch(sku, "Restock", json.dumps({"quantity": 5}).encode())
    assert json.loads(answer)["ok"] is True
    actor = manager._active_actors["sku-1"]
    tracker = actor._state_manager._get_contextual_state_tracker()
    tracker["left-over"] = StateMetadata(1, StateChangeKind.none)
    await manager.deactivate_actor(sku)

    assert tracker == {}  # cleared all the same, in the loop
    with pytest.raises(NoExecutor):  # the patch holds: the SDK's own clear would fail
        await ActorStateManager.clear_cache(actor._state_manager)
