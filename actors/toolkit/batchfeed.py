"""The batch stream feed (the projector's): what one read returns is decided as one batch.

One read returns what is waiting on every topic; its events are decided together, and the
entries that succeeded are acknowledged (XACK) in the same round trip as a following read
once due (`ack_linger_ms`); the next read waits `linger_ms` so that batches gather
several events. What every feed shares (the
group, acknowledgements, claims, what is never lost): actors.toolkit.streamfeed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from actors.toolkit.streamfeed import Decide, Entry, GroupFeed, merge_ids

log = logging.getLogger("orderflow.streamfeed")


@dataclass
class StreamFeed(GroupFeed):
    """Reads `streams` through `settings.group` and hands each batch to `decide`."""

    decide: Decide = field(kw_only=True)

    async def _next(self) -> None:
        await self._until_done(self.read_once)

    async def drain_own_pending(self) -> None:
        """Decide every entry this consumer read and never acknowledged (a crash, a RETRY)."""
        async for page in self._own_pending_pages():
            await self._decide_and_ack(page)

    async def read_once(self) -> int:
        """One blocking read of new entries on every stream, sent with the acknowledgements
        of earlier batches once due; the entries are decided, to be acknowledged with a
        following read. Returns how many entries it decided."""
        entries = await self._read_new(self.settings.count)
        if not entries:
            return 0
        merge_ids(self._unacked, await self._decided(entries))
        if self.settings.linger_ms and len(entries) < self.settings.count:
            await asyncio.sleep(self.settings.linger_ms / 1000)
        return len(entries)

    async def claim_once(self) -> int:
        """Take over the entries left pending for `claim_idle_ms` by any consumer of the
        group (this one included: its RETRYs), decide them again. Returns how many.
        What was decided and waits to be acknowledged is acknowledged first, so none of
        it is claimed back."""
        await self.flush_acks()
        claimed = 0
        for stream in self.streams:
            start: str | None = "0-0"
            while start is not None:
                start, entries = await self._claim_page(stream, start, self.settings.count)
                claimed += len(entries)
                self.stats.claimed += len(entries)
                await self._decide_and_ack(entries)
        return claimed

    async def _decide_and_ack(self, entries: Sequence[Entry]) -> None:
        await self._ack(await self._decided(entries))

    async def _decided(self, entries: Sequence[Entry]) -> dict[str, list[bytes]]:
        """Decide the entries that still hold something. Returns the ids to acknowledge:
        those decided for good and those the stream no longer holds (trimmed while
        pending: counted lost)."""
        live = [entry for entry in entries if entry[2]]
        done: dict[str, list[bytes]] = {}
        for stream, entry_id, fields in entries:
            if not fields:
                self.stats.trimmed += 1
                log.error("pending entry %s of %s was trimmed unread", entry_id, stream)
                done.setdefault(stream, []).append(entry_id)
        if live:
            self.stats.entries += len(live)
            verdicts = await self.decide(live)
            for (stream, entry_id, _), ack in zip(live, verdicts, strict=True):
                if ack:
                    done.setdefault(stream, []).append(entry_id)
        return done
