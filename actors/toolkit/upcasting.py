"""Upcasting: events stored or sent in an older schema version are read as the newest.

An upcaster maps (type, version) to a function that turns that version's payload
into the next version's. Reading applies them in a chain, so v1 -> v2 -> v3.
A type string is never reused with another meaning: a breaking change gets a new
schema version plus an upcaster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.toolkit.envelope import EventEnvelope

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


class Upcasters:
    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: `fn` turns a `from_version` payload into a `from_version + 1` one."""

        def decorate(fn: Upcaster) -> Upcaster:
            self._steps[(event_type, from_version)] = fn
            return fn

        return decorate

    def upcast(self, envelope: EventEnvelope) -> EventEnvelope:
        payload, version = envelope.payload, envelope.schema_version
        while (step := self._steps.get((envelope.type, version))) is not None:
            payload, version = step(payload), version + 1
        if version == envelope.schema_version:
            return envelope
        return envelope.model_copy(update={"payload": payload, "schema_version": version})
