"""WalletActor: one customer's balance and the holds orders place on it."""

from __future__ import annotations

from typing import Any

from dapr.actor import Remindable

from actors import catalog
from actors.toolkit.actor import EventSourcedActor
from actors.toolkit.domain import Command, Event
from actors.wallet import model
from actors.wallet.interface import WalletActorInterface

TOPIC = catalog.WALLET


# Remindable is named again: the SDK only sees it among the direct bases.
class WalletActor(EventSourcedActor[model.WalletState], WalletActorInterface, Remindable):
    aggregate_type = "WalletActor"
    topic = TOPIC
    state_type = model.WalletState
    events = model.EVENTS

    def initial_state(self) -> model.WalletState:
        return model.initial_state()

    def decide(self, state: model.WalletState, command: Command) -> list[Event]:
        return model.decide(state, command)

    def evolve(self, state: model.WalletState, event: Event) -> model.WalletState:
        return model.evolve(state, event)

    def view(self, state: model.WalletState) -> dict[str, Any]:
        return {
            "customer_id": self.id.id,
            "balance": state.balance,
            "held": state.held,
            "available": state.available,
        }

    async def deposit(self, payload: bytes) -> bytes:
        return await self._command(model.Deposit, payload)

    async def authorize(self, payload: bytes) -> bytes:
        return await self._command(model.Authorize, payload)

    async def capture(self, payload: bytes) -> bytes:
        return await self._command(model.Capture, payload)

    async def void(self, payload: bytes) -> bytes:
        return await self._command(model.Void, payload)
