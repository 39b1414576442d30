"""Composition root of the gateway (the public HTTP API)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from actors.toolkit import lifecycle, logs, tracing
from actors.toolkit.apitoken import dapr_api_token_from_env
from actors.toolkit.client import ActorClient
from actors.toolkit.metrics import HttpMetrics, HttpMetricsMiddleware, mount_metrics, new_registry
from actors.toolkit.redis_connection import (
    DEFAULT_REDIS_HOST,
    redis_client,
    redis_host_from_env,
    redis_password_from_env,
)
from actors.toolkit.sidecar import SidecarHTTP
from apps.gateway import auth, problems
from apps.gateway.fastpath import HotLane
from apps.gateway.hotroutes import hot_routes
from apps.gateway.middleware import MAX_BODY_BYTES, BodySizeLimit
from apps.gateway.routes import inventory, orders, queries, wallets
from readmodels.keys import DEFAULT_BASE, Layout, prefix_from_env
from readmodels.queries import ReadModels

DESCRIPTION = """\
Orderflow's public API: place and track orders, stock SKUs, fund wallets.

Errors are `application/problem+json` (RFC 9457) with a stable `code`;
`type` is `https://orderflow.dev/problems/<code>`.
"""

# the commands the hot lane serves (apps/gateway/fastpath.py): the saga's start and the
# two that other services and clients send most
HOT_COMMANDS = (orders.place_order, wallets.deposit, inventory.restock)


@dataclass(frozen=True)
class Settings:
    dapr_http_port: int = 3500
    max_body_bytes: int = MAX_BODY_BYTES
    redis_host: str = DEFAULT_REDIS_HOST  # the read models
    redis_password: str | None = None  # ORDERFLOW_REDIS_PASSWORD (actors.toolkit.redis_connection)
    read_model_prefix: str = DEFAULT_BASE
    dapr_api_token: str | None = None  # DAPR_API_TOKEN (actors.toolkit.apitoken)
    # who may call the API (apps.gateway.auth); None: anyone who reaches the port
    clients_file: Path | None = None

    @classmethod
    def from_env(cls) -> Settings:
        clients = os.environ.get(auth.CLIENTS_ENV)
        return cls(
            clients_file=Path(clients) if clients else None,
            dapr_http_port=int(os.environ.get("DAPR_HTTP_PORT", "3500")),
            dapr_api_token=dapr_api_token_from_env(),
            redis_host=redis_host_from_env(),
            redis_password=redis_password_from_env(),
            read_model_prefix=prefix_from_env(),
        )


class GatewayApp(FastAPI):
    # the hot commands' lane (apps/gateway/fastpath.py), set by create_app; None: every
    # request takes FastAPI's stack
    hot_lane: HotLane | None = None
    # who may call (apps/gateway/auth.py), set by create_app; None: the API is open
    auth_guard: auth.GatewayAuth | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard = self.auth_guard
        if guard is not None and scope["type"] == "http":
            await guard(scope, receive, send, self._serve)
        else:
            await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.hot_lane
        if lane is not None and (found := lane.match(scope)) is not None:
            await lane.serve(found, scope, receive, send, otherwise=super().__call__)
        else:
            await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            problems.add_schemas(schema)
            if self.auth_guard is not None:  # the docs' "Authorize" button takes the key
                schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
                schemes["clientKey"] = {"type": "http", "scheme": "bearer"}
                schema["security"] = [{"clientKey": []}]
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
                sidecar = SidecarHTTP(settings.dapr_http_port, api_token=settings.dapr_api_token)
                http = await stack.enter_async_context(sidecar)
                app.state.actors = ActorClient(http)
                stack.callback(delattr, app.state, "actors")
            if readmodels is None:
                # one pool for every query
                redis = redis_client(settings.redis_host, password=settings.redis_password)
                stack.push_async_callback(redis.aclose)
                layout = Layout(settings.read_model_prefix)
                app.state.readmodels = ReadModels(redis, layout=layout)
                stack.callback(delattr, app.state, "readmodels")
            lifecycle.app_started()  # the heap frozen, uvicorn's tick slowed
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
    http_metrics = HttpMetrics(registry)
    # who may call: ahead of the hot lane and FastAPI's stack (GatewayApp.__call__)
    if settings.clients_file is not None:
        clients = auth.load_clients(settings.clients_file)  # a bad file stops the start
        watch = auth.watch_clients(settings.clients_file)  # a changed file: new clients
        app.auth_guard = auth.GatewayAuth(auth.Gatekeeper(clients), http_metrics, watch=watch)
    else:
        logging.getLogger("orderflow.gateway").warning(
            "the API is open to anyone who reaches its port: %s is not set (apps/gateway/auth.py)",
            auth.CLIENTS_ENV,
        )
    # every route's problem answers in the OpenAPI document (the client-key ones with auth)
    refusals = (401, 403, 429) if app.auth_guard is not None else ()
    common = problems.problem_responses(*refusals, 422, 500, 503)
    for module in (orders, inventory, wallets, queries):
        app.include_router(module.router, responses=common)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # one log scope and one span per request (routes annotate the order id)
    app.add_middleware(logs.LogScope)
    app.add_middleware(tracing.TraceContextMiddleware, server_span=True)
    app.add_middleware(HttpMetricsMiddleware, metrics=http_metrics)  # outermost: 413s too
    # ahead of all of it: the hot commands, answered as the routes and the layers above
    # would answer them
    app.hot_lane = HotLane(
        app,
        hot_routes(app, HOT_COMMANDS),
        metrics=http_metrics,
        max_body_bytes=settings.max_body_bytes,
    )

    @app.get("/healthz/app", tags=["ops"], summary="Liveness of the gateway process")
    async def app_health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/healthz", tags=["ops"], include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
