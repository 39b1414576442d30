"""Composition root of the simulated shipping partner."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from pydantic import ValidationError

from actors.catalog import PUBSUB
from actors.toolkit import logs, tracing
from actors.toolkit.metrics import mount_metrics, new_registry
from actors.toolkit.publisher import SidecarPublisher
from actors.toolkit.sidecar import SidecarHTTP, SidecarTransport
from apps.shipping import events, routes
from apps.shipping.partner import Partner, PartnerSettings


@dataclasses.dataclass(frozen=True)
class Settings:
    dapr_http_port: int = 3500
    partner: PartnerSettings = dataclasses.field(
        default_factory=lambda: PartnerSettings(delay_ms=50, failure_rate=0.0)
    )
    seed: str | None = None  # reproducible outcomes; None: a fresh salt per process

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
        return cls(
            dapr_http_port=int(env.get("DAPR_HTTP_PORT", "3500")),
            partner=partner,
            seed=env.get("ORDERFLOW_SHIPPING_SEED") or None,
        )


def create_app(
    settings: Settings | None = None, *, sidecar: SidecarTransport | None = None
) -> FastAPI:
    """The app; `sidecar` replaces the sidecar client (tests), and its caller closes it."""
    logs.configure(app="shipping")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or Settings.from_env()
        app.state.partner = Partner(resolved.partner, salt=resolved.seed or secrets.token_hex(8))
        async with AsyncExitStack() as stack:
            stack.callback(tracing.configure_from_env("orderflow-shipping", os.environ).shutdown)
            http = sidecar
            if http is None:
                port = resolved.dapr_http_port
                http = await stack.enter_async_context(SidecarHTTP(port, max_connections=64))
            app.state.publisher = SidecarPublisher(http, pubsub=PUBSUB)
            yield

    app = FastAPI(title="Orderflow shipping partner (simulated)", lifespan=lifespan)
    app.add_middleware(tracing.TraceContextMiddleware)  # the delivery's traceparent
    app.include_router(events.router)
    app.include_router(routes.router)
    mount_metrics(app, new_registry())  # the process' own: CPU, memory, descriptors

    @app.get("/healthz/app", tags=["ops"])
    async def app_health() -> dict[str, str]:
        return {"status": "ok"}

    return app
