"""The shipping partner's pure decisions: outcomes, deterministic ids, answer envelopes."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from actors.catalog import SHIPMENTS
from actors.contracts.inbound import TOPICS
from actors.toolkit.envelope import EventEnvelope
from apps.shipping.partner import (
    CARRIER_REJECTED,
    Decision,
    Outcome,
    Override,
    OverrideLimitError,
    Partner,
    PartnerSettings,
    answer,
    answer_event_id_for,
    decide,
    roll_for,
    shipment_id_for,
)

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
SETTINGS = PartnerSettings(delay_ms=50, failure_rate=0.25)


def confirmed(event_id: str = "evt-confirmed-1", order_id: str = "ord-1") -> EventEnvelope:
    return EventEnvelope(
        event_id=event_id,
        type="order.confirmed",
        schema_version=1,
        aggregate_type="Order",
        aggregate_id=order_id,
        aggregate_version=7,
        occurred_at=NOW,
        correlation_id=order_id,
        causation_id="evt-authorized",
        payload={"customer_id": "cust-1", "lines": []},
    )


def test_a_roll_below_the_failure_rate_fails_with_the_carrier_reason() -> None:
    assert decide(SETTINGS, override=None, roll=0.2) == Decision(
        outcome=Outcome.FAIL, delay_ms=50, reason=CARRIER_REJECTED
    )


def test_a_roll_at_or_above_the_failure_rate_dispatches() -> None:
    assert decide(SETTINGS, override=None, roll=0.25) == Decision(Outcome.DISPATCH, delay_ms=50)


@pytest.mark.parametrize(("rate", "expected"), [(0.0, Outcome.DISPATCH), (1.0, Outcome.FAIL)])
@pytest.mark.parametrize("roll", [0.0, 0.5, 0.999999])
def test_rates_zero_and_one_never_and_always_fail(
    rate: float, expected: Outcome, roll: float
) -> None:
    settings = PartnerSettings(delay_ms=0, failure_rate=rate)

    assert decide(settings, override=None, roll=roll).outcome is expected


def test_an_override_wins_over_the_roll_and_keeps_the_default_delay() -> None:
    override = Override(outcome=Outcome.DISPATCH)

    assert decide(SETTINGS, override=override, roll=0.0) == Decision(Outcome.DISPATCH, 50)


def test_a_failing_override_carries_its_reason_and_delay() -> None:
    override = Override(outcome=Outcome.FAIL, reason="address unknown", delay_ms=5)

    assert decide(SETTINGS, override=override, roll=0.9) == Decision(
        Outcome.FAIL, delay_ms=5, reason="address unknown"
    )


def test_a_failing_override_without_reason_uses_the_carrier_reason() -> None:
    decision = decide(SETTINGS, override=Override(outcome=Outcome.FAIL), roll=0.9)

    assert decision.reason == CARRIER_REJECTED


@pytest.mark.parametrize(
    "body",
    [
        {"outcome": "dispatch", "reason": "only with fail"},
        {"outcome": "lost"},
        {"outcome": "fail", "delay_ms": 60_001},
        {"outcome": "fail", "delay_ms": -1},
        {"outcome": "fail", "reason": ""},
        {"outcome": "fail", "colour": "red"},
    ],
)
def test_an_invalid_override_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Override.model_validate(body)


@pytest.mark.parametrize(
    "body",
    [
        {"delay_ms": 60_001, "failure_rate": 0.0},
        {"delay_ms": -1, "failure_rate": 0.0},
        {"delay_ms": 0, "failure_rate": 1.5},
        {"delay_ms": 0, "failure_rate": float("nan")},
        {"delay_ms": 0},
    ],
)
def test_invalid_settings_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PartnerSettings.model_validate(body)


def test_the_roll_is_fixed_by_event_id_and_salt() -> None:
    assert roll_for("evt-1", salt="s") == roll_for("evt-1", salt="s")
    assert roll_for("evt-1", salt="s") != roll_for("evt-1", salt="t")
    assert roll_for("evt-1", salt="s") != roll_for("evt-2", salt="s")


def test_the_failure_share_follows_the_failure_rate() -> None:
    rolls = [roll_for(f"evt-{i}", salt="seed") for i in range(4000)]
    failures = sum(decide(SETTINGS, override=None, roll=r).outcome is Outcome.FAIL for r in rolls)

    assert all(0.0 <= r < 1.0 for r in rolls)
    assert 0.22 < failures / len(rolls) < 0.28


def test_ids_are_the_same_for_every_delivery_of_one_confirmed_event() -> None:
    assert shipment_id_for("evt-a") == shipment_id_for("evt-a")
    assert answer_event_id_for("evt-a") == answer_event_id_for("evt-a")
    assert shipment_id_for("evt-a") != shipment_id_for("evt-b")
    assert answer_event_id_for("evt-a") != answer_event_id_for("evt-b")


def test_the_shipment_id_has_the_documented_shape() -> None:
    shipment_id = shipment_id_for("evt-a")

    assert shipment_id.startswith("shp-")
    assert len(shipment_id) == 24
    int(shipment_id[4:], 16)


def test_a_dispatch_answer_follows_the_shipments_contract() -> None:
    event = answer(confirmed(), Decision(Outcome.DISPATCH, 0), occurred_at=NOW, traceparent="tp")

    assert event.type == "shipment.dispatched"
    assert event.event_id == answer_event_id_for("evt-confirmed-1")
    assert (event.aggregate_type, event.aggregate_version) == ("Shipment", 1)
    assert event.aggregate_id == shipment_id_for("evt-confirmed-1")
    assert (event.correlation_id, event.causation_id) == ("ord-1", "evt-confirmed-1")
    assert (event.occurred_at, event.traceparent) == (NOW, "tp")
    assert event.payload == {"order_id": "ord-1", "shipment_id": event.aggregate_id}
    TOPICS[SHIPMENTS][event.type].model_validate(event.payload)


def test_a_failure_answer_carries_the_reason() -> None:
    decision = Decision(Outcome.FAIL, 0, reason="address unknown")
    event = answer(confirmed(), decision, occurred_at=NOW, traceparent="")

    assert event.type == "shipment.failed"
    assert event.payload == {"order_id": "ord-1", "reason": "address unknown"}
    TOPICS[SHIPMENTS][event.type].model_validate(event.payload)


def test_dispatch_and_failure_answers_to_one_event_share_the_event_id() -> None:
    dispatched = answer(confirmed(), Decision(Outcome.DISPATCH, 0), occurred_at=NOW, traceparent="")
    failed = answer(confirmed(), Decision(Outcome.FAIL, 0, "x"), occurred_at=NOW, traceparent="")

    assert dispatched.event_id == failed.event_id


def test_silence_has_no_answer() -> None:
    with pytest.raises(ValueError, match="no answer"):
        answer(confirmed(), Decision(Outcome.SILENT, 0), occurred_at=NOW, traceparent="")


def test_the_partner_applies_an_override_until_it_is_cleared() -> None:
    partner = Partner(PartnerSettings(delay_ms=0, failure_rate=0.0), salt="s")
    partner.set_override("ord-1", Override(outcome=Outcome.SILENT))

    assert partner.decide(confirmed()).outcome is Outcome.SILENT
    assert partner.decide(confirmed(order_id="ord-2")).outcome is Outcome.DISPATCH
    partner.clear_override("ord-1")
    assert partner.decide(confirmed()).outcome is Outcome.DISPATCH


def test_the_partner_bounds_the_number_of_overrides() -> None:
    partner = Partner(PartnerSettings(delay_ms=0, failure_rate=0.0), salt="s", max_overrides=1)
    partner.set_override("ord-1", Override(outcome=Outcome.FAIL))
    partner.set_override("ord-1", Override(outcome=Outcome.SILENT))  # replacing is fine

    with pytest.raises(OverrideLimitError):
        partner.set_override("ord-2", Override(outcome=Outcome.FAIL))


def test_the_partner_counts_each_outcome() -> None:
    partner = Partner(PartnerSettings(delay_ms=0, failure_rate=0.0), salt="s")
    for outcome in (Outcome.DISPATCH, Outcome.DISPATCH, Outcome.FAIL, Outcome.SILENT):
        partner.record(outcome)

    assert partner.stats.as_dict() == {
        "dispatched": 2,
        "failed": 1,
        "silent": 1,
        "ignored": 0,
        "dropped": 0,
        "retried": 0,
    }
