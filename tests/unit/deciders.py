"""A decider under random command sequences: the property tests of the inventory and wallet
models drive their aggregates through this one harness."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from actors.toolkit.domain import Command, Event

S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True)
class Decider(Generic[S]):
    """An aggregate's `decide` and `evolve`, its event table, and the one refusal a random
    sequence may provoke (taken as no events)."""

    decide: Callable[[S, Command], list[Event]]
    evolve: Callable[[S, Event], S]
    events: Collection[type[Event]]
    refusal: type[Exception]

    def attempt(self, state: S, command: Command) -> list[Event]:
        try:
            return self.decide(state, command)
        except self.refusal:
            return []

    def apply(self, state: S, events: list[Event]) -> S:
        for event in events:
            assert type(event) in self.events
            state = self.evolve(state, event)
        return state

    def run(self, state: S, commands: Iterable[Command]) -> S:
        """Attempt and apply each command in turn."""
        for command in commands:
            state = self.apply(state, self.attempt(state, command))
        return state

    def run_checking(
        self, state: S, commands: Iterable[tuple[Command, bool]], check: Callable[[S], None]
    ) -> S:
        """Run each command (twice when its flag says it is delivered twice), checking the
        state after every delivery."""
        for command, delivered_twice in commands:
            for _ in range(2 if delivered_twice else 1):
                state = self.apply(state, self.attempt(state, command))
                check(state)
        return state
