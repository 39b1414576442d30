"""A feed of the topics' Redis streams, read through a consumer group of its own.

The actor hosts write each event's CloudEvent to its topic's stream inside the commit
(actors.toolkit.streams); daprd writes the same entries for what it publishes. Instead of
a daprd reading those streams and POSTing them to the app (an HTTP hop per delivery, or
a bulk subscriber that polls every topic), a feed reads them itself, as daprd's
pubsub.redis would, in the same consumer group (the app id: a feed started where a daprd
subscription was takes over its position and its pending entries):

    XREADGROUP GROUP <group> <consumer> COUNT <count> BLOCK <block_ms>
        STREAMS orders inventory wallet ... > > > ...

Two ways to decide what it reads:

- `StreamFeed` (the projector; actors.toolkit.batchfeed): one read returns what is
  waiting on every topic; its events are decided as one batch, and the entries that
  succeeded are acknowledged (XACK) in the same round trip as a following read (the
  next one waits `linger_ms` so that batches gather several events).
- `ConcurrentStreamFeed` (the event router; actors.toolkit.concurrentfeed): each entry
  is decided on its own, up to `max_in_flight` at once, so one slow decision (an actor
  call waiting out a rebalance) holds only its own slot; each is acknowledged when its
  own decision completes (the XACKs gathered and sent with a following read), and new
  entries are read only for the free slots. An entry answered "not now" is tried again
  in place for `retry_for_s` (backoff up to `retry_backoff_max_s`, as daprd's delivery
  retries), then left pending.

Either way:

- nothing lost: an entry is acknowledged only once its decision is done (or it was
  recorded as one that can never apply). An entry left pending (a RETRY, a consumer that
  died mid-decision) is decided again: the feed reads its own pending entries first when
  it starts, and every `claim_every_s` it claims (XAUTOCLAIM) the entries any consumer of
  the group left pending for `claim_idle_ms` and decides them again;
- duplicates change nothing (every consumer is idempotent per event), so a claim that
  races a slow consumer costs only a repeat;
- lag: an event is read as soon as it is added (a blocked read returns at once); an idle
  feed costs one blocked read a second;
- acknowledgements wait: they go with a read once they have waited `ack_linger_ms`
  (or `count` are waiting), because each round trip that writes (an XACK) costs Redis an
  fsync of its own under appendfsync always. What a killed consumer had decided and not
  yet acknowledged is decided again: a repeat.

The reads (XREADGROUP with the gathered XACKs) go over a connection of the feed's own
(actors.toolkit.redis_multiplex: ~30-100 µs of the app's CPU per read against ~280
through a redis-py pipeline, which counts at low rates, where every event is its own
read); everything else (groups, claims, the acknowledgements at a stop) through `redis`.

The price: the app depends on pubsub.redis's stream layout (one stream per topic,
`{data: <CloudEvent>}`), as the actor hosts' append already does; on another broker the
apps run with their daprd subscriptions (ORDERFLOW_PROJECTOR_FEED=dapr,
ORDERFLOW_ROUTER_FEED=dapr). Entries trimmed away (MAXLEN) while pending are acknowledged
and counted as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from actors.toolkit import codec
from actors.toolkit.redis_connection import host_of, password_of
from actors.toolkit.redis_multiplex import DEFAULT_TIMEOUT_S, MultiplexedRedis

log = logging.getLogger("orderflow.streamfeed")

# (stream, entry id, the entry's fields)
Entry = tuple[str, bytes, dict[bytes, bytes]]
# decides a batch: one True (acknowledge) or False (leave pending) per entry
Decide = Callable[[Sequence[Entry]], Awaitable[list[bool]]]
# decides one entry: True (acknowledge) or False (not now: leave it pending)
DecideOne = Callable[[Entry], Awaitable[bool]]
EntryKey = tuple[str, bytes]  # (stream, entry id)

StreamKey = bytes | str | memoryview
StreamId = int | bytes | str | memoryview
DATA_FIELD: Final = b"data"  # pubsub.redis keeps the CloudEvent under this field
STOP_TIMEOUT_S: Final = 5.0  # the most a stopping feed waits to settle what it holds

# where an app's events come from (ORDERFLOW_ROUTER_FEED, ORDERFLOW_PROJECTOR_FEED)
FEED_STREAMS: Final = "streams"  # the app reads the topics' streams itself (a feed)
FEED_DAPR: Final = "dapr"  # its daprd's subscriptions deliver them
FEEDS: Final = (FEED_STREAMS, FEED_DAPR)


def feed_mode(variable: str, value: str) -> str:
    """`value`, the setting of the environment variable `variable`, checked."""
    mode = value.strip().lower()
    if mode not in FEEDS:
        raise ValueError(f"{variable} must be one of {', '.join(FEEDS)}, not {value!r}")
    return mode


@dataclass(frozen=True)
class FeedSettings:
    group: str = "projector"  # the consumer group: the app id, as daprd names it
    consumer: str = "projector"  # shared by replicas, as daprd's is (claims go by idle time)
    count: int = 100  # entries per stream per read
    block_ms: int = 1000  # a read waits this long for a first entry
    # after a read that found entries, wait this long before the next one, so the next
    # batch gathers more (fewer round trips per event; adds at most this to the lag)
    linger_ms: int = 20
    # decided entries are acknowledged with a read once the oldest has waited this long
    # (or `count` are waiting): an XACK is a write, and under appendfsync always each
    # round trip that writes costs Redis an fsync of its own (at 10 orders/s holding them
    # took an order from 20-23 fsyncs to 16-17). A kill loses nothing: what
    # was decided and not yet acknowledged is decided again (a repeat, which changes
    # nothing). 0: with every read, as before.
    ack_linger_ms: int = 200
    claim_idle_ms: int = 5000  # a pending entry this idle is claimed and decided again
    claim_every_s: float = 2.0
    retry_after_s: float = 0.5  # after Redis failed a read or an acknowledgement
    # ConcurrentStreamFeed only: entries decided at once, and how long an entry answered
    # "not now" is tried again in place (backoff from retry_backoff_s, doubling up to
    # retry_backoff_max_s) before it is left pending for a claim
    max_in_flight: int = 32
    retry_for_s: float = 0.0
    retry_backoff_s: float = 0.25
    retry_backoff_max_s: float = 2.0

    def __post_init__(self) -> None:
        # the linger counts from the first read that finds acknowledgements waiting, and
        # that read and the one carrying them can each block `block_ms`: an entry decided
        # and not yet acknowledged must never look abandoned to a claim
        held_ms = self.ack_linger_ms + 2 * self.block_ms
        if self.ack_linger_ms < 0 or held_ms > self.claim_idle_ms:
            raise ValueError(
                f"ack_linger_ms ({self.ack_linger_ms}) must be >= 0 and, with twice "
                f"block_ms ({self.block_ms}), not exceed claim_idle_ms ({self.claim_idle_ms})"
            )


@dataclass
class FeedStats:
    reads: int = 0  # reads that returned entries
    entries: int = 0  # entries decided (claimed ones included)
    acked: int = 0
    claimed: int = 0  # entries taken over from the pending list
    trimmed: int = 0  # pending entries the stream no longer holds (MAXLEN): lost
    errors: int = 0  # reads or acknowledgements Redis failed
    last_error: str | None = None
    running: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "reads": self.reads,
            "entries": self.entries,
            "acked": self.acked,
            "claimed": self.claimed,
            "trimmed": self.trimmed,
            "errors": self.errors,
            "last_error": self.last_error,
            "running": self.running,
        }


@dataclass
class GroupFeed:
    """What both feeds share: the consumer group, Redis failures, acknowledgements.
    `redis` must answer bytes (decode_responses=False): an entry is the producer's bytes."""

    redis: Redis
    streams: tuple[str, ...]
    settings: FeedSettings = field(default_factory=FeedSettings)
    stats: FeedStats = field(default_factory=FeedStats)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._new_entries: dict[StreamKey, StreamId] = dict.fromkeys(self.streams, ">")
        # decided, to acknowledge with a read (one round trip for both), from when
        self._unacked: dict[str, list[bytes]] = {}
        self._unacked_since: float | None = None
        self._stopping = False  # set by stop()
        self._reads: MultiplexedRedis | None = None  # opened by the first read

    async def aclose(self) -> None:
        """Close the reads' connection (`run` does at its end; a caller of `read_once`)."""
        reads, self._reads = self._reads, None
        if reads is not None:
            await reads.aclose()

    async def _flush_quietly(self) -> None:
        """Acknowledge what was decided (at shutdown; left pending, it would be decided
        again at the next start: a repeat, which changes nothing)."""
        try:
            await self.flush_acks()
        except (RedisError, OSError) as exc:
            log.info("the stream feed left %s unacknowledged: %s", self._unacked, exc)

    def stop(self) -> None:
        """Ask `run` to end: it does at its next step, also when a cancellation was lost
        on the way (Python 3.11's wait_for can turn one into a timeout)."""
        self._stopping = True

    async def _until_done(self, step: Callable[[], Awaitable[object]]) -> None:
        while not self._stopping:
            try:
                await step()
                return
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream was deleted (FLUSHALL, DEL)
                    self._unacked.clear()  # its entries went with it
                    await self._failed(exc)
                    await self._quietly(self.ensure_groups)
                    continue
                await self._failed(exc)
            except (RedisError, OSError) as exc:
                await self._failed(exc)

    async def _failed(self, exc: BaseException) -> None:
        self.stats.errors += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("the stream feed retries after %s", self.stats.last_error)
        await asyncio.sleep(self.settings.retry_after_s)

    async def _quietly(self, step: Callable[[], Awaitable[object]]) -> None:
        try:
            await step()
        except (RedisError, OSError) as exc:
            log.info("the stream feed could not recreate its groups yet: %s", exc)

    async def ensure_groups(self) -> None:
        """XGROUP CREATE <stream> <group> 0 MKSTREAM for each stream, unless it exists: a
        new group starts at the stream's first entry (nothing written before is missed)."""
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.settings.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def flush_acks(self) -> None:
        """Acknowledge what was decided and not yet acknowledged."""
        acks, self._unacked, self._unacked_since = self._unacked, {}, None

        try:
            await self._ack(acks)
        except BaseException:
            merge_ids(self._unacked, acks)
            raise

    async def _ack(self, done: dict[str, list[bytes]]) -> None:
        if not done:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in done.items():
                pipe.xack(stream, self.settings.group, *ids)
            await pipe.execute()
        self.stats.acked += sum(len(ids) for ids in done.values())

    async def run(self) -> None:
        """Until cancelled or stopped: create the groups, take this consumer's pending entries, then
        go on with new entries (`_next`) and claim abandoned ones every claim_every_s.
        Redis failures are logged and retried; nothing ends the loop but cancellation,
        after which `_stop` settles what is in hand."""
        self.stats.running = True
        try:
            await self._until_done(self.ensure_groups)
            await self._until_done(self.drain_own_pending)
            next_claim = self.clock() + self.settings.claim_every_s
            while not self._stopping:
                await self._next()
                if self.clock() >= next_claim:
                    await self._until_done(self.claim_once)
                    next_claim = self.clock() + self.settings.claim_every_s
        finally:
            self.stats.running = False
            with contextlib.suppress(TimeoutError):  # a Redis that does not answer
                await asyncio.shield(asyncio.wait_for(self._stop(), STOP_TIMEOUT_S))
            await self.aclose()

    def _acks_due(self) -> dict[str, list[bytes]]:
        """The acknowledgements to send with this read: all that were gathered, once
        `ack_linger_ms` has passed since a read first found them waiting, or `count` are
        waiting; else none (yet)."""
        waiting = sum(len(ids) for ids in self._unacked.values())
        if not waiting:
            self._unacked_since = None
            return {}
        now = self.clock()
        if self._unacked_since is None:
            self._unacked_since = now
        linger_s = self.settings.ack_linger_ms / 1000
        if waiting < self.settings.count and now - self._unacked_since < linger_s:
            return {}
        acks, self._unacked, self._unacked_since = self._unacked, {}, None
        return acks

    async def _read_new(self, count: int) -> list[Entry]:
        """One blocking read of up to `count` new entries per stream, sent in one round
        trip with the acknowledgements gathered since the last read, once they are due
        (`ack_linger_ms`)."""
        acks = self._acks_due()
        group = self.settings.group
        commands: list[tuple[Any, ...]] = [("XACK", s, group, *ids) for s, ids in acks.items()]
        commands.append(self._read_command(count))
        try:
            if self._reads is None:  # the read waits up to block_ms: a timeout well past it
                timeout_s = self.settings.block_ms / 1000 + DEFAULT_TIMEOUT_S
                self._reads = MultiplexedRedis(
                    host_of(self.redis), timeout_s=timeout_s, password=password_of(self.redis)
                )
            replies = await self._reads.execute_many(commands)
        except BaseException:
            merge_ids(self._unacked, acks)  # not sent, or not known to be: again next time
            raise
        self.stats.acked += sum(len(ids) for ids in acks.values())
        entries = _entries(replies[-1])
        if entries:
            self.stats.reads += 1
        return entries

    def _read_command(self, count: int) -> tuple[Any, ...]:
        settings, streams = self.settings, list(self._new_entries)
        return (
            *("XREADGROUP", "GROUP", settings.group, settings.consumer),
            *("COUNT", count, "BLOCK", settings.block_ms, "STREAMS"),
            *streams,
            *(self._new_entries[stream] for stream in streams),
        )

    async def _claim_page(
        self, stream: str, start: str, count: int
    ) -> tuple[str | None, list[Entry]]:
        """One XAUTOCLAIM page of `stream`'s entries idle for `claim_idle_ms`: the start of
        the next page (None: the last) and the entries that still hold something; those
        trimmed while pending are acknowledged and counted lost."""
        reply = await self.redis.xautoclaim(
            stream,
            self.settings.group,
            self.settings.consumer,
            min_idle_time=self.settings.claim_idle_ms,
            start_id=start,
            count=count,
        )
        cursor, items, deleted = _autoclaim_reply(reply)
        if deleted:
            self.stats.trimmed += len(deleted)
            log.error("%d pending entries of %s were trimmed unread", len(deleted), stream)
            await self.redis.xack(stream, self.settings.group, *deleted)
        entries = [(stream, entry_id, fields) for entry_id, fields in items if fields]
        following = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        return (None if following == "0-0" else following), entries

    async def _next(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        await self._flush_quietly()

    async def drain_own_pending(self) -> None:
        raise NotImplementedError

    async def claim_once(self) -> int:
        raise NotImplementedError

    async def _own_pending_pages(self) -> AsyncIterator[list[Entry]]:
        """This consumer's pending entries (read, never acknowledged), a page at a time."""
        cursors: dict[StreamKey, StreamId] = dict.fromkeys(self.streams, "0")
        while cursors:
            reply = _by_stream(
                await self.redis.xreadgroup(
                    self.settings.group, self.settings.consumer, cursors, count=self.settings.count
                )
            )
            page: list[Entry] = []
            for stream in self.streams:
                if stream not in cursors:
                    continue
                items = reply.get(stream)
                if not items:
                    del cursors[stream]
                    continue
                cursors[stream] = items[-1][0].decode()  # the next page starts past it
                page += [(stream, entry_id, fields) for entry_id, fields in items]
            yield page


@contextlib.asynccontextmanager
async def running(feed: GroupFeed, *, name: str = "stream-feed") -> AsyncIterator[None]:
    """`feed.run()` as a task for the block's lifetime, cancelled (and awaited) at its end."""
    task = asyncio.create_task(feed.run(), name=name)
    try:
        yield
    finally:
        feed.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def merge_ids(into: dict[str, list[bytes]], more: dict[str, list[bytes]]) -> None:
    for stream, ids in more.items():
        into.setdefault(stream, []).extend(ids)


def _by_stream(reply: Any) -> dict[str, list[tuple[bytes, dict[bytes, bytes]]]]:
    """XREADGROUP's reply as {stream: [(id, fields)]} (RESP2 list or RESP3 map); an entry
    trimmed while pending comes back with no fields ({})."""
    if not reply:
        return {}
    pairs = reply.items() if isinstance(reply, dict) else reply
    return {
        (name.decode() if isinstance(name, bytes) else str(name)): [
            (entry_id, _fields(fields)) for entry_id, fields in items
        ]
        for name, items in pairs
    }


def _fields(fields: Any) -> dict[bytes, bytes]:
    """An entry's fields: redis-py's dict, or Redis's own flat [field, value, ...] list."""
    if isinstance(fields, list):
        return dict(zip(fields[::2], fields[1::2], strict=True))
    return fields or {}


def _entries(reply: Any) -> list[Entry]:
    return [
        (stream, entry_id, fields)
        for stream, items in _by_stream(reply).items()
        for entry_id, fields in items
    ]


def _autoclaim_reply(reply: Any) -> tuple[Any, list[tuple[bytes, dict[bytes, bytes]]], list[bytes]]:
    """XAUTOCLAIM's reply: the next cursor, the claimed entries, the ids already deleted."""
    cursor, items = reply[0], reply[1]
    deleted = list(reply[2]) if len(reply) > 2 else []
    return cursor, [(entry_id, fields) for entry_id, fields in items if entry_id], deleted


def cloud_event_of(fields: dict[bytes, bytes]) -> Any:
    """The CloudEvent an entry holds; raises ValueError when it holds none."""
    data = fields.get(DATA_FIELD)
    if data is None:
        raise ValueError(f"no {DATA_FIELD.decode()!r} field (fields: {sorted(fields)[:5]})")
    return codec.loads(data)
