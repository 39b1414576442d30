"""WalletActor: one customer's balance and the holds orders place on it."""

from __future__ import annotations

from typing import Any

from actors.toolkit.actor import EventSourcedActor
from actors.toolkit.domain import Command, Event
from actors.toolkit.interface import dispatchable
from actors.wallet import model


@dispatchable
class WalletActor(EventSourcedActor[model.WalletState]):
    spec = model.WALLET
    state_type = model.WalletState

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
