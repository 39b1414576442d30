"""EventSourcedActor: the one base every Orderflow actor stands on.

One command = one turn:
    parse + validate the payload     invalid -> {"ok": false, "error": request.invalid}
    decide(state, command)           DomainError -> {"ok": false, "error": {...}}, unless
                                     the message id was applied: the original result
    evolve, wrap events in envelopes (event ids: uuid5 of aggregate and version)
    before_commit                    e.g. the order arms its deadline reminder
    append at the expected version   snapshot + one key per new event + the inbox entry
                                     + the ids new to each bounded memory (`State.
                                     memories`: kept in a list beside the snapshot, not
                                     in it), all-or-nothing (actors.toolkit.eventlog,
                                     .store);
                                     the inbox already holds the message id -> nothing
                                     written, the original result (a duplicate);
                                     ConcurrencyError -> drop the cached aggregate,
                                     publish nothing, fail the call (Dapr retries it and
                                     the retry reaches the current owner, which reloads)
    publish the new events           with `deps.streams` (the production actor host): inside
                                     the append, to the topic's stream (actors.toolkit.streams);
                                     otherwise through the sidecar after it, and a failure
                                     leaves them in the outbox (actors.toolkit.outbox)
    return {"ok": true, "result": view, "aggregate_version", "events", "duplicate"}
                                     ("events": [{event_id, type, aggregate_version, and
                                     the payload fields the spec's `answered` names}])
Unexpected exceptions propagate: the call fails and Dapr's resiliency retries it.
Nothing writes state outside a turn (no save on deactivation).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from dapr.actor import Actor, ActorId, Remindable
from dapr.actor.runtime.context import ActorRuntimeContext

from actors.toolkit import audit, codec, logs
from actors.toolkit.aggregate import AggregateSpec
from actors.toolkit.commands import Meta, parse_object, split_meta, validate_command
from actors.toolkit.domain import Command, Event, State
from actors.toolkit.envelope import EventEnvelope, failed, utcnow
from actors.toolkit.errors import DomainError
from actors.toolkit.eventlog import EventLog
from actors.toolkit.faults import CRASH_AFTER_SAVE, HOLD_PREFIX, HeldCalls
from actors.toolkit.inbox import DEFAULT_TTL
from actors.toolkit.metrics import ActorMetrics, CommitWatcher
from actors.toolkit.outbox import OUTBOX_REMINDER, Outbox, Reminders
from actors.toolkit.publisher import Publisher
from actors.toolkit.sdkstate import LoopStateManager
from actors.toolkit.store import (
    ConcurrencyError,
    Due,
    Publication,
    Remembered,
    Snapshot,
    StoreFactory,
    memory_key,
)
from actors.toolkit.streams import StreamPublishing
from actors.toolkit.tracing import current_traceparent, span
from actors.toolkit.upcasting import Upcasters

S = TypeVar("S", bound=State)
log = logging.getLogger("orderflow.actors")

__all__ = ["OUTBOX_REMINDER", "ActorDeps", "EventSourcedActor", "actor_factory"]


@dataclass(frozen=True)
class ActorDeps:
    """What the composition root hands every actor instance."""

    publisher: Publisher
    store: StoreFactory  # the fenced event store of each actor (actors.toolkit.store)
    clock: Callable[[], dt.datetime] = utcnow
    faults_enabled: bool = False  # ORDERFLOW_TEST_FAULTS=1: honour a payload's "fault"
    held: HeldCalls | None = None  # barriers for "hold:<token>" faults
    inbox_ttl: dt.timedelta = DEFAULT_TTL  # how long an applied message id is remembered
    metrics: ActorMetrics = dataclasses.field(default_factory=ActorMetrics)  # this process's
    # publish within the append (the store must be pub/sub's Redis); None: via `publisher`
    streams: StreamPublishing | None = None


def actor_factory(
    cls: type[EventSourcedActor[Any]], deps: ActorDeps, **settings: Any
) -> Callable[[ActorRuntimeContext, ActorId], Actor]:
    """For `register_actor(cls, actor_factory=...)`: every instance is built with `deps`
    and the actor type's own settings (e.g. the order's deadlines)."""

    def create(ctx: ActorRuntimeContext, actor_id: ActorId) -> Actor:
        return cls(ctx, actor_id, deps, **settings)

    return create


@dataclass(frozen=True)
class Head(Generic[S]):
    """The aggregate as this activation last loaded or wrote it."""

    snapshot: Snapshot
    state: S
    # bounded memories this activation found inside an older snapshot: the next commit
    # writes their lists whole (then the snapshot no longer carries them)
    rewrite: frozenset[str] = frozenset()


class EventSourcedActor(Actor, Remindable, Generic[S]):
    """Subclasses set `spec` and `state_type` and provide the decider; `@dispatchable`
    (actors.toolkit.interface) generates one method per command of the spec."""

    spec: ClassVar[AggregateSpec]
    state_type: ClassVar[type[State]]
    # derived from `spec` (see __init_subclass__)
    aggregate_type: ClassVar[str]
    topic: ClassVar[str]
    events: ClassVar[Mapping[str, type[Event]]]
    upcasters: ClassVar[Upcasters]  # each subclass gets its own (see __init_subclass__)
    id_field: ClassVar[str | None] = None  # a command field that must equal the actor id
    log_id_as: ClassVar[str | None] = None  # a log field the actor id fills (OrderActor: order_id)

    deps: ActorDeps
    _head: Head[S] | None = None
    _log: EventLog | None = None
    _box: Outbox | None = None
    _watching: CommitWatcher | None = None  # this activation's (the metrics it records)

    def __init__(
        self, ctx: ActorRuntimeContext, actor_id: ActorId, deps: ActorDeps, **settings: Any
    ) -> None:
        super().__init__(ctx, actor_id)
        self._state_manager = LoopStateManager(self)  # no thread hand-off per activation
        self._setup(deps, **settings)

    def _setup(self, deps: ActorDeps) -> None:
        """Take what the composition root hands this instance (called once, while it is
        built: by __init__, or by actors.toolkit.testing.activate). A subclass with
        settings of its own extends it with keyword arguments."""
        self.deps = deps

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "upcasters" not in cls.__dict__:  # never share one registry between actor types
            cls.upcasters = Upcasters()
        if "spec" in cls.__dict__:
            cls.aggregate_type, cls.topic = cls.spec.actor_type, cls.spec.topic
            cls.events = cls.spec.events

    # --- what a subclass provides -----------------------------------------------------------

    def initial_state(self) -> S:
        raise NotImplementedError

    def decide(self, state: S, command: Command) -> list[Event]:
        raise NotImplementedError

    def evolve(self, state: S, event: Event) -> S:
        raise NotImplementedError

    def view(self, state: S) -> dict[str, Any]:
        return state.model_dump(mode="json")

    async def before_commit(self, state: S, events: list[Event]) -> None:
        """Hook inside the turn before the append (e.g. arm a deadline reminder first, so
        no committed state ever lacks it). Anything it does must be safe to repeat."""

    def due(self, state: S) -> Due | None:
        """The actor's entry in a due index, written with every append that records events
        (e.g. the order's deadline); None: no index."""
        return None

    async def after_commit(self, state: S, events: list[Event]) -> None:
        """Hook after a successful append and publish."""

    # --- commands and queries ----------------------------------------------------------------

    async def invoke(self, method: str, payload: bytes | None = None) -> bytes:
        """Run the command method `method` (its wire name) as the runtime would."""
        command_type = self.spec.commands.get(method)
        if command_type is None:
            raise KeyError(f"{self.aggregate_type} has no method {method!r}")
        return await self._command(command_type, payload)

    async def _command(self, command_type: type[Command], payload: bytes | None) -> bytes:
        """One turn: its log scope (actor, correlation and order ids) and its span."""
        method = self.spec.method_for(command_type) or command_type.__name__
        with (
            logs.scope(**self._log_fields()),
            span(f"{self.aggregate_type}.{method}", actor__id=self.id.id),
        ):
            try:
                meta, command = self._parse(command_type, payload)
            except DomainError as exc:
                return failed(exc)
            # a field or nothing (pydantic's __getattr__ raises for a missing one: costly)
            order_id = command.__dict__.get("order_id")
            logs.annotate(correlation_id=meta.correlation_id or order_id or self.id.id)
            logs.annotate(order_id=order_id if isinstance(order_id, str) else None)
            return await self._execute(meta, command)

    def _log_fields(self) -> dict[str, str]:
        fields = {"actor_type": self.aggregate_type, "actor_id": self.id.id}
        if self.log_id_as:
            fields[self.log_id_as] = self.id.id
        return fields

    async def _execute(self, meta: Meta, command: Command, *, verified: bool = False) -> bytes:
        """Decide, commit (the append checks the inbox), publish: after a payload was parsed.

        A duplicate (its message id already in the inbox) is decided like any command, but
        the append finds the id, writes nothing and hands back the recorded result, which
        is answered again. So the happy path reads nothing before its append.

        A refusal writes nothing, so neither the inbox check nor the fence runs for it:
        before answering a DomainError to a command with a message id, look the id up (a
        duplicate gets its original answer, not a refusal decided on the later state),
        then check that the cached version is still the stored one (a host that got an
        actor back without having deactivated it), else reload and decide again."""
        head = await self._aggregate()
        try:
            with span("decide"):
                events = self.decide(head.state, command)
        except DomainError as exc:
            seen = await self._event_log().seen(meta.message_id) if meta.message_id else None
            if seen is not None:
                return self._duplicate(seen)
            if verified or await self._is_current(head):
                return failed(exc)
            self._forget()
            return await self._execute(meta, command, verified=True)
        return await self._commit(head, meta, events)

    def _duplicate(self, seen: dict[str, Any]) -> bytes:
        self.deps.metrics.of(self.aggregate_type).inbox_duplicates.inc()
        return _body({"ok": True, **seen, "duplicate": True})

    async def _is_current(self, head: Head[S]) -> bool:
        """Whether the store still holds the version this activation cached."""
        stored = await self._event_log().snapshot()
        current = (stored.version if stored else 0) == head.snapshot.version
        if not current:
            log.warning("%s: stale cache (version %d) dropped", self._name, head.snapshot.version)
        return current

    async def _query(self) -> bytes:
        head = await self._aggregate()
        return self._answer(head.state, head.snapshot.version)

    def _answer(self, state: S, version: int, **extra: Any) -> bytes:
        return _body(
            {"ok": True, "result": self.view(state), "aggregate_version": version, **extra}
        )

    def _parse(self, command_type: type[Command], payload: bytes | None) -> tuple[Meta, Command]:
        faults = self.deps.faults_enabled
        meta, fields = split_meta(parse_object(payload), faults_enabled=faults)
        if self.id_field is not None:
            fields.setdefault(self.id_field, self.id.id)
            if fields[self.id_field] != self.id.id:
                fields[self.id_field] = None  # refused below, naming the field
        return meta, validate_command(command_type, fields)

    async def _commit(self, head: Head[S], meta: Meta, events: list[Event]) -> bytes:
        state, base = head.state, head.snapshot.version
        envelopes: list[EventEnvelope] = []
        for offset, event in enumerate(events, start=1):
            state = self.evolve(state, event)
            envelopes.append(self._wrap(event, base + offset, meta))
        version = base + len(events)
        summary = [
            self.spec.summary(e.event_id, e.type, e.aggregate_version, e.payload) for e in envelopes
        ]
        result = {"result": self.view(state), "aggregate_version": version, "events": summary}
        box = self._outbox()
        # in the append, unless older events still wait in the outbox (they go first)
        streamed = self.deps.streams is not None and not box.pending
        snapshot = None
        memories: list[Remembered] = []
        if events:
            kept_apart = self.state_type.memories
            snapshot = Snapshot(
                version=version,
                published=version if streamed else box.published,
                state=state.model_dump(mode="json", exclude=set(kept_apart) or None),
                updated_at=envelopes[-1].occurred_at,
            )
            memories = _remembered(head, state, kept_apart)
        if snapshot or meta.message_id:
            await self._hold_if_asked(meta)
            await self.before_commit(state, events)
            due = self.due(state) if events else None
            seen = await self._append(
                head,
                meta,
                snapshot,
                envelopes,
                result,
                streamed=streamed,
                due=due,
                memories=memories,
            )
            if seen is not None:
                return self._duplicate(seen)
        if snapshot is not None:
            self._head = Head(snapshot, state)
            if streamed:
                box.published = version
            else:
                box.add(envelopes)
            self._watcher().committed(head.state, head.snapshot, envelopes)
        if meta.fault == CRASH_AFTER_SAVE:
            os.kill(os.getpid(), signal.SIGKILL)  # test-only: die between save and publish
        await self._outbox().flush()
        await self.after_commit(state, events)
        return _body({"ok": True, **result, "duplicate": False})

    async def _append(
        self,
        head: Head[S],
        meta: Meta,
        snapshot: Snapshot | None,
        envelopes: list[EventEnvelope],
        result: dict[str, Any],
        *,
        streamed: bool,
        due: Due | None = None,
        memories: Sequence[Remembered] = (),
    ) -> dict[str, Any] | None:
        """Append; None once written, or the recorded result of a duplicate."""
        inbox = (meta.message_id, result, self.deps.inbox_ttl) if meta.message_id else None
        counts = self.deps.metrics.of(self.aggregate_type)
        version = head.snapshot.version
        try:
            with span("commit", events=len(envelopes), expected_version=version, streamed=streamed):
                seen = await self._event_log().append(
                    expected_version=version,
                    snapshot=snapshot,
                    envelopes=envelopes,
                    inbox=inbox,
                    publish=self._publication if streamed else None,
                    due=due,
                    memories=memories,
                )
        except ConcurrencyError as exc:
            counts.fence_conflicts.inc()
            log.warning("%s: fence conflict, dropping this activation's state: %s", self._name, exc)
            self._forget()
            self._finish_hold(meta, "conflict")
            raise
        except Exception:
            self._forget()  # written or not, unknown: reload before deciding again
            self._finish_hold(meta, "error")
            raise
        if seen is not None:
            self._finish_hold(meta, "duplicate")
            return seen
        counts.commits.inc()
        self._finish_hold(meta, "committed")
        return None

    def _publication(self, documents: list[tuple[EventEnvelope, bytes]]) -> Publication:
        """The stream entries of a commit (called inside its span: deliveries hang under it)."""
        streams = self.deps.streams
        if streams is None:
            raise RuntimeError("no stream publishing configured")
        return streams.publication(self.topic, documents, traceparent=current_traceparent())

    def _wrap(self, event: Event, version: int, meta: Meta) -> EventEnvelope:
        return EventEnvelope.wrap(
            event,
            aggregate_type=self.aggregate_type,
            aggregate_id=self.id.id,
            aggregate_version=version,
            correlation_id=meta.correlation_id or self.id.id,
            causation_id=meta.causation_id or meta.message_id,
            traceparent=current_traceparent(),
            occurred_at=self.deps.clock(),
        )

    # --- the event log, the outbox, faults -------------------------------------------------

    @property
    def _name(self) -> str:
        return f"{self.aggregate_type}/{self.id.id}"

    def _event_log(self) -> EventLog:
        if self._log is None:
            store = self.deps.store(self.aggregate_type, self.id.id, self._state_manager)
            self._log = EventLog(store, name=self._name, upcasters=self.upcasters)
        return self._log

    def _outbox(self) -> Outbox:
        if self._box is None:
            self._box = Outbox(
                publisher=self.deps.publisher,
                topic=self.topic,
                reminders=Reminders(self.register_reminder, self.unregister_reminder),
                name=self._name,
                metrics=self.deps.metrics.of(self.aggregate_type).outbox,
            )
        return self._box

    def _watcher(self) -> CommitWatcher:
        if self._watching is None:
            self._watching = self.deps.metrics.watcher(self.aggregate_type)
        return self._watching

    def _forget(self) -> None:
        """Drop what this activation cached: the next call reloads from the store.

        The outbox keeps its watermark: versions this activation published were appended
        by it (it publishes only after its append succeeded), so they are history."""
        self._head = None
        self._outbox().load((), self._outbox().published)

    async def _aggregate(self) -> Head[S]:
        if self._head is None:
            event_log = self._event_log()
            snapshot = await event_log.snapshot()
            if snapshot is None:
                head = Head(Snapshot(), self.initial_state())
            else:
                document, rewrite = await _with_memories(
                    event_log, snapshot.state, self.state_type.memories
                )
                state = self.state_type.model_validate(document)
                head = Head(snapshot, state, rewrite)  # type: ignore[arg-type]
            published = max(head.snapshot.published, self._outbox().published)
            pending = await event_log.read_events(published + 1, head.snapshot.version)
            self._outbox().load(pending, published)
            self._head = head
        return self._head

    async def _hold_if_asked(self, meta: Meta) -> None:
        held = self.deps.held
        if held is not None and meta.fault.startswith(HOLD_PREFIX):
            await held.hold(meta.fault.removeprefix(HOLD_PREFIX))

    def _finish_hold(self, meta: Meta, outcome: str) -> None:
        held = self.deps.held
        if held is not None and meta.fault.startswith(HOLD_PREFIX):
            held.finish(meta.fault.removeprefix(HOLD_PREFIX), outcome)

    async def _on_activate(self) -> None:
        await self._aggregate()
        await self._outbox().flush()

    async def _on_deactivate(self) -> None:
        if self._box is not None:  # what it still holds leaves this process's backlog gauge
            self._box.load((), self._box.published)

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: dt.timedelta,
        period: dt.timedelta,
        ttl: dt.timedelta | None = None,
    ) -> None:
        with (
            logs.scope(**self._log_fields()),
            span(f"{self.aggregate_type}.remind {name}", actor__id=self.id.id),
        ):
            if name == OUTBOX_REMINDER:
                self._outbox().retry_armed = True  # it fired, so it exists (maybe from before)
                await self._aggregate()
                await self._outbox().flush()  # unregisters it once nothing is left to send
                return
            await self.on_reminder(name, state)

    async def on_reminder(self, name: str, state: bytes) -> None:
        log.warning("%s: unknown reminder %r", self._name, name)

    # --- EventSourcedInterface, implemented once ---------------------------------------------

    async def get(self) -> bytes:
        return await self._query()

    async def history(self, payload: bytes) -> bytes:
        head = await self._aggregate()
        page = await audit.history(self._event_log(), head.snapshot.version, payload)
        if isinstance(page, bytes):
            return page
        return self._answer_raw(page)

    async def replay(self) -> bytes:
        head = await self._aggregate()
        report = await audit.replay(
            self._event_log(),
            head.snapshot.version,
            fold=self.fold,
            current=head.state,
            view=self.view,
        )
        return self._answer_raw(report)

    def fold(self, envelopes: list[EventEnvelope]) -> S:
        """The state `envelopes` build from the initial state (upcast payloads, evolve)."""
        state = self.initial_state()
        for env in envelopes:
            state = self.evolve(state, self.events[env.type].model_validate(env.payload))
        return state

    def _answer_raw(self, result: dict[str, Any]) -> bytes:
        version = self._head.snapshot.version if self._head else 0
        return _body({"ok": True, "result": result, "aggregate_version": version})


def _body(body: dict[str, Any]) -> bytes:
    return codec.dumps(body)


# --- bounded memories, stored beside the snapshot -----------------------------------------


async def _with_memories(
    event_log: EventLog, document: dict[str, Any], memories: Mapping[str, int]
) -> tuple[dict[str, Any], frozenset[str]]:
    """The state document with each bounded memory read from its list, and the memories
    an older snapshot still carried (merged with their list: ids a host that predates the
    lists added come last, as the newest; the next commit writes those lists whole)."""
    if not memories:
        return document, frozenset()
    document, rewrite = dict(document), set()
    for name, limit in memories.items():
        ids = await event_log.memory(name)
        if name in document:
            inside = [str(i) for i in document[name]]
            held = set(inside)
            ids = [i for i in ids if i not in held] + inside
            ids = ids[-limit:] if limit > 0 else ids
            rewrite.add(name)
        document[name] = ids
    return document, frozenset(rewrite)


def _remembered(head: Head[Any], state: Any, memories: Mapping[str, int]) -> list[Remembered]:
    """What a commit adds to each bounded memory: the ids new to it, appended to its list
    (the list keeps the newest `limit`). A memory that changed any other way (or one read
    from an older snapshot) is written whole."""
    written = []
    for name, limit in memories.items():
        before, after = tuple(getattr(head.state, name)), tuple(getattr(state, name))
        if name in head.rewrite:
            written.append(Remembered(memory_key(name), after, limit, replace=True))
            continue
        if after == before:
            continue
        known = set(before)
        added = tuple(i for i in after if i not in known)
        if (*before, *added)[-limit:] == after:
            written.append(Remembered(memory_key(name), added, limit))
        else:
            written.append(Remembered(memory_key(name), after, limit, replace=True))
    return written
