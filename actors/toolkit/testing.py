"""An in-memory Dapr sidecar running the real actors: the one fake the tests need.

    InMemorySidecar().request(method, path, ...) -> (status, body)   a SidecarTransport
      POST /v1.0/actors/<type>/<id>/method/<m>   the real actor class through the SDK's
                                                 ActorManager, one activation per (type,
                                                 id), one turn at a time, over one
                                                 InMemoryStores -> 200 + the actor's body;
                                                 unknown type or method, or the actor
                                                 raised -> 500 ERR_ACTOR_INVOKE_METHOD
      POST /v1.0/publish/<pubsub>/<topic>        recorded in .published -> 204 (the
                                                 actors publish through it too when
                                                 built with publish_in_append=False)
    the actors' commits                          with publish_in_append=True (the
                                                 default, as the actor host runs them):
                                                 the stream entries their appends write
                                                 are recorded in .published too
      anything else                              404 ERR_NOT_FOUND
    .settle()          deliver what was published through the event router given as
                       `router=` (and what those calls publish) until nothing is
                       pending: the saga in memory
    .fire_reminders()  fire the reminders the actors registered
    .sweep_deadlines() what the deadline sweepers' reminders do: check every due order
    .fail() / .answer() / .before_next()   faults and canned answers for the next calls
    .serve()           the same on a 127.0.0.1 port (apps that build their own SidecarHTTP)
    activate(cls, id, deps)   the one place an actor instance is built (the SDK's MockActor)

Production code runs unchanged on top: ActorClient(sidecar), SidecarPublisher(sidecar, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from aiohttp import web
from dapr.actor import ActorId
from dapr.actor.runtime._reminder_data import ActorReminderData
from dapr.actor.runtime._type_information import ActorTypeInformation
from dapr.actor.runtime.context import ActorRuntimeContext
from dapr.actor.runtime.manager import ActorManager
from dapr.actor.runtime.mock_actor import MockActor

from actors.catalog import PUBSUB
from actors.inventory.actor import InventoryActor
from actors.order.actor import OrderActor
from actors.order.deadlines import SHARDS, sweep
from actors.toolkit.actor import ActorDeps, EventSourcedActor
from actors.toolkit.client import ActorClient, RuntimeUnavailableError
from actors.toolkit.envelope import utcnow
from actors.toolkit.errors import DomainError
from actors.toolkit.publisher import SidecarPublisher
from actors.toolkit.router import DeadLetterError, EventRouter, Events, Plan
from actors.toolkit.serializer import RawJSONSerializer
from actors.toolkit.sidecar import SidecarActorClient
from actors.toolkit.store import InMemoryStores, Publication
from actors.toolkit.streams import StreamPublishing
from actors.wallet.actor import WalletActor
from actors.watchers import build_actor_metrics

A = TypeVar("A", bound=EventSourcedActor[Any])

ACTORS: Final = (InventoryActor, WalletActor, OrderActor)
SOURCE: Final = "in-memory-sidecar"  # the CloudEvents' source
_METHOD = re.compile(r"/v1\.0/actors/([^/]+)/([^/]+)/method/([^/]+)")
_PUBLISH = re.compile(r"/v1\.0/publish/([^/]+)/([^/]+)")


def activate(
    cls: type[A],
    actor_id: str,
    deps: ActorDeps,
    *,
    initstate: dict[str, Any] | None = None,
    **settings: Any,
) -> A:
    """An instance of `cls` on the SDK's mock actor (mock state manager and reminders),
    built with `deps` and the actor type's own `settings`, as `actor_factory` builds it."""

    class Activated(MockActor, cls):  # type: ignore[valid-type,misc]
        def __init__(self) -> None:
            MockActor.__init__(self, actor_id, initstate)
            self._setup(deps, **settings)

    Activated.__name__ = Activated.__qualname__ = cls.__name__
    actor: A = Activated()
    return actor


def daprd_error(code: str, message: str) -> bytes:
    """An error body as daprd writes it."""
    return json.dumps({"errorCode": code, "message": message}).encode()


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    content: bytes
    params: Mapping[str, str]
    headers: Mapping[str, str]
    peer: str = ""  # "host:port" of the client connection (served over TCP only)


@dataclass(frozen=True)
class ActorCall:
    actor_type: str
    actor_id: str
    method: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Published:
    """One publish the sidecar accepted."""

    pubsub: str
    topic: str
    data: Any  # the published JSON document (an event envelope, for our publishers)
    event_id: str
    event_type: str
    headers: Mapping[str, str]

    def cloud_event(self) -> dict[str, Any]:
        """The CloudEvent daprd delivers to subscribers."""
        return {
            "specversion": "1.0",
            "id": self.event_id,
            "type": self.event_type,
            "source": SOURCE,
            "topic": self.topic,
            "pubsubname": self.pubsub,
            "datacontenttype": "application/json",
            "traceparent": self.headers.get("traceparent", ""),
            "data": self.data,
        }


@dataclass(frozen=True)
class Refused:
    """A routed event that can never apply (what the actor host dead-letters)."""

    topic: str
    code: str
    reason: str
    event_id: str
    target: str = ""  # "<type>/<id>/<method>" when an actor refused the delivery


@dataclass
class _Rule:
    path: str
    remaining: int | None  # None: until recover()
    status: int | None = None  # None with no error: serve the request as usual
    body: bytes = b""
    error: BaseException | None = None
    before: Callable[[], Awaitable[None]] | None = None


class InMemorySidecar:
    """See the module docstring. `published`, `requests`, `refused` are the records."""

    def __init__(
        self,
        *,
        actors: Iterable[type[EventSourcedActor[Any]]] = ACTORS,
        clock: Callable[[], dt.datetime] = utcnow,
        settings: Mapping[type[EventSourcedActor[Any]], Mapping[str, Any]] | None = None,
        router: EventRouter | None = None,
        pubsub: str = PUBSUB,
        publish_in_append: bool = True,
    ) -> None:
        self.stores = InMemoryStores()
        self.pubsub = pubsub
        self.deps = ActorDeps(
            publisher=SidecarPublisher(self, pubsub=pubsub),
            store=self.stores,
            clock=clock,
            metrics=build_actor_metrics(),  # self.deps.metrics.registry: what the actors count
            streams=StreamPublishing(pubsub, source=SOURCE) if publish_in_append else None,
        )
        self.stores.on_publish = self._streamed
        self._settings = dict(settings or {})  # an actor type's own, e.g. the order's deadlines
        self.router = router  # actors.reactions.build_router() to route events in settle()
        self.published: list[Published] = []
        self.requests: list[Request] = []
        self.refused: list[Refused] = []
        self.activations: dict[tuple[str, str], EventSourcedActor[Any]] = {}
        self._managers = {cls.__name__: self._manager(cls) for cls in actors}
        self._turns: dict[tuple[str, str], asyncio.Lock] = {}
        self._rules: list[_Rule] = []
        self._pending: list[Published] = []  # published, not yet routed by settle()
        self._server: web.Server | None = None

    def _manager(self, cls: type[EventSourcedActor[Any]]) -> ActorManager:
        def create(_: ActorRuntimeContext, actor_id: ActorId) -> EventSourcedActor[Any]:
            actor = activate(cls, actor_id.id, self.deps, **self._settings.get(cls, {}))
            self.activations[(cls.__name__, actor_id.id)] = actor
            return actor

        ctx = ActorRuntimeContext(
            ActorTypeInformation.create(cls),
            RawJSONSerializer(),
            RawJSONSerializer(raw_reads=True),
            SidecarActorClient(self),
            create,
        )
        return ActorManager(ctx)

    # --- the transport ------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        peer: str = "",
    ) -> tuple[int, bytes]:
        raw = content.encode() if isinstance(content, str) else (content or b"")
        request = Request(method, path, raw, dict(params or {}), dict(headers or {}), peer)
        self.requests.append(request)
        for rule in self._take_rules(path):
            if rule.before is not None:
                await rule.before()
            if rule.error is not None:
                raise rule.error
            if rule.status is not None:
                return rule.status, rule.body
        if method == "POST" and (match := _METHOD.fullmatch(path)):
            return await self._invoke(match[1], match[2], match[3], raw)
        if method == "POST" and (match := _PUBLISH.fullmatch(path)):
            return self._publish(match[1], match[2], request)
        return 404, daprd_error("ERR_NOT_FOUND", f"{method} {path}")

    async def _invoke(
        self, actor_type: str, actor_id: str, method: str, raw: bytes
    ) -> tuple[int, bytes]:
        manager = self._managers.get(actor_type)
        if manager is None:
            return 500, daprd_error("ERR_ACTOR_INVOKE_METHOD", f"no actor type {actor_type}")
        try:
            async with self._turn(actor_type, actor_id):
                body = await manager.dispatch(ActorId(actor_id), method, raw)
        except Exception as exc:  # the app answered 500, daprd passes it on
            return 500, daprd_error("ERR_ACTOR_INVOKE_METHOD", repr(exc))
        return 200, body

    def _turn(self, actor_type: str, actor_id: str) -> asyncio.Lock:
        """Dapr's turn-based concurrency: one call at a time per actor."""
        return self._turns.setdefault((actor_type, actor_id), asyncio.Lock())

    def _publish(self, pubsub: str, topic: str, request: Request) -> tuple[int, bytes]:
        if pubsub != self.pubsub:
            return 404, daprd_error("ERR_PUBSUB_NOT_FOUND", f"pubsub {pubsub} not found")
        try:
            data = json.loads(request.content)
        except ValueError:
            return 400, daprd_error("ERR_PUBSUB_CLOUD_EVENTS_SER", "not JSON")
        event = Published(
            pubsub,
            topic,
            data,
            event_id=request.params.get("metadata.cloudevent.id", ""),
            event_type=request.params.get("metadata.cloudevent.type", ""),
            headers=request.headers,
        )
        self.published.append(event)
        self._pending.append(event)
        return 204, b""

    def _streamed(self, publication: Publication) -> None:
        """The stream entries an append wrote, as daprd would deliver them."""
        for message in publication.messages:
            cloud_event = json.loads(message)
            event = Published(
                cloud_event["pubsubname"],
                publication.stream,
                cloud_event["data"],
                event_id=cloud_event["id"],
                event_type=cloud_event["type"],
                headers={"traceparent": cloud_event["traceparent"]},
            )
            self.published.append(event)
            self._pending.append(event)

    # --- what a test reads ---------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[ActorCall]:
        """The actor method calls received (all, or those of one wire method name)."""
        found: list[ActorCall] = []
        for request in self.requests:
            match = _METHOD.fullmatch(request.path)
            if match and method in (None, match[3]):
                payload = json.loads(request.content) if request.content else {}
                found.append(ActorCall(match[1], match[2], match[3], payload))
        return found

    def events(self, topic: str | None = None) -> list[Any]:
        """The published documents (all, or one topic's), oldest first."""
        return [p.data for p in self.published if topic in (None, p.topic)]

    def reminders(self) -> dict[tuple[str, str, str], ActorReminderData]:
        """Registered reminders by (actor type, actor id, name)."""
        found: dict[tuple[str, str, str], ActorReminderData] = {}
        for (actor_type, actor_id), actor in self.activations.items():
            registered = actor._state_manager._mock_reminders  # type: ignore[attr-defined]
            for name, reminder in registered.items():
                found[(actor_type, actor_id, name)] = reminder
        return found

    # --- moving time and events along ----------------------------------------------------------

    async def fire_reminders(
        self, name: str | None = None, *, actor_type: str | None = None, actor_id: str | None = None
    ) -> int:
        """Fire each matching registered reminder once, as daprd does; how many fired."""
        fired = 0
        for (a_type, a_id, r_name), reminder in self.reminders().items():
            wanted = (name or r_name, actor_type or a_type, actor_id or a_id)
            if wanted != (r_name, a_type, a_id):
                continue
            body = RawJSONSerializer().serialize(reminder.as_dict())
            async with self._turn(a_type, a_id):
                await self._managers[a_type].fire_reminder(ActorId(a_id), r_name, body)
            fired += 1
        return fired

    async def sweep_deadlines(self) -> int:
        """Sweep every shard of the orders' due index at the clock's now (the real sweep,
        actors.order.deadlines, over the in-memory store); how many orders were checked."""
        actors, now = ActorClient(self), self.deps.clock()
        checked = 0
        for shard in range(SHARDS):
            checked += (await sweep(self.stores, actors, shard, now)).checked
        return checked

    async def settle(self, *, max_rounds: int = 50) -> int:
        """Route published events to actors until none is pending; how many were routed.

        As the actor host: a refusal (DeadLetter, DomainError) goes to `refused`; an
        unavailable actor or sidecar redelivers the event in the next round."""
        if self.router is None:
            raise RuntimeError("settle() needs InMemorySidecar(router=...)")
        actors = ActorClient(self)
        routed = 0
        for _ in range(max_rounds):
            pending, self._pending = self._pending, []
            if not pending:
                return routed
            for event in pending:
                if event.topic in self.router.topics:
                    routed += 1
                    if not await self._route(self.router, actors, event):
                        self._pending.append(event)
        raise RuntimeError(f"events still pending after {max_rounds} rounds")

    async def _route(self, router: EventRouter, actors: ActorClient, event: Published) -> bool:
        """Deliver one event; False when it must be delivered again."""
        try:
            plan = router.plan(event.topic, event.cloud_event())
        except DeadLetterError as letter:
            self.refused.append(Refused(event.topic, letter.code, letter.reason, event.event_id))
            return True
        return await self._deliver(actors, event, plan)

    async def _deliver(self, actors: ActorClient, event: Published, plan: Plan) -> bool:
        """A plan's calls one by one, then (none to try again) what a chained plan's
        answers make, step by step, as apps.actor_host.subscriptions delivers them."""
        done = True
        answers: list[Events | None] = []
        for d in plan.calls:
            try:
                result = await actors.invoke(d.actor_type, d.actor_id, d.method, d.payload)
            except DomainError as exc:
                target = f"{d.actor_type}/{d.actor_id}/{d.method}"
                self.refused.append(
                    Refused(event.topic, exc.code, exc.detail, event.event_id, target)
                )
                answers.append(None)
            except RuntimeUnavailableError:
                done = False
            else:
                answers.append(result.events)
        if plan.then is None or not done:
            return done
        try:
            follow = plan.follow_up(answers)
        except DeadLetterError as letter:
            self.refused.append(Refused(event.topic, letter.code, letter.reason, event.event_id))
            return True
        return await self._deliver(actors, event, follow)

    # --- faults --------------------------------------------------------------------------------

    def fail(
        self,
        times: int | None = 1,
        *,
        status: int = 500,
        error: BaseException | None = None,
        path: str = "/v1.0/",
    ) -> None:
        """The next `times` requests under `path` (None: until recover()) answer `status`
        with daprd's error body, or raise `error` (e.g. SidecarUnavailableError)."""
        body = daprd_error("ERR_ACTOR_INVOKE_METHOD", "injected failure")
        self._rules.append(_Rule(path, times, status=status, body=body, error=error))

    def answer(
        self, status: int, body: bytes, *, times: int | None = 1, path: str = "/v1.0/"
    ) -> None:
        """The next `times` requests under `path` answer (status, body) instead."""
        self._rules.append(_Rule(path, times, status=status, body=body))

    def before_next(self, hook: Callable[[], Awaitable[None]], *, path: str = "/v1.0/") -> None:
        """Await `hook()` before serving the next request under `path` (then serve it)."""
        self._rules.append(_Rule(path, 1, before=hook))

    def recover(self) -> None:
        """Drop every injected fault and canned answer."""
        self._rules.clear()

    def _take_rules(self, path: str) -> list[_Rule]:
        """The hooks matching `path`, then the first matching fault or answer; each used once."""
        taken: list[_Rule] = []
        for rule in list(self._rules):
            if not path.startswith(rule.path):
                continue
            taken.append(rule)
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules.remove(rule)
            if rule.before is None:
                break
        return taken

    # --- over TCP ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[int]:
        """Serve this sidecar on 127.0.0.1 at a free port (yielded) until the block ends."""
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(runner, sock)
        await site.start()
        self._server = runner.server
        try:
            yield sock.getsockname()[1]
        finally:
            self._server = None
            await runner.cleanup()

    @property
    def open_connections(self) -> int:
        """Client connections open to the served sidecar."""
        return len(self._server.connections) if self._server is not None else 0

    async def connections_closed(self, *, within_s: float = 2.0) -> bool:
        """Whether every client connection to the served sidecar closes within `within_s`."""
        for _ in range(int(within_s / 0.01)):
            if not self.open_connections:
                return True
            await asyncio.sleep(0.01)
        return not self.open_connections

    async def _handle(self, request: web.Request) -> web.Response:
        peername = request.transport.get_extra_info("peername") if request.transport else None
        status, body = await self.request(
            request.method,
            request.path,
            content=await request.read(),
            params=dict(request.query),
            headers=dict(request.headers),
            peer=f"{peername[0]}:{peername[1]}" if peername else "",
        )
        return web.Response(status=status, body=body, content_type="application/json")
