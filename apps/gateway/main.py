"""Composition root of the gateway (the public HTTP API)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from actors.toolkit.client import ActorClient
from actors.toolkit.sidecar import SidecarHTTP
from apps.gateway import problems
from apps.gateway.middleware import MAX_BODY_BYTES, BodySizeLimit
from apps.gateway.routes import inventory, orders, wallets

DESCRIPTION = """\
Orderflow's public API: place and track orders, stock SKUs, fund wallets.

Errors are `application/problem+json` (RFC 9457) with a stable `code`;
`type` is `https://orderflow.dev/problems/<code>`.
"""


@dataclass(frozen=True)
class Settings:
    dapr_http_port: int = 3500
    max_body_bytes: int = MAX_BODY_BYTES

    @classmethod
    def from_env(cls) -> Settings:
        return cls(dapr_http_port=int(os.environ.get("DAPR_HTTP_PORT", "3500")))


class GatewayApp(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            problems.add_schemas(super().openapi())
        return super().openapi()


def create_app(settings: Settings | None = None, *, actors: ActorClient | None = None) -> FastAPI:
    """The gateway app; pass `actors` (e.g. a fake) to skip building the sidecar client."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if actors is not None:
            yield
            return
        async with SidecarHTTP(settings.dapr_http_port) as http:
            app.state.actors = ActorClient(http)
            yield
            del app.state.actors

    app = GatewayApp(
        title="Orderflow API", version="0.1.0", description=DESCRIPTION, lifespan=lifespan
    )
    if actors is not None:
        app.state.actors = actors
    problems.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    common = problems.problem_responses(422, 500, 503)
    for module in (orders, inventory, wallets):
        app.include_router(module.router, responses=common)

    @app.get("/healthz/app", tags=["ops"], summary="Liveness of the gateway process")
    async def app_health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/healthz", tags=["ops"], include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
