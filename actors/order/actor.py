"""OrderActor: one order's saga, driven by routed facts, guarded by a deadline.

The deadline is the order's entry in a due index (actors.order.deadlines), written by
the same atomic append as every commit of the order: while it waits in a step, the entry
is due when that step times out (`Deadlines`, the actor type's own setting, handed in by
the composition root); the commit that ends it (shipped or cancelled) removes it. So
every committed, unfinished order has a deadline, even when its host dies right after
the save, and nothing on an order's path calls the scheduler. The shard's sweeper calls
`CheckDeadline` once the entry is due: it reloads the order from the store (a cached
copy may be stale after a rebalance) and cancels it if it has made no progress for its
current step's deadline.

Orders placed before the index existed carry a `deadline` reminder instead; its ticks run
the same check and unregister it once the order has ended.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from actors.order import model, saga
from actors.order.deadlines import index_key, shard_of
from actors.order.interface import OrderDeadlineInterface
from actors.order.model import TERMINAL, Step
from actors.toolkit import logs
from actors.toolkit.actor import ActorDeps, EventSourcedActor
from actors.toolkit.commands import Meta
from actors.toolkit.domain import Command, Event
from actors.toolkit.envelope import failed
from actors.toolkit.interface import dispatchable
from actors.toolkit.store import Due

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
    def shortest(self) -> dt.timedelta:
        return min(self.reserving, self.authorizing, self.shipping)


@dispatchable
class OrderActor(EventSourcedActor[saga.OrderState], OrderDeadlineInterface):
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

    def due(self, state: saga.OrderState) -> Due:
        """Every commit of the order moves its deadline: due when its step times out,
        removed once it has ended (or before it waits in any step)."""
        index = index_key(shard_of(self.id.id))
        if state.status in TERMINAL or state.step is None:
            return Due(index, self.id.id, None)
        at = self.deps.clock() + self.deadlines.of(state.step)
        return Due(index, self.id.id, int(at.timestamp() * 1000))

    async def check_deadline(self) -> bytes:
        with logs.scope(**self._log_fields()):
            action = await self._check_deadline()
        head = await self._aggregate()
        return self._answer_raw({"status": head.state.status.value, "action": action})

    async def _check_deadline(self) -> str:
        """Cancel the order if its step made no progress for its deadline."""
        self._forget()  # decide on the stored order, never on a stale cached copy
        head = await self._aggregate()
        step, since = head.state.step, head.snapshot.updated_at
        if head.state.status in TERMINAL or step is None or since is None:
            if head.snapshot.version > 0:  # an entry left behind: drop it, fenced
                await self._event_log().append(
                    expected_version=head.snapshot.version,
                    snapshot=None,
                    envelopes=[],
                    due=self.due(head.state),
                )
            return "ended"
        if self.deps.clock() - since < self.deadlines.of(step):
            return "waiting"  # progress within the last timeout: not late yet
        meta = Meta(message_id=f"deadline-{head.snapshot.version}")
        await self._execute(meta, saga.DeadlinePassed(step=step))
        return "cancelled"

    async def on_reminder(self, name: str, state: bytes) -> None:
        """The `deadline` reminder of an order placed before the due index."""
        if name != DEADLINE_REMINDER:
            await super().on_reminder(name, state)
            return
        if await self._check_deadline() != "waiting":  # cancelled now, or ended before
            await self.unregister_reminder(DEADLINE_REMINDER)
