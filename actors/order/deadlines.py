"""Saga deadlines: a due index written with every order commit, swept by a few actors.

Every append that records an order's events also writes the order's entry in a due index
(actors.toolkit.store.Due, a Redis sorted set scored by epoch ms), in the same atomic
script: while the order waits in a step, its score is the moment that step times out
(the commit's time + `Deadlines.of(step)`); the commit that ends the order removes it.
So an order has a deadline if and only if it is committed and not finished, even when its
host dies right after the save, and an order costs the scheduler nothing.

The index is split in SHARDS sorted sets by a stable hash of the order id. Each shard has
one `DeadlineSweeper` actor (id = the shard number) whose `sweep` reminder fires every
`sweep_period` (the actor host registers them at start through `Start`, idempotently).
A sweep reads the shard's due orders (earliest first, SWEEP_LIMIT of them) and calls
`OrderActor.CheckDeadline` on each, through daprd: the order reloads from the store,
cancels itself if it made no progress for its step's deadline (a normal commit, which
removes its entry), and otherwise answers that it still waits. A call that fails leaves
the entry for the next sweep. Placement moves the sweepers like any actor; the scheduler
keeps their reminders, so a sweep survives the host that ran the last one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from dapr.actor import Actor, ActorId, Remindable
from dapr.actor.runtime.context import ActorRuntimeContext
from prometheus_client import Counter

from actors.catalog import DEADLINE_SWEEPER, ORDER_ACTOR
from actors.order.interface import DeadlineSweeperInterface
from actors.toolkit.client import ActorClient
from actors.toolkit.envelope import utcnow
from actors.toolkit.errors import DomainError, TransientError
from actors.toolkit.store import DueIndex

SHARDS: Final = 4
SWEEP_LIMIT: Final = 200  # orders checked per shard and sweep, earliest first
SWEEP_CONCURRENCY: Final = 16  # CheckDeadline calls in flight per sweep
SWEEP_REMINDER: Final = "sweep"
log = logging.getLogger("orderflow.actors")


def shard_of(order_id: str) -> int:
    return zlib.crc32(order_id.encode()) % SHARDS


def index_key(shard: int) -> str:
    """The sorted set of one shard (beside the actors' keys, no app id: one per cluster)."""
    return f"{ORDER_ACTOR}||deadlines||{shard}"


def sweep_period(shortest_deadline: dt.timedelta) -> dt.timedelta:
    """A quarter of the shortest step deadline, between 1 and 5 s: a late order is
    cancelled within its deadline plus one period."""
    quarter = shortest_deadline / 4
    return max(dt.timedelta(seconds=1), min(dt.timedelta(seconds=5), quarter))


FAILED: Final = "failed"  # a check that did not answer: left for the next sweep


@dataclass(frozen=True)
class Swept:
    results: tuple[str, ...]  # per due order: CheckDeadline's action, or FAILED

    @property
    def due(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> int:
        return self.results.count(FAILED)

    @property
    def checked(self) -> int:
        return self.due - self.failed


async def sweep(index: DueIndex, actors: ActorClient, shard: int, now: dt.datetime) -> Swept:
    """Check every due order of one shard (up to SWEEP_LIMIT) through its actor."""
    now_ms = int(now.timestamp() * 1000)
    due = await index.due(index_key(shard), now_ms, SWEEP_LIMIT)
    gate = asyncio.Semaphore(SWEEP_CONCURRENCY)

    async def check(order_id: str) -> str:
        async with gate:
            try:
                answer = await actors.invoke(ORDER_ACTOR, order_id, "CheckDeadline")
            except (TransientError, DomainError) as exc:
                log.warning("deadline check of %s failed, next sweep: %r", order_id, exc)
                return FAILED
            return str(answer.result.get("action", "unknown"))

    return Swept(tuple(await asyncio.gather(*(check(order_id) for order_id in due))))


@dataclass(frozen=True)
class SweeperDeps:
    """What the composition root hands every DeadlineSweeper."""

    index: DueIndex
    actors: ActorClient
    period: dt.timedelta
    clock: Callable[[], dt.datetime] = utcnow
    checks: Counter | None = None  # orderflow_deadline_checks_total, by result


class DeadlineSweeper(Actor, DeadlineSweeperInterface, Remindable):
    """One shard's sweeper (id "0".."SHARDS-1")."""

    deps: SweeperDeps

    def __init__(self, ctx: ActorRuntimeContext, actor_id: ActorId, deps: SweeperDeps) -> None:
        super().__init__(ctx, actor_id)
        self._setup(deps)

    def _setup(self, deps: SweeperDeps) -> None:
        self.deps = deps

    @classmethod
    def factory(cls, deps: SweeperDeps) -> Callable[[ActorRuntimeContext, ActorId], Actor]:
        return lambda ctx, actor_id: cls(ctx, actor_id, deps)

    async def start(self) -> bytes:
        period = self.deps.period
        await self.register_reminder(SWEEP_REMINDER, b"", period, period)
        return b'{"ok":true,"result":{}}'

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: dt.timedelta,
        period: dt.timedelta,
        ttl: dt.timedelta | None = None,
    ) -> None:
        if name != SWEEP_REMINDER:
            log.warning("%s/%s: unknown reminder %r", DEADLINE_SWEEPER, self.id.id, name)
            return
        swept = await sweep(self.deps.index, self.deps.actors, int(self.id.id), self.deps.clock())
        if self.deps.checks is not None:
            for result in swept.results:
                self.deps.checks.labels(result).inc()
        if swept.due:
            log.info(
                "deadline sweep of shard %s: %d due, %d checked, %d failed",
                self.id.id,
                swept.due,
                swept.checked,
                swept.failed,
            )


async def start_sweepers(actors: ActorClient, *, delay: float = 0.5) -> None:
    """Ask every shard's sweeper to (re-)register its reminder; retried with backoff
    (from `delay` s, doubling up to 10 s) until each has answered (daprd and placement
    may still be starting); the caller cancels it at shutdown."""
    pending = set(range(SHARDS))
    while pending:
        for shard in sorted(pending):
            try:
                await actors.invoke(DEADLINE_SWEEPER, str(shard), "Start")
            except (TransientError, DomainError) as exc:
                log.info("deadline sweeper %d not started yet: %r", shard, exc)
                continue
            pending.discard(shard)
        if pending:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    log.info("deadline sweepers started (%d shards)", SHARDS)
