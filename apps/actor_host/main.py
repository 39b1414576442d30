"""Composition root of the actor host: the actors, their dependencies, the event router.

The actors' event store is Redis itself (actors.toolkit.redis_store), in Dapr's actor
state layout under this app id: every append is one fenced Lua script.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from dapr.actor import Actor, ActorRuntime
from dapr.actor.runtime.config import ActorRuntimeConfig, ActorTypeConfig
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI, HTTPException

from actors.beacon.actor import BeaconActor, replica_name
from actors.catalog import PUBSUB
from actors.inventory.actor import InventoryActor
from actors.order.actor import Deadlines, OrderActor
from actors.order.deadlines import DeadlineSweeper, SweeperDeps, start_sweepers, sweep_period
from actors.reactions import SPECS, build_router
from actors.toolkit import lifecycle, logs, tracing
from actors.toolkit.actor import ActorDeps, EventSourcedActor, actor_factory
from actors.toolkit.apitoken import AppTokenGuard, app_api_token_from_env, dapr_api_token_from_env
from actors.toolkit.client import ActorClient
from actors.toolkit.concurrentfeed import ConcurrentStreamFeed
from actors.toolkit.fastpath import FastRoutes, actor_routes
from actors.toolkit.faults import HeldCalls
from actors.toolkit.inbox import DEFAULT_TTL
from actors.toolkit.metrics import (
    ActorMetrics,
    RouterMetrics,
    SidecarMetrics,
    mount_metrics,
    new_registry,
)
from actors.toolkit.publisher import SidecarPublisher
from actors.toolkit.redis_connection import (
    feed_client,
    redis_client,
    redis_host_from_env,
    redis_password_from_env,
)
from actors.toolkit.redis_multiplex import MultiplexedRedis
from actors.toolkit.redis_store import RedisDueIndex, RedisStores
from actors.toolkit.router import EventRouter
from actors.toolkit.serializer import RawJSONSerializer
from actors.toolkit.sidecar import SidecarActorClient, SidecarHTTP
from actors.toolkit.sidecarprobe import SidecarProbe, probing
from actors.toolkit.streamfeed import FEED_DAPR, FEED_STREAMS, feed_mode, running
from actors.toolkit.streams import StreamPublishing
from actors.wallet.actor import WalletActor
from actors.watchers import build_actor_metrics
from apps.actor_host.feed import RouteEntries, router_feed, router_feed_settings
from apps.actor_host.subscriptions import (
    DeadLetters,
    Delivering,
    delivery_routes,
    subscription_routes,
)

EVENT_SOURCED: tuple[type[EventSourcedActor], ...] = (  # type: ignore[type-arg]
    InventoryActor,
    WalletActor,
    OrderActor,
)
PLAIN: tuple[type[Actor], ...] = (BeaconActor,)
DRAIN_ONGOING_CALLS = dt.timedelta(seconds=2)
PUBLISH_MODES = frozenset({"append", "sidecar"})
OWN_TOPICS = tuple(spec.topic for spec in SPECS)  # the aggregates' topics: type-filtered


@dataclass(frozen=True)
class Settings:
    dapr_http_port: int = 3500
    replica: str = "actor-host"
    app_id: str = "actor-host"  # Dapr's app id: the first part of every actor state key
    redis_host: str = "127.0.0.1:6380"  # the actor state store's Redis (host:port)
    redis_password: str | None = None  # ORDERFLOW_REDIS_PASSWORD (actors.toolkit.redis_connection)
    actor_idle_timeout: dt.timedelta = dt.timedelta(minutes=15)  # inventory, wallets: hot
    # An order is busy for seconds, then read rarely: its activation is dropped after a
    # minute idle, so the hosts' memory follows the order rate x this, not x 15 minutes.
    order_idle_timeout: dt.timedelta = dt.timedelta(minutes=1)
    test_faults: bool = False  # ORDERFLOW_TEST_FAULTS=1 enables the "fault" payload field
    step_timeout: dt.timedelta = dt.timedelta(seconds=30)  # reserving, authorizing
    shipping_timeout: dt.timedelta = dt.timedelta(seconds=60)  # the partner's answer
    inbox_ttl: dt.timedelta = DEFAULT_TTL  # how long a message id is deduplicated
    drain_timeout: dt.timedelta = DRAIN_ONGOING_CALLS  # in-flight calls of a moving actor
    # "append": a commit XADDs its events to the topic streams itself (the store's Redis
    # is pub/sub's: actors.toolkit.streams); "sidecar": publish through daprd after it
    publish: str = "append"
    # "streams": the router reads the routed topics' streams itself (apps.actor_host.feed);
    # "dapr": daprd delivers them through subscriptions (apps.actor_host.subscriptions)
    router_feed: str = FEED_STREAMS
    # how often the actor host probes its own sidecar with a few read-only actor calls
    # (actors.toolkit.sidecarprobe: the OrderflowSidecarWedged alert's gauges)
    sidecar_probe_period: float = 15.0
    # seconds of hung actor calls before the probe asks its wedged sidecar to shut down,
    # for a supervisor to start it again (0: never; docker-compose sets it)
    sidecar_self_heal: float = 0.0
    dapr_api_token: str | None = None  # DAPR_API_TOKEN: what its calls to daprd carry
    app_api_token: str | None = None  # APP_API_TOKEN: what its daprd's calls carry

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            dapr_http_port=int(os.environ.get("DAPR_HTTP_PORT", "3500")),
            # the process name (actor-host-1): the router feed's consumer name too
            replica=os.environ.get("ORDERFLOW_APP_NAME") or os.environ.get("APP_ID", "actor-host"),
            app_id=os.environ.get("APP_ID", "actor-host"),
            redis_host=redis_host_from_env(),
            redis_password=redis_password_from_env(),
            test_faults=os.environ.get("ORDERFLOW_TEST_FAULTS") == "1",
            order_idle_timeout=_seconds("ORDERFLOW_ORDER_IDLE_TIMEOUT_S", 60),
            step_timeout=_seconds("ORDERFLOW_ORDER_STEP_TIMEOUT_S", 30),
            shipping_timeout=_seconds("ORDERFLOW_SHIPPING_TIMEOUT_S", 60),
            inbox_ttl=_seconds("ORDERFLOW_INBOX_TTL_S", DEFAULT_TTL.total_seconds()),
            drain_timeout=_seconds(
                "ORDERFLOW_DRAIN_TIMEOUT_S", DRAIN_ONGOING_CALLS.total_seconds()
            ),
            publish=_publish_mode(os.environ.get("ORDERFLOW_PUBLISH", "append")),
            router_feed=feed_mode(
                "ORDERFLOW_ROUTER_FEED", os.environ.get("ORDERFLOW_ROUTER_FEED", FEED_STREAMS)
            ),
            sidecar_probe_period=_seconds("ORDERFLOW_SIDECAR_PROBE_S", 15).total_seconds(),
            sidecar_self_heal=_self_heal_bound(os.environ.get("ORDERFLOW_SIDECAR_SELF_HEAL_S")),
            dapr_api_token=dapr_api_token_from_env(),
            app_api_token=app_api_token_from_env(),
        )


def _self_heal_bound(value: str | None) -> float:
    """0 (off) or 10-25 s: long enough to outlast a rebalance (placement's dissemination
    timeout is 5 s), short enough for the patient call's wait (the sidecar client's 30 s)."""
    seconds = float(value or 0)
    if seconds != 0 and not 10 <= seconds <= 25:
        raise ValueError(f"ORDERFLOW_SIDECAR_SELF_HEAL_S={value!r}: expected 0 (off) or 10-25")
    return seconds


def _publish_mode(value: str) -> str:
    if value not in PUBLISH_MODES:
        raise ValueError(f"ORDERFLOW_PUBLISH={value!r}: expected one of {sorted(PUBLISH_MODES)}")
    return value


async def _register_actors(
    runtime: DaprActor,
    client: SidecarActorClient,
    *,
    deps: ActorDeps,
    own: dict[type[EventSourcedActor], dict[str, Any]],  # type: ignore[type-arg]
    sweepers: SweeperDeps,
) -> None:
    """Register every actor type; `own` holds an actor type's own settings."""
    common = {
        "message_serializer": RawJSONSerializer(),
        "state_serializer": RawJSONSerializer(raw_reads=True),
        "actor_client": client,
    }
    for actor in EVENT_SOURCED:
        factory = actor_factory(actor, deps, **own.get(actor, {}))
        await runtime.register_actor(actor, actor_factory=factory, **common)
    for plain in PLAIN:
        await runtime.register_actor(plain, **common)
    sweeper = DeadlineSweeper.factory(sweepers)
    await runtime.register_actor(DeadlineSweeper, actor_factory=sweeper, **common)


def _actor_deps(
    settings: Settings,
    publisher: SidecarPublisher,
    store: MultiplexedRedis,
    *,
    held: HeldCalls | None,
    metrics: ActorMetrics,
) -> ActorDeps:
    return ActorDeps(
        publisher=publisher,
        store=RedisStores(store, app_id=settings.app_id),
        faults_enabled=settings.test_faults,
        held=held,
        inbox_ttl=settings.inbox_ttl,
        metrics=metrics,
        streams=StreamPublishing(PUBSUB, source=settings.app_id)
        if settings.publish == "append"
        else None,
    )


def _configure_runtime(settings: Settings) -> None:
    ActorRuntime.set_actor_config(
        ActorRuntimeConfig(
            actor_idle_timeout=settings.actor_idle_timeout,
            actor_scan_interval=dt.timedelta(seconds=30),
            # ORDERFLOW_DRAIN_TIMEOUT_S (2 s). A rebalance round waits this long on every host:
            # an in-flight turn's own state calls wait for the round, so the drain runs out.
            # Keep it well below placement's dissemination timeout (5 s) or the host is kicked.
            drain_ongoing_call_timeout=settings.drain_timeout,
            drain_rebalanced_actors=True,
            actor_type_configs=[
                ActorTypeConfig(
                    OrderActor.spec.actor_type,
                    actor_idle_timeout=settings.order_idle_timeout,
                    drain_ongoing_call_timeout=settings.drain_timeout,
                    drain_rebalanced_actors=True,
                )
            ],
        )
    )


def _seconds(name: str, default: float) -> dt.timedelta:
    return dt.timedelta(seconds=float(os.environ.get(name, default)))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    logs.configure(app="actor-host", replica=settings.replica)
    held = HeldCalls() if settings.test_faults else None
    registry = new_registry()  # GET /metrics: the actors' and the router's
    metrics, router_metrics = build_actor_metrics(registry), RouterMetrics(registry)
    sidecar_metrics = SidecarMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        password = settings.redis_password
        redis = redis_client(settings.redis_host, decode_responses=False, password=password)
        store = MultiplexedRedis(settings.redis_host, password=password)
        spans = tracing.configure_from_env(
            "orderflow-actor-host", os.environ, instance=settings.replica
        )
        try:
            async with SidecarHTTP(
                settings.dapr_http_port, api_token=settings.dapr_api_token
            ) as http:
                publisher = SidecarPublisher(http, pubsub=PUBSUB)
                deps = _actor_deps(settings, publisher, store, held=held, metrics=metrics)
                _configure_runtime(settings)
                deadlines = Deadlines(
                    reserving=settings.step_timeout,
                    authorizing=settings.step_timeout,
                    shipping=settings.shipping_timeout,
                )
                actors = ActorClient(http)
                sweepers = SweeperDeps(
                    index=RedisDueIndex(redis),
                    actors=actors,
                    period=sweep_period(deadlines.shortest),
                    checks=metrics.deadline_checks,
                )
                await _register_actors(
                    actor_runtime,
                    SidecarActorClient(http),
                    deps=deps,
                    own={OrderActor: {"deadlines": deadlines}},
                    sweepers=sweepers,
                )
                dead_letters = DeadLetters(publisher, metrics=router_metrics)
                app.state.delivering = Delivering(actors, dead_letters)
                starting = asyncio.create_task(start_sweepers(actors))
                probe = SidecarProbe(
                    http,
                    sidecar_metrics,
                    replica=replica_name(),  # as its BeaconActor names it
                    period=settings.sidecar_probe_period,
                    heal_after=settings.sidecar_self_heal,
                )
                try:
                    async with _routing(app, settings, router, router_metrics), probing(probe):
                        lifecycle.app_started()  # the heap frozen, uvicorn's tick slowed
                        yield
                finally:
                    starting.cancel()
        finally:
            spans.shutdown()
            await store.aclose()
            await redis.aclose()

    app = FastAPI(
        title="Orderflow actor host", lifespan=lifespan, telemetry=tracing.NO_FASTAPI_TELEMETRY
    )
    router = build_router()
    # daprd's hot calls (actor turns, reminders, deliveries) skip FastAPI's routing; the
    # trace context middleware, added after it, still wraps them (actors.toolkit.fastpath)
    app.add_middleware(FastRoutes, routes=[*actor_routes(), *delivery_routes(router)])
    app.add_middleware(tracing.TraceContextMiddleware)
    actor_runtime = DaprActor(app)
    through_daprd = settings.router_feed == FEED_DAPR
    app.include_router(
        subscription_routes(router, own_topics=OWN_TOPICS, through_daprd=through_daprd)
    )
    mount_metrics(app, registry)
    # outermost: daprd's calls served beneath FastAPI (FastRoutes) are checked too
    app.add_middleware(AppTokenGuard, token=settings.app_api_token)

    @app.get("/healthz/app", tags=["ops"])
    async def app_health() -> dict[str, str]:
        return {"status": "ok", "replica": settings.replica}

    @app.get("/router/stats", tags=["ops"])
    async def router_stats() -> dict[str, Any]:
        """The event router's feed: where its events come from and, with the streams feed,
        what it read, acknowledged, claimed and is deciding now."""
        body: dict[str, Any] = {"replica": settings.replica, "mode": settings.router_feed}
        feed: ConcurrentStreamFeed | None = getattr(app.state, "router_feed", None)
        if feed is not None:
            body.update(group=feed.settings.group, consumer=feed.settings.consumer)
            body.update(feed.stats.as_dict())
        return body

    @app.get("/actors/stats", tags=["ops"])
    async def actor_stats() -> dict[str, Any]:
        """Counters of this process: commits, and appends the store's fence refused."""
        return {"replica": settings.replica, **metrics.totals()}

    if held is not None:
        _mount_test_holds(app, held)
    return app


@asynccontextmanager
async def _routing(
    app: FastAPI, settings: Settings, router: EventRouter, metrics: RouterMetrics
) -> AsyncIterator[None]:
    """With the streams feed, the router's feed as a task for the app's lifetime, cancelled
    before the sidecar client closes: what it was deciding stays pending (drained at the
    next start, or claimed by another replica after 15 s idle)."""
    app.state.router_feed = None
    if settings.router_feed != FEED_STREAMS:
        yield
        return
    decide = RouteEntries.for_router(
        router, app.state.delivering, own_topics=frozenset(OWN_TOPICS), metrics=metrics
    )
    feed_settings = router_feed_settings(group=settings.app_id, consumer=settings.replica)
    async with feed_client(settings.redis_host, password=settings.redis_password) as client:
        feed = router_feed(client, decide, settings=feed_settings)
        app.state.router_feed = feed
        async with running(feed, name="router-feed"):
            yield


def _mount_test_holds(app: FastAPI, held: HeldCalls) -> None:
    """Test-only (ORDERFLOW_TEST_FAULTS=1): see and release calls held by a "hold:" fault."""

    @app.get("/_test/holds/{token}", tags=["test"])
    async def holding(token: str) -> dict[str, bool]:
        return {"holding": held.holding(token)}

    @app.post("/_test/holds/{token}/release", tags=["test"])
    async def release(token: str) -> dict[str, str]:
        try:
            return {"outcome": await held.release(token)}
        except KeyError:
            raise HTTPException(404, f"no held call {token!r}") from None
