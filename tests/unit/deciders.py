"""A decider under random command sequences, and the properties every aggregate that holds
claims per order (inventory's reservations, a wallet's holds) must keep: the inventory and
wallet model tests subclass `ClaimsProperties`, as a store's contract suite is subclassed
per store."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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


# One @given method run from two subclasses: Hypothesis warns (its example database would mix
# them up), but the database is off here.
PROPERTIES = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.differing_executors],
)


class ClaimsProperties(Generic[S]):
    """Properties of an aggregate that holds claims per order. A subclass named `Test...`
    names its decider, its commands, its invariants and which commands may repeat."""

    decider: ClassVar[Decider[Any]]
    commands: ClassVar[st.SearchStrategy[Command]]

    def initial(self) -> S:
        raise NotImplementedError

    def check(self, state: S) -> None:
        """Assert the aggregate's invariants."""
        raise NotImplementedError

    def may_repeat(self, state: S, command: Command) -> bool:
        """Whether `command`, delivered again, may rightly change `state` (an addition adds
        up; a claim refused before may succeed after one)."""
        raise NotImplementedError

    @PROPERTIES
    @given(data=st.data())
    def test_random_command_sequences_never_break_an_invariant(self, data: st.DataObject) -> None:
        commands = data.draw(st.lists(st.tuples(self.commands, st.booleans()), max_size=40))
        state = self.decider.run_checking(self.initial(), commands, self.check)
        assert type(state).model_validate_json(state.model_dump_json()) == state

    @PROPERTIES
    @given(data=st.data())
    def test_a_redelivered_command_changes_nothing(self, data: st.DataObject) -> None:
        commands = data.draw(st.lists(self.commands, max_size=30))
        repeated = data.draw(self.commands)
        state = self.decider.run(self.initial(), [*commands, repeated])
        if self.may_repeat(state, repeated):
            return
        assert self.decider.attempt(state, repeated) == []
