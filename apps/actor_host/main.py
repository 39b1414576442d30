"""Composition root of the actor host: FastAPI + the SDK's DaprActor routes."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from dapr.actor import Actor, ActorRuntime
from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI

from actors.beacon.actor import BeaconActor
from actors.toolkit.serializer import RawJSONSerializer
from actors.toolkit.sidecar import SidecarActorClient, sidecar_http_client

ACTORS: tuple[type[Actor], ...] = (BeaconActor,)


@dataclass(frozen=True)
class Settings:
    dapr_http_port: int = 3500
    replica: str = "actor-host"
    actor_idle_timeout: dt.timedelta = dt.timedelta(minutes=15)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            dapr_http_port=int(os.environ.get("DAPR_HTTP_PORT", "3500")),
            replica=os.environ.get("ORDERFLOW_APP_NAME", "actor-host"),
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        http = sidecar_http_client(settings.dapr_http_port)
        client = SidecarActorClient(http)
        ActorRuntime.set_actor_config(
            ActorRuntimeConfig(
                actor_idle_timeout=settings.actor_idle_timeout,
                actor_scan_interval=dt.timedelta(seconds=30),
                drain_ongoing_call_timeout=dt.timedelta(seconds=30),
                drain_rebalanced_actors=True,
            )
        )
        for actor in ACTORS:
            await actor_runtime.register_actor(
                actor,
                message_serializer=RawJSONSerializer(),
                state_serializer=RawJSONSerializer(raw_reads=True),
                actor_client=client,
            )
        yield
        await http.aclose()

    app = FastAPI(title="Orderflow actor host", lifespan=lifespan)
    actor_runtime = DaprActor(app)

    @app.get("/healthz/app", tags=["ops"])
    async def app_health() -> dict[str, str]:
        return {"status": "ok", "replica": settings.replica}

    return app
