"""Wallets: deposit money, read a customer's balance, page through its history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from actors.wallet.model import Deposit
from apps.gateway.deps import (
    OptionalIdempotencyKey,
    OptionalReadSide,
    Wallets,
    message_id_for,
    require_read_models,
)
from apps.gateway.problems import problem_responses
from apps.gateway.query_schemas import Consistency, WalletBalance
from apps.gateway.routes.history import DESCRIPTION, History
from apps.gateway.routes.queries import wallet_balance
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
    deposit = Deposit(amount=body.amount)
    answer = await wallets.send(customer_id, deposit, message_id=message_id_for(key))
    return WalletView.model_validate(answer.result)


ConsistencyQuery = Annotated[
    Consistency,
    Query(description="eventual: the read model (default, with `freshness`); strong: the actor"),
]


@router.get(
    "/{customer_id}",
    summary="Read a wallet",
    description=(
        "From the read model by default (eventually consistent: a deposit just answered may "
        "not show yet; `freshness` says how far it has got). `consistency=strong` asks the "
        "wallet actor itself."
    ),
)
async def get_wallet(
    customer_id: CustomerIdPath,
    wallets: Wallets,
    read: OptionalReadSide,
    consistency: ConsistencyQuery = "eventual",
) -> WalletBalance:
    if consistency == "eventual":
        return await wallet_balance(require_read_models(read), customer_id)
    answer = await wallets.get(customer_id)
    strong = {"aggregate_version": answer.aggregate_version, "consistency": "strong"}
    return WalletBalance.model_validate({**answer.result, **strong, "freshness": None})


@router.get("/{customer_id}/history", summary="A wallet's events", description=DESCRIPTION)
async def wallet_history(
    customer_id: CustomerIdPath, wallets: Wallets, history: History
) -> HistoryPage:
    return await history.page(wallets, customer_id)
