"""Wire contract of InventoryActor (id = SKU); payloads are JSON objects."""

from __future__ import annotations

from dapr.actor import ActorInterface, actormethod

from actors.toolkit.interface import EventSourcedInterface


# ActorInterface is named again: the SDK only dispatches methods of classes that list it
# among their direct bases.
class InventoryActorInterface(EventSourcedInterface, ActorInterface):
    @actormethod(name="Restock")  # type: ignore[untyped-decorator]
    async def restock(self, payload: bytes) -> bytes:
        """{"quantity": 1..1000000} -> inventory.stock_restocked"""

    @actormethod(name="Reserve")  # type: ignore[untyped-decorator]
    async def reserve(self, payload: bytes) -> bytes:
        """{"order_id", "quantity"} -> inventory.stock_reserved | inventory.stock_rejected"""

    @actormethod(name="Release")  # type: ignore[untyped-decorator]
    async def release(self, payload: bytes) -> bytes:
        """{"order_id"} -> inventory.stock_released (nothing if none held)"""

    @actormethod(name="Commit")  # type: ignore[untyped-decorator]
    async def commit(self, payload: bytes) -> bytes:
        """{"order_id"} -> inventory.stock_committed (the order shipped)"""
