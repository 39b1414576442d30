"""InventoryActor: one SKU's stock and reservations, on the event-sourced actor base."""

from __future__ import annotations

from typing import Any, ClassVar

from dapr.actor import Remindable

from actors import catalog
from actors.inventory import model
from actors.inventory.interface import InventoryActorInterface
from actors.toolkit.actor import EventSourcedActor
from actors.toolkit.domain import Command, Event

TOPIC = catalog.INVENTORY


# Remindable is named again: the SDK only sees it among the direct bases.
class InventoryActor(EventSourcedActor[model.InventoryState], InventoryActorInterface, Remindable):
    aggregate_type = "InventoryActor"
    topic = TOPIC
    state_type = model.InventoryState
    events = model.EVENTS
    id_field: ClassVar[str | None] = "sku"

    def initial_state(self) -> model.InventoryState:
        return model.initial_state()

    def decide(self, state: model.InventoryState, command: Command) -> list[Event]:
        return model.decide(state, command)

    def evolve(self, state: model.InventoryState, event: Event) -> model.InventoryState:
        return model.evolve(state, event)

    def view(self, state: model.InventoryState) -> dict[str, Any]:
        return {
            "sku": self.id.id,
            "on_hand": state.on_hand,
            "reserved": state.reserved,
            "available": state.available,
        }

    async def restock(self, payload: bytes) -> bytes:
        return await self._command(model.Restock, payload)

    async def reserve(self, payload: bytes) -> bytes:
        return await self._command(model.Reserve, payload)

    async def release(self, payload: bytes) -> bytes:
        return await self._command(model.Release, payload)

    async def commit(self, payload: bytes) -> bytes:
        return await self._command(model.Commit, payload)
