"""The event router: one declarative table from (topic, event type) to actor method calls.

    Route(topic, event class, deliver)   deliver(envelope, event) -> [Delivery(actor
                                         type, actor id from the event, method, payload)]

`plan` turns one CloudEvent into its deliveries, or raises DeadLetter with a reason when
the event can never apply: no envelope, an unknown type on the topic, a payload that
fails its schema. A known type nobody routes is simply not for the router (no calls).
Each delivery carries message_id "<event id>/<method>", so the target's inbox applies
it once however often the broker redelivers. Pure: no I/O here (see apps/actor_host).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from actors.toolkit.domain import Event
from actors.toolkit.envelope import EventEnvelope, InvalidDeliveryError, envelope_in
from actors.toolkit.upcasting import Upcasters


class DeadLetter(Exception):
    """This event can never be applied; `reason` says why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    actor_type: str
    actor_id: str
    method: str
    payload: dict[str, Any] = field(default_factory=dict)


Deliver = Callable[[EventEnvelope, Any], Iterable[Delivery]]


@dataclass(frozen=True)
class Route:
    topic: str
    event: type[Event]
    deliver: Deliver


@dataclass(frozen=True)
class Plan:
    envelope: EventEnvelope
    deliveries: tuple[Delivery, ...]


class EventRouter:
    def __init__(
        self,
        routes: Iterable[Route],
        *,
        known: Mapping[str, Mapping[str, type[Event]]],
        upcasters: Upcasters | None = None,
    ) -> None:
        self._routes: dict[tuple[str, str], list[Route]] = {}
        for route in routes:
            self._routes.setdefault((route.topic, route.event.type), []).append(route)
        self._known = known
        self._upcasters = upcasters or Upcasters()

    @property
    def topics(self) -> list[str]:
        return sorted({topic for topic, _ in self._routes})

    def plan(self, topic: str, cloud_event: Any) -> Plan:
        envelope = self._envelope(cloud_event)
        event_class = self._known.get(topic, {}).get(envelope.type)
        if event_class is None:
            raise DeadLetter("event.unknown_type", f"no event type {envelope.type!r} on {topic!r}")
        routes = self._routes.get((topic, envelope.type), [])
        if not routes:
            return Plan(envelope, ())
        envelope = self._upcasters.upcast(envelope)
        try:
            event = event_class.model_validate(envelope.payload)
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
            )
            raise DeadLetter("event.invalid_payload", f"{envelope.type}: {detail}") from exc
        deliveries = [d for route in routes for d in route.deliver(envelope, event)]
        return Plan(envelope, tuple(_with_meta(envelope, d) for d in deliveries))

    @staticmethod
    def _envelope(cloud_event: Any) -> EventEnvelope:
        try:
            return envelope_in(cloud_event)
        except InvalidDeliveryError as exc:
            raise DeadLetter("event.invalid_envelope", str(exc)) from exc


def _with_meta(envelope: EventEnvelope, delivery: Delivery) -> Delivery:
    meta = {
        "message_id": f"{envelope.event_id}/{delivery.method}",
        "correlation_id": envelope.correlation_id or envelope.aggregate_id,
        "causation_id": envelope.event_id,
    }
    return Delivery(
        delivery.actor_type, delivery.actor_id, delivery.method, {**delivery.payload, **meta}
    )
