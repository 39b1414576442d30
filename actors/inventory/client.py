"""Typed client of InventoryActor (id = SKU): raises inventory's DomainErrors by code."""

from __future__ import annotations

from actors.inventory import model as _model  # registers inventory's error codes
from actors.toolkit.client import ActorResult, TypedClient, command

__all__ = ["InventoryClient"]
_ = _model


class InventoryClient(TypedClient):
    actor_type = "InventoryActor"

    async def restock(self, sku: str, quantity: int, *, message_id: str | None) -> ActorResult:
        return await self._call(
            sku, "Restock", command({"quantity": quantity}, message_id=message_id)
        )
