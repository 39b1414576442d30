"""EventSourcedActor: the one base every Orderflow actor stands on.

One command = one turn:
    parse + validate the payload     invalid -> {"ok": false, "error": request.invalid}
    inbox                            a message id already applied -> the original result
    decide(state, command)           DomainError -> {"ok": false, "error": {...}}
    evolve, wrap events in envelopes
    save ONE state transaction       snapshot (state, version, outbox watermark)
                                     + one key per new event + the inbox entry
                                     (actors.toolkit.store, actors.toolkit.inbox)
    publish the new events           failure -> they stay in the outbox; a retry
                                     reminder is registered (never on the happy path)
    return {"ok": true, "result": view, "aggregate_version", "events", "duplicate"}
Unexpected exceptions propagate: the call fails and Dapr's resiliency retries it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from dapr.actor import Actor, ActorId, Remindable
from dapr.actor.runtime.context import ActorRuntimeContext

from actors.toolkit import audit
from actors.toolkit.commands import Meta, parse_object, split_meta, validate_command
from actors.toolkit.domain import Command, Event, State
from actors.toolkit.envelope import EventEnvelope, failed
from actors.toolkit.errors import DomainError
from actors.toolkit.inbox import DEFAULT_TTL, inbox_key
from actors.toolkit.publisher import Publisher, PublishError
from actors.toolkit.store import (
    SNAPSHOT_KEY,
    ActorStore,
    Item,
    SidecarStore,
    Snapshot,
    StateManagerStore,
    event_key,
)
from actors.toolkit.tracing import current_traceparent
from actors.toolkit.upcasting import Upcasters

S = TypeVar("S", bound=State)
log = logging.getLogger("orderflow.actors")

OUTBOX_REMINDER = "outbox-retry"
OUTBOX_RETRY_DUE = dt.timedelta(seconds=1)
OUTBOX_RETRY_PERIOD = dt.timedelta(seconds=5)
CRASH_AFTER_SAVE = "crash_after_save"
READ_BATCH = 50  # concurrent event reads when paging through history


@dataclass(frozen=True)
class ActorDeps:
    """What the composition root hands every actor instance."""

    publisher: Publisher
    faults_enabled: bool = False  # ORDERFLOW_TEST_FAULTS=1: honour a payload's "fault"
    timeouts: Mapping[str, dt.timedelta] = dataclasses.field(default_factory=dict)  # by name
    inbox_ttl: dt.timedelta = DEFAULT_TTL  # how long an applied message id is remembered


def actor_factory(
    cls: type[EventSourcedActor[Any]], deps: ActorDeps
) -> Callable[[ActorRuntimeContext, ActorId], Actor]:
    """For `register_actor(cls, actor_factory=...)`: every instance gets `deps`."""

    def create(ctx: ActorRuntimeContext, actor_id: ActorId) -> Actor:
        actor = cls(ctx, actor_id)
        actor.deps = deps
        return actor

    return create


@dataclass(frozen=True)
class Loaded(Generic[S]):
    snapshot: Snapshot
    state: S
    pending: tuple[EventEnvelope, ...] = ()  # saved, not yet confirmed published
    published: int = 0  # every version up to this one is confirmed published


class EventSourcedActor(Actor, Remindable, Generic[S]):
    """Subclasses set the class attributes and write one-line methods over `_command`."""

    aggregate_type: ClassVar[str]
    topic: ClassVar[str]
    state_type: ClassVar[type[State]]
    events: ClassVar[Mapping[str, type[Event]]]
    upcasters: ClassVar[Upcasters] = Upcasters()
    id_field: ClassVar[str | None] = None  # a command field that must equal the actor id

    deps: ActorDeps | None = None
    _loaded: Loaded[S] | None = None
    _retry_armed: bool = False

    # --- what a subclass provides -----------------------------------------------------------

    def initial_state(self) -> S:
        raise NotImplementedError

    def decide(self, state: S, command: Command) -> list[Event]:
        raise NotImplementedError

    def evolve(self, state: S, event: Event) -> S:
        raise NotImplementedError

    def view(self, state: S) -> dict[str, Any]:
        return state.model_dump(mode="json")

    async def after_commit(self, state: S, events: list[Event]) -> None:
        """Hook after a successful save (e.g. arm a deadline reminder)."""

    # --- commands and queries ----------------------------------------------------------------

    async def _command(self, command_type: type[Command], payload: bytes | None) -> bytes:
        try:
            meta, command = self._parse(command_type, payload)
        except DomainError as exc:
            return failed(exc)
        return await self._execute(meta, command)

    async def _execute(self, meta: Meta, command: Command) -> bytes:
        """Inbox, decide, commit, publish: the pipeline after a payload was parsed."""
        loaded = await self._aggregate()
        if meta.message_id:
            seen = await self._store().read(inbox_key(meta.message_id))
            if seen is not None:
                return _body({"ok": True, **json.loads(seen), "duplicate": True})
        try:
            events = self.decide(loaded.state, command)
        except DomainError as exc:
            return failed(exc)
        return await self._commit(loaded, meta, events)

    async def _query(self) -> bytes:
        loaded = await self._aggregate()
        return self._answer(loaded.state, loaded.snapshot.version)

    def _answer(self, state: S, version: int, **extra: Any) -> bytes:
        return _body(
            {"ok": True, "result": self.view(state), "aggregate_version": version, **extra}
        )

    def _parse(self, command_type: type[Command], payload: bytes | None) -> tuple[Meta, Command]:
        deps = self._deps()
        meta, fields = split_meta(parse_object(payload), faults_enabled=deps.faults_enabled)
        if self.id_field is not None:
            fields.setdefault(self.id_field, self.id.id)
            if fields[self.id_field] != self.id.id:
                fields[self.id_field] = None  # refused below, naming the field
        return meta, validate_command(command_type, fields)

    async def _commit(self, loaded: Loaded[S], meta: Meta, events: list[Event]) -> bytes:
        snapshot, state = loaded.snapshot, loaded.state
        envelopes: list[EventEnvelope] = []
        for offset, event in enumerate(events, start=1):
            state = self.evolve(state, event)
            envelopes.append(self._wrap(event, snapshot.version + offset, meta))
        version = snapshot.version + len(events)
        summary = [
            {"event_id": e.event_id, "type": e.type, "aggregate_version": e.aggregate_version}
            for e in envelopes
        ]
        result = {"result": self.view(state), "aggregate_version": version, "events": summary}
        items: list[Item] = []
        if meta.message_id:
            inbox = Item(inbox_key(meta.message_id), json.dumps(result).encode(), self._inbox_ttl())
            items.append(inbox)
        if events:
            snapshot = Snapshot(
                version=version,
                published=loaded.published,
                state=state.model_dump(mode="json"),
                updated_at=envelopes[-1].occurred_at,
            )
            items.append(Item(SNAPSHOT_KEY, snapshot.model_dump_json().encode()))
            items += [
                Item(event_key(e.aggregate_version), e.model_dump_json().encode())
                for e in envelopes
            ]
        if items:
            await self._store().write(items)
        self._loaded = Loaded(snapshot, state, (*loaded.pending, *envelopes), loaded.published)
        if meta.fault == CRASH_AFTER_SAVE:
            os.kill(os.getpid(), signal.SIGKILL)  # test-only: die between save and publish
        await self._flush_outbox()
        await self.after_commit(state, events)
        return _body({"ok": True, **result, "duplicate": False})

    def _wrap(self, event: Event, version: int, meta: Meta) -> EventEnvelope:
        return EventEnvelope.wrap(
            event,
            aggregate_type=self.aggregate_type,
            aggregate_id=self.id.id,
            aggregate_version=version,
            correlation_id=meta.correlation_id or self.id.id,
            causation_id=meta.causation_id or meta.message_id,
            traceparent=current_traceparent(),
        )

    # --- loading, the outbox ---------------------------------------------------------------

    def _inbox_ttl(self) -> dt.timedelta:
        return self._deps().inbox_ttl

    def _deps(self) -> ActorDeps:
        if self.deps is None:
            raise RuntimeError(f"{type(self).__name__} has no ActorDeps: use actor_factory()")
        return self.deps

    def _store(self) -> ActorStore:
        if self._runtime_ctx is None:  # the SDK's mock actor
            return StateManagerStore(self._state_manager)
        return SidecarStore(self._runtime_ctx.dapr_client, self.aggregate_type, self.id.id)

    async def _aggregate(self) -> Loaded[S]:
        if self._loaded is None:
            raw = await self._store().read(SNAPSHOT_KEY)
            snapshot = Snapshot.model_validate_json(raw) if raw else Snapshot()
            state = self.state_type.model_validate(snapshot.state) if raw else self.initial_state()
            pending = await self.read_events(snapshot.published + 1, snapshot.version)
            self._loaded = Loaded(snapshot, state, tuple(pending), snapshot.published)  # type: ignore[arg-type]
        return self._loaded

    async def read_events(self, first: int, last: int) -> list[EventEnvelope]:
        """Envelopes of versions first..last (upcast to the newest schema), in order."""
        store = self._store()
        found: list[EventEnvelope] = []
        for start in range(first, last + 1, READ_BATCH):
            versions = range(start, min(start + READ_BATCH, last + 1))
            raws = await asyncio.gather(*(store.read(event_key(v)) for v in versions))
            for version, raw in zip(versions, raws, strict=True):
                if raw is None:
                    raise RuntimeError(f"{self.aggregate_type}/{self.id.id}: no event {version}")
                found.append(self.upcasters.upcast(EventEnvelope.model_validate_json(raw)))
        return found

    async def _flush_outbox(self) -> None:
        loaded = self._loaded
        if loaded is None or not loaded.pending:
            await self._disarm_retry()
            return
        try:
            await self._deps().publisher.publish(
                self.topic, loaded.pending, traceparent=current_traceparent()
            )
        except PublishError as exc:
            log.warning(
                "%s/%s: publish failed, kept in outbox: %s", self.aggregate_type, self.id.id, exc
            )
            await self._arm_retry()
            return
        self._loaded = dataclasses.replace(loaded, pending=(), published=loaded.snapshot.version)
        await self._disarm_retry()

    async def _disarm_retry(self) -> None:
        if self._retry_armed:
            await self.unregister_reminder(OUTBOX_REMINDER)
            self._retry_armed = False

    async def _arm_retry(self) -> None:
        if not self._retry_armed:
            await self.register_reminder(
                OUTBOX_REMINDER, b"", OUTBOX_RETRY_DUE, OUTBOX_RETRY_PERIOD
            )
            self._retry_armed = True

    async def _on_activate(self) -> None:
        await self._aggregate()
        await self._flush_outbox()

    async def _on_deactivate(self) -> None:
        """Persist the outbox watermark, so a reactivation re-sends nothing already sent."""
        loaded = self._loaded
        if loaded is None or loaded.published <= loaded.snapshot.published:
            return
        snapshot = loaded.snapshot.model_copy(update={"published": loaded.published})
        await self._store().write([Item(SNAPSHOT_KEY, snapshot.model_dump_json().encode())])

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: dt.timedelta,
        period: dt.timedelta,
        ttl: dt.timedelta | None = None,
    ) -> None:
        if name == OUTBOX_REMINDER:
            self._retry_armed = True  # it fired, so it exists (maybe from before a restart)
            await self._aggregate()
            await self._flush_outbox()  # unregisters it once nothing is left to send
            return
        await self.on_reminder(name, state)

    async def on_reminder(self, name: str, state: bytes) -> None:
        log.warning("%s/%s: unknown reminder %r", self.aggregate_type, self.id.id, name)

    # --- EventSourcedInterface, implemented once ---------------------------------------------

    async def get(self) -> bytes:
        return await self._query()

    async def history(self, payload: bytes) -> bytes:
        page = await audit.history(self, payload)
        if isinstance(page, bytes):
            return page
        return self._answer_raw(page)

    async def replay(self) -> bytes:
        return self._answer_raw(await audit.replay(self))

    def _answer_raw(self, result: dict[str, Any]) -> bytes:
        version = self._loaded.snapshot.version if self._loaded else 0
        return _body({"ok": True, "result": result, "aggregate_version": version})


def _body(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
