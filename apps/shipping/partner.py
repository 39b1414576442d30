"""The shipping partner's decisions and answers: pure, no I/O (the app does the I/O).

For each `order.confirmed` the partner picks an outcome: a per-order override when one
is set, else `fail` with probability `failure_rate` and `dispatch` otherwise. The random
roll is a hash of the confirmed event's id (salted by ORDERFLOW_SHIPPING_SEED, or a
per-process salt), so a redelivered event gets the same outcome and, with a seed, runs
are reproducible whatever order the deliveries arrive in. Shipment id and answer event
id derive from the confirmed event's id too: a redelivery yields the same ids, and
downstream dedupes by event id.

Overrides, settings and counters live in memory only: it is a simulator, and a
restart resets it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import uuid
from enum import StrEnum
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from actors.contracts.inbound import ShipmentDispatched, ShipmentFailed
from actors.toolkit.envelope import EventEnvelope

ORDER_CONFIRMED: Final = "order.confirmed"
CARRIER_REJECTED: Final = "carrier rejected the parcel"
MAX_DELAY_MS: Final = 60_000
MAX_OVERRIDES: Final = 10_000
# Namespace of the uuid5 ids this partner derives (fixed: ids must survive restarts).
ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:orderflow:shipping-partner")


class Outcome(StrEnum):
    DISPATCH = "dispatch"
    FAIL = "fail"
    SILENT = "silent"  # consume the order and never answer: the saga's deadline must act


class PartnerSettings(BaseModel):
    """What the partner does when no override applies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    delay_ms: int = Field(ge=0, le=MAX_DELAY_MS)
    failure_rate: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)


class Override(BaseModel):
    """A fixed outcome for one order (demos and tests); `reason` only with `fail`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Outcome
    reason: str | None = Field(default=None, min_length=1, max_length=200)
    delay_ms: int | None = Field(default=None, ge=0, le=MAX_DELAY_MS)

    @model_validator(mode="after")
    def _reason_only_when_failing(self) -> Self:
        if self.reason is not None and self.outcome is not Outcome.FAIL:
            raise ValueError("reason is only allowed with outcome 'fail'")
        return self


@dataclasses.dataclass(frozen=True)
class Decision:
    outcome: Outcome
    delay_ms: int
    reason: str = ""  # set when outcome is FAIL


@dataclasses.dataclass
class Stats:
    """Counters since start: answers published, orders left silent, events not acted on."""

    dispatched: int = 0
    failed: int = 0
    silent: int = 0
    ignored: int = 0  # other event types on the orders topic
    dropped: int = 0  # invalid envelopes
    retried: int = 0  # publishes the sidecar did not confirm

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class OverrideLimitError(RuntimeError):
    """Too many overrides are set; delete some first."""


def roll_for(event_id: str, *, salt: str) -> float:
    """A uniform number in [0, 1) determined by the event id and the salt."""
    digest = hashlib.blake2b(f"{salt}\0{event_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def decide(settings: PartnerSettings, *, override: Override | None, roll: float) -> Decision:
    """The outcome for one confirmed order: the override if any, else the roll decides."""
    if override is not None:
        delay_ms = settings.delay_ms if override.delay_ms is None else override.delay_ms
        reason = (override.reason or CARRIER_REJECTED) if override.outcome is Outcome.FAIL else ""
        return Decision(outcome=override.outcome, delay_ms=delay_ms, reason=reason)
    if roll < settings.failure_rate:
        return Decision(outcome=Outcome.FAIL, delay_ms=settings.delay_ms, reason=CARRIER_REJECTED)
    return Decision(outcome=Outcome.DISPATCH, delay_ms=settings.delay_ms)


def shipment_id_for(confirmed_event_id: str) -> str:
    """`shp-` + 20 hex digits, the same for every delivery of one confirmed event."""
    return "shp-" + uuid.uuid5(ID_NAMESPACE, confirmed_event_id).hex[:20]


def answer_event_id_for(confirmed_event_id: str) -> str:
    """One answer id per confirmed event, whatever the outcome: downstream keeps the first."""
    return uuid.uuid5(ID_NAMESPACE, f"answer:{confirmed_event_id}").hex


def answer(
    confirmed: EventEnvelope, decision: Decision, *, occurred_at: dt.datetime, traceparent: str
) -> EventEnvelope:
    """The shipment.dispatched / shipment.failed envelope answering `confirmed`."""
    shipment_id = shipment_id_for(confirmed.event_id)
    order_id = confirmed.aggregate_id
    if decision.outcome is Outcome.DISPATCH:
        event: ShipmentDispatched | ShipmentFailed = ShipmentDispatched(
            order_id=order_id, shipment_id=shipment_id
        )
    elif decision.outcome is Outcome.FAIL:
        event = ShipmentFailed(order_id=order_id, reason=decision.reason)
    else:
        raise ValueError(f"outcome {decision.outcome} has no answer")
    return EventEnvelope(
        event_id=answer_event_id_for(confirmed.event_id),
        type=event.type,
        schema_version=event.schema_version,
        aggregate_type="Shipment",
        aggregate_id=shipment_id,
        aggregate_version=1,
        occurred_at=occurred_at,
        correlation_id=confirmed.correlation_id,
        causation_id=confirmed.event_id,
        traceparent=traceparent,
        payload=event.model_dump(mode="json"),
    )


class Partner:
    """The simulator's in-memory state: settings, per-order overrides and counters."""

    def __init__(
        self, settings: PartnerSettings, *, salt: str, max_overrides: int = MAX_OVERRIDES
    ) -> None:
        self.settings = settings
        self.stats = Stats()
        self._salt = salt
        self._overrides: dict[str, Override] = {}
        self._max_overrides = max_overrides

    def override_for(self, order_id: str) -> Override | None:
        return self._overrides.get(order_id)

    def set_override(self, order_id: str, override: Override) -> None:
        if order_id not in self._overrides and len(self._overrides) >= self._max_overrides:
            raise OverrideLimitError(f"{self._max_overrides} overrides are set; delete some")
        self._overrides[order_id] = override

    def clear_override(self, order_id: str) -> None:
        self._overrides.pop(order_id, None)

    def decide(self, confirmed: EventEnvelope) -> Decision:
        return decide(
            self.settings,
            override=self._overrides.get(confirmed.aggregate_id),
            roll=roll_for(confirmed.event_id, salt=self._salt),
        )

    def record(self, outcome: Outcome) -> None:
        """Count an order answered (dispatch, fail) or left silent."""
        if outcome is Outcome.DISPATCH:
            self.stats.dispatched += 1
        elif outcome is Outcome.FAIL:
            self.stats.failed += 1
        else:
            self.stats.silent += 1
