"""The store contract on the in-process stores: in-memory, and the SDK's mock state manager."""

from __future__ import annotations

from typing import Any

import pytest
from dapr.actor.runtime.mock_actor import create_mock_actor

from actors.inventory.actor import InventoryActor
from actors.toolkit.store import Append, InMemoryStores, Publication, StateManagerStore
from tests.store_contract import StoreContract, StoreOf


class TestInMemoryStore(StoreContract):
    @pytest.fixture
    def stores(self) -> StoreOf:
        backing = InMemoryStores()
        return lambda actor_id: backing("InventoryActor", actor_id)


class TestStateManagerStore(StoreContract):
    @pytest.fixture
    def stores(self) -> StoreOf:
        managers: dict[str, Any] = {}

        def store(actor_id: str) -> StateManagerStore:
            if actor_id not in managers:
                managers[actor_id] = create_mock_actor(InventoryActor, actor_id)._state_manager
            return StateManagerStore(managers[actor_id])

        return store


async def test_the_state_manager_store_refuses_to_publish_within_an_append() -> None:
    manager = create_mock_actor(InventoryActor, "sku-1")._state_manager
    append = Append(expected_version=0, publication=Publication("inventory", 0, (b"{}",)))
    with pytest.raises(TypeError, match="cannot publish or index"):
        await StateManagerStore(manager).append(append)
    assert await StateManagerStore(manager).read("aggregate") is None
