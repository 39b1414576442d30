"""Composition root of the simulated shipping partner."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from pydantic import ValidationError
from redis.asyncio import Redis

from actors.catalog import PUBSUB
from actors.toolkit import lifecycle, logs, tracing
from actors.toolkit.apitoken import AppTokenGuard, app_api_token_from_env, dapr_api_token_from_env
from actors.toolkit.concurrentfeed import ConcurrentStreamFeed
from actors.toolkit.metrics import ShippingMetrics, mount_metrics, new_registry
from actors.toolkit.publisher import SidecarPublisher
from actors.toolkit.redis_connection import (
    DEFAULT_REDIS_HOST,
    feed_client,
    redis_host_from_env,
    redis_password_from_env,
)
from actors.toolkit.sidecar import SidecarHTTP, SidecarTransport
from actors.toolkit.streamfeed import FEED_STREAMS, feed_mode, running
from apps.shipping import events, routes
from apps.shipping.feed import ShipEntries, shipping_feed, shipping_feed_settings
from apps.shipping.partner import Partner, PartnerSettings


@dataclasses.dataclass(frozen=True)
class Settings:
    dapr_http_port: int = 3500
    partner: PartnerSettings = dataclasses.field(
        default_factory=lambda: PartnerSettings(delay_ms=50, failure_rate=0.0)
    )
    seed: str | None = None  # reproducible outcomes; None: a fresh salt per process
    # where the orders come from: the orders stream through its own consumer group
    # (apps.shipping.feed), or daprd's subscription ("dapr": a broker other than the
    # actors' Redis)
    feed: str = FEED_STREAMS
    redis_host: str = DEFAULT_REDIS_HOST  # pub/sub's Redis (host:port), for the feed
    redis_password: str | None = None  # ORDERFLOW_REDIS_PASSWORD (actors.toolkit.redis_connection)
    group: str = "shipping"  # the consumer group: the app id, as daprd names it
    consumer: str = "shipping"  # the process name: one consumer per replica
    dapr_api_token: str | None = None  # DAPR_API_TOKEN: what its calls to daprd carry
    app_api_token: str | None = None  # APP_API_TOKEN: what its daprd's calls carry

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        try:
            partner = PartnerSettings.model_validate(
                {
                    "delay_ms": env.get("ORDERFLOW_SHIPPING_DELAY_MS", "50"),
                    "failure_rate": env.get("ORDERFLOW_SHIPPING_FAILURE_RATE", "0.0"),
                }
            )
        except ValidationError as exc:
            raise ValueError(
                "ORDERFLOW_SHIPPING_DELAY_MS must be 0-60000 and "
                f"ORDERFLOW_SHIPPING_FAILURE_RATE 0-1: {exc}"
            ) from exc
        app_id = env.get("APP_ID") or "shipping"
        return cls(
            dapr_http_port=int(env.get("DAPR_HTTP_PORT", "3500")),
            partner=partner,
            seed=env.get("ORDERFLOW_SHIPPING_SEED") or None,
            feed=feed_mode(
                "ORDERFLOW_SHIPPING_FEED", env.get("ORDERFLOW_SHIPPING_FEED", FEED_STREAMS)
            ),
            redis_host=redis_host_from_env(env),
            redis_password=redis_password_from_env(env),
            group=app_id,
            consumer=env.get("ORDERFLOW_APP_NAME") or app_id,
            dapr_api_token=dapr_api_token_from_env(env),
            app_api_token=app_api_token_from_env(env),
        )


def create_app(
    settings: Settings | None = None,
    *,
    sidecar: SidecarTransport | None = None,
    feed_redis: Redis | None = None,
) -> FastAPI:
    """The app; `sidecar` replaces the sidecar client (tests), and its caller closes it.
    With the streams feed, `feed_redis` (bytes replies; its caller closes it) replaces the
    feed's own client; a test that passes `sidecar` but no `feed_redis` runs without a feed."""
    logs.configure(app="shipping")
    metrics = ShippingMetrics(new_registry())  # GET /metrics: the feed's, the process'

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or Settings.from_env()
        app.state.partner = Partner(resolved.partner, salt=resolved.seed or secrets.token_hex(8))
        app.state.feed_mode = resolved.feed
        app.state.feed = None
        async with AsyncExitStack() as stack:
            stack.callback(tracing.configure_from_env("orderflow-shipping", os.environ).shutdown)
            http = sidecar
            if http is None:
                port = resolved.dapr_http_port
                token = resolved.dapr_api_token
                client = SidecarHTTP(port, max_connections=64, api_token=token)
                http = await stack.enter_async_context(client)
            app.state.publisher = SidecarPublisher(http, pubsub=PUBSUB)
            if resolved.feed == FEED_STREAMS and (sidecar is None or feed_redis is not None):
                # entered after the sidecar client: stopped before it closes
                app.state.feed = await stack.enter_async_context(
                    _running_feed(app, resolved, feed_redis, metrics)
                )
            lifecycle.app_started()  # the heap frozen, uvicorn's tick slowed
            yield

    app = FastAPI(title="Orderflow shipping partner (simulated)", lifespan=lifespan)
    app.add_middleware(tracing.TraceContextMiddleware)  # the delivery's traceparent
    app.include_router(events.router)
    app.include_router(routes.router)
    mount_metrics(app, metrics.registry)
    token = settings.app_api_token if settings is not None else app_api_token_from_env()
    app.add_middleware(AppTokenGuard, token=token)  # its daprd's deliveries

    @app.get("/healthz/app", tags=["ops"])
    async def app_health() -> dict[str, str]:
        return {"status": "ok"}

    return app


@asynccontextmanager
async def _running_feed(
    app: FastAPI, settings: Settings, feed_redis: Redis | None, metrics: ShippingMetrics
) -> AsyncIterator[ConcurrentStreamFeed]:
    """The orders stream's feed as a task for the app's lifetime (cancelled at shutdown:
    what it read and had not acknowledged stays pending for the next start, or for
    another replica's claim after 15 s idle)."""
    decide = ShipEntries(app.state.partner, app.state.publisher, metrics)
    feed_settings = shipping_feed_settings(group=settings.group, consumer=settings.consumer)
    async with feed_client(
        settings.redis_host, feed_redis, password=settings.redis_password
    ) as client:
        feed = shipping_feed(client, decide, settings=feed_settings)
        async with running(feed, name="shipping-feed"):
            yield feed
