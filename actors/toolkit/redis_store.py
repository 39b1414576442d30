"""The production event store: actor state in Redis, appended by one fenced Lua script.

Keys and values follow Dapr's state.redis layout for actor state, so daprd's actor
state API (`GET /v1.0/actors/<type>/<id>/state/<key>`) reads what we write:
    key    "<app-id>||<actor type>||<actor id>||<key>"   (the component's keyPrefix: appid)
    value  a hash {data: <the JSON document>, version: <etag, +1 per write>}, EXPIRE for TTLs

Why not the sidecar's actor state transaction: in Dapr 1.18 it has no etag or
concurrency option, and daprd checks only that the actor id is in its local table, so
a halted activation's late write lands after ownership moved. state.redis's etag'd
transactions are not all-or-nothing either (one EVAL per key inside MULTI/EXEC: a
mismatch fails that key alone). One Lua script is atomic on Redis: it reads the
snapshot's version, checks that no new event key exists, and only then writes.

Cost: one EVALSHA round trip per command (it replaces daprd's HTTP PUT, which made the
same Redis writes, the inbox read a command with a message id made before, and, with a
publication, the publish call per event: actors.toolkit.streams), plus decoding the
snapshot JSON inside Redis to read its version.
All of one actor's keys must live on one Redis node (a Redis Cluster would need them
in one hash slot, which Dapr's key layout does not give).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from dapr.actor.runtime.state_manager import ActorStateManager
from redis.asyncio import Redis
from redis.exceptions import RedisError

from actors.toolkit.redis_multiplex import MultiplexedRedis, Script
from actors.toolkit.store import SNAPSHOT_KEY, Append, ConcurrencyError, StoreUnavailableError

SEPARATOR: Final = "||"

# KEYS: snapshot, n event keys, then if any: the inbox key, the due index, the stream,
#       then one list key per bounded memory written.
# ARGV: [1] expected version, [2] n, [3] has inbox (0/1), [4] has due entry (0/1),
#       [5] m stream entries, [6] the stream's MAXLEN ~ (0 = none), [7] snapshot
#       document ("" = unchanged), n event documents, then if any: the inbox document
#       and its TTL in seconds (0 = none); the due member and its score ("" = remove);
#       the m stream entries; then the number of memories written and, for each:
#       replace (0/1), its limit, the number of ids, the ids (RPUSH, then LTRIM to the
#       newest `limit`; replace deletes the list first).
# Returns {1, new version}, {2, the inbox entry's recorded value} (a duplicate: nothing
# written), or {0, reason, found version}.
# The stored version is read off the snapshot's leading `{"version":N` when it has one (the
# toolkit's Snapshot writes its fields in that order, without duplicates) rather than by
# decoding the whole document: cjson took 35 µs for an inventory's ~8 KB snapshot, in
# Redis's one thread, on every append; a document in any other shape is decoded.
APPEND_LUA: Final = """
local expected = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local has_inbox = ARGV[3] == '1'
local has_due = ARGV[4] == '1'
local m = tonumber(ARGV[5])
local next_key = n + 2
if has_inbox then
  local seen = redis.call('HGET', KEYS[next_key], 'data')
  if seen then return {2, seen} end
end
local found = 0
local raw = redis.call('HGET', KEYS[1], 'data')
if raw then
  local leading = string.match(raw, '^{%s*"version"%s*:%s*(%d+)%s*[,}]')
  if leading then
    found = tonumber(leading)
  else
    found = tonumber(cjson.decode(raw)['version']) or 0
  end
end
if found ~= expected then return {0, 'version', found} end
for i = 2, n + 1 do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {0, 'event exists', found} end
end
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'data', ARGV[7])
  redis.call('HINCRBY', KEYS[1], 'version', 1)
end
for i = 1, n do
  redis.call('HSET', KEYS[i + 1], 'data', ARGV[7 + i], 'version', 1)
end
local next_arg = 8 + n
if has_inbox then
  local inbox = KEYS[next_key]
  redis.call('HSET', inbox, 'data', ARGV[next_arg])
  redis.call('HINCRBY', inbox, 'version', 1)
  local ttl = tonumber(ARGV[next_arg + 1])
  if ttl > 0 then redis.call('EXPIRE', inbox, ttl) end
  next_key = next_key + 1
  next_arg = next_arg + 2
end
if has_due then
  local member, score = ARGV[next_arg], ARGV[next_arg + 1]
  if score == '' then
    redis.call('ZREM', KEYS[next_key], member)
  else
    redis.call('ZADD', KEYS[next_key], score, member)
  end
  next_key = next_key + 1
  next_arg = next_arg + 2
end
if m > 0 then
  local stream = KEYS[next_key]
  local max_len = tonumber(ARGV[6])
  for i = 0, m - 1 do
    if max_len > 0 then
      redis.call('XADD', stream, 'MAXLEN', '~', max_len, '*', 'data', ARGV[next_arg + i])
    else
      redis.call('XADD', stream, '*', 'data', ARGV[next_arg + i])
    end
  end
  next_key = next_key + 1
end
next_arg = next_arg + m
local memories = tonumber(ARGV[next_arg]) or 0
next_arg = next_arg + 1
for _ = 1, memories do
  local list = KEYS[next_key]
  local replace = ARGV[next_arg]
  local limit, count = tonumber(ARGV[next_arg + 1]), tonumber(ARGV[next_arg + 2])
  if replace == '1' then redis.call('DEL', list) end
  local ids = next_arg + 3
  for first = 0, count - 1, 1000 do  -- RPUSH in chunks: unpack's stack is bounded
    redis.call('RPUSH', list, unpack(ARGV, ids + first, ids + math.min(count, first + 1000) - 1))
  end
  if limit > 0 then redis.call('LTRIM', list, -limit, -1) end
  next_key = next_key + 1
  next_arg = next_arg + 3 + count
end
return {1, found + n}
"""


def state_key(app_id: str, actor_type: str, actor_id: str, key: str) -> str:
    """Dapr's Redis key of one actor state key."""
    return SEPARATOR.join((app_id, actor_type, actor_id, key))


APPEND_SCRIPT: Final = Script(APPEND_LUA)


class RedisStores:
    """Builds the store of each actor over one client (bytes replies, one shared connection)."""

    def __init__(self, client: MultiplexedRedis, *, app_id: str) -> None:
        self._client = client
        self._app_id = app_id

    def __call__(
        self, actor_type: str, actor_id: str, _: ActorStateManager[Any] | None = None
    ) -> RedisStore:
        prefix = state_key(self._app_id, actor_type, actor_id, "")
        return RedisStore(self._client, prefix)


class RedisStore:
    def __init__(self, client: MultiplexedRedis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    async def read(self, key: str) -> bytes | None:
        try:
            raw: bytes | None = await self._client.execute("HGET", self._prefix + key, "data")
        except RedisError as exc:
            raise StoreUnavailableError(f"{self._prefix}{key}: {_described(exc)}") from exc
        return raw

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        prefix = self._prefix
        try:
            values: list[bytes | None] = await self._client.execute_many(
                [("HGET", prefix + key, "data") for key in keys]
            )
        except RedisError as exc:
            raise StoreUnavailableError(f"{self._prefix}: {_described(exc)}") from exc
        return values

    async def read_memory(self, key: str) -> list[str]:
        try:
            ids = await self._client.execute("LRANGE", self._prefix + key, 0, -1)
        except RedisError as exc:
            raise StoreUnavailableError(f"{self._prefix}{key}: {_described(exc)}") from exc
        return [_text(item) for item in ids or ()]

    async def append(self, append: Append) -> bytes | None:
        keys = [self._prefix + SNAPSHOT_KEY] + [self._prefix + e.key for e in append.events]
        publication, due = append.publication, append.due
        entries = publication.messages if publication else ()
        args: list[bytes | int | str] = [
            append.expected_version,
            len(append.events),
            int(append.inbox is not None),
            int(due is not None),
            len(entries),
            publication.max_len if publication else 0,
            append.snapshot or b"",
            *(e.value for e in append.events),
        ]
        if append.inbox is not None:
            keys.append(self._prefix + append.inbox.key)
            ttl = int(append.inbox.ttl.total_seconds()) if append.inbox.ttl else 0
            args += [append.inbox.value, ttl]
        if due is not None:
            keys.append(due.index)
            args += [due.member, "" if due.at_ms is None else due.at_ms]
        if publication is not None and entries:
            keys.append(publication.stream)
            args += entries
        args.append(len(append.memories))
        for remembered in append.memories:
            keys.append(self._prefix + remembered.key)
            args += [int(remembered.replace), remembered.limit, len(remembered.ids)]
            args += remembered.ids
        try:
            reply = await self._client.evalsha(APPEND_SCRIPT, keys, args)
        except RedisError as exc:  # written or not: unknown
            raise StoreUnavailableError(f"{self._prefix}: append: {_described(exc)}") from exc
        if int(reply[0]) == 2:
            seen: bytes = reply[1].encode() if isinstance(reply[1], str) else reply[1]
            return seen
        if int(reply[0]) != 1:
            reason, found = _text(reply[1]), int(reply[2])
            raise ConcurrencyError(
                f"{self._prefix}: {reason} (expected version {append.expected_version}, "
                f"found {found})",
                expected=append.expected_version,
                found=found,
            )
        return None


class RedisDueIndex:
    """Reads the due indexes the appends write (ZRANGEBYSCORE, earliest first)."""

    def __init__(self, client: Redis) -> None:
        self._client = client

    async def due(self, index: str, now_ms: int, limit: int) -> list[str]:
        try:
            members = await self._client.zrangebyscore(index, "-inf", now_ms, start=0, num=limit)
        except RedisError as exc:
            raise StoreUnavailableError(f"{index}: {_described(exc)}") from exc
        return [_text(m) for m in members if isinstance(m, bytes | str)]


def _described(exc: RedisError) -> str:
    """The error's class and message (redis-py 8's repr of its errors drops the message)."""
    return f"{type(exc).__name__}: {exc}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
