"""Wire contract of InventoryActor (id = SKU), generated from its spec, `model.INVENTORY`.

For the Dapr SDK's ActorProxy: `ActorProxy.create("InventoryActor", id, InventoryActorInterface)`.
The methods, their payloads and the events they record are listed in the README
("Actors"); the one declaration is the spec's `commands` table.
"""

from __future__ import annotations

from actors.inventory.model import INVENTORY
from actors.toolkit.interface import actor_interface

InventoryActorInterface = actor_interface(INVENTORY)
