"""Wire contract of OrderActor (id = order id): the customer's methods and the saga's facts."""

from __future__ import annotations

from dapr.actor import ActorInterface, actormethod

from actors.toolkit.interface import EventSourcedInterface


# ActorInterface is named again: the SDK only dispatches methods of classes that list it
# among their direct bases.
class OrderActorInterface(EventSourcedInterface, ActorInterface):
    @actormethod(name="Place")  # type: ignore[untyped-decorator]
    async def place(self, payload: bytes) -> bytes:
        """{"customer_id", "lines": [{"sku", "quantity", "unit_price"}]} -> order.placed"""

    @actormethod(name="Cancel")  # type: ignore[untyped-decorator]
    async def cancel(self, payload: bytes) -> bytes:
        """{"reason"?} -> order.cancelled (refused once confirmed or shipped)"""

    @actormethod(name="OnStockReserved")  # type: ignore[untyped-decorator]
    async def on_stock_reserved(self, payload: bytes) -> bytes:
        """{"sku"} (routed from inventory.stock_reserved)"""

    @actormethod(name="OnStockRejected")  # type: ignore[untyped-decorator]
    async def on_stock_rejected(self, payload: bytes) -> bytes:
        """{"sku", "reason"} (routed from inventory.stock_rejected)"""

    @actormethod(name="OnPaymentAuthorized")  # type: ignore[untyped-decorator]
    async def on_payment_authorized(self, payload: bytes) -> bytes:
        """{} (routed from wallet.payment_authorized)"""

    @actormethod(name="OnPaymentDeclined")  # type: ignore[untyped-decorator]
    async def on_payment_declined(self, payload: bytes) -> bytes:
        """{"reason"} (routed from wallet.payment_declined)"""

    @actormethod(name="OnShipmentDispatched")  # type: ignore[untyped-decorator]
    async def on_shipment_dispatched(self, payload: bytes) -> bytes:
        """{"shipment_id"} (routed from shipment.dispatched)"""

    @actormethod(name="OnShipmentFailed")  # type: ignore[untyped-decorator]
    async def on_shipment_failed(self, payload: bytes) -> bytes:
        """{"reason"} (routed from shipment.failed)"""
