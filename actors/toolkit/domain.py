"""Building blocks of pure domain models: commands, events, state, deciders.

A domain module (actors/<entity>/model.py) imports only this, errors and pydantic:
    initial_state() -> State
    decide(state, command) -> list[Event]   # raises a DomainError, never mutates
    evolve(state, event) -> State           # total: applies any event decide emitted
Events carry only business data; ids, versions, times and causation live in the
envelope the actor base wraps them in (actors.toolkit.envelope).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Frozen and strict: what we emit never carries unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Command(Model):
    """An instruction to one aggregate (imperative name, e.g. ReserveStock)."""


class Event(Model):
    """A fact one aggregate recorded (past tense, e.g. StockReserved)."""

    type: ClassVar[str]  # "<context>.<event>", never reused with another meaning
    schema_version: ClassVar[int] = 1


class State(Model):
    """An aggregate's state: rebuilt by folding its events with evolve.

    `memories` names the fields that are bounded memories (a tuple of ids kept by
    `remember`, field name -> its limit). The toolkit stores each one beside the snapshot,
    in a list of its own that a commit only appends to, instead of rewriting it inside
    every snapshot (actors.toolkit.actor, "memories")."""

    memories: ClassVar[Mapping[str, int]] = {}


def event_types(*classes: type[Event]) -> dict[str, type[Event]]:
    """The registry a context uses to parse its events by type string."""
    return {cls.type: cls for cls in classes}


def remember(recent: tuple[str, ...], key: str, *, limit: int) -> tuple[str, ...]:
    """`recent` with `key` appended, keeping only the newest `limit` keys (a bounded memory).

    For state that must recognise a repeat without growing for ever. Name the field in the
    state's `memories`: it is then stored apart from the snapshot and costs a commit only
    the keys it adds.
    """
    if key in recent:
        return recent
    return (*recent, key)[-limit:]
