"""APPLY, the script that writes a row's projection, and the arguments of each call.

One EVALSHA per row (apps.projector.store sends a batch's in one round trip): check that
the generation pointers still are what the store assumed and that the row's bookkeeping
(aggregate_version, applied_above) is what it read or knew, then HSET the row, ZREM/ZADD
its index moves, HINCRBY + EXPIREAT its counters, HSET the freshness meta.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any, Final

from actors.toolkit.envelope import EventEnvelope
from apps.projector.batch import Write
from apps.projector.projections import MINUTE_FORMAT, index_changes
from readmodels.keys import Layout
from readmodels.rows import iso

DEFAULT_COUNTER_TTL: Final = dt.timedelta(days=2)
NO_CHECK: Final = "*"  # as the expected active pointer: skip the pointer check (rebuilds)

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


class ApplyArgs:
    """Builds the ARGV of APPLY calls for one layout (the pointers' keys) and counter TTL."""

    def __init__(self, layout: Layout, counter_ttl: dt.timedelta = DEFAULT_COUNTER_TTL) -> None:
        self.layout = layout
        self._counter_ttl = counter_ttl

    def args(
        self,
        writes: Sequence[Write],
        *,
        pointers: tuple[str, str] | None,
        applied_at: dt.datetime | None,
    ) -> list[Any]:
        """ARGV of one APPLY call: the checks, then the writes of every generation."""
        args: list[Any] = [self.layout.active_key, self.layout.rebuilding_key]
        args += list(pointers) if pointers is not None else [NO_CHECK, ""]
        args.append(len(writes))
        for write in writes:
            stored = write.stored
            args += [
                write.key,
                stored.get("aggregate_version", ""),
                stored.get("applied_above", ""),
            ]
        for write in writes:
            for command in self._commands(write, applied_at):
                args += [command[0], len(command) - 1, *command[1:]]
        return args

    def _commands(self, write: Write, applied_at: dt.datetime | None) -> list[tuple[Any, ...]]:
        """The writes that carry a row's projection into its generation."""
        projection, gen = write.projection, write.gen
        if not projection.applied:
            return []
        after = projection.after
        fields = [part for item in write.fields.items() for part in item]
        commands: list[tuple[Any, ...]] = [("HSET", gen.key(after.key), *fields)]
        changes = index_changes(projection.before, after)
        commands += [("ZREM", gen.key(key), member) for key, member in changes.removed]
        commands += [("ZADD", gen.key(k), score, member) for k, member, score in changes.added]
        for (minute, name), count in sorted(projection.counts.items()):
            commands.append(("HINCRBY", gen.counters(minute), name, count))
            commands.append(("EXPIREAT", gen.counters(minute), self._expiry(minute)))
        if applied_at is not None and write.last is not None:
            commands.append(("HSET", gen.meta, *_meta(write.last, applied_at)))
        return commands

    def _expiry(self, minute: str) -> int:
        return _minute_start(minute) + int(self._counter_ttl.total_seconds())


@functools.lru_cache(maxsize=256)
def _minute_start(minute: str) -> int:
    """The epoch second a counter's minute starts (strptime is ~10 µs; a batch asks for
    the same few minutes again and again)."""
    return int(dt.datetime.strptime(minute, MINUTE_FORMAT).replace(tzinfo=dt.UTC).timestamp())


def _meta(envelope: EventEnvelope, applied_at: dt.datetime) -> list[str]:
    lag = max(0, round((applied_at - envelope.occurred_at).total_seconds() * 1000))
    return [
        *("last_event_at", iso(envelope.occurred_at)),
        *("applied_at", iso(applied_at)),
        *("projection_lag_ms", str(lag)),
    ]
