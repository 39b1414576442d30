"""Composition root of the projector (the read side)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from actors.toolkit import lifecycle, logs, tracing
from actors.toolkit.apitoken import AppTokenGuard, app_api_token_from_env
from actors.toolkit.batchfeed import StreamFeed
from actors.toolkit.envelope import utcnow
from actors.toolkit.fastpath import FastRoutes
from actors.toolkit.metrics import ProjectorMetrics, mount_metrics, new_registry
from actors.toolkit.redis_connection import (
    feed_client,
    host_of,
    password_of,
    redis_client,
    redis_host_from_env,
    redis_password_from_env,
)
from actors.toolkit.redis_multiplex import MultiplexedRedis
from actors.toolkit.streamfeed import (
    FEED_STREAMS,
    Entry,
    FeedSettings,
    feed_mode,
    running,
)
from apps.projector import events
from apps.projector.apply import DEFAULT_COUNTER_TTL
from apps.projector.deps import StatsDep
from apps.projector.generations import Generations
from apps.projector.reader import EventReader
from apps.projector.sagas import DEFAULT_STUCK_AFTER, SagaGauges
from apps.projector.stats import ProjectorStats
from apps.projector.store import ProjectionStore
from readmodels.keys import Layout, prefix_from_env
from readmodels.queries import ReadModels


@dataclasses.dataclass(frozen=True)
class Settings:
    redis_host: str = "127.0.0.1:6380"
    redis_password: str | None = None  # ORDERFLOW_REDIS_PASSWORD (actors.toolkit.redis_connection)
    prefix: str = "rm:"
    counter_ttl: dt.timedelta = DEFAULT_COUNTER_TTL
    stuck_after: dt.timedelta = DEFAULT_STUCK_AFTER  # orderflow_orders_stuck counts older ones
    # where events come from: the topics' streams through its own consumer group
    # (actors.toolkit.streamfeed), or daprd's bulk subscriptions ("dapr": a broker other than
    # the actors' Redis)
    feed: str = FEED_STREAMS
    group: str = "projector"  # the consumer group: the app id, as daprd names it
    app_api_token: str | None = None  # APP_API_TOKEN: what its daprd's calls carry

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        hours = float(env.get("ORDERFLOW_COUNTER_TTL_HOURS", "48"))
        return cls(
            redis_host=redis_host_from_env(env),
            redis_password=redis_password_from_env(env),
            prefix=prefix_from_env(env),
            counter_ttl=dt.timedelta(hours=hours),
            stuck_after=dt.timedelta(
                seconds=float(
                    env.get("ORDERFLOW_STUCK_AFTER_S", DEFAULT_STUCK_AFTER.total_seconds())
                )
            ),
            feed=feed_mode(
                "ORDERFLOW_PROJECTOR_FEED", env.get("ORDERFLOW_PROJECTOR_FEED", FEED_STREAMS)
            ),
            group=env.get("APP_ID") or "projector",
            app_api_token=app_api_token_from_env(env),
        )


def create_app(
    settings: Settings | None = None,
    *,
    redis: Redis | None = None,
    reader: EventReader | None = None,
    feed_redis: Redis | None = None,
) -> FastAPI:
    """The projector; `redis` replaces the client built from settings (its caller closes it),
    `reader` the reader of the actors' own event schemas (EventReader.for_actors).
    With the streams feed, `feed_redis` (bytes replies; its caller closes it) replaces the
    feed's own client; a test that passes `redis` but no `feed_redis` runs without a feed."""
    logs.configure(app="projector")
    metrics = ProjectorMetrics(new_registry())  # GET /metrics

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or Settings.from_env()
        client = redis or redis_client(resolved.redis_host, password=resolved.redis_password)
        # a batch's reads and writes over one shared connection (the client's own host)
        shared = MultiplexedRedis(host_of(client), decode=True, password=password_of(client))
        layout = Layout(resolved.prefix)
        app.state.store = ProjectionStore(
            client, layout=layout, counter_ttl=resolved.counter_ttl, multiplexed=shared
        )
        app.state.generations = Generations(client, layout=layout)
        app.state.reader = reader or EventReader.for_actors()
        app.state.stats = ProjectorStats(metrics=metrics)
        app.state.metrics = metrics
        app.state.sagas = SagaGauges(
            ReadModels(client, layout=layout), metrics, stuck_after=resolved.stuck_after
        )
        app.state.feed_mode = resolved.feed
        app.state.feed = None
        async with contextlib.AsyncExitStack() as stack:
            if redis is None:
                stack.push_async_callback(client.aclose)
            stack.push_async_callback(shared.aclose)
            if resolved.feed == FEED_STREAMS and (redis is None or feed_redis is not None):
                app.state.feed = await stack.enter_async_context(
                    _running_feed(app, resolved, feed_redis)
                )
            lifecycle.app_started()  # the heap frozen, uvicorn's tick slowed
            yield

    app = FastAPI(title="Orderflow projector (read models)", lifespan=lifespan)
    app.add_middleware(FastRoutes, routes=events.delivery_routes())  # the hot path
    app.add_middleware(tracing.TraceContextMiddleware)  # trace ids in its log lines
    app.include_router(events.router)
    mount_metrics(app, metrics.registry, refresh=_refresh_saga_gauges)
    token = settings.app_api_token if settings is not None else app_api_token_from_env()
    app.add_middleware(AppTokenGuard, token=token)  # outermost: the hot path too

    @app.get("/projector/stats", tags=["ops"], summary="Events applied, throughput, lag")
    async def projector_stats(request: Request, stats: StatsDep) -> dict[str, Any]:
        generations: Generations = request.app.state.generations
        try:
            active, rebuilding = await generations.current()
        except RedisError:
            active, rebuilding = None, None
        body = stats.as_dict(now=utcnow())
        body["generations"] = {"active": active, "rebuilding": rebuilding}
        feed: StreamFeed | None = request.app.state.feed
        body["feed"] = {"mode": request.app.state.feed_mode}
        if feed is not None:
            body["feed"].update(group=feed.settings.group, **feed.stats.as_dict())
        return body

    @app.post("/projector/stats/reset", tags=["ops"], summary="Forget lag/throughput samples")
    async def reset_stats(stats: StatsDep) -> dict[str, str]:
        stats.reset_samples()
        return {"status": "reset"}

    @app.get("/healthz/app", tags=["ops"])
    async def app_health() -> dict[str, str]:
        return {"status": "ok"}

    return app


@contextlib.asynccontextmanager
async def _running_feed(
    app: FastAPI, settings: Settings, feed_redis: Redis | None
) -> AsyncIterator[StreamFeed]:
    """The stream feed as a task for the app's lifetime (cancelled at shutdown: what it
    read and had not acknowledged stays pending for the next start)."""
    # acknowledgements held up to ack_linger_ms, as the router's and shipping's are:
    # OrderflowProjectorEntriesHeld watches the entries read more than once, not the
    # pending count, which a held acknowledgement (or any batch in flight) keeps above 0
    feed_settings = FeedSettings(group=settings.group, consumer=settings.group)
    async with feed_client(
        settings.redis_host, feed_redis, password=settings.redis_password
    ) as client:
        feed = projector_feed(client, app.state, feed_settings)
        async with running(feed, name="projector-feed"):
            yield feed


def projector_feed(client: Redis, state: Any, settings: FeedSettings) -> StreamFeed:
    """The projector's feed over `client`, deciding each batch with the app's store,
    reader and stats (`state`: its app.state, once the lifespan has set them)."""

    async def decide(entries: Sequence[Entry]) -> list[bool]:
        return await events.decide_stream_entries(
            entries, store=state.store, reader=state.reader, stats=state.stats
        )

    return StreamFeed(client, streams=events.FEED_STREAMS, decide=decide, settings=settings)


async def _refresh_saga_gauges(request: Request) -> None:
    sagas: SagaGauges = request.app.state.sagas
    await sagas.refresh(utcnow())
    feed: StreamFeed | None = request.app.state.feed
    if feed is not None:
        await _refresh_feed_gauges(feed, request.app.state.metrics)


async def _refresh_feed_gauges(feed: StreamFeed, metrics: ProjectorMetrics) -> None:
    """Per stream, what the feed's group holds pending and has not read (XINFO GROUPS),
    and how many of its oldest pending entries it has read more than once (XPENDING)."""
    group_name = feed.settings.group
    for stream in feed.streams:
        try:
            groups = await feed.redis.xinfo_groups(stream)
            oldest = await feed.redis.xpending_range(
                stream, group_name, min="-", max="+", count=REDELIVERED_SCAN
            )
        except RedisError:  # no stream or group yet, or Redis down: the gauges keep their last
            continue
        for group in groups:
            if _text(group.get("name")) != group_name:
                continue
            metrics.feed_pending.labels(stream).set(int(group.get("pending") or 0))
            lag = group.get("lag")
            if lag is not None:  # None: Redis cannot tell (entries were deleted)
                metrics.feed_backlog.labels(stream).set(int(lag))
        redelivered = sum(1 for row in oldest if int(row["times_delivered"]) > 1)
        metrics.feed_redelivered.labels(stream).set(redelivered)


# pending entries are listed oldest first, and an entry the feed keeps retrying stays
# while newer ones are acknowledged past it: the oldest ones are where it shows
REDELIVERED_SCAN: Final = 100


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
