"""Inventory: restock a SKU, read its stock, page through its history."""

from __future__ import annotations

from fastapi import APIRouter

from actors.inventory.model import Restock
from apps.gateway.deps import Inventory, OptionalIdempotencyKey, message_id_for
from apps.gateway.problems import problem_responses
from apps.gateway.routes.history import DESCRIPTION, History
from apps.gateway.schemas import HistoryPage, InventoryView, RestockBody, SkuPath

router = APIRouter(prefix="/inventory", tags=["inventory"])


@router.post(
    "/{sku}/restock",
    summary="Add stock",
    description="A retry with the same Idempotency-Key adds the stock once.",
    responses=problem_responses(400, 413),
)
async def restock(
    sku: SkuPath, body: RestockBody, inventory: Inventory, key: OptionalIdempotencyKey
) -> InventoryView:
    restock = Restock(sku=sku, quantity=body.quantity)
    answer = await inventory.send(sku, restock, message_id=message_id_for(key))
    return InventoryView.model_validate(answer.result)


@router.get("/{sku}", summary="Read a SKU's stock")
async def get_stock(sku: SkuPath, inventory: Inventory) -> InventoryView:
    return InventoryView.model_validate((await inventory.get(sku)).result)


@router.get("/{sku}/history", summary="A SKU's events", description=DESCRIPTION)
async def stock_history(sku: SkuPath, inventory: Inventory, history: History) -> HistoryPage:
    return await history.page(inventory, sku)
