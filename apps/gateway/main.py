"""Composition root of the gateway (the public HTTP API)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from actors.toolkit import logs, tracing
from actors.toolkit.client import ActorClient
from actors.toolkit.metrics import HttpMetrics, HttpMetricsMiddleware, mount_metrics, new_registry
from actors.toolkit.redis_connection import DEFAULT_REDIS_HOST, redis_client, redis_host_from_env
from actors.toolkit.sidecar import SidecarHTTP
from apps.gateway import problems
from apps.gateway.fastpath import HotCommands, hot_routes
from apps.gateway.middleware import MAX_BODY_BYTES, BodySizeLimit
from apps.gateway.routes import inventory, orders, queries, wallets
from readmodels.keys import DEFAULT_BASE, Layout, prefix_from_env
from readmodels.queries import ReadModels

DESCRIPTION = """\
Orderflow's public API: place and track orders, stock SKUs, fund wallets.

Errors are `application/problem+json` (RFC 9457) with a stable `code`;
`type` is `https://orderflow.dev/problems/<code>`.
"""


@dataclass(frozen=True)
class Settings:
    dapr_http_port: int = 3500
    max_body_bytes: int = MAX_BODY_BYTES
    redis_host: str = DEFAULT_REDIS_HOST  # the read models
    read_model_prefix: str = DEFAULT_BASE

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            dapr_http_port=int(os.environ.get("DAPR_HTTP_PORT", "3500")),
            redis_host=redis_host_from_env(),
            read_model_prefix=prefix_from_env(),
        )


class GatewayApp(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            problems.add_schemas(super().openapi())
        return super().openapi()


def create_app(
    settings: Settings | None = None,
    *,
    actors: ActorClient | None = None,
    readmodels: ReadModels | None = None,
) -> FastAPI:
    """The gateway app; pass `actors` / `readmodels` (e.g. fakes) to skip building them."""
    settings = settings or Settings.from_env()
    logs.configure(app="gateway")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.callback(tracing.configure_from_env("orderflow-gateway", os.environ).shutdown)
            if actors is None:
                http = await stack.enter_async_context(SidecarHTTP(settings.dapr_http_port))
                app.state.actors = ActorClient(http)
                stack.callback(delattr, app.state, "actors")
            if readmodels is None:
                redis = redis_client(settings.redis_host)  # one pool for every query
                stack.push_async_callback(redis.aclose)
                layout = Layout(settings.read_model_prefix)
                app.state.readmodels = ReadModels(redis, layout=layout)
                stack.callback(delattr, app.state, "readmodels")
            yield

    app = GatewayApp(
        title="Orderflow API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry stays off: TraceContextMiddleware makes our server
        # span, and the check for global providers cost every request three env reads.
        telemetry=tracing.NO_FASTAPI_TELEMETRY,
    )
    if actors is not None:
        app.state.actors = actors
    if readmodels is not None:
        app.state.readmodels = readmodels
    problems.install(app)
    registry = new_registry()  # GET /metrics: requests and durations per route template
    mount_metrics(app, registry)
    common = problems.problem_responses(422, 500, 503)
    for module in (orders, inventory, wallets, queries):
        app.include_router(module.router, responses=common)
    # innermost: the hot commands, answered without FastAPI's routing (as the routes would)
    hot = hot_routes(app, (wallets.deposit, inventory.restock))
    app.add_middleware(HotCommands, commands=hot, handlers=app.exception_handlers)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # one log scope and one span per request (routes annotate the order id)
    app.add_middleware(logs.LogScope)
    app.add_middleware(tracing.TraceContextMiddleware, server_span=True)
    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(registry))  # outermost: 413s too

    @app.get("/healthz/app", tags=["ops"], summary="Liveness of the gateway process")
    async def app_health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/healthz", tags=["ops"], include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
