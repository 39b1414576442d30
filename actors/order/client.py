"""Typed client of OrderActor (id = order id): raises the order's DomainErrors by code."""

from __future__ import annotations

from typing import Any

from actors.order import model as _model  # registers the order's error codes
from actors.toolkit.client import ActorResult, TypedClient, command

__all__ = ["OrderClient"]
_ = _model


class OrderClient(TypedClient):
    actor_type = "OrderActor"

    async def place(
        self,
        order_id: str,
        *,
        customer_id: str,
        lines: list[dict[str, Any]],
        message_id: str | None,
    ) -> ActorResult:
        body = command({"customer_id": customer_id, "lines": lines}, message_id=message_id)
        return await self._call(order_id, "Place", body)

    async def cancel(self, order_id: str, *, reason: str, message_id: str | None) -> ActorResult:
        body = command({"reason": reason}, message_id=message_id)
        return await self._call(order_id, "Cancel", body)
