"""Typed client of WalletActor (id = customer id): raises wallet's DomainErrors by code."""

from __future__ import annotations

from actors.toolkit.client import ActorResult, TypedClient, command
from actors.wallet import model as _model  # registers wallet's error codes

__all__ = ["WalletClient"]
_ = _model


class WalletClient(TypedClient):
    actor_type = "WalletActor"

    async def deposit(
        self, customer_id: str, amount: int, *, message_id: str | None
    ) -> ActorResult:
        body = command({"amount": amount}, message_id=message_id)
        return await self._call(customer_id, "Deposit", body)
