"""Wire contract of WalletActor (id = customer id); amounts are integer minor units."""

from __future__ import annotations

from dapr.actor import ActorInterface, actormethod

from actors.toolkit.interface import EventSourcedInterface


# ActorInterface is named again: the SDK only dispatches methods of classes that list it
# among their direct bases.
class WalletActorInterface(EventSourcedInterface, ActorInterface):
    @actormethod(name="Deposit")  # type: ignore[untyped-decorator]
    async def deposit(self, payload: bytes) -> bytes:
        """{"amount": 1..MAX_DEPOSIT} -> wallet.funds_credited"""

    @actormethod(name="Authorize")  # type: ignore[untyped-decorator]
    async def authorize(self, payload: bytes) -> bytes:
        """{"order_id", "amount"} -> wallet.payment_authorized | wallet.payment_declined"""

    @actormethod(name="Capture")  # type: ignore[untyped-decorator]
    async def capture(self, payload: bytes) -> bytes:
        """{"order_id"} -> wallet.payment_captured (the order shipped)"""

    @actormethod(name="Void")  # type: ignore[untyped-decorator]
    async def void(self, payload: bytes) -> bytes:
        """{"order_id"} -> wallet.payment_voided (nothing if no hold)"""
