"""OrderActor: one order's saga, driven by routed facts, guarded by a deadline reminder.

The deadline reminder is the only scheduler registration on an order's path: registered
once when the order is placed (due after the shortest step timeout, then every half of it), BEFORE
the append that places it. So every committed, non-terminal order has a deadline, even
when the host dies right after the save; a reminder left by a Place whose append then
failed finds no order and unregisters itself. Each tick reloads the order from the store
(a cached copy may be stale after a rebalance) and cancels it if it has made no progress
for its current step's deadline (`Deadlines`, the actor type's own setting, handed in by
the composition root). The commit that ends the order (shipped or cancelled) unregisters
it right away; a tick that finds the order ended (that call failed) unregisters it too.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from actors.order import model, saga
from actors.order.model import TERMINAL, Step
from actors.toolkit.actor import ActorDeps, EventSourcedActor
from actors.toolkit.commands import Meta
from actors.toolkit.domain import Command, Event
from actors.toolkit.envelope import failed
from actors.toolkit.errors import TransientError
from actors.toolkit.interface import dispatchable

DEADLINE_REMINDER = "deadline"
log = logging.getLogger("orderflow.actors")


@dataclass(frozen=True)
class Deadlines:
    """How long the saga may wait in each step (the actor host reads them from
    ORDERFLOW_ORDER_STEP_TIMEOUT_S and ORDERFLOW_SHIPPING_TIMEOUT_S)."""

    reserving: dt.timedelta = dt.timedelta(seconds=30)
    authorizing: dt.timedelta = dt.timedelta(seconds=30)
    shipping: dt.timedelta = dt.timedelta(seconds=60)  # the partner's answer

    def of(self, step: Step) -> dt.timedelta:
        return {"reserving": self.reserving, "authorizing": self.authorizing}.get(
            step, self.shipping
        )

    @property
    def tick(self) -> dt.timedelta:
        """How often the reminder looks: the shortest deadline (due then, then every half)."""
        return min(self.reserving, self.authorizing, self.shipping)


@dispatchable
class OrderActor(EventSourcedActor[saga.OrderState]):
    spec = saga.ORDER
    state_type = saga.OrderState
    log_id_as = "order_id"  # every line logged in its turns names the order

    deadlines: Deadlines

    def _setup(self, deps: ActorDeps, deadlines: Deadlines | None = None) -> None:
        super()._setup(deps)
        self.deadlines = deadlines or Deadlines()

    def initial_state(self) -> saga.OrderState:
        return saga.initial_state()

    def decide(self, state: saga.OrderState, command: Command) -> list[Event]:
        return saga.decide(state, command)

    def evolve(self, state: saga.OrderState, event: Event) -> saga.OrderState:
        return saga.evolve(state, event)

    def view(self, state: saga.OrderState) -> dict[str, Any]:
        return {
            "order_id": self.id.id,
            "status": state.status.value,
            "customer_id": state.customer_id,
            "lines": [line.model_dump() for line in state.lines],
            "total": state.total,
            "reserved_skus": sorted(state.reserved_skus),
            "cancel_reason": state.cancel_reason,
        }

    async def _query(self) -> bytes:
        head = await self._aggregate()
        if head.state.status is model.Status.NEW and not await self._is_current(head):
            self._forget()  # "not found" must never come from a stale cache
            head = await self._aggregate()
        if head.state.status is model.Status.NEW:
            return failed(model.OrderNotFoundError(f"no order {self.id.id}"))
        return self._answer(head.state, head.snapshot.version)

    async def before_commit(self, state: saga.OrderState, events: list[Event]) -> None:
        if any(isinstance(event, model.OrderPlaced) for event in events):
            tick = self.deadlines.tick
            await self.register_reminder(DEADLINE_REMINDER, b"", tick, tick / 2)

    async def after_commit(self, state: saga.OrderState, events: list[Event]) -> None:
        """An order that has just ended drops its deadline reminder at once, rather than
        at the next tick (which would fire only to find it finished: a scheduler trigger,
        a turn and a store read per order). If this call fails, that tick remains."""
        if events and state.status in TERMINAL:
            try:
                await self.unregister_reminder(DEADLINE_REMINDER)
            except TransientError as exc:
                log.info("%s: deadline reminder left to its next tick: %r", self._name, exc)

    async def on_reminder(self, name: str, state: bytes) -> None:
        if name != DEADLINE_REMINDER:
            await super().on_reminder(name, state)
            return
        self._forget()  # decide on the stored order, never on a stale cached copy
        head = await self._aggregate()
        step, since = head.state.step, head.snapshot.updated_at
        if step is not None and since is not None:
            if self.deps.clock() - since < self.deadlines.of(step):
                return  # progress within the last timeout: not late yet
            meta = Meta(message_id=f"deadline-{head.snapshot.version}")
            await self._execute(meta, saga.DeadlinePassed(step=step))
        if self._aggregate_status() in TERMINAL or step is None:
            await self.unregister_reminder(DEADLINE_REMINDER)

    def _aggregate_status(self) -> model.Status:
        return self._head.state.status if self._head else model.Status.NEW
