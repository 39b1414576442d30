"""Event contracts: published schemas are current, every type has a valid sample."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from actors.contracts.schemas import OUT, documents, render
from actors.inventory.model import EVENTS as INVENTORY_EVENTS
from actors.order.model import EVENTS as ORDER_EVENTS
from actors.reactions import KNOWN_EVENTS, REACTIONS, SPECS, build_router
from actors.toolkit.aggregate import AggregateSpec
from actors.toolkit.commands import split_meta, validate_command
from actors.toolkit.domain import Event
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.router import Reaction
from actors.wallet.model import EVENTS as WALLET_EVENTS

SAMPLES = Path(__file__).parent / "samples"
TYPES = sorted(
    (event_type, cls) for events in KNOWN_EVENTS.values() for event_type, cls in events.items()
)


# each aggregate's event table, and the types it must hold (each namespaced by its context)
EVENT_TABLES = [
    (
        INVENTORY_EVENTS,
        {
            "inventory.stock_restocked",
            "inventory.stock_reserved",
            "inventory.stock_rejected",
            "inventory.stock_released",
            "inventory.stock_committed",
        },
    ),
    (
        ORDER_EVENTS,
        {
            "order.placed",
            "order.line_reserved",
            "order.payment_requested",
            "order.confirmed",
            "order.shipped",
            "order.cancelled",
            "order.late_reservation_released",
            "order.late_payment_voided",
        },
    ),
    (
        WALLET_EVENTS,
        {
            "wallet.funds_credited",
            "wallet.payment_authorized",
            "wallet.payment_declined",
            "wallet.payment_voided",
            "wallet.payment_captured",
        },
    ),
]


@pytest.mark.parametrize(("events", "types"), EVENT_TABLES, ids=["inventory", "order", "wallet"])
def test_event_types_are_namespaced_and_unique(
    events: Mapping[str, type[Event]], types: set[str]
) -> None:
    assert set(events) == types


@pytest.mark.parametrize("name", sorted(documents()))
def test_the_published_json_schema_matches_the_models(name: str) -> None:
    path = OUT / name
    assert path.exists(), f"{name} missing: run python -m actors.contracts.schemas"
    assert path.read_text() == render(documents()[name]), "stale: run the schemas command"


@pytest.mark.parametrize(("event_type", "cls"), TYPES, ids=[t for t, _ in TYPES])
def test_every_event_type_and_version_has_a_sample_that_its_models_accept(
    event_type: str, cls: type[Event]
) -> None:
    path = SAMPLES / f"{event_type}.v{cls.schema_version}.json"
    envelope = EventEnvelope.model_validate(json.loads(path.read_text()))
    assert envelope.type == event_type
    assert envelope.schema_version == cls.schema_version
    event = cls.model_validate(envelope.payload)
    assert event.model_dump(mode="json") == envelope.payload  # nothing dropped or coerced


def test_no_sample_is_left_without_a_type() -> None:
    known = {f"{t}.v{cls.schema_version}.json" for t, cls in TYPES}
    assert {p.name for p in SAMPLES.glob("*.json")} == known


@pytest.mark.parametrize("reaction", REACTIONS, ids=lambda r: f"{r.topic}:{r.event.type}")
def test_every_reaction_plans_calls_its_targets_accept_from_the_sample(
    reaction: Reaction,
) -> None:
    """Planned from the published sample, each call names a method of its actor type, and
    its payload passes that method's strict validation, as the actor runs it."""
    path = SAMPLES / f"{reaction.event.type}.v{reaction.event.schema_version}.json"
    cloud_event = {"id": "ce-1", "data": json.loads(path.read_text())}
    plan = build_router().plan(reaction.topic, cloud_event)
    specs = {spec.actor_type: spec for spec in SPECS}
    assert plan.calls, "the sample leads to no call: extend the sample"
    # a chained reaction's next calls, step by step, from answers naming every event type
    # a target records
    calls, steps = list(plan.calls), 0
    while plan.then is not None:
        plan = plan.follow_up([_every_event(specs[call.actor_type]) for call in plan.calls])
        calls += plan.calls
        steps += 1
    assert steps == len(reaction.then)  # every step made calls
    for call in calls:
        _, fields = split_meta(dict(call.payload))
        validate_command(specs[call.actor_type].commands[call.method], fields)


def _every_event(spec: AggregateSpec) -> list[dict[str, Any]]:
    payload = {"reason": "insufficient_stock", "customer_id": "cust-42", "amount": 2_100}
    return [spec.summary("e", event_type, 1, payload) for event_type in spec.events]
