"""One declaration per aggregate: its actor type, topic, methods, events and error codes.

    AggregateSpec(
        actor_type="InventoryActor",            the Dapr actor type
        topic="inventory",                      where its events are published
        commands={"Restock": Restock, ...},     wire method name -> command model
        events=event_types(StockRestocked, ...),
        errors=(ReservationNotFoundError, ...), the DomainErrors it answers, by code
        answered={"inventory.stock_rejected": ("reason",)},   payload fields an event's
                                                entry in a command's answer repeats
    )

Everything else is derived from the spec, so an actor method is declared exactly once:
    actor_interface(spec)   the Dapr SDK interface (ActorProxy users, the SDK's dispatch)
    dispatchable(cls)       the actor class the runtime hosts: one method per command
    TypedClient             sends a command model; the wire name comes from the spec
    EventRouter             reactions yield command models; the spec names the method
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from actors.toolkit.domain import Command, Event
from actors.toolkit.errors import BASE_ERRORS, DomainError

WIRE_NAME: Final = re.compile(r"[A-Z][A-Za-z0-9]*")
# Methods every event-sourced actor has besides its commands (actors.toolkit.interface).
BUILT_IN: Final = frozenset({"Get", "History", "Replay"})


@dataclass(frozen=True)
class AggregateSpec:
    actor_type: str
    topic: str
    commands: Mapping[str, type[Command]]
    events: Mapping[str, type[Event]]
    errors: tuple[type[DomainError], ...] = ()
    # event type -> payload fields its entry in an answer's `events` repeats, for a caller
    # that acts on the answer (the router chains a Reserve's answer into the order's call)
    answered: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    _methods: dict[type[Command], str] = field(init=False, repr=False, compare=False)
    _codes: dict[str, type[DomainError]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bad = [name for name in self.commands if not WIRE_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"{self.actor_type}: wire names must be PascalCase: {bad}")
        clash = sorted(BUILT_IN & set(self.commands))
        if clash:
            raise ValueError(f"{self.actor_type}: {clash} are built-in methods")
        methods = {model: name for name, model in self.commands.items()}
        if len(methods) != len(self.commands):
            raise ValueError(f"{self.actor_type}: one command model serves two methods")
        object.__setattr__(self, "_methods", methods)
        object.__setattr__(self, "_codes", error_codes(*BASE_ERRORS, *self.errors))

    def method_of(self, command: Command) -> str:
        """The wire name of the method that takes `command` (TypeError if none does)."""
        method = self.method_for(type(command))
        if method is None:
            raise TypeError(f"{self.actor_type} has no method taking {type(command).__name__}")
        return method

    def method_for(self, command_type: type[Command]) -> str | None:
        """The wire name of the method taking `command_type`, None for an internal command."""
        return self._methods.get(command_type)

    def summary(
        self, event_id: str, event_type: str, version: int, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """An event's entry in the `events` of a command's answer: its id, type and version,
        plus the payload fields `answered` names for its type."""
        entry = {"event_id": event_id, "type": event_type, "aggregate_version": version}
        for name in self.answered.get(event_type, ()):
            entry[name] = payload.get(name)
        return entry

    @property
    def error_codes(self) -> dict[str, type[DomainError]]:
        """Every code a call to this actor may answer, with the class to raise for it."""
        return self._codes


def error_codes(*classes: type[DomainError]) -> dict[str, type[DomainError]]:
    return {cls.code: cls for cls in classes}


def python_name(wire_name: str) -> str:
    """ "OnStockReserved" -> "on_stock_reserved" (the SDK dispatches to this attribute)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", wire_name).lower()
