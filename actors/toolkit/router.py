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

A chained reaction, Reaction(..., then=(step, ...)), goes on once every call it planned
answered, ok or refused for good (none is to be tried again): `plan.follow_up(answers)`
hands the `events` of those answered ok (a refused call has none; an inbox duplicate
answers the ones it first recorded, so a redelivery builds the same calls) to the next
step, which turns them into more calls, and so on, step by step. Every call of a step a
further step follows is marked: its causation id is its own message id ("<event id>/
<method>", a plain event id otherwise), which the events it causes carry, so a reaction
to those events can tell (`chained_by`) that the router already took their consequence in
hand and yield nothing. A step's call for an event an answer named (`Delivery.because`)
gets the message id "<that event's id>/<method>", the one a router reading that event off
its topic would give it: whichever path comes second is answered from the target's inbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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
    # the id of the event this call answers, when not the routed one's: a chained step's
    # call for an event an answer named (the message id then derives from it)
    because: str = ""


@dataclass(frozen=True)
class Call:
    """One planned actor method call: a delivery with its actor type, method and payload."""

    actor_type: str
    actor_id: str
    method: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Answered:
    """One delivery of a chained reaction and the `events` its actor answered: each
    {event_id, type, aggregate_version} plus the fields its spec's `answered` names."""

    delivery: Delivery
    events: Sequence[Mapping[str, Any]]


React = Callable[[EventEnvelope, Any], Iterable[Delivery]]
Then = Callable[[EventEnvelope, Any, Sequence[Answered]], Iterable[Delivery]]


@dataclass(frozen=True)
class Reaction:
    topic: str
    event: type[Event]
    react: React
    # once every delivery of `react` answered: the deliveries the answers of those answered
    # ok make, then those their answers make, ... (one step each)
    then: tuple[Then, ...] = ()


Events = Sequence[Mapping[str, Any]]  # the `events` of an actor's answer
FollowUp = Callable[[Sequence[Events | None]], "Plan"]


@dataclass(frozen=True)
class Plan:
    envelope: EventEnvelope
    calls: tuple[Call, ...]
    then: FollowUp | None = None  # a chained reaction's: the plan its answers make

    def follow_up(self, answers: Sequence[Events | None]) -> Plan:
        """What follows once every call answered (`answers`: each call's `events` in the
        order of `calls`, None for one refused for good): the next step's calls, and what
        follows them; no call if none answered ok or this was the last step;
        DeadLetterError if no valid command comes from them."""
        if self.then is None or all(events is None for events in answers):
            return Plan(self.envelope, ())
        try:
            return self.then(answers)
        except ValidationError as exc:
            reason = f"{self.envelope.type}: no valid command from the answers: {_detail(exc)}"
            raise DeadLetterError("event.invalid_command", reason) from exc


def chained_by(envelope: EventEnvelope, method: str) -> bool:
    """Whether a chained reaction's call to `method` caused this event: its causation id is
    that call's message id, "<event id>/<method>" (an unchained call's is the event id)."""
    return envelope.causation_id.endswith(f"/{method}")


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
        for (topic, event_type), same in self._reactions.items():
            if len(same) > 1 and any(r.then for r in same):
                raise ValueError(f"a chained reaction to {event_type} on {topic} must be alone")
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
        steps = reactions[0].then  # a chained reaction is alone (see __init__)
        return self._step(envelope, event, deliveries, steps)

    def _step(
        self,
        envelope: EventEnvelope,
        event: Any,
        deliveries: Sequence[Delivery],
        steps: tuple[Then, ...],
    ) -> Plan:
        """The calls of `deliveries` (marked if a step follows), and the steps after them."""
        calls = tuple(self.call(envelope, d, chained=bool(steps)) for d in deliveries)
        if not steps or not deliveries:
            return Plan(envelope, calls)
        step, rest = steps[0], steps[1:]

        def follow(answers: Sequence[Events | None]) -> Plan:
            answered = [
                Answered(d, a)
                for d, a in zip(deliveries, answers, strict=True)
                if a is not None  # refused for good: no fact to pass on
            ]
            return self._step(envelope, event, list(step(envelope, event, answered)), rest)

        return Plan(envelope, calls, follow)

    def call(self, envelope: EventEnvelope, delivery: Delivery, *, chained: bool = False) -> Call:
        """The actor call for `delivery`, with the message ids that make it idempotent; a
        chained reaction's call is its own cause (see the module's docstring)."""
        spec = self._targets.get(type(delivery.command))
        if spec is None:
            raise TypeError(f"no actor type takes {type(delivery.command).__name__}")
        method = spec.method_of(delivery.command)
        cause = delivery.because or envelope.event_id
        message_id = f"{cause}/{method}"
        payload = {
            **delivery.command.model_dump(mode="json"),
            "message_id": message_id,
            "correlation_id": envelope.correlation_id or envelope.aggregate_id,
            "causation_id": message_id if chained else cause,
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
