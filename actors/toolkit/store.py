"""The event store port: one actor's keys, and an append fenced by an expected version.

Keys of one event-sourced actor (Dapr's actor state layout, so daprd's actor state API,
`History`, `Replay` and the read-side rebuild all read them):

    "aggregate"     {"version", "published", "state", "updated_at"}  the snapshot
    "event-<n>"     the EventEnvelope of version n (n = 1..version), never rewritten
    "inbox-<hash>"  the result answered to one message id, with a TTL (actors.toolkit.inbox)
    "memory-<field>" the ids of one bounded memory of the state (`State.memories`), oldest
                    first: a list a commit appends to and trims (rewritten whole only to
                    take in the ids of a snapshot written before the lists)
                    (Redis: a list, not Dapr's {data, version} hash; daprd's state API
                    cannot read it)

Every read and write an actor makes through the store (actors.toolkit.eventlog):
    read("aggregate")       on activation (the snapshot: one key, whatever the history
                            length), and before answering a refusal (is the cached
                            version still the stored one?)
    read("inbox-<hash>")    only before answering a refusal to a command with a message
                            id (was it a duplicate?); on the happy path the append
                            itself checks the inbox (below), so a command costs no read
    read_memory("memory-<field>")  on activation, each bounded memory of the state
    read_many("event-<n>"…) on activation, the events above the snapshot's `published`
                            watermark (the outbox to re-send: usually the last command's);
                            History and Replay, 100 keys a round trip
    append(Append(...))     the only write (see below)

With `Append.publication` (actors.toolkit.streams) the same all-or-nothing write also
adds the events' CloudEvents to their topic's pub/sub stream: published iff committed.
With `Append.due` it also sets (or removes) the actor's entry in a due index, a sorted
set of actor ids by the time something must look at them (the orders' deadlines:
actors.order.deadlines); `DueIndex.due` reads what is due.

`append(Append(expected_version=v, ...))` writes the snapshot, the new event keys and the
inbox entry all-or-nothing, and only if the stored snapshot still has version v and none
of the new event keys exists; otherwise it writes nothing and raises ConcurrencyError.
First of all it checks the inbox: if the append's inbox key is already there, the message
was applied before (by this activation or another), so it writes nothing and returns the
recorded answer instead; the caller answers that, marked a duplicate.
That is what makes one writer per actor a property of the store rather than an
assumption about Dapr's placement: a stale activation (a halted actor whose coroutine
kept running, a host that lost its actors during a rebalance) cannot fork the history.

Implementations (each runs the contract suite, tests/store_contract.py):
    RedisStores       actors.toolkit.redis_store: one Lua script, the production store
    InMemoryStores    a dict per actor: fast tests and benchmarks of the actor code
    StateManagerStore the SDK's state manager: the SDK's mock actors in tests
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from dapr.actor.runtime.state_manager import ActorStateManager
from pydantic import BaseModel, ConfigDict, Field

from actors.toolkit.errors import TransientError

SNAPSHOT_KEY = "aggregate"


def event_key(version: int) -> str:
    return f"event-{version}"


def memory_key(field_name: str) -> str:
    return f"memory-{field_name}"


class Snapshot(BaseModel):
    """The stored snapshot document (state is the aggregate's own JSON)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(default=0, ge=0)
    published: int = Field(default=0, ge=0)
    state: dict[str, Any] = Field(default_factory=dict)
    updated_at: dt.datetime | None = None  # when the last event was recorded (UTC)


class Item(NamedTuple):
    key: str
    value: bytes  # a JSON document
    ttl: dt.timedelta | None = None


@dataclass(frozen=True)
class Publication:
    """Stream entries written with an append (pubsub.redis's format: {data: <message>})."""

    stream: str  # the topic
    max_len: int  # XADD MAXLEN ~ (0: unbounded)
    messages: tuple[bytes, ...]  # CloudEvent JSON documents, in order


@dataclass(frozen=True)
class Due:
    """An actor's entry in a due index (a sorted set scored by epoch milliseconds)."""

    index: str  # the index's key
    member: str  # the actor id
    at_ms: int | None  # when it is due; None removes the entry


@dataclass(frozen=True)
class Remembered:
    """Ids added to one bounded memory: appended to its list, which then keeps only its
    newest `limit`. `replace` writes the list whole instead (the first write after an
    activation found the memory still inside an older snapshot)."""

    key: str  # memory_key(field)
    ids: tuple[str, ...]
    limit: int
    replace: bool = False

    def applied_to(self, stored: Sequence[str]) -> list[str]:
        """The list after this write (for stores that keep it in Python)."""
        kept = [] if self.replace else list(stored)
        kept += self.ids
        return kept[-self.limit :] if self.limit > 0 else kept


@dataclass(frozen=True)
class Append:
    """One command's writes, all-or-nothing, at an expected version.

    With no events, `snapshot` is None and only the inbox entry is written (a command
    that changed nothing still records its answer), under the same version check.
    """

    expected_version: int
    snapshot: bytes | None = None  # the new snapshot document (None: unchanged)
    events: tuple[Item, ...] = ()  # event-<n> keys, n = expected_version + 1, ...
    inbox: Item | None = None
    publication: Publication | None = None  # written only when the rest is
    due: Due | None = None  # likewise
    memories: tuple[Remembered, ...] = ()  # likewise

    @property
    def keys(self) -> list[str]:
        return [e.key for e in self.events] + ([self.inbox.key] if self.inbox else [])


class StoreUnavailableError(TransientError):
    """The store did not answer (or answered with an error): whether a write landed is
    unknown, so the actor drops its cached state and the call fails for a retry."""


class ConcurrencyError(TransientError):
    """The store refused an append: another activation wrote first (nothing was written).

    Transient for the caller: the actor drops its cached state and fails the call, and
    the retry reaches the current owner, which reloads.
    """

    def __init__(self, detail: str, *, expected: int, found: int | None) -> None:
        super().__init__(detail)
        self.expected = expected
        self.found = found


class EventStore(Protocol):
    """One actor's keys."""

    async def read(self, key: str) -> bytes | None: ...

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values in the order of `keys` (None where missing), in as few round trips as can be."""

    async def read_memory(self, key: str) -> list[str]:
        """A bounded memory's ids, oldest first ([] when it was never written)."""

    async def append(self, append: Append) -> bytes | None:
        """Write all of `append` or nothing: None once written; the recorded inbox value
        if `append.inbox`'s key exists (a duplicate: nothing written, whatever the
        version); ConcurrencyError if the version moved."""


class DueIndex(Protocol):
    async def due(self, index: str, now_ms: int, limit: int) -> list[str]:
        """Up to `limit` members of `index` due at `now_ms` or earlier, earliest first."""


# Builds the store of one actor: (actor type, actor id, the SDK's state manager of it).
StoreFactory = Callable[[str, str, ActorStateManager[Any]], EventStore]


def stored_version(raw: bytes | None) -> int:
    """The version recorded in a snapshot document (0 when there is none)."""
    return int(json.loads(raw)["version"]) if raw else 0


def check_append(append: Append, snapshot: bytes | None, existing: Sequence[str]) -> None:
    """The fence, for stores that check in Python: raise unless `append` may be written."""
    found = stored_version(snapshot)
    if found != append.expected_version:
        raise ConcurrencyError(
            f"expected version {append.expected_version}, found {found}",
            expected=append.expected_version,
            found=found,
        )
    if existing:
        raise ConcurrencyError(
            f"event key {existing[0]} already exists",
            expected=append.expected_version,
            found=found,
        )


@dataclass
class _Actor:
    values: dict[str, bytes] = field(default_factory=dict)
    memories: dict[str, list[str]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class InMemoryStores:
    """Every actor's keys in process memory (TTLs are not enforced); publications are
    appended to `streams` and handed to `on_publish` (actors.toolkit.testing routes them)."""

    def __init__(self) -> None:
        self._actors: dict[tuple[str, str], _Actor] = {}
        self.streams: dict[str, list[bytes]] = {}
        self.on_publish: Callable[[Publication], None] | None = None
        self.indexes: dict[str, dict[str, int]] = {}  # index -> member -> due (epoch ms)

    def __call__(self, actor_type: str, actor_id: str, _: Any = None) -> InMemoryStore:
        return InMemoryStore(self._actors.setdefault((actor_type, actor_id), _Actor()), self)

    async def due(self, index: str, now_ms: int, limit: int) -> list[str]:
        entries = self.indexes.get(index, {})
        due = sorted((at, member) for member, at in entries.items() if at <= now_ms)
        return [member for _, member in due[:limit]]

    def set_due(self, due: Due) -> None:
        entries = self.indexes.setdefault(due.index, {})
        if due.at_ms is None:
            entries.pop(due.member, None)
        else:
            entries[due.member] = due.at_ms

    def record(self, publication: Publication) -> None:
        self.streams.setdefault(publication.stream, []).extend(publication.messages)
        if self.on_publish is not None:
            self.on_publish(publication)

    def keys(self, actor_type: str, actor_id: str) -> dict[str, bytes]:
        """A copy of one actor's keys (for tests)."""
        return dict(self._actors.get((actor_type, actor_id), _Actor()).values)


class InMemoryStore:
    def __init__(self, actor: _Actor, stores: InMemoryStores) -> None:
        self._actor = actor
        self._stores = stores

    async def read(self, key: str) -> bytes | None:
        return self._actor.values.get(key)

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._actor.values.get(key) for key in keys]

    async def read_memory(self, key: str) -> list[str]:
        return list(self._actor.memories.get(key, ()))

    async def append(self, append: Append) -> bytes | None:
        values = self._actor.values
        if append.inbox is not None and append.inbox.key in values:
            return values[append.inbox.key]
        existing = [e.key for e in append.events if e.key in values]
        check_append(append, values.get(SNAPSHOT_KEY), existing)
        if append.snapshot is not None:
            values[SNAPSHOT_KEY] = append.snapshot
        values.update({item.key: item.value for item in append.events})
        if append.inbox is not None:
            values[append.inbox.key] = append.inbox.value
        if append.publication is not None:
            self._stores.record(append.publication)
        if append.due is not None:
            self._stores.set_due(append.due)
        memories = self._actor.memories
        for remembered in append.memories:
            memories[remembered.key] = remembered.applied_to(memories.get(remembered.key, ()))
        return None


# One lock per state manager: several store objects over one manager append in turn.
_MANAGER_LOCKS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


class StateManagerStore:
    """The SDK's state manager (so the SDK's MockStateManager in actor tests).

    The fence is checked in Python under a lock per manager: it holds within one
    process only, which is all a mock needs. Never use it against a real sidecar.
    """

    def __init__(self, manager: ActorStateManager[Any]) -> None:
        self._manager = manager
        self._lock = _MANAGER_LOCKS.setdefault(manager, asyncio.Lock())

    @classmethod
    def factory(cls, _type: str, _id: str, manager: ActorStateManager[Any]) -> StateManagerStore:
        return cls(manager)

    async def read(self, key: str) -> bytes | None:
        found, value = await self._manager.try_get_state(key)
        return value if found else None

    async def read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [await self.read(key) for key in keys]

    async def read_memory(self, key: str) -> list[str]:
        raw = await self.read(key)  # a JSON list: the state manager holds documents
        return [str(item) for item in json.loads(raw)] if raw else []

    async def append(self, append: Append) -> bytes | None:
        if append.publication is not None or append.due is not None:
            raise TypeError("the SDK's state manager cannot publish or index within an append")
        async with self._lock:
            if append.inbox is not None and (seen := await self.read(append.inbox.key)):
                return seen
            existing = [e.key for e in append.events if await self.read(e.key) is not None]
            check_append(append, await self.read(SNAPSHOT_KEY), existing)
            writes = list(append.events) + ([append.inbox] if append.inbox else [])
            if append.snapshot is not None:
                writes.append(Item(SNAPSHOT_KEY, append.snapshot))
            for remembered in append.memories:
                ids = remembered.applied_to(await self.read_memory(remembered.key))
                writes.append(Item(remembered.key, json.dumps(ids).encode()))
            for item in writes:
                ttl = int(item.ttl.total_seconds()) if item.ttl else None
                await self._manager.set_state_ttl(item.key, item.value, ttl)
            await self._manager.save_state()
            return None
