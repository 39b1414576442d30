"""InventoryActor: one SKU's stock and reservations, on the event-sourced actor base."""

from __future__ import annotations

from typing import Any, ClassVar

from actors.inventory import model
from actors.toolkit.actor import EventSourcedActor
from actors.toolkit.domain import Command, Event
from actors.toolkit.interface import dispatchable


@dispatchable
class InventoryActor(EventSourcedActor[model.InventoryState]):
    spec = model.INVENTORY
    state_type = model.InventoryState
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
