"""Wallets: deposit money, read a customer's balance, page through its history."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from apps.gateway.deps import OptionalIdempotencyKey, Wallets, message_id_for
from apps.gateway.problems import problem_responses
from apps.gateway.routes.history import DEFAULT_PAGE, DESCRIPTION, After, Limit, history_page
from apps.gateway.schemas import CustomerIdPath, DepositBody, HistoryPage, WalletView

router = APIRouter(prefix="/wallets", tags=["wallets"])


@router.post(
    "/{customer_id}/deposit",
    summary="Deposit money",
    description="A retry with the same Idempotency-Key deposits once.",
    responses=problem_responses(400, 413),
)
async def deposit(
    customer_id: CustomerIdPath,
    body: DepositBody,
    wallets: Wallets,
    key: OptionalIdempotencyKey,
) -> WalletView:
    answer = await wallets.deposit(customer_id, body.amount, message_id=message_id_for(key))
    return WalletView.model_validate(answer.result)


@router.get("/{customer_id}", summary="Read a wallet")
async def get_wallet(customer_id: CustomerIdPath, wallets: Wallets) -> WalletView:
    return WalletView.model_validate((await wallets.get(customer_id)).result)


@router.get("/{customer_id}/history", summary="A wallet's events", description=DESCRIPTION)
async def wallet_history(
    customer_id: CustomerIdPath,
    wallets: Wallets,
    request: Request,
    response: Response,
    after: After = 0,
    limit: Limit = DEFAULT_PAGE,
) -> HistoryPage:
    return await history_page(
        wallets, customer_id, after=after, limit=limit, request=request, response=response
    )
