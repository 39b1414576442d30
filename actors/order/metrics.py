"""The order saga's business metrics, recorded from the events each append commits.

One `SagaWatcher` per order activation (ActorMetrics builds it; actors/watchers.py wires
it to the order's actor type). It counts orders placed, confirmed, shipped and cancelled
(by reason class), and times each saga step from the `occurred_at` of the event that
started it to the one that ended it:

    reserving     order.placed      -> order.payment_requested   (or order.cancelled)
    authorizing   payment_requested -> order.confirmed           (or order.cancelled)
    shipping      order.confirmed   -> order.shipped             (or order.cancelled)

The start comes from what this activation committed. An activation that did not see the
step start (rebuilt mid-step) takes it from the snapshot it loaded, whose `updated_at` is
the start whenever the last event started the step (always while authorizing or
shipping: nothing else happens there; while reserving only before any line is
reserved); otherwise the sample is skipped. It reads event types as the contract names
them, so it never imports the decider.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any, Final

from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.metrics import ActorMetrics
from actors.toolkit.store import Snapshot

# One INFO line per milestone of an order (placed, confirmed, shipped, cancelled), not per
# command: what `python -m cluster logs --order` shows from the actor hosts.
log = logging.getLogger("orderflow.saga")

PLACED: Final = "order.placed"
PAYMENT_REQUESTED: Final = "order.payment_requested"
CONFIRMED: Final = "order.confirmed"
SHIPPED: Final = "order.shipped"
CANCELLED: Final = "order.cancelled"

STARTS: Final = {PLACED: "reserving", PAYMENT_REQUESTED: "authorizing", CONFIRMED: "shipping"}
ENDS: Final = {PAYMENT_REQUESTED: "reserving", CONFIRMED: "authorizing", SHIPPED: "shipping"}
STEP_OF_STATUS: Final = {
    "reserving": "reserving",
    "authorizing": "authorizing",
    "confirmed": "shipping",
}

# The reasons the saga writes itself (actors/order: _cancelled callers), by prefix; any
# other reason came with the customer's Cancel.
REASON_CLASSES: Final = (
    ("stock rejected", "stock"),
    ("payment declined", "payment"),
    ("shipment failed", "shipping"),
    ("deadline passed", "deadline"),
)
CUSTOMER: Final = "customer"


def reason_class(reason: str) -> str:
    """One of customer, stock, payment, shipping, deadline: a bounded label value."""
    for prefix, name in REASON_CLASSES:
        if reason.startswith(prefix):
            return name
    return CUSTOMER


class SagaWatcher:
    def __init__(self, metrics: ActorMetrics) -> None:
        self._metrics = metrics
        self._step: str | None = None  # the step this activation saw start, and when
        self._started: dt.datetime | None = None

    def committed(
        self, state_before: Any, before: Snapshot, envelopes: Sequence[EventEnvelope]
    ) -> None:
        step = STEP_OF_STATUS.get(str(getattr(state_before, "status", "")))
        started = self._started if step == self._step else _loaded_start(step, before)
        for env in envelopes:
            self._count(env)
            ended = ENDS.get(env.type)
            if step is not None and (ended == step or env.type == CANCELLED):
                outcome = "cancelled" if env.type == CANCELLED else "done"
                if started is not None:
                    seconds = max(0.0, (env.occurred_at - started).total_seconds())
                    self._metrics.saga_step.labels(step, outcome).observe(seconds)
                step, started = None, None
            if env.type in STARTS:
                step, started = STARTS[env.type], env.occurred_at
        self._step, self._started = step, started

    def _count(self, env: EventEnvelope) -> None:
        m = self._metrics
        if env.type == PLACED:
            m.orders_placed.inc()
            log.info("order placed (total %s)", env.payload.get("total"))
        elif env.type == CONFIRMED:
            m.orders_confirmed.inc()
            log.info("order confirmed")
        elif env.type == SHIPPED:
            m.orders_shipped.inc()
            log.info("order shipped (%s)", env.payload.get("shipment_id"))
        elif env.type == CANCELLED:
            reason = str(env.payload.get("reason", ""))
            m.orders_cancelled.labels(reason_class(reason)).inc()
            log.info("order cancelled: %s", reason)


def _loaded_start(step: str | None, before: Snapshot) -> dt.datetime | None:
    """The step's start from the loaded snapshot, where its last event started the step."""
    if step is None or (step == "reserving" and before.version != 1):
        return None
    return before.updated_at
