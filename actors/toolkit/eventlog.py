"""One aggregate's stored history: load the head, read events, append at an expected version.

The event log knows keys and documents, never Dapr or a transport: it stands on an
`EventStore` (actors.toolkit.store), whose append is fenced by the expected version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Final

from actors.toolkit import codec
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.inbox import inbox_key
from actors.toolkit.store import (
    SNAPSHOT_KEY,
    Append,
    Due,
    EventStore,
    Item,
    Publication,
    Remembered,
    Snapshot,
    event_key,
    memory_key,
)
from actors.toolkit.upcasting import Upcasters

READ_BATCH: Final = 100  # event keys per round trip when paging through history


class EventLog:
    def __init__(self, store: EventStore, *, name: str, upcasters: Upcasters) -> None:
        self._store = store
        self._name = name  # "<ActorType>/<id>", for messages
        self._upcasters = upcasters

    async def snapshot(self) -> Snapshot | None:
        raw = await self._store.read(SNAPSHOT_KEY)
        return Snapshot.model_validate_json(raw) if raw else None

    async def memory(self, field_name: str) -> list[str]:
        """The ids of one bounded memory of the state, oldest first."""
        return await self._store.read_memory(memory_key(field_name))

    async def seen(self, message_id: str) -> dict[str, Any] | None:
        """The result recorded for a message id this aggregate already applied."""
        raw = await self._store.read(inbox_key(message_id))
        return dict(codec.loads(raw)) if raw is not None else None

    async def read_events(self, first: int, last: int) -> list[EventEnvelope]:
        """Envelopes of versions first..last (upcast to the newest schema), in order."""
        found: list[EventEnvelope] = []
        for start in range(first, last + 1, READ_BATCH):
            versions = range(start, min(start + READ_BATCH, last + 1))
            raws = await self._store.read_many([event_key(v) for v in versions])
            for version, raw in zip(versions, raws, strict=True):
                if raw is None:
                    raise RuntimeError(f"{self._name}: no event {version}")
                found.append(self._upcasters.upcast(EventEnvelope.model_validate_json(raw)))
        return found

    async def append(
        self,
        *,
        expected_version: int,
        snapshot: Snapshot | None,
        envelopes: Sequence[EventEnvelope],
        inbox: tuple[str, dict[str, Any], dt.timedelta] | None = None,
        publish: Callable[[list[tuple[EventEnvelope, bytes]]], Publication] | None = None,
        due: Due | None = None,
        memories: Sequence[Remembered] = (),
    ) -> dict[str, Any] | None:
        """Snapshot, events and inbox entry at once; ConcurrencyError if the version moved.

        `publish` turns (envelope, its document) pairs into stream entries written in the
        same append (actors.toolkit.streams); `due` sets or removes the actor's entry in a
        due index, in the same append too. Returns None once written, or, when the
        inbox already holds the message id, the result recorded for it (a duplicate:
        nothing was written). `memories` appends ids to bounded memories, in the same
        append too."""
        entry = None
        if inbox is not None:
            message_id, result, ttl = inbox
            entry = Item(inbox_key(message_id), codec.dumps(result), ttl)
        documents = [(e, e.model_dump_json().encode()) for e in envelopes]
        seen = await self._store.append(
            Append(
                expected_version=expected_version,
                snapshot=snapshot.model_dump_json().encode() if snapshot else None,
                events=tuple(Item(event_key(e.aggregate_version), doc) for e, doc in documents),
                inbox=entry,
                publication=publish(documents) if publish and documents else None,
                due=due,
                memories=tuple(memories),
            )
        )
        return dict(codec.loads(seen)) if seen is not None else None
