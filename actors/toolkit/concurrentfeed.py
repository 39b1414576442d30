"""The concurrent stream feed (the event router's): each entry decided on its own.

Up to `max_in_flight` entries are decided at once, so one slow decision (an actor call
waiting out a rebalance) holds only its own slot; each is acknowledged when its own
decision completes (the XACKs gathered and sent with the next read), and new entries are
read only for the free slots. An entry answered "not now" is tried again in place for
`retry_for_s` (backoff up to `retry_backoff_max_s`, as daprd's delivery retries), then
left pending for a claim. At a stop, what it holds undecided is handed back: left pending
with the idle time of a claim, so another consumer of the group takes it at its next
claim (within 2 s for the router) rather than after `claim_idle_ms` (15 s): a replica's
restart delays its in-flight events by seconds, not by the claim timeout. What every
feed shares (the group, acknowledgements, claims, what is never lost):
actors.toolkit.streamfeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from actors.toolkit.streamfeed import (
    DecideOne,
    Entry,
    EntryKey,
    FeedStats,
    GroupFeed,
    StreamId,
)

log = logging.getLogger("orderflow.streamfeed")


@dataclass
class ConcurrentFeedStats(FeedStats):
    in_flight: int = 0  # entries being decided now
    retried: int = 0  # decisions answered "not now"
    left_pending: int = 0  # entries given up on in place, left pending for a claim
    handed_back: int = 0  # held undecided at a stop, made claimable by the others at once

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "in_flight": self.in_flight,
            "retried": self.retried,
            "left_pending": self.left_pending,
            "handed_back": self.handed_back,
        }


@dataclass
class ConcurrentStreamFeed(GroupFeed):
    """Reads `streams` through `settings.group` and decides each entry on its own, up to
    `settings.max_in_flight` at once, with `decide_one`; each is acknowledged with the next
    read after its own decision. Entries read or claimed beyond the free slots (one read
    asks each stream for its share of them) wait here for the next slot."""

    decide_one: DecideOne = field(kw_only=True)
    stats: ConcurrentFeedStats = field(default_factory=ConcurrentFeedStats)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._waiting: deque[Entry] = deque()  # read or claimed, not started yet
        self._queued: set[EntryKey] = set()  # the keys of _waiting
        self._deciding: dict[EntryKey, asyncio.Task[None]] = {}
        self._freed = asyncio.Event()

    @property
    def free_slots(self) -> int:
        return self.settings.max_in_flight - len(self._deciding)

    def holds(self, stream: str, entry_id: bytes) -> bool:
        """Whether the entry is being decided here or waits for a slot."""
        key = (stream, entry_id)
        return key in self._deciding or key in self._queued

    async def _next(self) -> None:
        """Read new entries for the free slots, or wait for one to free up."""
        self._start_waiting()
        if self._waiting or self.free_slots <= 0:
            await self._wait_for_a_slot()
        else:
            await self._until_done(self.read_once)

    async def _stop(self) -> None:
        """At a stop the decisions under way are cancelled and what was decided is
        acknowledged; what it held undecided (being decided, or waiting for a slot) stays
        pending, handed back: claimable by the group's other consumers at their next
        claim (within claim_every_s) instead of after claim_idle_ms."""
        held = {*self._deciding, *self._queued}
        deciding = list(self._deciding.values())
        for task in deciding:
            task.cancel()
        await asyncio.gather(*deciding, return_exceptions=True)
        self._waiting.clear()
        self._queued.clear()
        decided = {(stream, i) for stream, ids in self._unacked.items() for i in ids}
        await self._flush_quietly()
        await self._hand_back(sorted(held - decided))

    async def _hand_back(self, keys: Sequence[EntryKey]) -> None:
        """Make the pending entries `keys` claimable at once: XCLAIM them to this consumer
        with an idle time of claim_idle_ms (JUSTID: their delivery count stays as it is).
        Best effort: if Redis does not answer, they are claimed after claim_idle_ms."""
        by_stream: dict[str, list[StreamId]] = {}
        for stream, entry_id in keys:
            by_stream.setdefault(stream, []).append(entry_id)
        try:
            for stream, ids in by_stream.items():
                await self.redis.xclaim(
                    stream,
                    self.settings.group,
                    self.settings.consumer,
                    min_idle_time=0,
                    message_ids=ids,
                    idle=self.settings.claim_idle_ms,
                    justid=True,
                )
        except (RedisError, OSError) as exc:
            log.info("the stream feed could not hand back %d entries: %s", len(keys), exc)
            return
        self.stats.handed_back += len(keys)

    async def _wait_for_a_slot(self) -> None:
        """Until a decision ends (at most claim_every_s); acknowledges what was decided
        meanwhile if no read is coming to carry it."""
        self._freed.clear()
        if self.free_slots <= 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), self.settings.claim_every_s)
        if sum(len(ids) for ids in self._unacked.values()) >= self.settings.count:
            await self._until_done(self.flush_acks)

    async def drain_own_pending(self) -> None:
        """Take every entry this consumer read and never acknowledged (a crash, a RETRY
        left pending): they are decided as slots free up, before any new entry."""
        async for page in self._own_pending_pages():
            self._take(page)
        self._start_waiting()

    async def read_once(self) -> int:
        """One blocking read of new entries for the free slots (each stream's share), sent
        with the acknowledgements gathered since the last one; the entries start at once.
        After a read that found some but not all it asked for, waits `linger_ms`.
        Returns how many it read."""
        free = self.free_slots
        if free <= 0:
            return 0
        count = max(1, free // len(self.streams))
        entries = await self._read_new(count)
        if entries:
            self._take(entries)
            self._start_waiting()
            if self.settings.linger_ms and len(entries) < count * len(self.streams):
                # the next read gathers more (fewer round trips and wake-ups per entry);
                # the entries read go on being decided meanwhile
                await asyncio.sleep(self.settings.linger_ms / 1000)
        return len(entries)

    async def claim_once(self) -> int:
        """Claim, for the free slots, the entries any consumer of the group left pending
        for `claim_idle_ms` (those still being decided here are left alone; those decided
        are acknowledged first, so none is claimed back). Returns how many it took."""
        await self.flush_acks()
        claimed = 0
        for stream in self.streams:
            start: str | None = "0-0"
            while start is not None and (room := self.free_slots - len(self._waiting)) > 0:
                start, entries = await self._claim_page(stream, start, room)
                # an entry whose decision ended while the claim was on its way is not
                # acknowledged yet: taken again, it would be decided twice
                fresh = [e for e in entries if not self.holds(e[0], e[1]) and not self._decided(e)]
                claimed += len(fresh)
                self.stats.claimed += len(fresh)
                self._take(fresh)
                self._start_waiting()
        return claimed

    def _decided(self, entry: Entry) -> bool:
        """Whether the entry was decided here and waits to be acknowledged."""
        return entry[1] in self._unacked.get(entry[0], ())

    def _take(self, entries: Sequence[Entry]) -> None:
        """Queue entries for a slot; one the stream no longer holds is acknowledged (lost)."""
        for stream, entry_id, fields in entries:
            if not fields:
                self.stats.trimmed += 1
                log.error("pending entry %s of %s was trimmed unread", entry_id, stream)
                self._unacked.setdefault(stream, []).append(entry_id)
            elif not self.holds(stream, entry_id):
                self._queued.add((stream, entry_id))
                self._waiting.append((stream, entry_id, fields))

    def _start_waiting(self) -> None:
        while self._waiting and self.free_slots > 0:
            entry = self._waiting.popleft()
            key = (entry[0], entry[1])
            self._queued.discard(key)
            self._deciding[key] = asyncio.create_task(self._decide(entry))
        self.stats.in_flight = len(self._deciding)

    async def _decide(self, entry: Entry) -> None:
        """Decide one entry; "not now" is tried again in place for `retry_for_s`, then the
        entry is left pending. Decided: queued for acknowledgement with the next read."""
        stream, entry_id, _ = entry
        give_up_at = self.clock() + self.settings.retry_for_s
        delay = self.settings.retry_backoff_s
        self.stats.entries += 1
        try:
            while not await self._decided_once(entry):
                self.stats.retried += 1
                if self.clock() + delay > give_up_at:
                    self.stats.left_pending += 1
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_backoff_max_s)
            self._unacked.setdefault(stream, []).append(entry_id)
        finally:
            del self._deciding[(stream, entry_id)]
            self.stats.in_flight = len(self._deciding)
            self._freed.set()

    async def _decided_once(self, entry: Entry) -> bool:
        try:
            return await self.decide_one(entry)
        except Exception:  # a bug: keep the entry (RETRY), as daprd would on a 500
            log.exception("deciding entry %s of %s failed: not acknowledged", entry[1], entry[0])
            return False
