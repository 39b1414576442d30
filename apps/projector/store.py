"""The Redis adapter of the projections: read the rows, fold, write them back atomically.

Live projection of one event (`project_live`) takes two round trips:
    read    HGETALL the aggregate's row in each generation to write: the active one, and
            the one being rebuilt if any (generation pointers cached in-process)
    fold    pure (apps.projector.projections)
    apply   one Lua script, atomic in Redis: check that the pointers still are what we
            assumed and that each row's bookkeeping (aggregate_version, applied_above) is
            what we read, then HSET the row, ZREM/ZADD its index moves, HINCRBY + EXPIREAT
            its counters, HSET the freshness meta
A failed check (a generation switch, or another writer of the same aggregate) applies
nothing, and the attempt starts over from a fresh read: one event's updates land all
together, in the generation(s) current at that instant, or not at all. In-process, the
updates of one aggregate queue on a striped lock so they rarely collide at all.
A rebuild folds pages of history into its own generation (`project_history`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Sequence
from typing import Any, Final, TypeVar

from redis.asyncio import Redis

from actors.toolkit.envelope import EventEnvelope
from apps.projector.projections import (
    MINUTE_FORMAT,
    ROW_TYPES,
    Projection,
    fold,
    index_changes,
)
from readmodels.keys import Generation, Layout
from readmodels.rows import from_hash, iso, to_hash

DEFAULT_COUNTER_TTL: Final = dt.timedelta(days=2)
REJECTED_KEPT: Final = 1000
NO_CHECK: Final = "*"  # as the expected active pointer: skip the pointer check (rebuilds)
T = TypeVar("T")

# ARGV: active key, rebuilding key, expected active, expected rebuilding ("" = unset),
#       n, then n x (row key, expected aggregate_version, expected applied_above),
#       then commands as (name, argc, args...). Returns 1 applied, -1 pointers moved,
#       0 a row changed.
APPLY: Final = """
local function value(v) if not v then return '' end return v end
if ARGV[3] ~= '*' and (value(redis.call('GET', ARGV[1])) ~= ARGV[3]
                       or value(redis.call('GET', ARGV[2])) ~= ARGV[4]) then
  return -1
end
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  local seen = redis.call('HMGET', ARGV[i], 'aggregate_version', 'applied_above')
  if value(seen[1]) ~= ARGV[i + 1] or value(seen[2]) ~= ARGV[i + 2] then return 0 end
  i = i + 3
end
while i <= #ARGV do
  local argc = tonumber(ARGV[i + 1])
  redis.call(ARGV[i], unpack(ARGV, i + 2, i + 1 + argc))
  i = i + 2 + argc
end
return 1
"""


async def immediate(value: Awaitable[T] | Any) -> T:
    """The result of a command a watching pipeline runs at once (typed as either form)."""
    result: T = await value
    return result


def row_key(envelope: EventEnvelope) -> str:
    row_type = ROW_TYPES[envelope.aggregate_type]
    return f"{row_type.kind}:{envelope.aggregate_id}"


class ProjectionStore:
    """Applies projections to the read models in Redis (one shared connection pool)."""

    def __init__(
        self,
        redis: Redis,
        *,
        layout: Layout | None = None,
        counter_ttl: dt.timedelta = DEFAULT_COUNTER_TTL,
        stripes: int = 64,
    ) -> None:
        self.redis = redis
        self.layout = layout or Layout()
        self._counter_ttl = counter_ttl
        self._locks = [asyncio.Lock() for _ in range(stripes)]
        self._apply = redis.register_script(APPLY)
        self._pointers: tuple[str, str] | None = None  # (active, rebuilding), "" = unset

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks[hash(key) % len(self._locks)]

    async def _current_pointers(self, *, refresh: bool = False) -> tuple[str, str]:
        if self._pointers is None or refresh:
            found = await self.redis.mget(self.layout.active_key, self.layout.rebuilding_key)
            self._pointers = (str(found[0] or ""), str(found[1] or ""))
        return self._pointers

    async def project_live(self, envelope: EventEnvelope, *, applied_at: dt.datetime) -> Projection:
        """Apply one delivered event to the active generation (and to one being rebuilt)."""
        refresh = False
        async with self._lock(row_key(envelope)):
            while True:
                pointers = await self._current_pointers(refresh=refresh)
                names = [pointers[0]] + (
                    [pointers[1]] if pointers[1] not in ("", pointers[0]) else []
                )
                gens = [self.layout.generation(name) for name in names]
                outcome, projections = await self._attempt(gens, [envelope], pointers, applied_at)
                if outcome == 1:
                    return projections[0]
                refresh = outcome == -1  # a generation switch: read the pointers again

    async def project_history(
        self, generation: str, envelopes: Sequence[EventEnvelope]
    ) -> Projection:
        """Fold envelopes of ONE aggregate into `generation` (a rebuild's page of history)."""
        gens = [self.layout.generation(generation)]
        async with self._lock(row_key(envelopes[0])):
            while True:
                outcome, projections = await self._attempt(gens, envelopes, None, None)
                if outcome == 1:
                    return projections[0]

    async def _attempt(
        self,
        gens: list[Generation],
        envelopes: Sequence[EventEnvelope],
        pointers: tuple[str, str] | None,
        applied_at: dt.datetime | None,
    ) -> tuple[int, list[Projection]]:
        """One read-fold-apply round; the script's verdict (1, 0 or -1) and the folds."""
        first = envelopes[0]
        keys = [gen.key(row_key(first)) for gen in gens]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            stored: list[dict[str, str]] = await pipe.execute()
        row_type = ROW_TYPES[first.aggregate_type]
        projections = [fold(from_hash(row_type, first.aggregate_id, s), envelopes) for s in stored]
        if not any(p.applied for p in projections):
            return 1, projections  # duplicates everywhere: nothing to write
        args: list[Any] = [self.layout.active_key, self.layout.rebuilding_key]
        args += list(pointers) if pointers is not None else [NO_CHECK, ""]
        args.append(len(keys))
        for key, found in zip(keys, stored, strict=True):
            args += [key, found.get("aggregate_version", ""), found.get("applied_above", "")]
        for gen, projection in zip(gens, projections, strict=True):
            for command in self._commands(gen, projection, first, applied_at):
                args += [command[0], len(command) - 1, *command[1:]]
        outcome = int(await self._apply(keys=[], args=args))
        return outcome, projections

    def _commands(
        self,
        gen: Generation,
        projection: Projection,
        envelope: EventEnvelope,
        applied_at: dt.datetime | None,
    ) -> list[tuple[Any, ...]]:
        """The writes that carry `projection` into generation `gen`."""
        if not projection.applied:
            return []
        after = projection.after
        fields = [part for item in to_hash(after).items() for part in item]
        commands: list[tuple[Any, ...]] = [("HSET", gen.key(after.key), *fields)]
        changes = index_changes(projection.before, after)
        commands += [("ZREM", gen.key(key), member) for key, member in changes.removed]
        commands += [("ZADD", gen.key(k), score, member) for k, member, score in changes.added]
        for (minute, name), count in sorted(projection.counts.items()):
            commands.append(("HINCRBY", gen.counters(minute), name, count))
            commands.append(("EXPIREAT", gen.counters(minute), self._expiry(minute)))
        if applied_at is not None:
            commands.append(("HSET", gen.meta, *_meta(envelope, applied_at)))
        return commands

    async def record_rejected(self, *, topic: str, reason: str, body: bytes) -> None:
        """Keep a delivery that can never apply (the last REJECTED_KEPT) for inspection."""
        entry = {
            "topic": topic,
            "reason": reason,
            "body": body[:4096].decode("utf-8", "replace"),
            "recorded_at": iso(dt.datetime.now(dt.UTC)),
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self.layout.rejected_key, json.dumps(entry))
            pipe.ltrim(self.layout.rejected_key, 0, REJECTED_KEPT - 1)
            await pipe.execute()

    def _expiry(self, minute: str) -> int:
        start = dt.datetime.strptime(minute, MINUTE_FORMAT).replace(tzinfo=dt.UTC)
        return int((start + self._counter_ttl).timestamp())


def _meta(envelope: EventEnvelope, applied_at: dt.datetime) -> list[str]:
    lag = max(0, round((applied_at - envelope.occurred_at).total_seconds() * 1000))
    return [
        *("last_event_at", iso(envelope.occurred_at)),
        *("applied_at", iso(applied_at)),
        *("projection_lag_ms", str(lag)),
    ]
