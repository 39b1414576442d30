"""The event router: (topic, event type) -> commands to actors, by a table of reactions.

    Reaction(topic, event class, react)   react(envelope, event) -> [Delivery(actor id,
                                          command model)]
    EventRouter(reactions, specs=..., known=...).plan(topic, cloud_event) -> Plan(envelope,
                                          calls: [Call(actor type, actor id, wire method,
                                          JSON payload)])

A reaction names no actor type and no method: the command model's AggregateSpec
(actors.toolkit.aggregate) says which actor type takes it and under which wire name, so
a reaction cannot call a method that does not exist, and a command it builds from bad
data fails validation here, when the event is planned, not at the target actor.

`plan` raises DeadLetterError with a reason when the event can never apply: no envelope, an
unknown type on the topic, a payload that fails its schema, a reaction that cannot build
a valid command from it. A known type nobody reacts to is simply not for the router (no
calls). Each call carries message_id "<event id>/<method>", so the target's inbox applies
it once however often the broker redelivers. Pure: no I/O here (see apps/actor_host).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from actors.toolkit.aggregate import AggregateSpec
from actors.toolkit.domain import Command, Event
from actors.toolkit.envelope import EventEnvelope, InvalidDeliveryError, envelope_in
from actors.toolkit.errors import PermanentError
from actors.toolkit.upcasting import Upcasters


class DeadLetterError(PermanentError):
    """This event can never be applied; `code` and `reason` say why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """One command for one actor, as a reaction yields it."""

    actor_id: str
    command: Command


@dataclass(frozen=True)
class Call:
    """One planned actor method call: a delivery with its actor type, method and payload."""

    actor_type: str
    actor_id: str
    method: str
    payload: dict[str, Any] = field(default_factory=dict)


React = Callable[[EventEnvelope, Any], Iterable[Delivery]]


@dataclass(frozen=True)
class Reaction:
    topic: str
    event: type[Event]
    react: React


@dataclass(frozen=True)
class Plan:
    envelope: EventEnvelope
    calls: tuple[Call, ...]


class EventRouter:
    def __init__(
        self,
        reactions: Iterable[Reaction],
        *,
        specs: Iterable[AggregateSpec],
        known: Mapping[str, Mapping[str, type[Event]]],
        upcasters: Upcasters | None = None,
    ) -> None:
        self._reactions: dict[tuple[str, str], list[Reaction]] = {}
        for reaction in reactions:
            self._reactions.setdefault((reaction.topic, reaction.event.type), []).append(reaction)
        self._targets = {model: spec for spec in specs for model in spec.commands.values()}
        self._known = known
        self._upcasters = upcasters or Upcasters()

    @property
    def topics(self) -> list[str]:
        return sorted({topic for topic, _ in self._reactions})

    def reacted_types(self, topic: str) -> list[str]:
        """The event types on `topic` some reaction turns into calls."""
        return sorted(event_type for t, event_type in self._reactions if t == topic)

    def plan(self, topic: str, cloud_event: Any) -> Plan:
        envelope = self._envelope(cloud_event)
        event_class = self._known.get(topic, {}).get(envelope.type)
        if event_class is None:
            raise DeadLetterError(
                "event.unknown_type", f"no event type {envelope.type!r} on {topic!r}"
            )
        reactions = self._reactions.get((topic, envelope.type), [])
        if not reactions:
            return Plan(envelope, ())
        envelope = self._upcasters.upcast(envelope)
        try:
            event = event_class.model_validate(envelope.payload)
        except ValidationError as exc:
            raise DeadLetterError(
                "event.invalid_payload", f"{envelope.type}: {_detail(exc)}"
            ) from exc
        try:
            deliveries = [d for reaction in reactions for d in reaction.react(envelope, event)]
        except ValidationError as exc:
            reason = f"{envelope.type}: no valid command from it: {_detail(exc)}"
            raise DeadLetterError("event.invalid_command", reason) from exc
        return Plan(envelope, tuple(self.call(envelope, d) for d in deliveries))

    def call(self, envelope: EventEnvelope, delivery: Delivery) -> Call:
        """The actor call for `delivery`, with the message ids that make it idempotent."""
        spec = self._targets.get(type(delivery.command))
        if spec is None:
            raise TypeError(f"no actor type takes {type(delivery.command).__name__}")
        method = spec.method_of(delivery.command)
        payload = {
            **delivery.command.model_dump(mode="json"),
            "message_id": f"{envelope.event_id}/{method}",
            "correlation_id": envelope.correlation_id or envelope.aggregate_id,
            "causation_id": envelope.event_id,
        }
        return Call(spec.actor_type, delivery.actor_id, method, payload)

    @staticmethod
    def _envelope(cloud_event: Any) -> EventEnvelope:
        try:
            return envelope_in(cloud_event)
        except InvalidDeliveryError as exc:
            raise DeadLetterError("event.invalid_envelope", str(exc)) from exc


def _detail(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
    )
